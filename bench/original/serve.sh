#!/usr/bin/env bash
# Bench-only: runs "the original service" (the Python FastAPI app in m-cahill/tunix-rt,
# folder backend/) so a benchmark can compare our Rust service with it. Not part of the product.
#
#   bench/original/serve.sh [start]   set up (once), migrate, start uvicorn in the background
#   bench/original/serve.sh stop      stop it
#   bench/original/serve.sh status    say whether it runs
#
# Environment:
#   ORIGINAL_SRC            required: a work tree containing backend/ (git clone
#                           https://github.com/m-cahill/tunix-rt) or a git dir of it (bare is fine;
#                           then `git archive $ORIGINAL_REF backend` is used)
#   ORIGINAL_REF            revision to archive from a git dir (HEAD)
#   TUNIX_CACHE_DIR         cache root (~/.cache/tunix-rt); the copy and venv go in original/
#   ORIGINAL_DATABASE_URL   postgres://tunix@127.0.0.1:55432/original_bench (created if missing)
#   ORIGINAL_ADDR           127.0.0.1:8090
#   ORIGINAL_WORKERS        uvicorn worker processes (2)
#   ORIGINAL_PID_FILE       .stack/pids/original.pid (relative to the repo root)
#   ORIGINAL_LOG_FILE       .stack/logs/original.log (relative to the repo root)
#   ORIGINAL_START_TIMEOUT  seconds to wait for the health endpoint (60)
#   ORIGINAL_ACCESS_LOG     1 to keep uvicorn's per-request access log (off by default)
#   PYTHON                  interpreter for the venv (python3.11; the original needs >= 3.11)
#   DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT, TRACE_MAX_BYTES: read by the original itself
#                           (its defaults: 5, 10, 30 s, 1 MiB), passed through if set.
#
# What the original's code shows (read at commit 3a6132a of m-cahill/tunix-rt, not modified):
# - Config is pydantic-settings (tunix_rt_backend/settings.py): env vars, case-insensitive, plus
#   a .env in the working directory (the copy has none). DATABASE_URL is a SQLAlchemy URL and
#   must use the asyncpg driver: postgresql+asyncpg://... ; alembic/env.py reads the same setting
#   (alembic.ini's sqlalchemy.url is a placeholder), so `alembic upgrade head` in backend/ with
#   DATABASE_URL set is how it migrates.
# - No rate limiting, no auth, no startup hooks. The only outside service is RediAI, reached only
#   by GET /api/redi/health and only when REDIAI_MODE=real; we force REDIAI_MODE=mock (its
#   default). Ungar/Tunix/JAX/Ray integrations are imported lazily and unused by /api/traces.
# - Per-request costs that stay, being the original's own behaviour: POST /api/traces checks
#   Content-Length against TRACE_MAX_BYTES, records a Prometheus histogram, and does
#   INSERT + COMMIT + a SELECT refresh; the SQLAlchemy pool uses pool_pre_ping (an extra
#   round trip on each checkout) with 5+10 connections per worker process.
# - The app logs create_trace latency at INFO, which uvicorn's logging setup drops (the root
#   logger stays at WARNING). uvicorn's access log (one line per request) is turned off here
#   with --no-access-log as a run option, not a code change; ORIGINAL_ACCESS_LOG=1 keeps it.
# - Dependencies: [project].dependencies of backend/pyproject.toml only (no dev/training/tuning
#   extras), with every transitive version pinned from backend/uv.lock as pip constraints.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
log() { printf '\033[1;34m[original]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[original] error:\033[0m %s\n' "$*" >&2; exit 1; }
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$REPO_ROOT/$1" ;; esac; }

CACHE="${TUNIX_CACHE_DIR:-$HOME/.cache/tunix-rt}/original"
DB_URL_IN="${ORIGINAL_DATABASE_URL:-postgres://tunix@127.0.0.1:55432/original_bench}"
ADDR="${ORIGINAL_ADDR:-127.0.0.1:8090}"
WORKERS="${ORIGINAL_WORKERS:-2}"
PID_FILE="$(abspath "${ORIGINAL_PID_FILE:-.stack/pids/original.pid}")"
LOG_FILE="$(abspath "${ORIGINAL_LOG_FILE:-.stack/logs/original.log}")"
START_TIMEOUT="${ORIGINAL_START_TIMEOUT:-60}"
PYTHON="${PYTHON:-python3.11}"
HOST="${ADDR%:*}"
PORT="${ADDR##*:}"
HEALTH_URL="http://$ADDR/api/health"

# The pid in the file, if that process is alive and is our uvicorn; empty otherwise.
running_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 0
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'uvicorn tunix_rt_backend.app:app' || return 0
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

