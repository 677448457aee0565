# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this file
# deploy/env.sh - shared settings and helpers for the Ledgerline local infrastructure scripts.
#
# Sourced by every script under deploy/ and safe to source from an interactive shell:
#     source deploy/env.sh && psql "$LEDGERLINE_ADMIN_DSN"
# Every setting can be overridden by exporting it before sourcing. This file only defines
# variables and functions; it never changes shell options and never exits the caller's shell
# (only ll_die does, and it is meant for scripts).
#
# All server state (data, logs, pid files, the Kafka jar cache) lives under
# LEDGERLINE_STATE_DIR, outside the repository, so the repository may live anywhere, including
# a directory the `postgres` OS user cannot read.

# --- settings (override by exporting before sourcing) ----------------------------------------
: "${LEDGERLINE_STATE_DIR:=/var/tmp/ledgerline}"

: "${LEDGERLINE_PG_HOST:=127.0.0.1}"
# Ports below Linux's ephemeral range (32768-60999 by default): a port inside it can be taken
# by any outgoing connection's local end, and a restarting server then fails to bind it.
: "${LEDGERLINE_PG_PORT:=25432}"
: "${LEDGERLINE_PG_DB:=ledgerline}"
: "${LEDGERLINE_PG_SUPERUSER:=postgres}"
: "${LEDGERLINE_PG_SUPERUSER_PASSWORD:=ledgerline_admin}"
# OS account that owns and runs the PostgreSQL server when the scripts are invoked as root.
: "${LEDGERLINE_PG_OS_USER:=postgres}"

: "${LEDGERLINE_KAFKA_HOST:=127.0.0.1}"
: "${LEDGERLINE_KAFKA_PORT:=29092}"
: "${LEDGERLINE_KAFKA_CONTROLLER_PORT:=29093}"
# Word-split on purpose so several JVM flags can be given, e.g. "-Xms256m -Xmx768m".
: "${LEDGERLINE_KAFKA_HEAP:=-Xmx768m}"
# -XX:TieredStopAtLevel=1: the client compiler only. This broker restarts often (every
# deploy/up.sh, the fault tests) and shares 2 cores with everything else; for minutes after each
# start, C2 compiling its produce path took a core for 0.1-0.6 s at a time, and the services'
# slowest calls waited behind it. C1 alone cost no throughput and less CPU (docs/benchmarks.md,
# "Kafka's bursts were its JIT compiler"). A long-running broker on its own cores keeps C2.
: "${LEDGERLINE_KAFKA_JVM_OPTS:=-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:TieredStopAtLevel=1 -Djava.awt.headless=true}"

# Readiness / shutdown timeouts, in seconds. Kafka's count from its log's last line: a broker
# loading or closing thousands of partitions logs as it goes, and is waited for while it does, up
# to LEDGERLINE_KAFKA_MAX_WAIT in all.
: "${LEDGERLINE_PG_START_TIMEOUT:=60}"
: "${LEDGERLINE_KAFKA_START_TIMEOUT:=90}"
: "${LEDGERLINE_KAFKA_STOP_TIMEOUT:=30}"
: "${LEDGERLINE_KAFKA_MAX_WAIT:=900}"

# --- derived values ----------------------------------------------------------------------------
LEDGERLINE_LOG_DIR="$LEDGERLINE_STATE_DIR/logs"
LEDGERLINE_PG_DIR="$LEDGERLINE_STATE_DIR/pg"
LEDGERLINE_PG_DATA="$LEDGERLINE_PG_DIR/data"
LEDGERLINE_PG_RUN_DIR="$LEDGERLINE_PG_DIR/run"
LEDGERLINE_PG_LOG="$LEDGERLINE_LOG_DIR/postgres.log"
LEDGERLINE_KAFKA_DIR="$LEDGERLINE_STATE_DIR/kafka"
LEDGERLINE_KAFKA_LIBS="$LEDGERLINE_KAFKA_DIR/libs"
LEDGERLINE_KAFKA_DATA="$LEDGERLINE_KAFKA_DIR/data"
LEDGERLINE_KAFKA_PID_FILE="$LEDGERLINE_KAFKA_DIR/kafka.pid"
LEDGERLINE_KAFKA_CLUSTER_ID_FILE="$LEDGERLINE_KAFKA_DIR/cluster.id"
LEDGERLINE_KAFKA_PROPS="$LEDGERLINE_KAFKA_DIR/server.properties"
LEDGERLINE_KAFKA_LOG="$LEDGERLINE_LOG_DIR/kafka.log"

