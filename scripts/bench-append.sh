#!/usr/bin/env bash
# Append throughput and latency of a local three-node cluster, end to end
# through the gRPC API: a fresh `ironlog cluster up` (all three nodes on this
# machine, each fsyncing its own redb files) and `ironlog-bench --target
# ironlog` (crates/bench, the same load generator bench-vs-etcd.sh uses).
#
#   ./scripts/bench-append.sh [--tls | --insecure] [SECONDS] [CLIENTS] [BATCH]
#
# By default it runs twice, back to back in one invocation: first with TLS
# and authorisation on (the default `cluster up`: TLS on every port, the
# operator's client certificate checked and its roles looked up on every
# call), then with `cluster up --insecure` (plaintext, nobody
# authenticated), each on a fresh cluster; it prints one line per run
# (events/s, p50/p99 latency of Append requests) and the TLS/insecure ratios.
# `--tls` or `--insecure` (or INSECURE=1) runs only that mode.
# This machine is shared and noisy: compare figures only within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
MODES="tls insecure"
case "${1:-}" in
  --tls) MODES=tls; shift ;;
  --insecure) MODES=insecure; shift ;;
esac
if [ "${INSECURE:-0}" = 1 ]; then MODES=insecure; fi
SECONDS_RUN=${1:-10}
CLIENTS=${2:-8}
BATCH=${3:-100}
BASE_PORT=${BENCH_BASE_PORT:-7301}

cargo build --release -q -p ironlog -p ironlog-bench
BIN="${CARGO_TARGET_DIR:-target}/release/ironlog"
BENCH="${CARGO_TARGET_DIR:-target}/release/ironlog-bench"
# shellcheck source=scripts/cluster-wait.sh
source scripts/cluster-wait.sh

PID=""
DIR=""
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; fi
  if [ -n "$DIR" ]; then rm -rf "$DIR"; fi
  PID=""
  DIR=""
}
trap cleanup EXIT

# bench LABEL ENDPOINT BATCH: one `ironlog-bench` run; prints a line to
# stderr and "events_per_second p50_ms p99_ms" to stdout.
bench() {
  local out eps p50 p99
  out=$("$BENCH" --target ironlog --endpoints "$2" --seconds "$SECONDS_RUN" --clients "$CLIENTS" --batch "$3")
  eps=$(echo "$out" | sed -n 's/.*"writes_per_second":\([0-9.eE+-]*\).*/\1/p')
  p50=$(echo "$out" | sed -n 's/.*"p50_ms":\([0-9.eE+-]*\).*/\1/p')
  p99=$(echo "$out" | sed -n 's/.*"p99_ms":\([0-9.eE+-]*\).*/\1/p')
  awk -v l="$1" -v e="$eps" -v a="$p50" -v b="$p99" \
    'BEGIN { printf "%s %8.0f events/s; append latency p50 %6.1f ms, p99 %6.1f ms\n", l, e, a, b }' >&2
  echo "$eps $p50 $p99"
}

declare -A RESULT
for mode in $MODES; do
  DIR=$(mktemp -d)
  flags=()
  if [ "$mode" = insecure ]; then flags=(--insecure); fi
  "$BIN" cluster up --dir "$DIR" --base-port "$BASE_PORT" "${flags[@]}" >"$DIR/cluster-up.out" 2>&1 &
  PID=$!
  wait_for_cluster "$DIR/cluster-up.out" "$PID" 60
  # The cluster's endpoint and, with TLS, its CA and the operator's certificate.
  # shellcheck source=/dev/null
  source "$DIR/env"
  SCHEME=${IRONLOG_ENDPOINT%%://*}
  LEADER=""
  FOLLOWER=""
  for port in "$BASE_PORT" $((BASE_PORT + 1)) $((BASE_PORT + 2)); do
    role=$("$BIN" --endpoint "$SCHEME://127.0.0.1:$port" status --json | sed -n 's/.*"role":"\([a-z]*\)".*/\1/p')
    if [ "$role" = leader ]; then LEADER="$SCHEME://127.0.0.1:$port"; else FOLLOWER="$SCHEME://127.0.0.1:$port"; fi
  done
  if [ "$mode" = tls ]; then
    echo "== TLS and authorisation on (operator client certificate)"
  else
    echo "== --insecure (plaintext, no authentication)"
  fi
  echo "three-node cluster: leader $LEADER; ${SECONDS_RUN}s per run, $CLIENTS clients, $BATCH events per request"
  RESULT[$mode,leader]=$(bench "via the leader:  " "$LEADER" "$BATCH")
  RESULT[$mode,follower]=$(bench "via a follower:  " "$FOLLOWER" "$BATCH")
  RESULT[$mode,single]=$(bench "single events:   " "$LEADER" 1)
  "$BIN" --endpoint "$LEADER" status | head -20
  cleanup
done

if [ "$MODES" = "tls insecure" ]; then
  echo "== TLS and authorisation / --insecure (same run; throughput ratio, latency ratios)"
  for run in leader follower single; do
    # shellcheck disable=SC2086
    awk -v run="$run" -v t="${RESULT[tls,$run]}" -v i="${RESULT[insecure,$run]}" 'BEGIN {
      split(t, a, " "); split(i, b, " ");
      printf "%-9s events/s %.2f; p50 %.2f; p99 %.2f\n", run, a[1] / b[1], a[2] / b[2], a[3] / b[3] }'
  done
fi
