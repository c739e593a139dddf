# shellcheck shell=bash
# Helpers shared by infra/up.sh, infra/down.sh and infra/test.sh. Source it; do not run it.
#
# Everything a script starts is recorded as "<stack>/pids/<name>.pid", so down.sh stops exactly
# what up.sh started and nothing else.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"

log() { printf '\033[1;34m[tunix]\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33m[tunix]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[tunix] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Runs a command as the unprivileged owner of the Postgres cluster (postgres refuses root).
as_pg_user() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$PG_OS_USER" -- "$@"
  else
    "$@"
  fi
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # port seconds what
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  return 1
}

apt_install() {
  command -v apt-get >/dev/null || die "need $* but apt-get is not available; install it by hand"
  [ "$(id -u)" = 0 ] || die "need $*; run as root or install it by hand"
  if [ -z "${TUNIX_APT_UPDATED:-}" ]; then
    log "apt-get update"
    apt-get update -qq >&2
    export TUNIX_APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# Finds initdb/pg_ctl (Debian keeps them out of PATH), installing postgresql when missing.
ensure_postgres_binaries() {
  if [ -z "${PG_BINDIR:-}" ]; then
    # Debian's full server toolset first; a PATH install (e.g. Homebrew, Nix) otherwise.
    PG_BINDIR="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$PG_BINDIR" ] && command -v pg_ctl >/dev/null; then
      PG_BINDIR="$(dirname "$(command -v pg_ctl)")"
    fi
  fi
  if [ -z "$PG_BINDIR" ] || [ ! -x "$PG_BINDIR/initdb" ]; then
    apt_install postgresql
    PG_BINDIR="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  if ! command -v psql >/dev/null; then
    apt_install postgresql-client
  fi
  export PG_BINDIR
}

# Installs the Tansu broker once (about 13 minutes on 2 cores); later runs reuse the binary.
ensure_tansu() {
  if command -v tansu >/dev/null; then
    TANSU_BIN="$(command -v tansu)"
  elif [ -x "$HOME/.cargo/bin/tansu" ]; then
    TANSU_BIN="$HOME/.cargo/bin/tansu"
  else
    log "installing the Tansu broker $TANSU_VERSION from crates.io (one time, ~13 min on 2 cores)..."
    cargo install tansu --version "$TANSU_VERSION" --locked --features libsql,dynostore >&2 \
      || die "cargo install tansu failed (see above)"
    TANSU_BIN="$HOME/.cargo/bin/tansu"
  fi
  export TANSU_BIN
}

# Chooses where state lives. Postgres runs as an unprivileged user that must be able to reach the
# folder; when the checkout sits somewhere it cannot (e.g. under /root), fall back to /var/tmp.
prepare_stack_dir() {
  mkdir -p "$STACK_DIR"
  STACK_DIR="$(cd "$STACK_DIR" && pwd)"
  if [ "$(id -u)" = 0 ] && [ "${NEED_PG:-1}" = 1 ]; then
    mkdir -p "$STACK_DIR/pg"
    chown "$PG_OS_USER" "$STACK_DIR/pg"
    if ! runuser -u "$PG_OS_USER" -- test -w "$STACK_DIR/pg"; then
      local alt
      alt="/var/tmp/tunix-rt-$(printf '%s' "$STACK_DIR" | cksum | cut -d' ' -f1)"
      warn "user '$PG_OS_USER' cannot reach $STACK_DIR; keeping Postgres data in $alt instead"
      mkdir -p "$alt/pg"
      chown "$PG_OS_USER" "$alt/pg"
      PG_DATA_PARENT="$alt/pg"
    fi
  fi
  PG_DATA_PARENT="${PG_DATA_PARENT:-$STACK_DIR/pg}"
  BROKER_DIR="${BROKER_DIR:-$STACK_DIR/broker}"
  mkdir -p "$STACK_DIR/logs" "$STACK_DIR/pids" "$BROKER_DIR"
}

