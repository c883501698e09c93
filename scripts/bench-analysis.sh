#!/usr/bin/env bash
# Do appends on the voters slow down because of the analysis node?
#
#   ./scripts/bench-analysis.sh [SECONDS] [CLIENTS] [BATCH]
#
# Three runs of `ironlog-bench --target ironlog` (crates/bench) against the leader, each SECONDS long,
# all in one invocation (this machine is shared and noisy: compare only
# within one run):
#   1. a three-voter cluster without an analysis node (the peer);
#   2. the same cluster shape plus the analysis node (a learner), idle;
#   3. the same, with the analysis node kept busy by a loop of model-backed
#      requests (summaries and categorisations of model-decided entries).
#   4. the same, with the analysis node frozen (SIGSTOP): if appends waited
#      on the learner in any way, this run would stall or slow down.
# Prints events/s for each and the ratios to run 1, and the CPU seconds each
# node process used during each run, also per entry appended (microseconds;
# the entries are the leader's tree growth over the run). For run 2 it prints
# the learner's CPU per entry over a follower's (the mean of the two
# followers): what following the log costs the analysis node beyond storing
# it. CPU is read SETTLE_S seconds (default 3) after each run ends, so the
# learner's catching up on the run's entries counts too; run 2 starts once
# the learner has categorised, with the model, the one entry appended for
# run 3 (seconds of CPU that have nothing to do with following the log). Everything runs on
# this one machine (2 cores here), so the learner's own work (storing and
# indexing every entry, running the model) takes CPU from the voters: that
# is co-location, not consensus; run 4 separates the two. On real
# deployments the analysis node has its own machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CLIENTS=${2:-8}
BATCH=${3:-100}
BASE_PORT=${BENCH_BASE_PORT:-7401}
SETTLE_S=${SETTLE_S:-3}

# shellcheck source=scripts/setup.sh
source scripts/setup.sh
# shellcheck source=scripts/cluster-wait.sh
source scripts/cluster-wait.sh
# BIN_DIR=DIR runs the ironlog and ironlog-bench in DIR instead of building
# (to compare two builds, run in turn). Either way they are copied, so that
# a build into the same directory cannot swap them between runs.
if [ -z "${BIN_DIR:-}" ]; then
  cargo build --release -q -p ironlog -p ironlog-bench
  BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
fi
BINDIR=$(mktemp -d)
cp "$BIN_DIR/ironlog" "$BIN_DIR/ironlog-bench" "$BINDIR/"
BIN="$BINDIR/ironlog"
BENCH="$BINDIR/ironlog-bench"

PID=""
DIR=""
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; fi
  if [ -n "$DIR" ]; then rm -rf "$DIR"; fi
  PID=""
  DIR=""
}
trap 'cleanup; rm -rf "$BINDIR"' EXIT

