#!/usr/bin/env bash
# What an outside auditor's checks cost, on a fresh local three-node cluster:
#   - `ironlog verify --full` over N entries (download, recompute every leaf
#     hash and the root), against its peer in the same run: downloading and
#     printing the same N entries with `ironlog get --json` (no checking);
#   - P inclusion proofs checked online (`verify --entries 0-(P-1)`), against
#     the same P proofs checked offline from an exported bundle
#     (`verify --bundle`), and the export itself.
#
#   ./scripts/bench-verify.sh [ENTRIES] [PROOFS]      (default 100000 10000)
#
# This machine is shared and noisy: compare figures only within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
ENTRIES=${1:-100000}
PROOFS=${2:-10000}
BASE_PORT=${BENCH_BASE_PORT:-7401}

cargo build --release -q
BIN="$(pwd)/${CARGO_TARGET_DIR:-target}/release/ironlog"
DIR=$(mktemp -d)
OUT="$DIR/cluster-up.out"
"$BIN" cluster up --dir "$DIR" --base-port "$BASE_PORT" >"$OUT" 2>&1 &
PID=$!
cleanup() { kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT
# shellcheck source=scripts/cluster-wait.sh
source scripts/cluster-wait.sh
wait_for_cluster "$OUT" "$PID" 60
# The cluster's endpoint, CA and operator certificate (TLS and roles on).
# shellcheck source=/dev/null
source "$DIR/env"
EP="$IRONLOG_ENDPOINT"
POLICY="$DIR/policy.toml"

# N realistic events (about 250 bytes of leaf each).
awk -v n="$ENTRIES" 'BEGIN { for (i = 0; i < n; i++)
  printf "{\"time\":\"2026-11-%02dT%02d:%02d:%02dZ\",\"actor\":{\"id\":\"user%d\",\"type\":\"user\",\"ip\":\"10.0.%d.%d\"},\"action\":\"db.read\",\"resource\":\"postgres://payments/table%d\",\"outcome\":\"success\",\"source\":\"payments-api\",\"details\":{\"rows\":%d,\"request\":\"req-%d\"}}\n",
    1 + i % 28, i % 24, i % 60, i % 60, i % 500, i % 250, i % 200, i % 40, i % 1000, i }' >"$DIR/events.jsonl"
echo "appending $ENTRIES events..."
"$BIN" --endpoint "$EP" append --file "$DIR/events.jsonl" --batch 1000 >/dev/null
for ((i = 0; i < 600; i++)); do
  size=$("$BIN" --endpoint "$EP" --json checkpoint 2>/dev/null | sed -n 's/.*"size":\([0-9]*\).*/\1/p')
  [ "${size:-0}" -ge "$ENTRIES" ] && break
  sleep 0.5
done
echo "signed checkpoint covers $size entries"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

t0=$(now); "$BIN" --endpoint "$EP" --json get 0 "$ENTRIES" >/dev/null; t1=$(now)
get_s=$(elapsed "$t0" "$t1")
t0=$(now); "$BIN" --endpoint "$EP" verify --policy "$POLICY" --full; t1=$(now)
full_s=$(elapsed "$t0" "$t1")
echo "verify --full, $size entries: ${full_s} s; peer (get --json, same entries, no checks): ${get_s} s; ratio $(ratio "$full_s" "$get_s")"

LAST=$((PROOFS - 1))
t0=$(now); "$BIN" --endpoint "$EP" verify --policy "$POLICY" --entries "0-$LAST"; t1=$(now)
online_s=$(elapsed "$t0" "$t1")
t0=$(now); "$BIN" --endpoint "$EP" export --policy "$POLICY" --entries "0-$LAST" --out "$DIR/bundle.tlog-proof"; t1=$(now)
export_s=$(elapsed "$t0" "$t1")
t0=$(now); "$BIN" verify --policy "$POLICY" --bundle "$DIR/bundle.tlog-proof"; t1=$(now)
offline_s=$(elapsed "$t0" "$t1")
echo "$PROOFS inclusion proofs: online verify ${online_s} s; export ${export_s} s ($(du -h "$DIR/bundle.tlog-proof" | cut -f1)); offline verify --bundle ${offline_s} s; online/offline ratio $(ratio "$online_s" "$offline_s")"
