#!/usr/bin/env bash
# deploy/kafka/start.sh - start the local single-node Kafka (KRaft) broker (idempotent).
#
# Installs Java/Maven with apt-get if missing, fetches the Kafka jars from Maven Central into
# $LEDGERLINE_STATE_DIR/kafka/libs (once per Kafka version, see pom.xml), renders
# server.properties, formats the storage on first use and starts the broker in the background.
# Waits until the broker logs "Kafka Server started" and accepts TCP connections. A broker that
# is already running is reused.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=SCRIPTDIR/../env.sh
source "$SCRIPT_DIR/../env.sh"

POM="$SCRIPT_DIR/pom.xml"
TEMPLATE="$SCRIPT_DIR/server.properties.template"
LOG4J_SRC="$SCRIPT_DIR/log4j.properties"
for f in "$POM" "$TEMPLATE" "$LOG4J_SRC"; do
  [ -r "$f" ] || ll_die "cannot read $f"
done
ll_check_state_dir

LOG4J="$LEDGERLINE_KAFKA_DIR/log4j.properties"
OFFSET_FILE="$LEDGERLINE_KAFKA_DIR/kafka.log.offset"
META="$LEDGERLINE_KAFKA_DATA/meta.properties"
MAX_LOG_BYTES=$((100 * 1024 * 1024))

ll_lock kafka
mkdir -p -- "$LEDGERLINE_KAFKA_DIR" "$LEDGERLINE_LOG_DIR"

# Print the last 80 lines the broker logged since byte offset $1 (i.e. during this start).
tail_log_since() {
  local offset="$1"
  printf -- '----- %s (this start, last 80 lines) -----\n' "$LEDGERLINE_KAFKA_LOG" >&2
  tail -c "+$((offset + 1))" -- "$LEDGERLINE_KAFKA_LOG" 2>/dev/null | tail -n 80 >&2 || true
  printf -- '----- end of %s -----\n' "$LEDGERLINE_KAFKA_LOG" >&2
}

# Wait until the broker with the given pid has logged "Kafka Server started" (after byte offset
# $2 of the log) and accepts TCP connections; fail early if the process dies, or once its log has
# been silent for LEDGERLINE_KAFKA_START_TIMEOUT (loading many partitions logs each one).
wait_ready() {
  local pid="$1" offset="$2" started="$SECONDS"
  LL_SEEN_SIZE=-1
  while :; do
    if ! ll_pid_alive "$pid"; then
      tail_log_since "$offset"
      rm -f -- "$LEDGERLINE_KAFKA_PID_FILE"
      ll_die "Kafka (pid $pid) exited during startup; see $LEDGERLINE_KAFKA_LOG"
    fi
    # No `grep -q`: with pipefail an early grep exit would fail the pipeline via SIGPIPE.
    if tail -c "+$((offset + 1))" -- "$LEDGERLINE_KAFKA_LOG" 2>/dev/null | grep -F 'Kafka Server started' >/dev/null &&
      ll_tcp_open "$LEDGERLINE_KAFKA_HOST" "$LEDGERLINE_KAFKA_PORT"; then
      return 0
    fi
    if ! ll_still_progressing "$LEDGERLINE_KAFKA_LOG" "$LEDGERLINE_KAFKA_START_TIMEOUT" \
      "$LEDGERLINE_KAFKA_MAX_WAIT" "$started"; then
      tail_log_since "$offset"
      ll_die "Kafka (pid $pid) not ready on $LEDGERLINE_KAFKA_BOOTSTRAP after $((SECONDS - started))s (its log silent for $((SECONDS - LL_SEEN_AT))s); it was left running - inspect the log, then deploy/kafka/stop.sh"
    fi
    sleep 0.5
  done
}

# --- reuse a running broker --------------------------------------------------------------------
if pid="$(ll_kafka_running_pid)"; then
  offset="$(cat -- "$OFFSET_FILE" 2>/dev/null || echo 0)"
  case "$offset" in '' | *[!0-9]*) offset=0 ;; esac
  wait_ready "$pid" "$offset"
  ll_log "Kafka already running on $LEDGERLINE_KAFKA_BOOTSTRAP (pid $pid)"
  exit 0
fi
if [ -e "$LEDGERLINE_KAFKA_PID_FILE" ]; then
  ll_log "removing stale pid file $LEDGERLINE_KAFKA_PID_FILE"
  rm -f -- "$LEDGERLINE_KAFKA_PID_FILE"
