#!/usr/bin/env bash
# deploy/postgres/start.sh - start the local Ledgerline PostgreSQL server (idempotent).
#
# Installs PostgreSQL with apt-get if missing, initialises a cluster under
# $LEDGERLINE_STATE_DIR/pg/data on first use, (re)writes the managed configuration, starts the
# server on $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT, creates the database and applies
# deploy/postgres/bootstrap.sql. A server that is already running is reused.
# When run as root the server runs as the `postgres` OS user.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=SCRIPTDIR/../env.sh
source "$SCRIPT_DIR/../env.sh"

BOOTSTRAP_SQL="$SCRIPT_DIR/bootstrap.sql"
[ -r "$BOOTSTRAP_SQL" ] || ll_die "cannot read $BOOTSTRAP_SQL"
ll_check_state_dir

ll_ensure_postgres_installed
BINDIR="$(ll_pg_bindir)" || ll_die "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and pg_config --bindir)"
for tool in initdb pg_ctl pg_isready psql; do
  [ -x "$BINDIR/$tool" ] || ll_die "$BINDIR/$tool is missing; is the PostgreSQL server package fully installed?"
done

if ll_is_root && ! id -u "$LEDGERLINE_PG_OS_USER" >/dev/null 2>&1; then
  ll_log "creating system user $LEDGERLINE_PG_OS_USER"
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$LEDGERLINE_PG_OS_USER" ||
    ll_die "could not create OS user $LEDGERLINE_PG_OS_USER"
fi

ll_lock postgres

# --- state directories -----------------------------------------------------------------------
mkdir -p -- "$LEDGERLINE_STATE_DIR" "$LEDGERLINE_LOG_DIR"
chmod 0755 -- "$LEDGERLINE_STATE_DIR" "$LEDGERLINE_LOG_DIR"
ll_pg_mkdir "$LEDGERLINE_PG_DIR" 0700
ll_pg_mkdir "$LEDGERLINE_PG_RUN_DIR" 0700
# Log file owned by the server user; the logs dir itself stays root-owned (Kafka logs there too).
[ -e "$LEDGERLINE_PG_LOG" ] || : >"$LEDGERLINE_PG_LOG"
if ll_is_root; then chown "$LEDGERLINE_PG_OS_USER:" -- "$LEDGERLINE_PG_LOG"; fi
chmod 0640 -- "$LEDGERLINE_PG_LOG"
if ! ll_as_pg test -w "$LEDGERLINE_PG_DIR" -a -w "$LEDGERLINE_PG_LOG" -a -x "$LEDGERLINE_PG_RUN_DIR"; then
  ll_die "the PostgreSQL OS user cannot write to $LEDGERLINE_PG_DIR or $LEDGERLINE_PG_LOG; choose a LEDGERLINE_STATE_DIR whose parent directories it can traverse"
fi

pg_ctl() { ll_as_pg "$BINDIR/pg_ctl" -D "$LEDGERLINE_PG_DATA" "$@"; }
# psql as the superuser over the unix socket (local connections use trust auth). No ~/.psqlrc.
psql_admin() {
  local db="$1"
  shift
  "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$LEDGERLINE_PG_RUN_DIR" -p "$LEDGERLINE_PG_PORT" \
    -U "$LEDGERLINE_PG_SUPERUSER" -d "$db" "$@"
}
pg_ready() {
  "$BINDIR/pg_isready" -q -h "$LEDGERLINE_PG_HOST" -p "$LEDGERLINE_PG_PORT" -d "$LEDGERLINE_PG_DB" -t 2
}
# Write stdin to a file inside the data directory, as the server user.
write_pg_file() {
  # shellcheck disable=SC2016  # expanded by the inner sh
  ll_as_pg sh -c 'umask 077 && cat >"$1.tmp" && mv -f "$1.tmp" "$1"' sh "$1"
}
# Quote a value for postgresql.conf.
conf_quote() { printf "'%s'" "${1//\'/\'\'}"; }

