# shellcheck shell=bash
# Helpers shared by infra/up.sh, infra/down.sh and infra/test.sh. Source it; do not run it.
#
# Everything a script starts is recorded as "<stack>/pids/<name>.pid", so down.sh stops exactly
# what up.sh started and nothing else.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_VERSION=4.4.0 # pinned in infra/kafka/pom.xml

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

# What building the services needs besides Rust: a C toolchain for librdkafka, and OpenSSL's
# headers with pkg-config for its TLS and SASL support (rdkafka's `ssl` feature).
ensure_build_tools() {
  command -v cargo >/dev/null || die "cargo is required (install Rust with rustup)"
  local missing=()
  command -v cc >/dev/null || missing+=(build-essential)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  if ! pkg-config --exists openssl 2>/dev/null; then missing+=(libssl-dev); fi
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# Where downloads are kept between runs and checkouts (the Kafka jars).
TUNIX_CACHE_DIR="${TUNIX_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tunix-rt}"

# Java 17+ runs the broker and its tools; Maven fetches them. Installs both from apt when missing.
ensure_java() {
  command -v java >/dev/null || apt_install default-jre-headless
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  case "$major" in
    1.*|9|1[0-6]) die "Apache Kafka 4 needs Java 17 or newer; 'java' is version $major (set PATH or JAVA_HOME)" ;;
  esac
  if [ -n "${1:-}" ]; then
    command -v mvn >/dev/null || apt_install maven
  fi
}

# Fetches Apache Kafka (broker, storage tool, admin tools, a logging binding) from Maven Central
# once, as pinned by infra/kafka/pom.xml, into $TUNIX_CACHE_DIR/kafka-<pom hash>/libs. Sets
# KAFKA_LIBS (a folder of jars: the classpath is "$KAFKA_LIBS/*").
ensure_kafka() {
  local pom="$REPO_ROOT/infra/kafka/pom.xml" key tmp started
  key="$(sha256sum "$pom" | cut -c1-12)"
  KAFKA_LIBS="$TUNIX_CACHE_DIR/kafka-$key/libs"
  if [ -f "$KAFKA_LIBS/.complete" ]; then
    ensure_java
  else
    ensure_java with-maven
    log "fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_LIBS (~55 MB, once)"
    started=$SECONDS
    tmp="$KAFKA_LIBS.partial"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$KAFKA_LIBS")"
    mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" >&2 \
      || die "fetching Kafka from Maven Central failed (see above; the pom is $pom)"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
    touch "$KAFKA_LIBS/.complete"
    log "Kafka fetched in $((SECONDS - started)) s ($(ls "$KAFKA_LIBS" | wc -l) jars)"
  fi
  export KAFKA_LIBS
}