cmd_stop() {
  local pid i
  pid="$(running_pid)"
  if [ -z "$pid" ]; then
    log "not running (no live uvicorn in $PID_FILE)"
    rm -f "$PID_FILE" "$PID_FILE.addr"
    return 0
  fi
  # started under setsid: the pid leads its own process group (master + workers)
  local target="$pid"
  [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ] && target="-$pid"
  log "stopping pid $pid"
  kill -TERM -- "$target" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after 15 s; SIGKILL"
    kill -KILL -- "$target" 2>/dev/null || true
  fi
  rm -f "$PID_FILE" "$PID_FILE.addr"
  log "stopped"
}

cmd_status() {
  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ]; then echo "running: pid $pid on http://$ADDR"; else echo "not running"; return 3; fi
}

# 1. The original's backend/ into $CACHE/backend (fresh copy on each start).
check_source() {
  if [ -z "${ORIGINAL_SRC:-}" ] || [ ! -e "$ORIGINAL_SRC" ]; then
    cat >&2 <<EOF
[original] error: ORIGINAL_SRC ${ORIGINAL_SRC:+($ORIGINAL_SRC) }is not set or does not exist.
  It must point at a checkout of the original service, e.g.
    git clone https://github.com/m-cahill/tunix-rt /some/where/tunix-rt
    ORIGINAL_SRC=/some/where/tunix-rt bench/original/serve.sh
  (a git dir, bare or not, also works: its ${ORIGINAL_REF:-HEAD}:backend is archived)
EOF
    exit 2
  fi
}

copy_source() {
  local tmp="$CACHE/backend.new"
  rm -rf "$tmp" && mkdir -p "$tmp"
  if [ -f "$ORIGINAL_SRC/backend/pyproject.toml" ]; then
    log "copying $ORIGINAL_SRC/backend"
    tar -C "$ORIGINAL_SRC" --exclude=.venv --exclude=__pycache__ --exclude=node_modules \
      -cf - backend | tar -x -C "$tmp"
    git -C "$ORIGINAL_SRC" rev-parse HEAD >"$tmp/backend/.source-rev" 2>/dev/null || echo worktree >"$tmp/backend/.source-rev"
  elif git -C "$ORIGINAL_SRC" rev-parse --git-dir >/dev/null 2>&1; then
    local ref="${ORIGINAL_REF:-HEAD}"
    log "archiving $ref:backend from git dir $ORIGINAL_SRC"
    git -C "$ORIGINAL_SRC" archive "$ref" backend | tar -x -C "$tmp" \
      || die "git archive $ref backend failed in $ORIGINAL_SRC"
    git -C "$ORIGINAL_SRC" rev-parse "$ref^{commit}" >"$tmp/backend/.source-rev"
  else
    die "$ORIGINAL_SRC has no backend/pyproject.toml and is not a git dir"
  fi
  [ -f "$tmp/backend/pyproject.toml" ] || die "no backend/pyproject.toml in $ORIGINAL_SRC"
  rm -rf "$CACHE/backend"
  mv "$tmp/backend" "$CACHE/backend"
  rmdir "$tmp"
}

# 2. A venv with the runtime dependencies, reused while pyproject.toml/uv.lock are unchanged.
ensure_venv() {
  local venv="$CACHE/venv" marker="$CACHE/venv/.installed-for" key t0
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON to a Python >= 3.11)"
  key="$(cat "$CACHE/backend/pyproject.toml" "$CACHE/backend/uv.lock" 2>/dev/null | sha256sum | cut -c1-16)"
  key="$key $("$PYTHON" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')"
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$key" ] && [ -x "$venv/bin/uvicorn" ]; then
    log "reusing venv $venv"
    return
  fi
  t0=$SECONDS
  log "creating venv $venv ($PYTHON)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  # requirements = [project].dependencies; constraints = every single-version package in uv.lock
  "$venv/bin/python" - "$CACHE/backend" "$CACHE" <<'PY'
import pathlib, sys, tomllib
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
project = tomllib.loads((src / "pyproject.toml").read_text())["project"]
(out / "requirements.txt").write_text("\n".join(project["dependencies"]) + "\n")
pins = []
lock = src / "uv.lock"
if lock.exists():
    versions = {}
    for p in tomllib.loads(lock.read_text())["package"]:
        if "registry" in p.get("source", {}) and "version" in p:
            versions.setdefault(p["name"], set()).add(p["version"])
    pins = [f"{n}=={next(iter(v))}" for n, v in sorted(versions.items()) if len(v) == 1]
(out / "constraints.txt").write_text("\n".join(pins) + "\n")
PY
  log "pip install: $(tr '\n' ' ' <"$CACHE/requirements.txt")"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    -r "$CACHE/requirements.txt" -c "$CACHE/constraints.txt" >&2
  echo "$key" >"$marker"
  log "venv ready in $((SECONDS - t0)) s"
}