# --- initdb (first run only) -----------------------------------------------------------------
if [ ! -s "$LEDGERLINE_PG_DATA/PG_VERSION" ]; then
  if [ -e "$LEDGERLINE_PG_DATA" ] && [ -n "$(ls -A -- "$LEDGERLINE_PG_DATA" 2>/dev/null)" ]; then
    ll_die "$LEDGERLINE_PG_DATA exists but is not a PostgreSQL data directory; remove it (deploy/reset.sh) and retry"
  fi
  ll_log "initialising PostgreSQL cluster in $LEDGERLINE_PG_DATA"
  pwfile="$LEDGERLINE_PG_DIR/.initdb-pwfile"
  trap 'rm -f -- "$pwfile"' EXIT
  printf '%s\n' "$LEDGERLINE_PG_SUPERUSER_PASSWORD" | write_pg_file "$pwfile"
  if ! ll_as_pg "$BINDIR/initdb" -D "$LEDGERLINE_PG_DATA" -U "$LEDGERLINE_PG_SUPERUSER" \
    --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pwfile" \
    --encoding=UTF8 --locale=C.UTF-8 --data-checksums >"$LEDGERLINE_LOG_DIR/initdb.log" 2>&1; then
    ll_tail_log "$LEDGERLINE_LOG_DIR/initdb.log"
    ll_die "initdb failed"
  fi
  rm -f -- "$pwfile"
  trap - EXIT
fi

# --- managed configuration (rewritten when it differs, so env overrides take effect) ----------
config_changed=0
# install_pg_file PATH CONTENT: write CONTENT to PATH (as the server user) unless identical.
install_pg_file() {
  if [ -f "$1" ] && [ "$(cat -- "$1")" = "$2" ]; then
    return 0
  fi
  printf '%s\n' "$2" | write_pg_file "$1"
  config_changed=1
}

install_pg_file "$LEDGERLINE_PG_DATA/ledgerline.conf" "$(cat <<EOF
# Managed by deploy/postgres/start.sh (rewritten when settings change) - do not edit.
listen_addresses = $(conf_quote "$LEDGERLINE_PG_HOST")
port = $LEDGERLINE_PG_PORT
unix_socket_directories = $(conf_quote "$LEDGERLINE_PG_RUN_DIR")
unix_socket_permissions = 0700
max_connections = 300
shared_buffers = 256MB
password_encryption = 'scram-sha-256'
fsync = on
synchronous_commit = on
full_page_writes = on
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
log_lock_waits = on
log_min_duration_statement = 1000
EOF
)"
if ! grep -qxF "include = 'ledgerline.conf'" "$LEDGERLINE_PG_DATA/postgresql.conf"; then
  printf "\n# Ledgerline managed settings (deploy/postgres/start.sh)\ninclude = 'ledgerline.conf'\n" |
    ll_as_pg tee -a "$LEDGERLINE_PG_DATA/postgresql.conf" >/dev/null
  config_changed=1
fi
install_pg_file "$LEDGERLINE_PG_DATA/pg_hba.conf" "$(cat <<'EOF'
# Managed by deploy/postgres/start.sh (rewritten when settings change) - do not edit.
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
EOF
)"

# --- start (or reuse) ------------------------------------------------------------------------
if pg_ctl status >/dev/null 2>&1; then
  # Running: make rewritten config files take effect (settings that need a restart, such as
  # the port, only apply after deploy/postgres/stop.sh + start.sh).
  if [ "$config_changed" -eq 1 ]; then
    ll_log "configuration changed; reloading PostgreSQL"
    pg_ctl reload >/dev/null
  fi
  deadline=$((SECONDS + LEDGERLINE_PG_START_TIMEOUT))
  until pg_ready; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      ll_tail_log "$LEDGERLINE_PG_LOG"
      ll_die "PostgreSQL is running (data dir $LEDGERLINE_PG_DATA) but not accepting connections on $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT after ${LEDGERLINE_PG_START_TIMEOUT}s (port changed? restart with deploy/postgres/stop.sh first)"
    fi
    sleep 0.5
  done
  ll_log "PostgreSQL already running on $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT"
