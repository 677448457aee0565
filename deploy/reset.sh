#!/usr/bin/env bash
# deploy/reset.sh - DEV ONLY: stop both servers and delete their data so the next deploy/up.sh
# starts from scratch. Removes $LEDGERLINE_STATE_DIR/pg, kafka/data and kafka/cluster.id;
# keeps the Kafka jar cache (kafka/libs) and the logs. Asks no questions.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=SCRIPTDIR/env.sh
source "$SCRIPT_DIR/env.sh"
ll_check_state_dir

"$SCRIPT_DIR/down.sh" || ll_die "could not stop the servers; nothing was deleted"

ll_log "deleting $LEDGERLINE_PG_DIR, $LEDGERLINE_KAFKA_DATA and $LEDGERLINE_KAFKA_CLUSTER_ID_FILE"
rm -rf -- "$LEDGERLINE_PG_DIR" "$LEDGERLINE_KAFKA_DATA" "$LEDGERLINE_KAFKA_CLUSTER_ID_FILE" \
  "$LEDGERLINE_KAFKA_DIR/kafka.log.offset"
ll_log "reset done; run deploy/up.sh to start fresh"