# 3. Database: create if missing, then the original's alembic migrations.
ensure_database() {
  [[ "$DB_URL_IN" =~ ^postgres(ql)?(\+[a-z0-9]+)?://([^/?]*)/([A-Za-z0-9_]+)(\?.*)?$ ]] \
    || die "ORIGINAL_DATABASE_URL must look like postgres://user[:pass]@host:port/dbname (got $DB_URL_IN)"
  local authority="${BASH_REMATCH[3]}" query="${BASH_REMATCH[5]}"
  DB_NAME="${BASH_REMATCH[4]}"
  PG_DSN="postgresql://$authority/$DB_NAME$query"
  APP_DB_URL="postgresql+asyncpg://$authority/$DB_NAME$query"
  local admin_dsn="postgresql://$authority/${ORIGINAL_ADMIN_DB:-postgres}$query"
  "$CACHE/venv/bin/python" - "$admin_dsn" "$DB_NAME" <<'PY' || die "could not reach or create the database (is Postgres up? ORIGINAL_DATABASE_URL=${DB_URL_IN})"
import asyncio, sys
import asyncpg
async def main(dsn, name):
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
            print(f"[original] created database {name}", file=sys.stderr)
    finally:
        await conn.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
PY
  log "alembic upgrade head on $DB_NAME"
  (cd "$CACHE/backend" && DATABASE_URL="$APP_DB_URL" "$CACHE/venv/bin/alembic" upgrade head) >>"$LOG_FILE" 2>&1 \
    || { tail -n 30 "$LOG_FILE" >&2; die "migrations failed (log: $LOG_FILE)"; }
}

cmd_start() {
  local pid
  pid="$(running_pid)"
  if [ -n "$pid" ]; then
    local was
    was="$(cat "$PID_FILE.addr" 2>/dev/null || echo '?')"
    [ "$was" = "$ADDR" ] || die "already running (pid $pid) on $was, not $ADDR: stop it first"
    log "already running (pid $pid)"
    echo "http://$ADDR"
    return 0
  fi
  check_source
  [[ "$PORT" =~ ^[0-9]+$ ]] || die "ORIGINAL_ADDR must be host:port (got $ADDR)"
  port_open && die "something else listens on $ADDR"
  [[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "ORIGINAL_WORKERS must be a positive integer"
  mkdir -p "$CACHE" "$(dirname "$PID_FILE")" "$(dirname "$LOG_FILE")"
  copy_source
  ensure_venv
  ensure_database

  local access=(--no-access-log) log_start
  [ "${ORIGINAL_ACCESS_LOG:-0}" = 1 ] && access=()
  log_start=$(($(stat -c %s "$LOG_FILE" 2>/dev/null || echo 0) + 1))
  log "starting uvicorn ($WORKERS workers) on $ADDR, log $LOG_FILE"
  # setsid: own process group, so stop takes the master and its workers together.
  # Run in backend/ so tunix_rt_backend is importable (uvicorn's --app-dir defaults to ".").
  (cd "$CACHE/backend" && exec env DATABASE_URL="$APP_DB_URL" REDIAI_MODE=mock PYTHONUNBUFFERED=1 \
    setsid "$CACHE/venv/bin/uvicorn" tunix_rt_backend.app:app --host "$HOST" --port "$PORT" \
    --workers "$WORKERS" --log-level info "${access[@]}" </dev/null >>"$LOG_FILE" 2>&1) &
  pid=$!
  echo "$pid" >"$PID_FILE"
  echo "$ADDR" >"$PID_FILE.addr"

  # Ready = health answers 200 and every worker has logged its startup.
  local deadline=$((SECONDS + START_TIMEOUT)) started=0
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$LOG_FILE" >&2; rm -f "$PID_FILE" "$PID_FILE.addr"; die "uvicorn exited (log: $LOG_FILE)"
    fi
    started=$(tail -c "+$log_start" "$LOG_FILE" | grep -c 'Application startup complete' || true)
    if [ "$started" -ge "$WORKERS" ] && curl -fsS -o /dev/null --max-time 2 "$HEALTH_URL" 2>/dev/null; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$LOG_FILE" >&2
      die "not healthy after ${START_TIMEOUT}s ($started/$WORKERS workers up); still running as pid $pid: bench/original/serve.sh stop"
    fi
    sleep 0.2
  done
  log "ready: pid $pid, $WORKERS workers, source $(cat "$CACHE/backend/.source-rev"), db $DB_NAME"
  echo "http://$ADDR"
}

case "${1:-start}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  -h|--help) sed -n '2,26p' "$0" ;;
  *) die "unknown command $1 (start|stop|status)" ;;
esac
