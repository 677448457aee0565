#!/usr/bin/env bash
# deploy/up.sh - start the local PostgreSQL and Kafka used by Ledgerline (idempotent).
# Missing packages for both are installed in one apt-get run first.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=SCRIPTDIR/env.sh
source "$SCRIPT_DIR/env.sh"

started_ms=$(($(date +%s%N) / 1000000))
missing=()
ll_pg_bindir >/dev/null 2>&1 || missing+=(postgres)
command -v java >/dev/null 2>&1 || missing+=(java)
if [ "${#missing[@]}" -gt 0 ]; then
  ll_log "installing missing prerequisites: ${missing[*]}"
  ll_ensure_postgres_installed
  # Maven is only needed for the first fetch of the Kafka jars; installing it alongside Java
  # saves a second apt-get run on a clean machine.
  ll_ensure_java_installed mvn
fi

"$SCRIPT_DIR/postgres/start.sh"
"$SCRIPT_DIR/kafka/start.sh"

elapsed_ms=$(($(date +%s%N) / 1000000 - started_ms))
ll_log "up in $((elapsed_ms / 1000)).$(printf %03d $((elapsed_ms % 1000)))s"
ll_log "  LEDGERLINE_ADMIN_DSN=postgresql://$LEDGERLINE_PG_SUPERUSER:***@$LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT/$LEDGERLINE_PG_DB"
ll_log "  LEDGERLINE_KAFKA_BOOTSTRAP=$LEDGERLINE_KAFKA_BOOTSTRAP"
