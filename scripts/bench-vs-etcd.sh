#!/usr/bin/env bash
# Ironlog against etcd, side by side on this machine, with one load generator
# (crates/bench, `ironlog-bench`) driving both the same way: closed-loop
# clients spread over the three members, values of the same size (an Ironlog
# event of VALUE_BYTES in protobuf, an etcd value of VALUE_BYTES), a warm-up,
# then a measured window.
#
#   ./scripts/bench-vs-etcd.sh [SECONDS] [ROUNDS] [OUT.json]
#
# Defaults: 10 s per run, 3 rounds, target/bench-vs-etcd.json.
# SECURITY=tls (the default) runs both as they would be deployed; with
# SECURITY=plaintext both speak plaintext and check nobody.
# - etcd: a three-member cluster of Debian's etcd-server (installed with apt
#   if missing) on loopback, each member with its own data directory, fsync
#   on (etcd's default); a batch is one Txn of BATCH puts. With TLS, members
#   present certificates of their own CA to clients and to each other and
#   require a client certificate from both (--client-cert-auth,
#   --peer-client-cert-auth), as Ironlog's nodes do.
# - Ironlog: a three-node `ironlog cluster up` (TLS and authorisation on,
#   or `--insecure` with SECURITY=plaintext; each node fsyncing its own redb
#   files); a batch is one Append of BATCH events.
# - Shapes: 1, 16, 64 and 256 clients with one write per request, and 8
#   clients with 100 per request. Each round runs every shape on both
#   systems; which system goes first alternates by round and shape. The
#   table shows, per shape, the median over rounds of writes/s, p50 and p99,
#   and Ironlog/etcd throughput ratios.
# - Half of peak (HALF_PEAK=1, the default, when SHAPES has a one-write
#   shape): each system's peak is its best median writes/s over the one-write
#   shapes above; then each is driven at half its own peak, 256 clients in an
#   open loop (`ironlog-bench --rate`: requests are due at a fixed rate and
#   timed from when they were due, so a stall counts against every request
#   it holds up), ROUNDS times, alternating which goes first. The second
#   table shows the medians of p50 and p99 there.
# This machine is shared and noisy: compare figures within one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_RUN=${1:-10}
ROUNDS=${2:-3}
OUT=${3:-target/bench-vs-etcd.json}
VALUE_BYTES=${VALUE_BYTES:-300}
WARMUP_S=${WARMUP_S:-2}
SHAPES=${SHAPES:-"1x1 16x1 64x1 256x1 8x100"}
IRONLOG_PORT=${BENCH_BASE_PORT:-7301}
SECURITY=${SECURITY:-tls}
HALF_PEAK=${HALF_PEAK:-1}
# As many as the largest one-write shape: each client has one request out
# at a time, so too few would cap the rate the way a closed loop does.
HALF_PEAK_CLIENTS=256
case "$SECURITY" in
  tls) SCHEME=https ;;
  plaintext) SCHEME=http ;;
  *) echo "error: SECURITY must be tls or plaintext, not '$SECURITY'" >&2; exit 2 ;;
esac
ETCD_PORTS=(23790 23791 23792)

# shellcheck source=scripts/setup.sh
source scripts/setup.sh
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  echo "installing etcd-server and etcd-client with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client
fi
cargo build --release -q -p ironlog -p ironlog-bench
# IRONLOG_BIN measures another build of the node (a before/after pair
# against the same etcd); the load generator is always this tree's.
BIN="${IRONLOG_BIN:-${CARGO_TARGET_DIR:-target}/release/ironlog}"
BENCH="${CARGO_TARGET_DIR:-target}/release/ironlog-bench"
# shellcheck source=scripts/cluster-wait.sh
source scripts/cluster-wait.sh

DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

# ---- etcd: three members, peer port = client port + 10.
# With TLS, a CA of etcd's own issues each member a certificate for
# 127.0.0.1 (usable as server and as client, for its peers) and the load
# generator a client certificate: made with `ironlog certs`, which this
# machine has anyway.
ETCD_TLS=() ETCDCTL_TLS=() ETCD_BENCH_TLS=()
if [ "$SECURITY" = tls ]; then
  PKI="$DIR/etcd-pki"
  mkdir -p "$PKI"
  "$BIN" certs ca --dir "$PKI" >/dev/null
  for i in 0 1 2; do "$BIN" certs node --dir "$PKI" --id $((i + 1)) --host 127.0.0.1 >/dev/null; done
  "$BIN" certs client --dir "$PKI" --name bench >/dev/null
  ETCDCTL_TLS=(--cacert "$PKI/ca.pem" --cert "$PKI/bench.pem" --key "$PKI/bench-key.pem")
  ETCD_BENCH_TLS=(--ca "$PKI/ca.pem" --cert "$PKI/bench.pem" --key "$PKI/bench-key.pem")
