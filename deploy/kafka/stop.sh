#!/usr/bin/env bash
# deploy/kafka/stop.sh - stop the local Kafka broker: SIGTERM (controlled shutdown), wait up to
# $LEDGERLINE_KAFKA_STOP_TIMEOUT seconds (default 30), then SIGKILL. Only ever signals the pid
# recorded in the pid file, and only after checking it really is this broker.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=SCRIPTDIR/../env.sh
source "$SCRIPT_DIR/../env.sh"

if [ ! -d "$LEDGERLINE_KAFKA_DIR" ]; then
  ll_log "Kafka: no state in $LEDGERLINE_KAFKA_DIR, nothing to stop"
  exit 0
fi
ll_lock kafka

if ! pid="$(ll_kafka_running_pid)"; then
  if [ -e "$LEDGERLINE_KAFKA_PID_FILE" ]; then
    ll_log "removing stale pid file $LEDGERLINE_KAFKA_PID_FILE"
    rm -f -- "$LEDGERLINE_KAFKA_PID_FILE"
  fi
  if ll_tcp_open "$LEDGERLINE_KAFKA_HOST" "$LEDGERLINE_KAFKA_PORT"; then
    ll_warn "Kafka is not running from $LEDGERLINE_KAFKA_DIR, but something else listens on $LEDGERLINE_KAFKA_BOOTSTRAP; leaving it alone"
  else
    ll_log "Kafka is not running"
  fi
  exit 0
fi

ll_log "stopping Kafka (pid $pid)"
kill -TERM "$pid" 2>/dev/null || true
# A broker killed mid-shutdown recovers every unflushed segment at its next start: wait while it
# still logs its shutdown.
started="$SECONDS"
LL_SEEN_SIZE=-1
while ll_pid_alive "$pid"; do
  if ! ll_still_progressing "$LEDGERLINE_KAFKA_LOG" "$LEDGERLINE_KAFKA_STOP_TIMEOUT" \
    "$LEDGERLINE_KAFKA_MAX_WAIT" "$started"; then
    ll_warn "Kafka (pid $pid) still running after $((SECONDS - started))s (its log silent for $((SECONDS - LL_SEEN_AT))s); sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      ll_pid_alive "$pid" || break
      sleep 0.1
    done
    if ll_pid_alive "$pid"; then
      ll_die "Kafka (pid $pid) survived SIGKILL"
    fi
    break
  fi
  sleep 0.2
done
rm -f -- "$LEDGERLINE_KAFKA_PID_FILE"
ll_log "Kafka stopped"
