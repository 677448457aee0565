#!/usr/bin/env bash
# deploy/status.sh - report both services; exit 0 only when PostgreSQL and Kafka are both up.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"

rc=0
"$SCRIPT_DIR/postgres/status.sh" || rc=1
"$SCRIPT_DIR/kafka/status.sh" || rc=1
exit "$rc"
