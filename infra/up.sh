#!/usr/bin/env bash
# Brings up tunix-rt on this machine and runs the pipeline:
#   Postgres (private cluster) + Apache Kafka (one KRaft node, fetched from Maven Central once)
#   + topics + migrations, then ingest-api, writer and projector, built in release mode.
# Idempotent: running it again starts only what is not running. Stop with infra/down.sh.
#
# Options:
#   --infra-only        start Postgres and the broker only (no services)
#   --stack-dir DIR     where data, logs and pids live (default: .stack)
#   --profile P         cargo profile for the services: release (default) or dev
#   --bin-dir DIR       run the services and tunix-admin from DIR instead of building them
#                       (e.g. an older build kept to compare costs: bench/cost-compare.sh)
#   --with-prometheus   also start Prometheus (Debian's package) scraping the services, on
#                       127.0.0.1:9090, with infra/prometheus.yml
# Environment:
#   DATABASE_URL        use this Postgres instead of starting one
#   KAFKA_BROKERS       use these brokers instead of starting Kafka
#   PG_PORT (55432), KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19192), API_ADDR (127.0.0.1:8080),
#   WRITER_OPS_ADDR (127.0.0.1:9101), PROJECTOR_OPS_ADDR (127.0.0.1:9102)
#   KAFKA_HEAP_OPTS (-Xms256m -Xmx768m), KAFKA_JVM_OPTS: the broker's JVM
#   TUNIX_CACHE_DIR     where the Kafka jars are kept (~/.cache/tunix-rt)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INFRA_ONLY=0
WITH_PROMETHEUS=0
STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"
PROFILE="${PROFILE:-release}"
BIN_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --infra-only) INFRA_ONLY=1 ;;
    --stack-dir) STACK_DIR="$2"; shift ;;
    --profile) PROFILE="$2"; shift ;;
    --bin-dir) BIN_DIR="$2"; shift ;;
    --with-prometheus) WITH_PROMETHEUS=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done

PG_PORT="${PG_PORT:-55432}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
PG_OS_USER="${PG_OS_USER:-nobody}"
PG_FSYNC="${PG_FSYNC:-on}"
API_ADDR="${API_ADDR:-127.0.0.1:8080}"
WRITER_OPS_ADDR="${WRITER_OPS_ADDR:-127.0.0.1:9101}"
PROJECTOR_OPS_ADDR="${PROJECTOR_OPS_ADDR:-127.0.0.1:9102}"
NEED_PG=1; [ -n "${DATABASE_URL:-}" ] && NEED_PG=0
NEED_BROKER=1; [ -n "${KAFKA_BROKERS:-}" ] && NEED_BROKER=0

prepare_stack_dir

# 1. Install what is missing.
[ "$NEED_PG" = 1 ] && ensure_postgres_binaries
[ "$NEED_BROKER" = 1 ] && ensure_kafka
ensure_build_tools

# 2-3. Start Postgres and the broker, unless pointed at existing ones.
if [ "$NEED_PG" = 1 ]; then
  start_postgres
  ensure_database
  export DATABASE_URL="postgres://tunix@127.0.0.1:$PG_PORT/tunix"
else
  log "using DATABASE_URL from the environment; not starting Postgres"
fi
if [ "$NEED_BROKER" = 1 ]; then
  start_broker
  export KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
  # One partition on the local one-node broker: librdkafka sends a produce request per
  # partition, and at 1,500 traces/s six partitions cost 1.66x the CPU per trace of one (4.5x
  # the broker requests) for 1.12x the highest rate (docs/BENCHMARKS.md, "Partitions on the
  # local stack"). Only a topic created now gets it; KAFKA_TOPIC_PARTITIONS overrides (6 or more
  # to try several writers or projectors; the code's default for other brokers stays 6).
  export KAFKA_TOPIC_PARTITIONS="${KAFKA_TOPIC_PARTITIONS:-1}"
else
  log "using KAFKA_BROKERS=$KAFKA_BROKERS from the environment; not starting a broker"
fi

# 4. Topics and migrations, with the admin tool built in the same profile as the services.
case "$PROFILE" in
  release) TARGET_DIR="$REPO_ROOT/target/release"; CARGO_PROFILE_ARGS=(--release) ;;
  dev|debug) TARGET_DIR="$REPO_ROOT/target/debug"; CARGO_PROFILE_ARGS=() ;;
  *) die "--profile must be release or dev" ;;
esac
if [ -n "$BIN_DIR" ]; then
  TARGET_DIR="$(cd "$BIN_DIR" && pwd)"
  log "using the binaries in $TARGET_DIR (not building)"
