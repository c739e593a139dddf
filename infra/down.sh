#!/usr/bin/env bash
# Stops what infra/up.sh started, by recorded pids, newest first. Data stays in the stack folder;
# pass --purge to delete it as well.
#   --stack-dir DIR   the folder up.sh used (default: .stack)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --stack-dir) STACK_DIR="$2"; shift ;;
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
[ -d "$STACK_DIR/pids" ] || { log "nothing recorded in $STACK_DIR; nothing to stop"; exit 0; }
PG_OS_USER="${PG_OS_USER:-nobody}"
ensure_postgres_binaries_quiet() {
  if [ -f "$STACK_DIR/pids/postgres.pid" ]; then ensure_postgres_binaries; fi
}

for name in ingest-api projector writer prometheus broker; do
  stop_pidfile "$name"
done
ensure_postgres_binaries_quiet
stop_postgres
if [ "$PURGE" = 1 ]; then
  data="$(cat "$STACK_DIR/pids/postgres.data" 2>/dev/null || true)"
  log "deleting $STACK_DIR"
  rm -rf "$STACK_DIR"
  case "$data" in /var/tmp/tunix-rt-*) rm -rf "$(dirname "$(dirname "$data")")" ;; esac
fi
log "stopped"