# The DSN and bootstrap address are derived from the settings above. An explicitly exported value
# wins, unless it is just what an earlier `source env.sh` derived (so re-sourcing after changing,
# say, LEDGERLINE_PG_PORT updates them instead of keeping the stale value).
_ll_dsn="postgresql://${LEDGERLINE_PG_SUPERUSER}:${LEDGERLINE_PG_SUPERUSER_PASSWORD}@${LEDGERLINE_PG_HOST}:${LEDGERLINE_PG_PORT}/${LEDGERLINE_PG_DB}"
if [ -z "${LEDGERLINE_ADMIN_DSN:-}" ] || [ "$LEDGERLINE_ADMIN_DSN" = "${_LL_DERIVED_ADMIN_DSN:-}" ]; then
  LEDGERLINE_ADMIN_DSN="$_ll_dsn"
fi
_LL_DERIVED_ADMIN_DSN="$_ll_dsn"
_ll_bootstrap="${LEDGERLINE_KAFKA_HOST}:${LEDGERLINE_KAFKA_PORT}"
if [ -z "${LEDGERLINE_KAFKA_BOOTSTRAP:-}" ] || [ "$LEDGERLINE_KAFKA_BOOTSTRAP" = "${_LL_DERIVED_KAFKA_BOOTSTRAP:-}" ]; then
  LEDGERLINE_KAFKA_BOOTSTRAP="$_ll_bootstrap"
fi
_LL_DERIVED_KAFKA_BOOTSTRAP="$_ll_bootstrap"
unset _ll_dsn _ll_bootstrap

export LEDGERLINE_STATE_DIR LEDGERLINE_PG_HOST LEDGERLINE_PG_PORT LEDGERLINE_PG_DB \
  LEDGERLINE_PG_SUPERUSER LEDGERLINE_PG_SUPERUSER_PASSWORD LEDGERLINE_PG_OS_USER \
  LEDGERLINE_KAFKA_HOST LEDGERLINE_KAFKA_PORT LEDGERLINE_KAFKA_CONTROLLER_PORT \
  LEDGERLINE_KAFKA_HEAP LEDGERLINE_KAFKA_JVM_OPTS LEDGERLINE_PG_START_TIMEOUT \
  LEDGERLINE_KAFKA_START_TIMEOUT LEDGERLINE_KAFKA_STOP_TIMEOUT LEDGERLINE_KAFKA_MAX_WAIT \
  LEDGERLINE_ADMIN_DSN LEDGERLINE_KAFKA_BOOTSTRAP _LL_DERIVED_ADMIN_DSN _LL_DERIVED_KAFKA_BOOTSTRAP

# --- helpers -----------------------------------------------------------------------------------
ll_log() { printf '[ledgerline] %s\n' "$*" >&2; }
ll_warn() { printf '[ledgerline] WARNING: %s\n' "$*" >&2; }
# Print an error and exit. For scripts only (it exits the current shell).
ll_die() {
  printf '[ledgerline] ERROR: %s\n' "$*" >&2
  exit 1
}

ll_is_root() { [ "$(id -u)" -eq 0 ]; }

