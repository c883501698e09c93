#!/usr/bin/env bash
# CPU per event, node by node: where a three-node cluster spends its cores.
#
#   ./scripts/bench-cpu.sh [SECONDS] [ROUNDS]
#
# Starts a three-node `ironlog cluster up` (TLS), then for each shape runs
# `ironlog-bench` for SECONDS with its clients spread over the three nodes
# (ENDPOINTS=spread, the default) or all at the leader (ENDPOINTS=leader),
# and prints events/s, p99, each node's CPU time (user + system, from
# /proc/PID/stat) per event, their sum, and the Raft entries per event
# (commit index over tree size, from `ironlog status`). On a machine whose
# cores are saturated, throughput is cores over CPU per event, so this says
# what a change saved where a throughput ratio only says that it did.
#
# Defaults: 6 s, 2 rounds. SHAPES (default "16x1 8x100") narrows the run;
# IRONLOG_BIN measures another build of the node. This machine is shared
# and noisy: compare builds within one sitting, alternating them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-6}
ROUNDS=${2:-2}
SHAPES=${SHAPES:-"16x1 8x100"}
ENDPOINTS=${ENDPOINTS:-spread}
PORT=${BENCH_BASE_PORT:-7501}
case "$ENDPOINTS" in
  spread | leader) ;;
  *) echo "error: ENDPOINTS must be spread or leader, not '$ENDPOINTS'" >&2; exit 2 ;;
esac

# shellcheck source=scripts/setup.sh
source scripts/setup.sh
cargo build --release -q -p ironlog -p ironlog-bench
BIN="${IRONLOG_BIN:-${CARGO_TARGET_DIR:-target}/release/ironlog}"
BENCH="${CARGO_TARGET_DIR:-target}/release/ironlog-bench"
# shellcheck source=scripts/cluster-wait.sh
source scripts/cluster-wait.sh

DIR=$(mktemp -d)
"$BIN" cluster up --dir "$DIR/c" --base-port "$PORT" >"$DIR/up.out" 2>&1 &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null; rm -rf "$DIR"' EXIT
wait_for_cluster "$DIR/up.out" "$UP" 90
# shellcheck source=/dev/null
source "$DIR/c/env"

# The node processes, in node order; their config files name them.
NODES=()
for i in 1 2 3; do NODES+=("$(pgrep -f -- "--config $DIR/c/node$i.toml")"); done
TICK=$(getconf CLK_TCK)
cpu_ticks() { for p in "${NODES[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat"; done; }
# commit index and tree size, as the leader reports them.
sizes() { "$BIN" status | awk '/^commit index/{c=$3} /^tree size/{t=$3} END{print c, t}'; }

leader=$("$BIN" status | awk '/^leader /{print $2}')
if [ "$ENDPOINTS" = leader ]; then
  URLS="https://127.0.0.1:$((PORT + leader - 1))"
else
  URLS="https://127.0.0.1:$PORT,https://127.0.0.1:$((PORT + 1)),https://127.0.0.1:$((PORT + 2))"
fi
echo "3 nodes (cluster up, TLS), leader node $leader; clients: $ENDPOINTS; ${SECONDS_RUN}s runs"
printf '%-7s %5s %10s %8s %8s %8s %8s %8s %9s\n' shape round events/s "p99 ms" "node1" "node2" "node3" "sum" "entries"
for ROUND in $(seq 1 "$ROUNDS"); do
  for shape in $SHAPES; do
    clients=${shape%x*} batch=${shape#*x}
    "$BENCH" --target ironlog --endpoints "$URLS" --clients "$clients" --batch "$batch" \
      --seconds 1 --warmup-seconds 0 >/dev/null 2>&1
    read -r c0 t0 < <(sizes)
    mapfile -t a < <(cpu_ticks)
    out=$("$BENCH" --target ironlog --endpoints "$URLS" --clients "$clients" --batch "$batch" \
      --seconds "$SECONDS_RUN" --warmup-seconds 0 2>/dev/null | tail -n 1)
    mapfile -t b < <(cpu_ticks)
    read -r c1 t1 < <(sizes)
    python3 - "$shape" "$ROUND" "$out" "$TICK" "$c1" "$c0" "$t1" "$t0" "${a[@]}" "${b[@]}" <<'PY'
import json, sys
shape, rnd, out, tick = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
c1, c0, t1, t0 = map(int, sys.argv[5:9])
ticks = list(map(int, sys.argv[9:]))
before, after = ticks[:3], ticks[3:]
# Events stored over the window, warm-up included: the CPU was spent on them.
events = max(1, t1 - t0)
us = [(b - a) * 1e6 / tick / events for a, b in zip(before, after)]
print(f"{shape:<7} {rnd:>5} {out['writes_per_second']:>10,.0f} {out['p99_ms']:>8.1f} "
      + " ".join(f"{u:>8.0f}" for u in us) + f" {sum(us):>8.0f} {(c1 - c0) / events:>9.3f}")
PY
  done
done
echo "node columns: CPU µs per event (user + system); entries: Raft entries per event"