fi
for port in "$LEDGERLINE_KAFKA_PORT" "$LEDGERLINE_KAFKA_CONTROLLER_PORT"; do
  if ll_tcp_open "$LEDGERLINE_KAFKA_HOST" "$port"; then
    ll_die "port $LEDGERLINE_KAFKA_HOST:$port is already in use by a process this script did not start (no live pid in $LEDGERLINE_KAFKA_PID_FILE); stop it or set LEDGERLINE_KAFKA_PORT / LEDGERLINE_KAFKA_CONTROLLER_PORT"
  fi
done

ll_ensure_java_installed

# --- Kafka jars (cached per version) -----------------------------------------------------------
version="$(sed -n 's:.*<kafka\.version>[[:space:]]*\([^<[:space:]]*\)[[:space:]]*</kafka\.version>.*:\1:p' "$POM" | head -n1)"
[ -n "$version" ] || ll_die "could not read <kafka.version> from $POM"
stamp="$LEDGERLINE_KAFKA_LIBS/.ledgerline-kafka-version"
if [ -f "$LEDGERLINE_KAFKA_LIBS/kafka_2.13-$version.jar" ] && [ "$(cat -- "$stamp" 2>/dev/null)" = "$version" ]; then
  :
else
  command -v mvn >/dev/null 2>&1 || ll_ensure_java_installed mvn
  ll_log "fetching Kafka $version jars with Maven into $LEDGERLINE_KAFKA_LIBS"
  build="$LEDGERLINE_KAFKA_DIR/build"
  tmp="$LEDGERLINE_KAFKA_DIR/libs.tmp"
  rm -rf -- "$tmp" "$build"
  mkdir -p -- "$build"
  # Build from a copy of the pom so Maven never writes into the repository.
  cp -- "$POM" "$build/pom.xml"
  if ! (cd "$build" && mvn -q -B -Dstyle.color=never -f pom.xml dependency:copy-dependencies -DoutputDirectory="$tmp") \
    >"$LEDGERLINE_LOG_DIR/kafka-mvn.log" 2>&1; then
    ll_tail_log "$LEDGERLINE_LOG_DIR/kafka-mvn.log"
    ll_die "Maven could not fetch the Kafka jars (is Maven Central reachable?)"
  fi
  [ -f "$tmp/kafka_2.13-$version.jar" ] || ll_die "Maven finished but $tmp/kafka_2.13-$version.jar is missing"
  printf '%s\n' "$version" >"$tmp/.ledgerline-kafka-version"
  # Swap in the complete directory so an interrupted download never looks complete.
  rm -rf -- "$LEDGERLINE_KAFKA_LIBS.old"
  if [ -d "$LEDGERLINE_KAFKA_LIBS" ]; then mv -- "$LEDGERLINE_KAFKA_LIBS" "$LEDGERLINE_KAFKA_LIBS.old"; fi
  mv -- "$tmp" "$LEDGERLINE_KAFKA_LIBS"
  rm -rf -- "$LEDGERLINE_KAFKA_LIBS.old" "$build"
fi
CLASSPATH_GLOB="$LEDGERLINE_KAFKA_LIBS/*"

# --- configuration -----------------------------------------------------------------------------
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }
sed -e "s|@KAFKA_HOST@|$(sed_escape "$LEDGERLINE_KAFKA_HOST")|g" \
  -e "s|@KAFKA_PORT@|$(sed_escape "$LEDGERLINE_KAFKA_PORT")|g" \
  -e "s|@CONTROLLER_PORT@|$(sed_escape "$LEDGERLINE_KAFKA_CONTROLLER_PORT")|g" \
  -e "s|@DATA_DIR@|$(sed_escape "$LEDGERLINE_KAFKA_DATA")|g" \
  "$TEMPLATE" >"$LEDGERLINE_KAFKA_PROPS.tmp"
if grep -nE '^[^#]*@[A-Z_]+@' "$LEDGERLINE_KAFKA_PROPS.tmp" >&2; then
  ll_die "unrendered placeholders left in $LEDGERLINE_KAFKA_PROPS.tmp (see above)"
fi
mv -f -- "$LEDGERLINE_KAFKA_PROPS.tmp" "$LEDGERLINE_KAFKA_PROPS"
cp -f -- "$LOG4J_SRC" "$LOG4J"

kafka_java() {
  java -Dlog4j.configuration="file:$LOG4J" -cp "$CLASSPATH_GLOB" "$@"
}

# --- cluster id + storage format (first run only) ----------------------------------------------
meta_cluster_id=""
if [ -f "$META" ]; then
  meta_cluster_id="$(sed -n 's/^cluster\.id=//p' "$META" | head -n1)"