fi
CLUSTER=""
for i in 0 1 2; do
  CLUSTER+="${CLUSTER:+,}e$i=$SCHEME://127.0.0.1:$((ETCD_PORTS[i] + 10))"
done
ETCD_ENDPOINTS=""
for i in 0 1 2; do
  port=${ETCD_PORTS[i]}
  ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}$SCHEME://127.0.0.1:$port"
  if [ "$SECURITY" = tls ]; then
    cert="$PKI/node-$((i + 1)).pem" key="$PKI/node-$((i + 1))-key.pem"
    ETCD_TLS=(--cert-file "$cert" --key-file "$key" --trusted-ca-file "$PKI/ca.pem" --client-cert-auth
      --peer-cert-file "$cert" --peer-key-file "$key" --peer-trusted-ca-file "$PKI/ca.pem"
      --peer-client-cert-auth)
  fi
  etcd --name "e$i" --data-dir "$DIR/etcd$i" \
    --listen-client-urls "$SCHEME://127.0.0.1:$port" --advertise-client-urls "$SCHEME://127.0.0.1:$port" \
    --listen-peer-urls "$SCHEME://127.0.0.1:$((port + 10))" \
    --initial-advertise-peer-urls "$SCHEME://127.0.0.1:$((port + 10))" \
    --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token bench \
    "${ETCD_TLS[@]}" \
    --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) >"$DIR/etcd$i.log" 2>&1 &
  PIDS+=($!)
done
etcd_health() { ETCDCTL_API=3 etcdctl --endpoints "$ETCD_ENDPOINTS" "${ETCDCTL_TLS[@]}" endpoint health; }
for _ in $(seq 1 120); do
  if etcd_health >/dev/null 2>&1; then break; fi
  sleep 0.5
done
etcd_health >/dev/null ||
  { echo "error: etcd did not become healthy; see $DIR/etcd*.log" >&2; tail -5 "$DIR"/etcd*.log >&2; exit 1; }

# ---- Ironlog: `cluster up` with TLS and authorisation (or --insecure).
INSECURE=()
if [ "$SECURITY" = plaintext ]; then INSECURE=(--insecure); fi
"$BIN" cluster up --dir "$DIR/ironlog" --base-port "$IRONLOG_PORT" "${INSECURE[@]}" >"$DIR/cluster-up.out" 2>&1 &
PIDS+=($!)
wait_for_cluster "$DIR/cluster-up.out" "${PIDS[-1]}" 90
# shellcheck source=/dev/null
source "$DIR/ironlog/env"
IRONLOG_ENDPOINTS=""
for i in 0 1 2; do
  IRONLOG_ENDPOINTS+="${IRONLOG_ENDPOINTS:+,}$SCHEME://127.0.0.1:$((IRONLOG_PORT + i))"
done

etcd_version=$(etcd --version | head -n 1)
echo "etcd: $etcd_version, 3 members on loopback; Ironlog: 3 nodes (cluster up); security: $SECURITY"
echo "${SECONDS_RUN}s measured after ${WARMUP_S}s warm-up, $ROUNDS rounds, ${VALUE_BYTES}-byte values"

# run SYSTEM CLIENTS BATCH [RATE [FILE]]: one measured run (closed loop, or
# open at RATE requests/s); appends its JSON line to FILE ($DIR/runs).
run() {
  local endpoints=$ETCD_ENDPOINTS tls=("${ETCD_BENCH_TLS[@]}")
  # Ironlog's client credentials come from its cluster's env file.
  if [ "$1" = ironlog ]; then endpoints=$IRONLOG_ENDPOINTS tls=(); fi
  "$BENCH" --target "$1" --endpoints "$endpoints" "${tls[@]}" --clients "$2" --batch "$3" \
    --rate "${4:-0}" \
    --seconds "$SECONDS_RUN" --warmup-seconds "$WARMUP_S" --value-bytes "$VALUE_BYTES" |
    sed "s/^{/{\"round\":$ROUND,/" | tee -a "${5:-$DIR/runs}" >&2
}

