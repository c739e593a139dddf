#!/usr/bin/env bash
# Compares the CPU cost per trace of two builds in the same run (issue "Cost": this machine's
# speed moves ±30% between days, so a baseline only counts when measured beside the result).
#
#   bench/cost-compare.sh BASELINE_BIN_DIR [CURRENT_BIN_DIR]
#
# Each round brings up a purged local stack (infra/up.sh --bin-dir) with each build in turn,
# alternating, and runs `tunix-bench cost`; the table at the end holds the medians per build and
# their ratio. CURRENT_BIN_DIR defaults to target/release (built first). The current tree's
# tunix-bench measures both. Keep a baseline's services with e.g.
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release --bins) &&
#   mkdir /tmp/base-bin && cp /tmp/base/target/release/tunix-* /tmp/base-bin/
# Broker requests are counted by the services (`*_broker_requests_total`): a build without
# those counters reports none.
#
# Environment: ROUNDS (3), SECONDS_PER_RUN (30), IDLE_SECONDS (15), RATE (1500),
#   BASELINE_ENV / CURRENT_ENV: extra VAR=value words for each build's stack (e.g. the partition
#   count a baseline was run with: BASELINE_ENV="KAFKA_TOPIC_PARTITIONS=6"),
#   OUT (directory for the raw outputs; default bench/results/cost-<timestamp>).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../infra/lib.sh"

[ $# -ge 1 ] || die "usage: bench/cost-compare.sh BASELINE_BIN_DIR [CURRENT_BIN_DIR]"
BASE_DIR="$(cd "$1" && pwd)"
if [ $# -ge 2 ]; then
  CUR_DIR="$(cd "$2" && pwd)"
else
  log "building the current tree (release)"
  (cd "$REPO_ROOT" && cargo build -q --release --bins -p tunix-admin -p tunix-ingest-api \
    -p tunix-writer -p tunix-projector -p tunix-bench)
  CUR_DIR="$REPO_ROOT/target/release"
fi
ROUNDS="${ROUNDS:-3}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-30}"
IDLE_SECONDS="${IDLE_SECONDS:-15}"
RATE="${RATE:-1500}"
OUT="${OUT:-$REPO_ROOT/bench/results/cost-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
for b in tunix-ingest-api tunix-writer tunix-projector tunix-admin; do
  [ -x "$BASE_DIR/$b" ] || die "$BASE_DIR/$b is missing"
  [ -x "$CUR_DIR/$b" ] || die "$CUR_DIR/$b is missing"
done
# One instrument for both builds: the current tree's tunix-bench.
BENCH="$CUR_DIR/tunix-bench"
[ -x "$BENCH" ] || BENCH="$REPO_ROOT/target/release/tunix-bench"
[ -x "$BENCH" ] || die "no tunix-bench: cargo build --release -p tunix-bench"

run_one() { # label bin-dir env-words round
  local label="$1" dir="$2" words="$3" round="$4"
  log "round $round: $label ($dir${words:+, $words})"
  "$REPO_ROOT/infra/down.sh" --purge >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  env $words "$REPO_ROOT/infra/up.sh" --bin-dir "$dir" >"$OUT/$label-$round.up.log" 2>&1 \
    || { tail -n 20 "$OUT/$label-$round.up.log" >&2; die "the stack did not come up"; }
  (cd "$REPO_ROOT" && "$BENCH" cost --rate "$RATE" --seconds "$SECONDS_PER_RUN" \
    --idle-seconds "$IDLE_SECONDS") >"$OUT/$label-$round.txt" 2>"$OUT/$label-$round.err"
  grep -v '^COST' "$OUT/$label-$round.txt" | sed -n '1,20p' >&2
}

for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then
    run_one baseline "$BASE_DIR" "${BASELINE_ENV:-}" "$r"
    run_one current "$CUR_DIR" "${CURRENT_ENV:-}" "$r"
  else
    run_one current "$CUR_DIR" "${CURRENT_ENV:-}" "$r"
    run_one baseline "$BASE_DIR" "${BASELINE_ENV:-}" "$r"
  fi
done
"$REPO_ROOT/infra/down.sh" --purge >/dev/null 2>&1 || true

python3 - "$OUT" "$ROUNDS" <<'PY' | tee "$OUT/summary.md"
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(label):
    runs = []
    for r in range(1, rounds + 1):
        for line in open(f"{out}/{label}-{r}.txt"):
            if line.startswith("COST "):
                runs.append(json.loads(line[5:]))
    return runs
base, cur = load("baseline"), load("current")
med = lambda xs: statistics.median(xs)
procs = base[0]["processes"]
rows = []
def row(name, f, fmt="{:.0f}"):
    b, c = med([f(x) for x in base]), med([f(x) for x in cur])
    ratio = c / b if b else float("nan")
    rows.append(f"| {name} | {fmt.format(b)} | {fmt.format(c)} | {ratio:.2f} |")
for i, label in enumerate(["single POSTs", "batches of 100"]):
    for j, p in enumerate(procs):
        row(f"{label}: {p}, CPU ms / 1,000 traces", lambda x: x["runs"][i]["cpu_ms_per_1000"][j])
    row(f"{label}: ours (ingest-api + writer + projector)",
        lambda x: sum(x["runs"][i]["cpu_ms_per_1000"][k] for k, p in enumerate(procs)
                      if p in ("ingest-api", "writer", "projector")))
    row(f"{label}: **total**", lambda x: sum(x["runs"][i]["cpu_ms_per_1000"]))
    row(f"{label}: produce requests / 1,000 traces", lambda x: x["runs"][i]["produce_per_1000"])
    row(f"{label}: fetch requests / 1,000 traces", lambda x: x["runs"][i]["fetch_per_1000"])
    row(f"{label}: produce + fetch / 1,000 traces",
        lambda x: x["runs"][i]["produce_per_1000"] + x["runs"][i]["fetch_per_1000"])
    row(f"{label}: freshness p99 ms (GET by id)", lambda x: x["runs"][i]["get_p99_ms"])
    row(f"{label}: freshness p99 ms (list)", lambda x: x["runs"][i]["list_p99_ms"])
for j, p in enumerate(procs):
    row(f"idle: {p}, % of a core", lambda x: x["idle_cpu_percent"][j], "{:.1f}")
row("idle: fetch requests / s", lambda x: x["idle_requests_per_sec"]["fetch"], "{:.1f}")
for j, p in enumerate(procs):
    if "idle_memory_mib" in base[0] and "idle_memory_mib" in cur[0]:
        row(f"RSS MiB idle: {p}", lambda x: x["idle_memory_mib"][j])
        row(f"RSS MiB after the runs: {p}", lambda x: x["end_memory_mib"][j])
row("highest single-POST rate / s", lambda x: x["max_rate"])
row("raw producer rate / s", lambda x: x["raw_rate"])
row("highest single-POST rate, % of raw producer", lambda x: 100 * x["max_rate"] / x["raw_rate"], "{:.1f}")
row("ingest-api µs per single POST at that rate", lambda x: x["ingest_us_per_post_at_max"])
print(f"Medians of {rounds} rounds per build (raw outputs in {out}).\n")
print("| measure | baseline | current | current / baseline |")
print("| --- | ---: | ---: | ---: |")
print("\n".join(rows))
PY
