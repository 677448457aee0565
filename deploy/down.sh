#!/usr/bin/env bash
# deploy/down.sh - stop the local Kafka and PostgreSQL (reverse start order). Data is kept.
# Tries both even if one fails; exits non-zero if either failed.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"

rc=0
"$SCRIPT_DIR/kafka/stop.sh" || rc=1
"$SCRIPT_DIR/postgres/stop.sh" || rc=1
exit "$rc"
