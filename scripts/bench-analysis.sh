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
# node process used during each run. Everything runs on this one machine
# (2 cores here), so the learner's own work (storing and indexing every
# entry, running the model) takes CPU from the voters: that is co-location,
# not consensus; run 4 separates the two. On real deployments the analysis
# node has its own machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CLIENTS=${2:-8}
BATCH=${3:-100}
BASE_PORT=${BENCH_BASE_PORT:-7401}

# shellcheck source=scripts/setup.sh
source scripts/setup.sh
# shellcheck source=scripts/cluster-wait.sh
source scripts/cluster-wait.sh
cargo build --release -q -p ironlog -p ironlog-bench
BIN="${CARGO_TARGET_DIR:-target}/release/ironlog"
BENCH="${CARGO_TARGET_DIR:-target}/release/ironlog-bench"

PID=""
DIR=""
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; fi
  if [ -n "$DIR" ]; then rm -rf "$DIR"; fi
  PID=""
  DIR=""
}
trap cleanup EXIT

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
  for port in "$BASE_PORT" $((BASE_PORT + 1)) $((BASE_PORT + 2)); do
    role=$("$BIN" --endpoint "$SCHEME://127.0.0.1:$port" status --json | sed -n 's/.*"role":"\([a-z]*\)".*/\1/p')
    if [ "$role" = leader ]; then LEADER="$SCHEME://127.0.0.1:$port"; fi
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

rate() { # rate LABEL: one bench run against the leader; prints and returns events/s
  local out before after hz
  hz=$(getconf CLK_TCK)
  before=$(cpu_ticks)
  out=$("$BENCH" --target ironlog --endpoints "$LEADER" --seconds "$SECONDS_RUN" --clients "$CLIENTS" --batch "$BATCH")
  after=$(cpu_ticks)
  echo "$1: $out" >&2
  # CPU seconds per node process during the run (a frozen process shows 0).
  join -t= <(echo "$before") <(echo "$after") |
    awk -F= -v hz="$hz" '{printf "   node %s: %.1f CPU s\n", $1, ($3 - $2) / hz}' >&2
  echo "$out" | sed -n 's/.*"writes_per_second":\([0-9.eE+-]*\).*/\1/p'
}

start
R1=$(rate "1. three voters, no analysis node       ")
cleanup

start --analysis-model "$IRONLOG_MODEL"
ANALYSIS="$SCHEME://127.0.0.1:$((BASE_PORT + 3))"
# Entries the rules cannot decide, so categorisation needs the model.
"$BIN" --endpoint "$LEADER" append --actor bench --action widget.frobnicate --resource thing/1 \
  --outcome success --source bench >/dev/null
R2=$(rate "2. plus the analysis node, idle          ")
(
  while true; do
    "$BIN" --endpoint "$ANALYSIS" summarize --last 200 >/dev/null 2>&1 || true
    "$BIN" --endpoint "$ANALYSIS" categorize --entries 0 >/dev/null 2>&1 || true
  done
) &
BUSY=$!
sleep 2
R3=$(rate "3. plus the analysis node, model busy    ")
kill "$BUSY" 2>/dev/null || true
wait "$BUSY" 2>/dev/null || true
LEARNER=""
for pid in $(pgrep -P "$PID"); do
  if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'node4\.toml'; then LEARNER=$pid; fi
done
[ -n "$LEARNER" ] || { echo "the analysis node's process was not found" >&2; exit 1; }
kill -STOP "$LEARNER"
R4=$(rate "4. plus the analysis node, frozen        ")
kill -CONT "$LEARNER"
"$BIN" --endpoint "$LEADER" status | grep -E "^ +[0-9]+ " || true
cleanup

python3 - "$R1" "$R2" "$R3" "$R4" <<'PY'
import sys
r1, r2, r3, r4 = (float(x) for x in sys.argv[1:])
print(f"ratio idle learner   / no learner: {r2 / r1:.2f}")
print(f"ratio busy learner   / no learner: {r3 / r1:.2f}")
print(f"ratio busy learner   / idle learner: {r3 / r2:.2f}")
print(f"ratio frozen learner / no learner: {r4 / r1:.2f}")
PY