start() { # start [--analysis-model FILE]
  DIR=$(mktemp -d)
  "$BIN" cluster up --dir "$DIR" --base-port "$BASE_PORT" "$@" >"$DIR/up.out" 2>&1 &
  PID=$!
  wait_for_cluster "$DIR/up.out" "$PID" 120
  # The cluster's endpoint, CA and operator certificate (TLS and roles on).
  # shellcheck source=/dev/null
  source "$DIR/env"
  SCHEME=${IRONLOG_ENDPOINT%%://*}
  LEADER=""
  LEADER_ID=""
  for port in "$BASE_PORT" $((BASE_PORT + 1)) $((BASE_PORT + 2)); do
    role=$("$BIN" --endpoint "$SCHEME://127.0.0.1:$port" status --json | sed -n 's/.*"role":"\([a-z]*\)".*/\1/p')
    if [ "$role" = leader ]; then
      LEADER="$SCHEME://127.0.0.1:$port"
      LEADER_ID=$((port - BASE_PORT + 1))
    fi
  done
}

cpu_ticks() { # cpu_ticks: "node=ticks" (user+system) for every node process of the cluster
  local pid cfg id
  for pid in $(pgrep -P "$PID"); do
    cfg=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    id=$(echo "$cfg" | grep -o 'node[0-9]*\.toml' | tr -dc '0-9')
    [ -n "$id" ] || continue
    echo "$id=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)"
  done | sort
}

wait_quiet() { # wait_quiet PID SECONDS: until the process uses under 0.1 CPU s in a second
  local pid=$1 seconds=$2 hz before after i
  hz=$(getconf CLK_TCK)
  for ((i = 0; i < seconds; i++)); do
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    sleep 1
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    if [ $((after - before)) -lt $((hz / 10)) ]; then return 0; fi
  done
  echo "warning: process $pid still busy after ${seconds}s" >&2
}

tree_size() { # tree_size: the leader's
  "$BIN" --endpoint "$LEADER" status --json | sed -n 's/.*"tree_size":\([0-9]*\).*/\1/p'
}

rate() { # rate LABEL: one bench run against the leader; prints, and returns
  # "events/s learner-over-follower-CPU-per-entry" (the latter "-" without a
  # running learner)
  local out before after hz size0 size1 learner_ratio
  hz=$(getconf CLK_TCK)
  before=$(cpu_ticks)
  size0=$(tree_size)
  out=$("$BENCH" --target ironlog --endpoints "$LEADER" --seconds "$SECONDS_RUN" --clients "$CLIENTS" --batch "$BATCH")
  sleep "$SETTLE_S"
  after=$(cpu_ticks)
  size1=$(tree_size)
  echo "$1: $out" >&2
  # CPU seconds per node process during the run (a frozen process shows 0),
  # and per entry appended; the last line is the learner's (node 4) CPU per
  # entry over the followers' mean, "-" when there is none or it was frozen.
  learner_ratio=$(join -t= <(echo "$before") <(echo "$after") |
    awk -F= -v hz="$hz" -v entries=$((size1 - size0)) -v leader="$LEADER_ID" '
      {
        cpu = ($3 - $2) / hz
        per_entry_us = entries > 0 ? cpu * 1e6 / entries : 0
        role = $1 == leader ? "leader" : ($1 == 4 ? "learner" : "follower")
        printf "   node %s (%s): %.1f CPU s, %.1f us/entry\n", $1, role, cpu, per_entry_us > "/dev/stderr"
        if (role == "follower") { followers += cpu; n += 1 }
        if (role == "learner") learner = cpu
      }
      END {
        printf "   %d entries\n", entries > "/dev/stderr"
        if (learner > 0 && followers > 0) printf "%.2f\n", learner / (followers / n); else print "-"
      }')
  echo "$(echo "$out" | sed -n 's/.*"writes_per_second":\([0-9.eE+-]*\).*/\1/p') $learner_ratio"
}

start
read -r R1 _ <<<"$(rate "1. three voters, no analysis node       ")"
cleanup

start --analysis-model "$IRONLOG_MODEL"
ANALYSIS="$SCHEME://127.0.0.1:$((BASE_PORT + 3))"
LEARNER=""
for pid in $(pgrep -P "$PID"); do
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'node4\.toml'; then LEARNER=$pid; fi
done
[ -n "$LEARNER" ] || { echo "the analysis node's process was not found" >&2; exit 1; }
# Entries the rules cannot decide, so categorisation needs the model.
"$BIN" --endpoint "$LEADER" append --actor bench --action widget.frobnicate --resource thing/1 \
  --outcome success --source bench >/dev/null
# The learner categorises that entry with the model in the background, a
# few CPU seconds on its own: run 2 starts once it is done, so that it
# measures following the log, not that one computation.
sleep 1
wait_quiet "$LEARNER" 60
read -r R2 C2 <<<"$(rate "2. plus the analysis node, idle          ")"
(
  while true; do
    "$BIN" --endpoint "$ANALYSIS" summarize --last 200 >/dev/null 2>&1 || true
    "$BIN" --endpoint "$ANALYSIS" categorize --entries 0 >/dev/null 2>&1 || true
  done
) &
BUSY=$!
sleep 2
read -r R3 _ <<<"$(rate "3. plus the analysis node, model busy    ")"
kill "$BUSY" 2>/dev/null || true
wait "$BUSY" 2>/dev/null || true
kill -STOP "$LEARNER"
read -r R4 _ <<<"$(rate "4. plus the analysis node, frozen        ")"
kill -CONT "$LEARNER"
"$BIN" --endpoint "$LEADER" status | grep -E "^ +[0-9]+ " || true
cleanup

python3 - "$R1" "$R2" "$R3" "$R4" "$C2" <<'PY'
import sys
r1, r2, r3, r4 = (float(x) for x in sys.argv[1:5])
c2 = sys.argv[5]
print(f"ratio idle learner   / no learner: {r2 / r1:.2f}")
print(f"ratio busy learner   / no learner: {r3 / r1:.2f}")
print(f"ratio busy learner   / idle learner: {r3 / r2:.2f}")
print(f"ratio frozen learner / no learner: {r4 / r1:.2f}")
print(f"learner CPU per entry / follower's (idle run): {c2}")
PY