: >"$DIR/runs"
for ROUND in $(seq 1 "$ROUNDS"); do
  k=0
  for shape in $SHAPES; do
    clients=${shape%x*} batch=${shape#*x}
    if [ $(((ROUND + k) % 2)) = 0 ]; then order="etcd ironlog"; else order="ironlog etcd"; fi
    for system in $order; do run "$system" "$clients" "$batch"; done
    k=$((k + 1))
  done
done

# ---- Half of each system's own peak, open loop.
: >"$DIR/half"
if [ "$HALF_PEAK" = 1 ]; then
  read -r etcd_half ironlog_half < <(python3 - "$DIR/runs" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def half(system):
    shapes = {r["clients"] for r in runs if r["target"] == system and r["batch"] == 1}
    medians = [statistics.median(r["writes_per_second"] for r in runs
                                 if r["target"] == system and r["batch"] == 1 and r["clients"] == c)
               for c in shapes]
    return max(medians) / 2 if medians else 0
print(f"{half('etcd'):.0f} {half('ironlog'):.0f}")
PY
  )
  if [ "$etcd_half" != 0 ] && [ "$ironlog_half" != 0 ]; then
    echo "half of peak: etcd at $etcd_half writes/s, Ironlog at $ironlog_half, $HALF_PEAK_CLIENTS clients, open loop"
    for ROUND in $(seq 1 "$ROUNDS"); do
      if [ $((ROUND % 2)) = 0 ]; then order="etcd ironlog"; else order="ironlog etcd"; fi
      for system in $order; do
        rate=$ironlog_half
        if [ "$system" = etcd ]; then rate=$etcd_half; fi
        run "$system" "$HALF_PEAK_CLIENTS" 1 "$rate" "$DIR/half"
      done
    done
  fi
fi

mkdir -p "$(dirname "$OUT")"
python3 - "$DIR/runs" "$DIR/half" "$OUT" "$SECONDS_RUN" "$ROUNDS" "$VALUE_BYTES" "$etcd_version" "$SECURITY" <<'PY'
import json, statistics, sys
runs_file, half_file, out, seconds, rounds, value_bytes, etcd_version, security = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_file) if l.strip()]
shapes = []
for r in runs:
    s = (r["clients"], r["batch"])
    if s not in shapes:
        shapes.append(s)
rows = []
for clients, batch in shapes:
    row = {"clients": clients, "batch": batch}
    for system in ("etcd", "ironlog"):
        mine = [r for r in runs if r["target"] == system and (r["clients"], r["batch"]) == (clients, batch)]
        row[system] = {
            "writes_per_second": statistics.median(r["writes_per_second"] for r in mine),
            "p50_ms": statistics.median(r["p50_ms"] for r in mine),
            "p99_ms": statistics.median(r["p99_ms"] for r in mine),
            "rounds": [r["writes_per_second"] for r in mine],
        }
    # Ratio per round (runs of one round were back to back), then the median.
    per_round = []
    for rnd in sorted({r["round"] for r in runs}):
        pair = {r["target"]: r for r in runs if r["round"] == rnd and (r["clients"], r["batch"]) == (clients, batch)}
        if "etcd" in pair and "ironlog" in pair and pair["etcd"]["writes_per_second"] > 0:
            per_round.append(pair["ironlog"]["writes_per_second"] / pair["etcd"]["writes_per_second"])
    row["ratio"] = statistics.median(per_round) if per_round else None
    row["ratio_range"] = [min(per_round), max(per_round)] if per_round else None
    rows.append(row)
print()
print(f"| load | etcd writes/s | Ironlog events/s | ratio (range) | etcd p50 / p99 ms | Ironlog p50 / p99 ms |")
print(f"|---|---:|---:|---|---|---|")
for row in rows:
    e, i = row["etcd"], row["ironlog"]
    per = "1 per request" if row["batch"] == 1 else f"{row['batch']} per request"
    lo, hi = row["ratio_range"] or (0, 0)
    print(f"| {row['clients']} clients, {per} | {e['writes_per_second']:,.0f} | {i['writes_per_second']:,.0f} "
          f"| {row['ratio']:.2f}x ({lo:.2f}-{hi:.2f}) | {e['p50_ms']:.1f} / {e['p99_ms']:.1f} "
          f"| {i['p50_ms']:.1f} / {i['p99_ms']:.1f} |")
half_runs = [json.loads(l) for l in open(half_file) if l.strip()]
half = {}
if half_runs:
    print()
    print(f"| half of peak, open loop | rate/s | achieved/s | p50 / p99 ms | late |")
    print(f"|---|---:|---:|---|---:|")
    for system in ("etcd", "ironlog"):
        mine = [r for r in half_runs if r["target"] == system]
        if not mine:
            continue
        half[system] = {
            "rate": mine[0]["rate"],
            "writes_per_second": statistics.median(r["writes_per_second"] for r in mine),
            "p50_ms": statistics.median(r["p50_ms"] for r in mine),
            "p99_ms": statistics.median(r["p99_ms"] for r in mine),
            "late": statistics.median(r["late"] for r in mine),
            "p99_rounds": [r["p99_ms"] for r in mine],
        }
        h = half[system]
        name = "etcd" if system == "etcd" else "Ironlog"
        print(f"| {name}, {mine[0]['clients']} clients | {h['rate']:,.0f} | {h['writes_per_second']:,.0f} "
              f"| {h['p50_ms']:.1f} / {h['p99_ms']:.1f} | {h['late']:.0f} |")
json.dump({"seconds": int(seconds), "rounds": int(rounds), "value_bytes": int(value_bytes),
           "security": security, "etcd": etcd_version, "shapes": rows, "half_peak": half,
           "runs": runs, "half_peak_runs": half_runs}, open(out, "w"), indent=1)
print(f"\nwritten to {out}")
PY