elif [ "$INFRA_ONLY" = 1 ]; then
  log "building tunix-admin"
  (cd "$REPO_ROOT" && cargo build -q "${CARGO_PROFILE_ARGS[@]}" -p tunix-admin)
else
  log "building the services (cargo build ${CARGO_PROFILE_ARGS[*]:-}; the first build takes a few minutes)"
  (cd "$REPO_ROOT" && cargo build -q "${CARGO_PROFILE_ARGS[@]}" --bins \
    -p tunix-admin -p tunix-ingest-api -p tunix-writer -p tunix-projector)
fi
"$TARGET_DIR/tunix-admin" wait --timeout 60 >&2
"$TARGET_DIR/tunix-admin" create-topics >&2
"$TARGET_DIR/tunix-admin" migrate >&2

# Service environment, recorded so down.sh and humans can see what ran.
cat >"$STACK_DIR/env" <<ENV
export DATABASE_URL='$DATABASE_URL'
export KAFKA_BROKERS='$KAFKA_BROKERS'
ENV

start_service() { # name binary ready-url
  local name="$1" bin="$2" url="$3" pidfile="$STACK_DIR/pids/$1.pid" i
  if pid_alive "$pidfile"; then
    log "$name already running (pid $(cat "$pidfile"))"
    return
  fi
  log "starting $name"
  nohup "$TARGET_DIR/$bin" >>"$STACK_DIR/logs/$name.log" 2>&1 &
  echo $! >"$pidfile"
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    pid_alive "$pidfile" || { tail -n 30 "$STACK_DIR/logs/$name.log" >&2; die "$name exited (log: $STACK_DIR/logs/$name.log)"; }
    sleep 0.1
  done
  warn "$name is running but not ready yet; see $STACK_DIR/logs/$name.log"
}

if [ "$INFRA_ONLY" = 0 ]; then
  export API_ADDR WRITER_OPS_ADDR PROJECTOR_OPS_ADDR
  # One Tokio worker per service: the broker and Postgres share this machine's cores, and a
  # second worker mostly costs wake-ups (ingest-api: ~20% less CPU per trace at 1,500/s, no
  # lower peak rate; docs/BENCHMARKS.md). Tokio reads TOKIO_WORKER_THREADS; set it to override.
  export TOKIO_WORKER_THREADS="${TOKIO_WORKER_THREADS:-1}"
  start_service writer tunix-writer "http://$WRITER_OPS_ADDR/readyz"
  start_service projector tunix-projector "http://$PROJECTOR_OPS_ADDR/readyz"
  start_service ingest-api tunix-ingest-api "http://$API_ADDR/readyz"
fi

if [ "$WITH_PROMETHEUS" = 1 ]; then
  command -v prometheus >/dev/null || apt_install prometheus
  if pid_alive "$STACK_DIR/pids/prometheus.pid"; then
    log "prometheus already running"
  else
    log "starting prometheus on 127.0.0.1:9090"
    mkdir -p "$STACK_DIR/prometheus"
    nohup prometheus --config.file="$REPO_ROOT/infra/prometheus.yml" \
      --storage.tsdb.path="$STACK_DIR/prometheus" --web.listen-address=127.0.0.1:9090 \
      >>"$STACK_DIR/logs/prometheus.log" 2>&1 &
    echo $! >"$STACK_DIR/pids/prometheus.pid"
    wait_for_port 9090 30 || die "prometheus did not start (log: $STACK_DIR/logs/prometheus.log)"
  fi
fi

# 5. Where everything is.
cat <<INFO

tunix-rt is up.
  Postgres        $DATABASE_URL
  Kafka brokers   $KAFKA_BROKERS   (topic traces, dead letters traces.dlq)
INFO
if [ "$INFRA_ONLY" = 0 ]; then
cat <<INFO
  Web UI + API    http://$API_ADDR/           (OpenAPI: http://$API_ADDR/openapi.json)
  ingest metrics  http://$API_ADDR/metrics
  writer          http://$WRITER_OPS_ADDR/readyz   /metrics
  projector       http://$PROJECTOR_OPS_ADDR/readyz   /metrics
INFO
fi
if [ "$WITH_PROMETHEUS" = 1 ]; then
  echo "  prometheus      http://127.0.0.1:9090/   (Grafana dashboard: infra/grafana/tunix-rt.json)"
fi
cat <<INFO
  logs            $STACK_DIR/logs/
  stop            infra/down.sh
INFO
