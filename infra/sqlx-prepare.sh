#!/usr/bin/env bash
# Refreshes .sqlx/, the offline cache of the compile-checked queries (the sqlx::query! family),
# so that builds need no database (.cargo/config.toml sets SQLX_OFFLINE=true).
#
#   infra/sqlx-prepare.sh          rewrite .sqlx/ from the queries in the code (commit the result)
#   infra/sqlx-prepare.sh --check  fail when .sqlx/ is stale (infra/test.sh runs this, so CI does)
#
# How: a scratch database is migrated with migrations/, then the crates that hold queries are
# re-checked with SQLX_OFFLINE=false against it and SQLX_OFFLINE_DIR pointing at a fresh folder,
# where the macros write one file per query (what `cargo sqlx prepare` does, without sqlx-cli).
# Postgres: $SQLX_PREPARE_ADMIN_URL if set, else the test stack's private cluster (started if
# needed, and stopped again if this script started it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MODE="${1:-write}"
case "$MODE" in write | --check) ;; *) die "usage: $0 [--check]" ;; esac

ADMIN_URL="${SQLX_PREPARE_ADMIN_URL:-}"
STARTED_PG=0
if [ -z "$ADMIN_URL" ]; then
  STACK_DIR="${TEST_STACK_DIR:-$REPO_ROOT/.stack/test}"
  PG_PORT="${TEST_PG_PORT:-55433}"
  PG_OS_USER="${PG_OS_USER:-nobody}"
  PG_FSYNC=off
  NEED_PG=1
  prepare_stack_dir
  ensure_postgres_binaries
  if ! pid_alive "$STACK_DIR/pids/postgres.pid"; then
    start_postgres
    STARTED_PG=1
  fi
  ADMIN_URL="postgres://tunix@127.0.0.1:$PG_PORT/postgres"
fi
command -v psql >/dev/null || apt_install postgresql-client

DB="sqlx_prepare_$$"
DB_URL="${ADMIN_URL%/*}/$DB"
OUT="$(mktemp -d)"
cleanup() {
  psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$OUT"
  if [ "$STARTED_PG" = 1 ]; then stop_postgres; fi
}
trap cleanup EXIT

psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
for f in "$REPO_ROOT"/migrations/*.sql; do
  psql -q -v ON_ERROR_STOP=1 "$DB_URL" -f "$f" >/dev/null
done

cd "$REPO_ROOT"
# The macros run only when their crate is compiled; cargo does not track the variables below,
# so mark the files that hold queries as changed.
grep -rlE 'query(_as|_scalar)?!' --include='*.rs' pipeline admin writer projector ingest-api | xargs touch
log "checking the queries against a migrated database"
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$OUT" DATABASE_URL="$DB_URL" \
  cargo check --quiet --workspace --lib --bins >&2

if [ "$MODE" = --check ]; then
  if ! diff -r "$REPO_ROOT/.sqlx" "$OUT" >/dev/null 2>&1; then
    diff -r "$REPO_ROOT/.sqlx" "$OUT" >&2 || true
    die ".sqlx/ is stale: run infra/sqlx-prepare.sh and commit .sqlx/"
  fi
  log ".sqlx/ is current ($(ls "$OUT" | wc -l) queries)"
else
  rm -rf "$REPO_ROOT/.sqlx"
  mkdir -p "$REPO_ROOT/.sqlx"
  cp "$OUT"/*.json "$REPO_ROOT/.sqlx/"
  log "wrote $(ls "$REPO_ROOT/.sqlx" | wc -l) queries to .sqlx/"
fi