# Print the last N (default 60) lines of a log file, framed, to stderr.
ll_tail_log() {
  local file="$1" lines="${2:-60}"
  if [ -r "$file" ]; then
    printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
    tail -n "$lines" -- "$file" >&2 || true
    printf -- '----- end of %s -----\n' "$file" >&2
  else
    printf '(log file %s does not exist or is not readable)\n' "$file" >&2
  fi
}

# Succeed while a wait may go on: the file grew within the last `quiet` seconds and `cap` seconds
# have not passed since `started` (both in $SECONDS). The caller keeps the file's last size and
# when it changed in LL_SEEN_SIZE and LL_SEEN_AT (set LL_SEEN_SIZE=-1 before the first call).
ll_still_progressing() {
  local file="$1" quiet="$2" cap="$3" started="$4" size
  size="$(stat -c %s -- "$file" 2>/dev/null || echo 0)"
  if [ "$size" != "$LL_SEEN_SIZE" ]; then
    LL_SEEN_SIZE="$size"
    LL_SEEN_AT="$SECONDS"
  fi
  [ $((SECONDS - LL_SEEN_AT)) -lt "$quiet" ] && [ $((SECONDS - started)) -lt "$cap" ]
}

# True when something accepts TCP connections on host:port (2 s timeout, bash /dev/tcp only).
ll_tcp_open() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# True if the pid is a live process (zombies count as dead: in containers pid 1 may never reap).
ll_pid_alive() {
  local pid="$1" state
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null)" || return 1
  state="${state%% *}"
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# Print the pid of the running Ledgerline Kafka broker, read from its pid file and verified
# against /proc/<pid>/cmdline so a recycled pid is never mistaken for the broker. Returns 1 if none.
ll_kafka_running_pid() {
  local pid cmdline
  [ -r "$LEDGERLINE_KAFKA_PID_FILE" ] || return 1
  pid="$(tr -d '[:space:]' <"$LEDGERLINE_KAFKA_PID_FILE")"
  ll_pid_alive "$pid" || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *" kafka.Kafka $LEDGERLINE_KAFKA_PROPS"* ]] || return 1
  printf '%s\n' "$pid"
}

# Directory holding the PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_isready, psql):
# the newest /usr/lib/postgresql/<major>/bin, else `pg_config --bindir`. Returns 1 if none.
ll_pg_bindir() {
  local dir best="" best_major=-1 major
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] || continue
    major="${dir#/usr/lib/postgresql/}"
    major="${major%/bin}"
    case "$major" in *[!0-9]* | "") continue ;; esac
    if [ "$major" -gt "$best_major" ]; then
      best_major="$major"
      best="$dir"
    fi
  done
  if [ -z "$best" ] && command -v pg_config >/dev/null 2>&1; then
    dir="$(pg_config --bindir 2>/dev/null || true)"
    [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && best="$dir"
  fi
  [ -n "$best" ] || return 1
  printf '%s\n' "$best"
}

# Run a command as the PostgreSQL OS user when we are root (PostgreSQL refuses to run as root),
# directly otherwise. Runs from / so a cwd the postgres user cannot read (e.g. a 0700 checkout)
# does not break initdb/pg_ctl.
ll_as_pg() {
  if ll_is_root; then
    (cd / && runuser -u "$LEDGERLINE_PG_OS_USER" -- "$@")
  else
    (cd / && "$@")
  fi
}

# Create a directory owned by the PostgreSQL OS user (when root) with the given mode.
ll_pg_mkdir() {
  local dir="$1" mode="${2:-0700}"
  mkdir -p -- "$dir"
  if ll_is_root; then
    chown "$LEDGERLINE_PG_OS_USER:" -- "$dir"
  fi
  chmod "$mode" -- "$dir"
}

