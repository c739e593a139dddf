#!/usr/bin/env bash
# Regenerates testdata/otlp/ from the real producers (see testdata/otlp/README.md).
#
#   bash tests/otel/capture_all.sh [python] [outdir]
#
# python: a Python with tests/python/requirements.txt installed (default: python3).
# Needs `npm ci` done in tests/otel/node. Only loopback ports picked by the OS are used; every
# server started here is stopped by its own pid on exit.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${1:-python3}"
OUT="${2:-$HERE/../../testdata/otlp}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
# start() runs inside $(...) (a subshell), so server pids are collected in a file, not an array.
cleanup() { [[ -f "$WORK/pids" ]] && while read -r p; do kill "$p" 2>/dev/null || true; done <"$WORK/pids"; rm -rf "$WORK"; }
trap cleanup EXIT

# start <name> <cmd...>: runs a server printing `listening <port>`, echoes the port
start() {
  local name="$1"; shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  echo $! >>"$WORK/pids"
  for _ in $(seq 50); do
    [[ -s "$WORK/$name.out" ]] && { awk '{print $2; exit}' "$WORK/$name.out"; return; }
    sleep 0.1
  done
  echo "$name did not start" >&2; exit 1
}

STUB=$(start stub "$PY" "$HERE/stub_openai.py" 0)

# capture <name> <producer cmd with @OTLP@ for the capture server's base url>
# Every request is kept: <name>.<ext> if exactly one arrived, else <name>_1.<ext>, <name>_2.<ext>...
# <ext> is pb or json, or pb.gz when the request was gzipped (then only the original is kept).
# Beside each payload P: P.headers.json (request headers), P.txt (dump_otlp.py of it); and
# <name>.producer.json is the producer's stdout line (trace/span ids).
capture() {
  local name="$1"; shift
  local dir="$WORK/cap-$name"; mkdir -p "$dir"
  local port; port=$(start "cap-$name" "$PY" "$HERE/capture_server.py" 0 "$dir")
  local args=("${@//@OTLP@/http://127.0.0.1:$port}")
  timeout 120 "${args[@]}" >"$OUT/$name.producer.json" 2>"$WORK/$name.producer.err" \
    || { cat "$WORK/$name.producer.err" >&2; exit 1; }
  local n; n=$(ls "$dir" | grep -c '\.headers\.json$')
  [[ "$n" -ge 1 ]] || { echo "$name: no request captured" >&2; exit 1; }
  for i in $(seq "$n"); do
    local suffix=""; [[ "$n" -gt 1 ]] && suffix="_$i"
    local body="" c
    for c in "$dir/$i".pb.gz "$dir/$i".json.gz "$dir/$i".pb "$dir/$i".json; do
      [[ -z "$body" && -f "$c" ]] && body="$c"
    done
    local dest="$OUT/$name$suffix.${body#"$dir/$i".}"
    cp "$body" "$dest"
    cp "$dir/$i.headers.json" "$dest.headers.json"
    "$PY" "$HERE/dump_otlp.py" "$dest" | sed "s#^\# $OUT/#\# #" >"$dest.txt"
  done
}

# Payloads: openai_v2.pb, openai_v2_gzip.pb.gz, openinference.pb, node.json, node.pb
capture openai_v2 "$PY" "$HERE/produce_openai_v2.py" @OTLP@ "http://127.0.0.1:$STUB" test-key none
capture openai_v2_gzip "$PY" "$HERE/produce_openai_v2.py" @OTLP@ "http://127.0.0.1:$STUB" test-key gzip
capture openinference "$PY" "$HERE/produce_openinference.py" @OTLP@ "http://127.0.0.1:$STUB" test-key none
capture node node "$HERE/node/produce.mjs" @OTLP@ test-key json
mv "$OUT/node.producer.json" "$OUT/node.json.producer.json"
capture node node "$HERE/node/produce.mjs" @OTLP@ test-key proto
mv "$OUT/node.producer.json" "$OUT/node.pb.producer.json"
for f in openai_v2 openai_v2_gzip openinference; do mv "$OUT/$f.producer.json" "$OUT/$(ls "$OUT" | grep -E "^$f\.(pb|pb\.gz)$" | head -1).producer.json"; done
ls -la "$OUT"