# Starts (or finds running) the private Postgres cluster on $PG_PORT.
start_postgres() {
  local data="$PG_DATA_PARENT/data" pidfile="$STACK_DIR/pids/postgres.pid"
  if pid_alive "$pidfile" && port_open "$PG_PORT"; then
    log "postgres already running on 127.0.0.1:$PG_PORT"
    return
  fi
  if port_open "$PG_PORT"; then
    die "port $PG_PORT is in use by something this script did not start (set PG_PORT, or DATABASE_URL to use that server)"
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    log "initdb $data (owner: $PG_OS_USER)"
    as_pg_user mkdir -p "$data"
    as_pg_user "$PG_BINDIR/initdb" -D "$data" -U tunix --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      >"$STACK_DIR/logs/initdb.log" 2>&1 || { cat "$STACK_DIR/logs/initdb.log" >&2; die "initdb failed"; }
  fi
  log "starting postgres on 127.0.0.1:$PG_PORT (fsync=$PG_FSYNC)"
  touch "$STACK_DIR/logs/postgres.log"
  chown "$PG_OS_USER" "$STACK_DIR/logs/postgres.log" 2>/dev/null || true
  as_pg_user "$PG_BINDIR/pg_ctl" -D "$data" -l "$STACK_DIR/logs/postgres.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $data -c fsync=$PG_FSYNC -c synchronous_commit=$PG_FSYNC -c max_connections=300 -c shared_buffers=256MB" \
    start >/dev/null || { tail -n 30 "$STACK_DIR/logs/postgres.log" >&2; die "postgres did not start (log: $STACK_DIR/logs/postgres.log)"; }
  head -n 1 "$data/postmaster.pid" >"$pidfile"
  echo "$data" >"$STACK_DIR/pids/postgres.data"
}

# Creates the application database on the private cluster if missing.
ensure_database() {
  psql -h 127.0.0.1 -p "$PG_PORT" -U tunix -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'tunix'" | grep -q 1 \
    || createdb -h 127.0.0.1 -p "$PG_PORT" -U tunix tunix
}

# Starts (or finds running) the Tansu broker on $KAFKA_PORT with $BROKER_STORAGE.
start_broker() {
  local pidfile="$STACK_DIR/pids/broker.pid" storage
  if pid_alive "$pidfile" && port_open "$KAFKA_PORT"; then
    log "broker already running on 127.0.0.1:$KAFKA_PORT"
    return
  fi
  if port_open "$KAFKA_PORT"; then
    die "port $KAFKA_PORT is in use by something this script did not start (set KAFKA_PORT, or KAFKA_BROKERS to use that broker)"
  fi
  case "$BROKER_STORAGE" in
    sqlite) storage="sqlite://tansu.db" ;; # relative: lives in $BROKER_DIR
    memory) storage="memory://tansu/" ;;
    *) die "BROKER_STORAGE must be sqlite or memory, not $BROKER_STORAGE" ;;
  esac
  log "starting tansu broker on 127.0.0.1:$KAFKA_PORT (storage: $storage)"
  # Tansu binds without SO_REUSEADDR: right after a stop, connections in TIME_WAIT can hold the
  # port for up to a minute and the broker exits with "Address already in use". Retry until free.
  local attempt
  for ((attempt = 1; attempt <= 20; attempt++)); do
    (
      cd "$BROKER_DIR"
      exec "$TANSU_BIN" broker --storage-engine "$storage" \
        --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        >>"$STACK_DIR/logs/broker.log" 2>&1
    ) &
    echo $! >"$pidfile"
    local i
    for ((i = 0; i < 50; i++)); do
      port_open "$KAFKA_PORT" && return 0
      pid_alive "$pidfile" || break
      sleep 0.1
    done
    pid_alive "$pidfile" && kill "$(cat "$pidfile")" 2>/dev/null
    [ "$attempt" = 1 ] && log "port $KAFKA_PORT not free yet (TIME_WAIT after a recent stop?); retrying for up to a minute"
    sleep 3
  done
  tail -n 30 "$STACK_DIR/logs/broker.log" >&2
  die "broker did not start (log: $STACK_DIR/logs/broker.log)"
}

# Stops one recorded process: SIGTERM, then SIGKILL after a grace period.
stop_pidfile() { # name
  local pidfile="$STACK_DIR/pids/$1.pid" pid i
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      warn "$1 did not stop within 15s; killing"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

stop_postgres() {
  local pidfile="$STACK_DIR/pids/postgres.pid" data
  [ -f "$pidfile" ] || return 0
  data="$(cat "$STACK_DIR/pids/postgres.data" 2>/dev/null || echo "$STACK_DIR/pg/data")"
  if pid_alive "$pidfile"; then
    log "stopping postgres"
    as_pg_user "$PG_BINDIR/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || stop_pidfile postgres
  fi
  rm -f "$pidfile"
}
