#!/usr/bin/env bash
# deploy/postgres/stop.sh - stop the local Ledgerline PostgreSQL server (fast shutdown).
# Succeeds when the server is not running or was never initialised.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=SCRIPTDIR/../env.sh
source "$SCRIPT_DIR/../env.sh"

if [ ! -s "$LEDGERLINE_PG_DATA/PG_VERSION" ]; then
  ll_log "PostgreSQL: no cluster in $LEDGERLINE_PG_DATA, nothing to stop"
  exit 0
fi
BINDIR="$(ll_pg_bindir)" || ll_die "PostgreSQL binaries not found; cannot stop the server in $LEDGERLINE_PG_DATA"

ll_lock postgres

if ! ll_as_pg "$BINDIR/pg_ctl" -D "$LEDGERLINE_PG_DATA" status >/dev/null 2>&1; then
  ll_log "PostgreSQL is not running"
  exit 0
fi
ll_log "stopping PostgreSQL (data dir $LEDGERLINE_PG_DATA)"
if ! ll_as_pg "$BINDIR/pg_ctl" -D "$LEDGERLINE_PG_DATA" stop -m fast -w -t 60 >/dev/null; then
  ll_tail_log "$LEDGERLINE_PG_LOG"
  ll_die "PostgreSQL did not stop within 60s (try: pg_ctl -D $LEDGERLINE_PG_DATA stop -m immediate)"
fi
ll_log "PostgreSQL stopped"
