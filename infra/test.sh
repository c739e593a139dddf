#!/usr/bin/env bash
# Runs the whole tunix-rt test suite from a fresh clone:
#   1. installs what is missing (postgresql, Java, Apache Kafka and Apicurio Registry from Maven
#      Central, cargo-nextest, Chromium + Node packages for the browser test, Python clients from
#      PyPI in a venv for interop tests);
#   2. starts a private Postgres (fsync off) and a one-node Apache Kafka on test ports, separate
#      from the dev stack of infra/up.sh (tests that stop, kill or cluster brokers start their
#      own Kafka processes through testkit);
#   3. builds the service binaries (the end-to-end tests run them as separate processes);
#   4. runs every test: unit, contract, integration against the real broker and Postgres,
#      end-to-end fault scenarios and the browser test;
#   5. stops what it started (KEEP_STACK=1 keeps it running for quicker reruns).
# Extra arguments go to the test runner, e.g. infra/test.sh -p tunix-writer
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STACK_DIR="${TEST_STACK_DIR:-$REPO_ROOT/.stack/test}"
PG_PORT="${TEST_PG_PORT:-55433}"
KAFKA_PORT="${TEST_KAFKA_PORT:-19093}"
KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-19193}"
PG_OS_USER="${PG_OS_USER:-nobody}"
PG_FSYNC=off
# The shared test broker starts empty each run (topics are per test); on tmpfs when available:
# test data needs no durability across reboots.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  BROKER_DIR="${BROKER_DIR:-/dev/shm/tunix-test-broker-$(id -u)}"
fi
NEED_PG=1

prepare_stack_dir
ensure_postgres_binaries
ensure_kafka
ensure_build_tools
ensure_apicurio
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked >&2
fi
# The observability test runs a real Prometheus (Debian's package).
command -v prometheus >/dev/null || apt_install prometheus
# The browser test: Debian's Chromium driven by playwright-core (its own browser download does
# not work here, and is not needed).
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
[ -x /usr/bin/chromium ] || command -v chromium >/dev/null || apt_install chromium
# Contracts meant for other people's tools are tested with those tools: Python clients from PyPI
# (tests/python/requirements.txt) in a venv, re-installed when the requirements change.
VENV="$REPO_ROOT/.stack/venv"
REQS="$REPO_ROOT/tests/python/requirements.txt"
if ! cmp -s "$REQS" "$VENV/requirements.txt" 2>/dev/null; then
  command -v python3 >/dev/null || apt_install python3 python3-venv
  python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
  log "installing the Python test clients into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2 || { apt_install python3-venv && python3 -m venv "$VENV" >&2; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS" >&2 \
    || die "pip install -r tests/python/requirements.txt failed (see above)"
  cp "$REQS" "$VENV/requirements.txt"
fi
export TUNIX_TEST_PYTHON="$VENV/bin/python"

if [ ! -d "$REPO_ROOT/tests/browser/node_modules/playwright-core" ] || [ ! -d "$REPO_ROOT/tests/browser/node_modules/axe-core" ]; then
  log "installing playwright-core and axe-core (npm ci in tests/browser)"
  (cd "$REPO_ROOT/tests/browser" && npm ci --no-audit --no-fund >&2)
fi
# The OTLP test's Node producer: the OpenTelemetry JS SDK and exporters (lockfile committed).
if [ ! -d "$REPO_ROOT/tests/otel/node/node_modules/@opentelemetry" ]; then
  log "installing the OpenTelemetry JS SDK (npm ci in tests/otel/node)"
  (cd "$REPO_ROOT/tests/otel/node" && npm ci --no-audit --no-fund >&2)
fi

cleanup() {
  if [ "${KEEP_STACK:-0}" != 1 ]; then
    stop_pidfile broker
    stop_postgres
  else
    log "KEEP_STACK=1: leaving the test Postgres ($PG_PORT) and broker ($KAFKA_PORT) running"
  fi
}
trap cleanup EXIT

start_postgres
# The compile-checked queries' offline cache must match the code (CI fails when it is stale).
SQLX_PREPARE_ADMIN_URL="postgres://tunix@127.0.0.1:$PG_PORT/postgres" "$REPO_ROOT/infra/sqlx-prepare.sh" --check
if ! pid_alive "$STACK_DIR/pids/broker.pid"; then
  rm -rf "${BROKER_DIR:-$STACK_DIR/broker}/data"  # topics are per test; start empty
fi
start_broker

export TUNIX_TEST_DATABASE_URL="postgres://tunix@127.0.0.1:$PG_PORT/postgres"
export TUNIX_TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export PG_BINDIR
export TUNIX_KAFKA_LIBS="$KAFKA_LIBS"
export TUNIX_APICURIO_HOME="$APICURIO_HOME"
export TUNIX_ARTIFACTS_DIR="${TUNIX_ARTIFACTS_DIR:-$REPO_ROOT/artifacts}"
mkdir -p "$TUNIX_ARTIFACTS_DIR"

cd "$REPO_ROOT"
log "building the service binaries"
cargo build --workspace --bins >&2
log "running the tests (artifacts: $TUNIX_ARTIFACTS_DIR)"
cargo nextest run --no-fail-fast "$@"  # the virtual workspace: every member
