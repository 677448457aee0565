#!/usr/bin/env bash
# deploy/kafka/status.sh - exit 0 when the local Kafka broker process is alive and its listener
# accepts TCP connections; non-zero otherwise.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=SCRIPTDIR/../env.sh
source "$SCRIPT_DIR/../env.sh"

if ! pid="$(ll_kafka_running_pid)"; then
  if ll_tcp_open "$LEDGERLINE_KAFKA_HOST" "$LEDGERLINE_KAFKA_PORT"; then
    echo "kafka: down (no broker started from $LEDGERLINE_KAFKA_DIR, but another process listens on $LEDGERLINE_KAFKA_BOOTSTRAP)" >&2
  else
    echo "kafka: down" >&2
  fi
  exit 3
fi
if ! ll_tcp_open "$LEDGERLINE_KAFKA_HOST" "$LEDGERLINE_KAFKA_PORT"; then
  echo "kafka: process $pid alive but $LEDGERLINE_KAFKA_BOOTSTRAP not accepting connections (starting or stopping?)" >&2
  exit 1
fi
echo "kafka: up on $LEDGERLINE_KAFKA_BOOTSTRAP (pid $pid)"