else
  if ll_tcp_open "$LEDGERLINE_PG_HOST" "$LEDGERLINE_PG_PORT"; then
    ll_die "port $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT is already in use by another process (not the server in $LEDGERLINE_PG_DATA); stop it or set LEDGERLINE_PG_PORT"
  fi
  ll_log "starting PostgreSQL on $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT (log: $LEDGERLINE_PG_LOG)"
  # {LL_LOCK_FD}>&-: the postmaster must not inherit (and keep holding) our lock fd.
  if ! pg_ctl -l "$LEDGERLINE_PG_LOG" -w -t "$LEDGERLINE_PG_START_TIMEOUT" start >/dev/null {LL_LOCK_FD}>&-; then
    ll_tail_log "$LEDGERLINE_PG_LOG"
    ll_die "PostgreSQL failed to start within ${LEDGERLINE_PG_START_TIMEOUT}s"
  fi
  deadline=$((SECONDS + LEDGERLINE_PG_START_TIMEOUT))
  until pg_ready; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      ll_tail_log "$LEDGERLINE_PG_LOG"
      ll_die "PostgreSQL started but does not accept TCP connections on $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT"
    fi
    sleep 0.5
  done
fi

# --- database, superuser password, roles/schemas ------------------------------------------------
if ! db_exists="$(psql_admin postgres -tA -v db="$LEDGERLINE_PG_DB" <<'EOF'
SELECT count(*) FROM pg_database WHERE datname = :'db';
EOF
)"; then
  ll_tail_log "$LEDGERLINE_PG_LOG"
  ll_die "cannot connect to PostgreSQL over the unix socket in $LEDGERLINE_PG_RUN_DIR"
fi
if [ "$db_exists" != "1" ]; then
  ll_log "creating database $LEDGERLINE_PG_DB"
  if ! psql_admin postgres -v db="$LEDGERLINE_PG_DB" -v owner="$LEDGERLINE_PG_SUPERUSER" <<'EOF'
CREATE DATABASE :"db" OWNER :"owner" ENCODING 'UTF8' TEMPLATE template0;
EOF
  then
    ll_die "CREATE DATABASE $LEDGERLINE_PG_DB failed"
  fi
fi

# Keep the superuser's password in sync with LEDGERLINE_PG_SUPERUSER_PASSWORD (the admin DSN),
# only touching it when it does not already match.
if ! PGPASSWORD="$LEDGERLINE_PG_SUPERUSER_PASSWORD" "$BINDIR/psql" -X -q -w -tA \
  -h "$LEDGERLINE_PG_HOST" -p "$LEDGERLINE_PG_PORT" -U "$LEDGERLINE_PG_SUPERUSER" \
  -d "$LEDGERLINE_PG_DB" -c 'SELECT 1' >/dev/null 2>&1; then
  ll_log "setting password of $LEDGERLINE_PG_SUPERUSER to match LEDGERLINE_PG_SUPERUSER_PASSWORD"
  if ! psql_admin postgres -v su="$LEDGERLINE_PG_SUPERUSER" -v pw="$LEDGERLINE_PG_SUPERUSER_PASSWORD" <<'EOF'
ALTER ROLE :"su" PASSWORD :'pw';
EOF
  then
    ll_die "could not set the superuser password"
  fi
fi

# Applied by the invoking user over the unix socket; the server never reads the repository.
if ! psql_admin "$LEDGERLINE_PG_DB" -f - <"$BOOTSTRAP_SQL"; then
  ll_die "applying $BOOTSTRAP_SQL failed"
fi

ll_log "PostgreSQL ready on $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT (database $LEDGERLINE_PG_DB; admin DSN is in \$LEDGERLINE_ADMIN_DSN)"
