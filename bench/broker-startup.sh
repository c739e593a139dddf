#!/usr/bin/env bash
# Start-up time, memory and idle CPU of the local Apache Kafka broker, started exactly as
# infra/up.sh starts it (same JVM options, same settings): each round formats a fresh storage,
# starts the broker, waits until it answers a metadata request, then watches it idle.
#
#   bench/broker-startup.sh [ROUNDS] [IDLE_SECONDS]      # defaults: 3 rounds, 30 s idle
#
# Prints a markdown table and the medians. Uses ports 29192/29292 and a temporary folder.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../infra/lib.sh"

ROUNDS="${1:-3}"
IDLE="${2:-30}"
KAFKA_PORT=29192
KAFKA_CONTROLLER_PORT=29292
ensure_kafka

ticks() { # utime + stime of a pid, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

HZ="$(getconf CLK_TCK)"
rows=()
starts=() rss_ready=() rss_idle=() cpu_idle=()
for ((r = 1; r <= ROUNDS; r++)); do
  STACK_DIR="$(mktemp -d /tmp/tunix-broker-bench-XXXXXX)"
  BROKER_DIR="$STACK_DIR/broker"
  mkdir -p "$STACK_DIR/logs" "$STACK_DIR/pids" "$BROKER_DIR"
  began="$(date +%s.%N)"
  start_broker 2>/dev/null
  ready="$(date +%s.%N)"
  pid="$(cat "$STACK_DIR/pids/broker.pid")"
  start_s="$(echo "$ready - $began" | bc)"
  rss1="$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")"
  t0="$(ticks "$pid")"
  sleep "$IDLE"
  t1="$(ticks "$pid")"
  rss2="$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")"
  cpu="$(echo "scale=2; ($t1 - $t0) * 100 / $HZ / $IDLE" | bc)"
  stop_pidfile broker 2>/dev/null
  rm -rf "$STACK_DIR"
  rows+=("| $r | $start_s | $rss1 | $rss2 | $cpu |")
  starts+=("$start_s") rss_ready+=("$rss1") rss_idle+=("$rss2") cpu_idle+=("$cpu")
done

echo "| round | format + start + ready, s | RSS when ready, MiB | RSS after ${IDLE} s idle, MiB | idle CPU, % of a core |"
echo "| ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
printf '| **median** | %s | %s | %s | %s |\n' \
  "$(printf '%s\n' "${starts[@]}" | median)" "$(printf '%s\n' "${rss_ready[@]}" | median)" \
  "$(printf '%s\n' "${rss_idle[@]}" | median)" "$(printf '%s\n' "${cpu_idle[@]}" | median)"
echo
echo "JVM: $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS"
