#!/usr/bin/env bash
# Proof serving at scale: inclusion and consistency proofs per second, their
# latency, and the serving node's memory, with the log at each given size.
#
#   ./scripts/bench-proofs.sh [SIZE ...]        (default: 1000000 10000000)
#
# - The log lives on ONE node: a single-voter cluster (its config lists only
#   itself in `peers`, `bootstrap = true`), TLS and authorisation on, made
#   here with `ironlog keygen` and `ironlog certs` (not `cluster up`, which
#   always starts three). Proofs are served by one node from its own ledger
#   file, so one node measures what each node of a cluster does; it also
#   keeps the disk to a third: every node stores the whole log.
# - Building: `ironlog-bench --op append` with BUILD_CLIENTS clients of
#   BUILD_BATCH smallest events (--value-bytes 0, about 130 bytes each) per
#   Append, in runs sized to end about two seconds short of each SIZE, then
#   `ironlog append` of exactly what is left. Sizes are built in increasing
#   order on the same node.
# - Disk: before every load-generator run of a build, the free space the
#   size would leave is projected from the bytes per entry so far (from
#   50,000 entries on); if it is below FREE_GB_MIN (6) GiB, or free space
#   already is, the build stops and that size and all larger ones are
#   skipped (said in the table and the JSON).
# - At each size, once a checkpoint covers it, the node is restarted (so
#   what is measured is a node serving a log of that size, not one carrying
#   what the build left in it), then `ironlog-bench --op inclusion`
#   then `--op consistency`, CLIENTS (16) closed-loop clients for SECONDS_RUN
#   (10) s after a 2 s warm-up, all proving within that checkpoint's tree
#   (random leaves; random sizes 1 <= old < new <= size), each client
#   verifying every 100th proof. The load generator runs on the same
#   machine as the node: it takes CPU the node could use.
# - Memory: the node's VmRSS (/proc/PID/status) at the end of the build
#   (with VmHWM, the build's peak), just after the restart, and after the
#   proof loads; the ratio line compares the largest size with the smallest
#   (the target: within 1.2x).
# - The node listens on 127.0.0.1:BENCH_PROOFS_PORT (7611) and +100 (Raft).
# - Output: a table on stdout, and JSON in OUT (target/bench-proofs.json).
#   Set KEEP=1 to keep the node's directory (printed) afterwards. With
#   PERF_DIR=DIR, each size gets one more run of each proof kind, not in the
#   table, under `perf record --call-graph dwarf -p <node>` into
#   DIR/<op>-<size>.perf.data (about 50 MB each); read them with
#   `perf report -i FILE --no-children`.
# This machine is shared and noisy: compare figures within one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
if [ ${#SIZES[@]} -eq 0 ]; then SIZES=(1000000 10000000); fi
SECONDS_RUN=${SECONDS_RUN:-10}
CLIENTS=${CLIENTS:-16}
BUILD_CLIENTS=${BUILD_CLIENTS:-4}
BUILD_BATCH=${BUILD_BATCH:-1000}
FREE_GB_MIN=${FREE_GB_MIN:-6}
OUT=${OUT:-target/bench-proofs.json}
PORT=${BENCH_PROOFS_PORT:-7611}
PEER_PORT=$((PORT + 100))
ORIGIN=bench.example/proofs
for size in "${SIZES[@]}"; do
  if ! [[ $size =~ ^[1-9][0-9]*$ ]] || [ "$size" -lt 2 ]; then
    echo "error: sizes are leaf counts of at least 2, not '$size'" >&2
    exit 2
  fi
done
mapfile -t SIZES < <(printf '%s\n' "${SIZES[@]}" | sort -n -u)

# shellcheck source=scripts/setup.sh
source scripts/setup.sh
fail() {
  echo "error: $*" >&2
  exit 1
}

# Cargo names a workspace package's artifacts by its path relative to the
# workspace root and judges them fresh by this tree's file times, so trees
# sharing a target directory (git worktrees) take each other's newer builds
# for their own. Touching the crate roots makes this build compile this
# tree (the price: ironlog recompiles on every run).
touch src/lib.rs src/main.rs crates/tlog/src/lib.rs crates/bench/src/main.rs proto/ironlog/v1/ironlog.proto
cargo build --release -q -p ironlog -p ironlog-bench
DIR=$(mktemp -d)
# Own links to the binaries, so that a later build into a shared target
# directory cannot swap them during a long run; their digests go in the JSON.
for bin in ironlog ironlog-bench; do
  ln "${CARGO_TARGET_DIR:-target}/release/$bin" "$DIR/$bin" 2>/dev/null ||
    cp "${CARGO_TARGET_DIR:-target}/release/$bin" "$DIR/$bin"
done
BIN="$DIR/ironlog"
BENCH="$DIR/ironlog-bench"
if ! "$BENCH" --help | grep -q -- '--op'; then
  rm -rf "$DIR"
  fail "$BENCH has no --op: a build of another tree into the same target directory replaced it; run again"
fi

NODE_PID=""
cleanup() {
  if [ -n "$NODE_PID" ]; then kill -TERM "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null || true; fi
  NODE_PID=""
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

# ---- a single-voter node with TLS, and the operator's client certificate
"$BIN" keygen --name "$ORIGIN" --out "$DIR/node1.key" >/dev/null
"$BIN" certs ca --dir "$DIR/tls" >/dev/null
"$BIN" certs node --dir "$DIR/tls" --id 1 --host 127.0.0.1 --host localhost >/dev/null
"$BIN" certs client --dir "$DIR/tls" --name operator >/dev/null
cat >"$DIR/node1.toml" <<EOF
# One voter: the whole cluster (scripts/bench-proofs.sh).
id = 1
listen = "127.0.0.1:$PORT"
peer_listen = "127.0.0.1:$PEER_PORT"
data_dir = "$DIR/data"
origin = "$ORIGIN"
signing_key_file = "$DIR/node1.key"
role = "voter"
bootstrap = true

[tls]
ca_file = "$DIR/tls/ca.pem"
cert_file = "$DIR/tls/node-1.pem"
key_file = "$DIR/tls/node-1-key.pem"

[[peers]]
id = 1
addr = "127.0.0.1:$PEER_PORT"
client_addr = "127.0.0.1:$PORT"
verifier_key = "$(cat "$DIR/node1.key.pub")"

# The load generator's limits out of the way, as cluster up does for its operator.
[auth]
requests_per_s = 1000000
in_flight_max = 4096

[[auth.clients]]
name = "operator"
certificate_cn = "operator"
roles = ["appender", "reader", "auditor"]
sources = ["*"]
EOF
export IRONLOG_ENDPOINT="https://127.0.0.1:$PORT"
export IRONLOG_CA="$DIR/tls/ca.pem" IRONLOG_CERT="$DIR/tls/operator.pem" IRONLOG_KEY="$DIR/tls/operator-key.pem"
unset IRONLOG_TOKEN IRONLOG_TOKEN_FILE

# start_node: starts the node (appending to its log) and waits until it leads.
start_node() {
  "$BIN" node --config "$DIR/node1.toml" >>"$DIR/node1.log" 2>&1 &
  NODE_PID=$!
  local i role
  for ((i = 0; ; i++)); do
    role=$("$BIN" status --json 2>/dev/null | sed -n 's/.*"role":"\([a-z]*\)".*/\1/p') || true
    if [ "$role" = leader ]; then return 0; fi
    if ! kill -0 "$NODE_PID" 2>/dev/null || [ "$i" -ge 120 ]; then
      tail -20 "$DIR/node1.log" >&2
      echo "error: the node did not become leader (log above)" >&2
      exit 1
    fi
    sleep 0.5
  done
}

# restart_node: SIGTERM, wait for the exit, start again.
restart_node() {
  kill -TERM "$NODE_PID"
  wait "$NODE_PID" || true
  start_node
}

start_node
json_field() { sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p"; }
tree_size() { "$BIN" status --json | json_field tree_size; }
checkpoint_size() { "$BIN" checkpoint --json 2>/dev/null | json_field size; }
free_bytes() { df -B1 --output=avail "$DIR" | tail -1 | tr -d ' '; }
data_bytes() { du -s -B1 "$DIR/data" | cut -f1; }
rss_kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$NODE_PID/status"; }
FREE_MIN=$((FREE_GB_MIN * 1024 * 1024 * 1024))

# disk_short SIZE TARGET: says why growing the log from SIZE leaves to
# TARGET would leave less than FREE_GB_MIN free, projecting from the bytes
# per entry so far (once there are enough entries to tell); silent if not.
disk_short() {
  local size=$1 target=$2 free per_entry need
  free=$(free_bytes)
  if [ "$free" -lt "$FREE_MIN" ]; then
    echo "$((free / 1048576)) MiB free at $size leaves, below FREE_GB_MIN=${FREE_GB_MIN} GiB"
    return
  fi
  if [ "$size" -lt 50000 ]; then return; fi
  per_entry=$(($(data_bytes) / size))
  need=$(((target - size) * per_entry))
  if [ $((free - need)) -lt "$FREE_MIN" ]; then
    echo "growing from $size to $target leaves at $per_entry bytes per entry needs $((need / 1048576)) MiB of the $((free / 1048576)) MiB free, leaving less than FREE_GB_MIN=${FREE_GB_MIN} GiB"
  fi
}

# grow_to SIZE: appends until the tree holds SIZE leaves (more only if the
# log already did); returns 1, with the reason in $DIR/skipped, if the disk
# would drop below FREE_GB_MIN. Load-generator runs, each sized to end about
# two seconds' appends short of SIZE, then `ironlog append` of exactly what
# is left.
grow_to() {
  local target=$1 size last=-1 rate=0 rate_max=0 secs out short
  while :; do
    size=$(tree_size)
    [[ $size =~ ^[0-9]+$ ]] || fail "cannot read the tree size from ironlog status"
    [ "$size" -gt "$last" ] || fail "the log stopped growing at $size leaves (node log: $DIR/node1.log)"
    last=$size
    short=""
    if [ "$size" -lt "$target" ]; then short=$(disk_short "$size" "$target"); fi
    if [ -n "$short" ]; then
      echo "SKIPPED $target and larger: $short" >>"$DIR/skipped"
      return 1
    fi
    # At the fastest rate seen, so that a slow run cannot make the next overshoot.
    secs=$(awk -v r="$((target - size))" -v w="$rate_max" 'BEGIN {
      if (w == 0) { print (r > 100000 ? 1 : 0); exit }
      s = int(r / w) - 2; print (s < 1 ? 0 : (s > 60 ? 60 : s)) }')
    if [ "$secs" = 0 ]; then break; fi
    # grow_to runs as an `if` condition, where set -e is off: fail by hand.
    out=$("$BENCH" --target ironlog --op append --clients "$BUILD_CLIENTS" --batch "$BUILD_BATCH" \
      --value-bytes 0 --seconds "$secs" --warmup-seconds 0) || fail "the load generator failed while building (above)"
    rate=$(echo "$out" | json_field writes_per_second)
    rate_max=$(awk -v a="$rate" -v b="$rate_max" 'BEGIN { print (a > b ? a : b) }')
    printf '  building: %d leaves, %.0f events/s\n' "$(tree_size)" "$rate" >&2
  done
  if [ "$size" -lt "$target" ]; then
    awk -v n="$((target - size))" 'BEGIN { for (i = 0; i < n; i++)
      printf "{\"actor\":{\"id\":\"bench-user-%02d\",\"type\":\"user\"},\"action\":\"db.read\",\"resource\":\"postgres://bench/table%02d\",\"outcome\":\"success\",\"source\":\"bench-top-up\",\"details\":{\"n\":\"%016d\"}}\n", i % 50, i % 20, i }' |
      "$BIN" append --file - --batch 1000 >/dev/null || fail "topping up with ironlog append failed (above)"
    printf '  building: %d leaves (topped up with ironlog append)\n' "$(tree_size)" >&2
  fi
}

# proofs OP: one measured proof run within the latest checkpoint; prints its JSON line.
proofs() {
  "$BENCH" --target ironlog --op "$1" --clients "$CLIENTS" --seconds "$SECONDS_RUN"
}

RESULTS="$DIR/results.jsonl"
: >"$RESULTS"
echo "single-voter node on $IRONLOG_ENDPOINT; sizes: ${SIZES[*]}; ${SECONDS_RUN}s per proof run, $CLIENTS clients"
for target in "${SIZES[@]}"; do
  echo "== $target leaves"
  started=$(date +%s)
  if ! grow_to "$target"; then
    sed "s/^/  /" "$DIR/skipped"
    break
  fi
  build_s=$(($(date +%s) - started))
  # Proofs are requested within a checkpoint: wait for one at this size.
  size=$(tree_size)
  for ((i = 0; i < 60; i++)); do
    if [ "$(checkpoint_size)" = "$size" ]; then break; fi
    sleep 1
  done
  rss_built=$(rss_kb VmRSS)
  hwm_built=$(rss_kb VmHWM)
  # Serve from a fresh process: what a node holding this log needs, apart
  # from what the build left in it.
  restart_node
  rss_fresh=$(rss_kb VmRSS)
  inclusion=$(proofs inclusion)
  consistency=$(proofs consistency)
  rss_proofs=$(rss_kb VmRSS)
  hwm_proofs=$(rss_kb VmHWM)
  if [ -n "${PERF_DIR:-}" ]; then
    for op in inclusion consistency; do
      perf record -q -F 499 --call-graph dwarf,16384 -p "$NODE_PID" -o "$PERF_DIR/$op-$size.perf.data" -- sleep "$((SECONDS_RUN + 2))" &
      proofs "$op" >/dev/null
      wait $!
    done
  fi
  printf '{"target":%d,"build_seconds":%d,"data_bytes":%d,"free_bytes":%d,"rss_kb_built":%d,"hwm_kb_built":%d,"rss_kb_fresh":%d,"rss_kb_proofs":%d,"hwm_kb_proofs":%d,"inclusion":%s,"consistency":%s}\n' \
    "$target" "$build_s" "$(data_bytes)" "$(free_bytes)" "$rss_built" "$hwm_built" "$rss_fresh" "$rss_proofs" "$hwm_proofs" \
    "$inclusion" "$consistency" | tee -a "$RESULTS"
done

mkdir -p "$(dirname "$OUT")"
BINARIES="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src crates proto || echo +changes); ironlog sha256 $(sha256sum "$BIN" | cut -c1-16); ironlog-bench sha256 $(sha256sum "$BENCH" | cut -c1-16)"
python3 - "$RESULTS" "$OUT" "$DIR/skipped" "$SECONDS_RUN" "$CLIENTS" "$BINARIES" <<'PY'
import json, os, sys
results_file, out, skipped_file, seconds, clients, binaries = sys.argv[1:]
rows = [json.loads(l) for l in open(results_file) if l.strip()]
skipped = open(skipped_file).read().strip() if os.path.exists(skipped_file) else ""
mib = lambda kb: kb / 1024
print()
print(f"{'tree size':>10} | {'inclusion/s':>11} {'p50 ms':>6} {'p99 ms':>6} | "
      f"{'consist./s':>10} {'p50 ms':>6} {'p99 ms':>6} | "
      f"{'RSS MiB: built':>14} {'(peak)':>6} {'fresh':>6} {'proofs':>6} | {'data MiB':>8}")
for r in rows:
    i, c = r["inclusion"], r["consistency"]
    print(f"{i['tree_size']:>10} | {i['proofs_per_second']:>11.0f} {i['p50_ms']:>6.2f} {i['p99_ms']:>6.2f} | "
          f"{c['proofs_per_second']:>10.0f} {c['p50_ms']:>6.2f} {c['p99_ms']:>6.2f} | "
          f"{mib(r['rss_kb_built']):>14.0f} {mib(r['hwm_kb_built']):>6.0f} "
          f"{mib(r['rss_kb_fresh']):>6.0f} {mib(r['rss_kb_proofs']):>6.0f} | "
          f"{r['data_bytes'] / 1048576:>8.0f}")
ratio = None
if len(rows) >= 2:
    small, large = rows[0], rows[-1]
    ratio = {
        "sizes": [small["inclusion"]["tree_size"], large["inclusion"]["tree_size"]],
        "rss_after_proofs": large["rss_kb_proofs"] / small["rss_kb_proofs"],
        "rss_after_build": large["rss_kb_built"] / small["rss_kb_built"],
    }
    print(f"RSS ratio {ratio['sizes'][1]} / {ratio['sizes'][0]} leaves: "
          f"{ratio['rss_after_proofs']:.2f}x serving proofs (restarted node), "
          f"{ratio['rss_after_build']:.2f}x at the end of the builds (target: within 1.2x)")
if skipped:
    print(skipped)
print(f"binaries: {binaries}")
json.dump({"binaries": binaries, "seconds": int(seconds), "clients": int(clients), "sizes": rows,
           "rss_ratio": ratio, "skipped": skipped or None}, open(out, "w"), indent=2)
print(f"JSON: {out}")
PY