# Install Debian packages with apt-get; `apt-get update` runs at most once per script run.
# Uses sudo -n when not root and sudo is available; otherwise fails with a clear message.
ll_apt_install() {
  [ "$#" -gt 0 ] || return 0
  local -a sudo=()
  if ! ll_is_root; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      ll_die "missing packages: $* - install them with 'apt-get install $*' (needs root)"
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || ll_die "apt-get not found; install these packages manually: $*"
  if [ -z "${LL_APT_UPDATED:-}" ]; then
    ll_log "apt-get update"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
      ll_die "apt-get update failed"
    LL_APT_UPDATED=1
    export LL_APT_UPDATED
  fi
  ll_log "apt-get install $*"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" ||
    ll_die "apt-get install $* failed"
}

# Make sure the PostgreSQL server and client binaries are installed. Installing Debian's
# `postgresql` package normally also creates and starts a "main" cluster on port 5432; we do not
# want that, so postgresql-common is installed first and cluster auto-creation switched off
# (the same thing the official postgres Docker image does).
ll_ensure_postgres_installed() {
  if ll_pg_bindir >/dev/null && [ -x "$(ll_pg_bindir)/initdb" ] && [ -x "$(ll_pg_bindir)/psql" ]; then
    return 0
  fi
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    ll_apt_install postgresql-common
  fi
  if [ -w /etc/postgresql-common/createcluster.conf ] &&
    grep -qE '^#?[[:space:]]*create_main_cluster[[:space:]]*=[[:space:]]*true' /etc/postgresql-common/createcluster.conf; then
    sed -ri 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*$/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf
  fi
  ll_apt_install postgresql postgresql-client
  ll_pg_bindir >/dev/null || ll_die "PostgreSQL installed but no server binaries found under /usr/lib/postgresql/*/bin"
}

# Make sure a Java runtime (>= 11) and, if requested, Maven are installed.
ll_ensure_java_installed() {
  local want_mvn="${1:-}"
  local -a pkgs=()
  command -v java >/dev/null 2>&1 || pkgs+=(openjdk-17-jre-headless)
  if [ -n "$want_mvn" ] && ! command -v mvn >/dev/null 2>&1; then
    pkgs+=(maven)
  fi
  [ "${#pkgs[@]}" -eq 0 ] || ll_apt_install "${pkgs[@]}"
  command -v java >/dev/null 2>&1 || ll_die "java not found on PATH after installation"
  local ver
  ver="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^[[:space:]]*java\.specification\.version = //p' | head -n1)"
  case "$ver" in
    1.* | "") ll_die "Kafka needs Java 11 or newer; found java.specification.version='${ver:-unknown}' ($(command -v java))" ;;
  esac
  [ "$ver" -ge 11 ] 2>/dev/null || ll_die "Kafka needs Java 11 or newer; found $ver"
}

# Take an exclusive lock for the rest of the calling script (released automatically at exit).
# The lock fd number is kept in LL_LOCK_FD: long-lived children (the servers) must be started with
# `{LL_LOCK_FD}>&-` so they do not inherit the fd and hold the lock forever.
LL_LOCK_FD=""
ll_lock() {
  local name="$1"
  mkdir -p -- "$LEDGERLINE_STATE_DIR"
  exec {LL_LOCK_FD}>"$LEDGERLINE_STATE_DIR/.$name.lock"
  if ! flock -w 300 "$LL_LOCK_FD"; then
    ll_die "timed out after 300s waiting for lock $LEDGERLINE_STATE_DIR/.$name.lock (another deploy script running? 'fuser -v' on that file shows who holds it)"
  fi
}

# Refuse obviously dangerous state directories before anything deletes under them.
ll_check_state_dir() {
  case "$LEDGERLINE_STATE_DIR" in
    "" | / | /root | /home | /tmp | /var | /var/tmp | /usr | /etc | "${HOME:-/}")
      ll_die "refusing to use LEDGERLINE_STATE_DIR='$LEDGERLINE_STATE_DIR'" ;;
    /*) ;;
    *) ll_die "LEDGERLINE_STATE_DIR must be an absolute path (got '$LEDGERLINE_STATE_DIR')" ;;
  esac
}