# Runs a Kafka admin tool's main class quietly (warnings only), e.g.
#   kafka_tool org.apache.kafka.tools.ClusterTool cluster-id --bootstrap-server 127.0.0.1:19092
kafka_tool() {
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$REPO_ROOT/infra/kafka/tools-log4j2.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

# The JVM of a broker: a small heap for a machine shared with Postgres and the services, and
# the G1 settings Kafka's own scripts use. KAFKA_HEAP_OPTS / KAFKA_JVM_OPTS override.
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"

# Writes a one-node KRaft broker's server.properties: this node's part, then the settings every
# tunix-rt broker shares (infra/kafka/broker.properties).
write_broker_config() { # file port controller-port log-dir
  cat >"$1" <<PROPS
# Written by infra/lib.sh (write_broker_config); edits are overwritten at the next start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$3
listeners=PLAINTEXT://127.0.0.1:$2,CONTROLLER://127.0.0.1:$3
advertised.listeners=PLAINTEXT://127.0.0.1:$2
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1

PROPS
  cat "$REPO_ROOT/infra/kafka/broker.properties" >>"$1"
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

# Starts (or finds running) the one-node Apache Kafka broker (KRaft, broker and controller in
# one JVM) on $KAFKA_PORT, its controller on $KAFKA_CONTROLLER_PORT, data in $BROKER_DIR/data.
# Formats the storage on first use. Ready means it answered a real metadata request.
start_broker() {
  local pidfile="$STACK_DIR/pids/broker.pid" data="$BROKER_DIR/data" config="$BROKER_DIR/server.properties"
  local controller_port="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 100))}" i started
  if pid_alive "$pidfile" && port_open "$KAFKA_PORT"; then
    log "broker already running on 127.0.0.1:$KAFKA_PORT"
    return
  fi
  for i in "$KAFKA_PORT" "$controller_port"; do
    port_open "$i" && die "port $i is in use by something this script did not start (set KAFKA_PORT and KAFKA_CONTROLLER_PORT, or KAFKA_BROKERS to use that broker)"
  done
  write_broker_config "$config" "$KAFKA_PORT" "$controller_port" "$data"
  if [ ! -f "$data/meta.properties" ]; then
    log "formatting the broker's storage in $data"
    mkdir -p "$data"
    kafka_tool kafka.tools.StorageTool format --standalone --ignore-formatted \
      -t "$(kafka_tool kafka.tools.StorageTool random-uuid)" -c "$config" >>"$STACK_DIR/logs/broker.log" 2>&1 \
      || { tail -n 30 "$STACK_DIR/logs/broker.log" >&2; die "formatting the broker's storage failed"; }
  fi
  log "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (controller :$controller_port, data $data)"
  started=$SECONDS
  # shellcheck disable=SC2086 # the option strings are word lists
  nohup java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS \
    -Dlog4j2.configurationFile="$REPO_ROOT/infra/kafka/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$config" >>"$STACK_DIR/logs/broker.log" 2>&1 &
  echo $! >"$pidfile"
  for ((i = 0; i < 600; i++)); do
    port_open "$KAFKA_PORT" && break
    pid_alive "$pidfile" || { tail -n 30 "$STACK_DIR/logs/broker.log" >&2; die "the broker exited (log: $STACK_DIR/logs/broker.log)"; }
    sleep 0.1
  done
  port_open "$KAFKA_PORT" || die "the broker did not listen within 60 s (log: $STACK_DIR/logs/broker.log)"
  # Listening is not serving: ask for the cluster id (a metadata request) until it answers.
  kafka_tool org.apache.kafka.tools.ClusterTool cluster-id --bootstrap-server "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1 \
    || die "the broker listens but does not answer metadata requests (log: $STACK_DIR/logs/broker.log)"
  log "broker ready in $((SECONDS - started)) s"
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

# Fetches Apicurio Registry (the tests' external Confluent-compatible Schema Registry) from Maven
# Central once, as pinned by infra/apicurio/pom.xml, into $TUNIX_CACHE_DIR/apicurio-<pom hash>/
# and unpacks it there. Sets APICURIO_HOME (the folder holding apicurio-registry-app-*-runner.jar
# and its lib/; run it with `java -jar`, see testkit's ApicurioRegistry).
ensure_apicurio() {
  local pom="$REPO_ROOT/infra/apicurio/pom.xml" key tmp started version
  key="$(sha256sum "$pom" | cut -c1-12)"
  version="$(sed -n 's:.*<apicurio.version>\(.*\)</apicurio.version>.*:\1:p' "$pom")"
  APICURIO_HOME="$TUNIX_CACHE_DIR/apicurio-$key"
  if [ -f "$APICURIO_HOME/.complete" ]; then
    ensure_java
  else
    ensure_java with-maven
    log "fetching Apicurio Registry $version from Maven Central into $APICURIO_HOME (~110 MB, once)"
    started=$SECONDS
    tmp="$APICURIO_HOME.partial"
    rm -rf "$tmp"
    mkdir -p "$tmp/download"
    mvn -B -q --no-transfer-progress -Dstyle.color=never -f "$pom" dependency:copy \
      -DoutputDirectory="$tmp/download" >&2 \
      || die "fetching Apicurio Registry from Maven Central failed (see above; the pom is $pom)"
    tar xzf "$tmp"/download/apicurio-registry-app-*-all.tar.gz -C "$tmp" --no-same-owner \
      || die "unpacking Apicurio Registry failed"
    rm -rf "$tmp/download"
    ls "$tmp"/apicurio-registry-app-*-runner.jar >/dev/null 2>&1 \
      || die "the Apicurio Registry tarball holds no apicurio-registry-app-*-runner.jar"
    rm -rf "$APICURIO_HOME"
    mv "$tmp" "$APICURIO_HOME"
    touch "$APICURIO_HOME/.complete"
    log "Apicurio Registry fetched in $((SECONDS - started)) s ($(du -sh "$APICURIO_HOME" | cut -f1))"
  fi
  export APICURIO_HOME
}
