#!/usr/bin/env bash
# deploy/postgres/status.sh - exit 0 and say so when the local PostgreSQL accepts connections.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=SCRIPTDIR/../env.sh
source "$SCRIPT_DIR/../env.sh"

if BINDIR="$(ll_pg_bindir)" && [ -x "$BINDIR/pg_isready" ]; then
  pg_isready=("$BINDIR/pg_isready")
elif command -v pg_isready >/dev/null 2>&1; then
  pg_isready=(pg_isready)
else
  echo "postgres: not installed (pg_isready not found)" >&2
  exit 3
fi

rc=0
"${pg_isready[@]}" -q -h "$LEDGERLINE_PG_HOST" -p "$LEDGERLINE_PG_PORT" -d "$LEDGERLINE_PG_DB" -t 3 || rc=$?
if [ "$rc" -eq 0 ]; then
  echo "postgres: up on $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT"
  exit 0
fi
case "$rc" in
  1) echo "postgres: rejecting connections on $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT (starting up or shutting down)" >&2 ;;
  *) echo "postgres: down (nothing answering on $LEDGERLINE_PG_HOST:$LEDGERLINE_PG_PORT)" >&2 ;;
esac
exit "$rc"
