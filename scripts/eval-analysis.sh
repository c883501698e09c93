#!/usr/bin/env bash
# Evaluates the analysis node end to end, through the real binary and its gRPC API:
# categorisation (gold and hold-out sets, against rules alone, the model alone and the
# keyword baseline), anomaly flags (Falco traces and Panther events), question mapping
# (tests/data/analysis/eval/qa.jsonl), summaries (checked for identifiers outside their
# window) and the latency of ask and summarize. Prints the figures and writes them as
# JSON. Not part of the test suite; about 10-15 minutes on 2 cores.
#
#   ./scripts/eval-analysis.sh [OUT.json]    # default target/eval-analysis.json
#
# It builds (release), installs the model, starts a fresh cluster (3 voters and the
# analysis learner, gRPC from port 7301; node 4 on 7304) in a temporary directory, runs
# scripts/eval/eval_analysis.py against it, and stops the cluster at exit. Nothing is read
# from outside the repository: the data is in tests/data/analysis/eval/ (see its README).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly BASE_PORT=7301
readonly ANALYSIS_PORT=$((BASE_PORT + 3))
readonly LEADER_WAIT_S=120
OUT=${1:-target/eval-analysis.json}

# ---- setup (idempotent): toolchain, build dependencies and the model; sets IRONLOG_MODEL.
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 (3.11 or newer) is needed for the scoring" >&2
  exit 1
fi

echo "== building (release)"
cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/ironlog"

DIR=$(mktemp -d -t ironlog-eval-cluster.XXXXXX)
CLUSTER_OUT="$DIR/cluster-up.out"
echo "== starting a fresh cluster with the analysis node in $DIR (model $IRONLOG_MODEL)"
"$BIN" cluster up --dir "$DIR" --base-port "$BASE_PORT" --analysis-model "$IRONLOG_MODEL" >"$CLUSTER_OUT" 2>&1 &
CLUSTER_PID=$!

stop_cluster() {
  if kill -0 "$CLUSTER_PID" 2>/dev/null; then
    echo "== stopping the cluster"
    kill -TERM "$CLUSTER_PID"
    wait "$CLUSTER_PID" || true
  fi
  rm -rf "$DIR"
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/cluster-wait.sh
source scripts/cluster-wait.sh
wait_for_cluster "$CLUSTER_OUT" "$CLUSTER_PID" "$LEADER_WAIT_S"
# The cluster's endpoint, CA and operator certificate (TLS and roles on);
# exported, so every CLI call the scorer makes uses them.
# shellcheck source=/dev/null
source "$DIR/env"
SCHEME=${IRONLOG_ENDPOINT%%://*}

mkdir -p "$(dirname "$OUT")"
PYTHONDONTWRITEBYTECODE=1 python3 scripts/eval/eval_analysis.py --bin "$BIN" \
  --voter "$SCHEME://127.0.0.1:$BASE_PORT" --analysis "$SCHEME://127.0.0.1:$ANALYSIS_PORT" --out "$OUT"
