#!/usr/bin/env bash
# Append throughput and latency of a local three-node cluster, end to end
# through the gRPC API: a fresh `ironlog cluster up` (all three nodes on this
# machine, each fsyncing its own redb files) and `ironlog bench append`.
#
#   ./scripts/bench-append.sh [SECONDS] [CLIENTS] [BATCH]
#
# Prints one line per run: events/s and p50/p99 latency of Append requests.
# This machine is shared and noisy: compare figures only within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
CLIENTS=${2:-8}
BATCH=${3:-100}
BASE_PORT=${BENCH_BASE_PORT:-7301}

cargo build --release -q
BIN="${CARGO_TARGET_DIR:-target}/release/ironlog"
DIR=$(mktemp -d)
OUT="$DIR/cluster-up.out"
"$BIN" cluster up --dir "$DIR" --base-port "$BASE_PORT" >"$OUT" 2>&1 &
PID=$!
cleanup() { kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
# shellcheck source=scripts/cluster-wait.sh
source scripts/cluster-wait.sh
wait_for_cluster "$OUT" "$PID" 60

LEADER=""
FOLLOWER=""
for port in "$BASE_PORT" $((BASE_PORT + 1)) $((BASE_PORT + 2)); do
  role=$("$BIN" --endpoint "http://127.0.0.1:$port" status --json | sed -n 's/.*"role":"\([a-z]*\)".*/\1/p')
  if [ "$role" = leader ]; then LEADER="http://127.0.0.1:$port"; else FOLLOWER="http://127.0.0.1:$port"; fi
done
echo "three-node cluster: leader $LEADER; ${SECONDS_RUN}s per run, $CLIENTS clients, $BATCH events per request"
echo -n "via the leader:   "
"$BIN" --endpoint "$LEADER" bench append --seconds "$SECONDS_RUN" --clients "$CLIENTS" --batch "$BATCH"
echo -n "via a follower:   "
"$BIN" --endpoint "$FOLLOWER" bench append --seconds "$SECONDS_RUN" --clients "$CLIENTS" --batch "$BATCH"
echo -n "single events:    "
"$BIN" --endpoint "$LEADER" bench append --seconds "$SECONDS_RUN" --clients "$CLIENTS" --batch 1
"$BIN" --endpoint "$LEADER" status | head -20