fi
if [ ! -s "$LEDGERLINE_KAFKA_CLUSTER_ID_FILE" ]; then
  if [ -n "$meta_cluster_id" ]; then
    cluster_id="$meta_cluster_id"
  else
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$LEDGERLINE_KAFKA_LOG")" ||
      ll_die "kafka.tools.StorageTool random-uuid failed; see $LEDGERLINE_KAFKA_LOG"
  fi
  printf '%s\n' "$cluster_id" >"$LEDGERLINE_KAFKA_CLUSTER_ID_FILE"
fi
cluster_id="$(tr -d '[:space:]' <"$LEDGERLINE_KAFKA_CLUSTER_ID_FILE")"
[[ "$cluster_id" =~ ^[A-Za-z0-9_-]{22}$ ]] ||
  ll_die "invalid cluster id '$cluster_id' in $LEDGERLINE_KAFKA_CLUSTER_ID_FILE (expected 22 base64url chars); run deploy/reset.sh"

if [ -n "$meta_cluster_id" ]; then
  [ "$meta_cluster_id" = "$cluster_id" ] ||
    ll_die "cluster id mismatch: $META says '$meta_cluster_id' but $LEDGERLINE_KAFKA_CLUSTER_ID_FILE says '$cluster_id'; run deploy/reset.sh to start from scratch"
else
  ll_log "formatting Kafka storage in $LEDGERLINE_KAFKA_DATA (cluster id $cluster_id)"
  mkdir -p -- "$LEDGERLINE_KAFKA_DATA"
  if ! kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$LEDGERLINE_KAFKA_PROPS" \
    >>"$LEDGERLINE_KAFKA_LOG" 2>&1; then
    ll_tail_log "$LEDGERLINE_KAFKA_LOG"
    ll_die "kafka.tools.StorageTool format failed"
  fi
fi

# --- launch ------------------------------------------------------------------------------------
# Keep one previous log; the current one is only ever appended to.
if [ -f "$LEDGERLINE_KAFKA_LOG" ] && [ "$(stat -c %s -- "$LEDGERLINE_KAFKA_LOG")" -gt "$MAX_LOG_BYTES" ]; then
  mv -f -- "$LEDGERLINE_KAFKA_LOG" "$LEDGERLINE_KAFKA_LOG.1"
fi
touch -- "$LEDGERLINE_KAFKA_LOG"
offset="$(stat -c %s -- "$LEDGERLINE_KAFKA_LOG")"
printf '%s\n' "$offset" >"$OFFSET_FILE"
printf '===== %s deploy/kafka/start.sh: starting Kafka %s =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$version" >>"$LEDGERLINE_KAFKA_LOG"

read -r -a heap_opts <<<"$LEDGERLINE_KAFKA_HEAP"
read -r -a jvm_opts <<<"$LEDGERLINE_KAFKA_JVM_OPTS"
ll_log "starting Kafka $version on $LEDGERLINE_KAFKA_BOOTSTRAP (controller :$LEDGERLINE_KAFKA_CONTROLLER_PORT, log: $LEDGERLINE_KAFKA_LOG)"
# New session (setsid) + SIGHUP ignored (nohup): the broker outlives this shell and its terminal.
# The inner shell writes its own pid and then execs java, so the pid file holds the JVM's pid.
# {LL_LOCK_FD}>&-: the broker must not inherit (and keep holding) our lock fd.
# shellcheck disable=SC2016  # $$, $0 and $@ are expanded by the inner bash
setsid nohup bash -c 'printf "%s\n" "$$" >"$0" && exec "$@"' "$LEDGERLINE_KAFKA_PID_FILE" \
  java "${heap_opts[@]}" "${jvm_opts[@]}" \
  -Dlog4j.configuration="file:$LOG4J" -Dkafka.logs.dir="$LEDGERLINE_LOG_DIR" \
  -cp "$CLASSPATH_GLOB" kafka.Kafka "$LEDGERLINE_KAFKA_PROPS" \
  </dev/null >>"$LEDGERLINE_KAFKA_LOG" 2>&1 {LL_LOCK_FD}>&- &

pid=""
for _ in $(seq 1 50); do
  pid="$(cat -- "$LEDGERLINE_KAFKA_PID_FILE" 2>/dev/null || true)"
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || {
  ll_tail_log "$LEDGERLINE_KAFKA_LOG"
  ll_die "Kafka launcher did not write $LEDGERLINE_KAFKA_PID_FILE"
}
wait_ready "$pid" "$offset"
ll_log "Kafka ready on $LEDGERLINE_KAFKA_BOOTSTRAP (pid $pid)"
