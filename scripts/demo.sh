#!/usr/bin/env bash
# Ironlog in one go: build, start a local three-node cluster (plus the
# analysis node with the local model), append a sample
# of real Kubernetes audit events through a follower, show a signed
# checkpoint, a verified inclusion proof, an outside audit (trust policy,
# consistency, full recomputation), a receipt, an offline bundle, a query and
# the cluster status; then ingest a real CloudTrail log and ask the analysis
# node for categories, anomaly flags, a summary and an answer with proofs;
# then stop the cluster. The cluster runs with TLS on every port and roles:
# every command below authenticates as the `operator` identity that
# `cluster up` made (its client certificate; see $DIR/env), and the demo
# shows a call without credentials being refused. State is kept in
# .ironlog/demo between runs (delete it to start afresh); a second run
# appends nothing new, because every sample event carries an idempotency key.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=.ironlog/demo
SAMPLE=scripts/sample-events.jsonl
LEADER_WAIT_S=60
CHECKPOINT_WAIT_S=15

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ ironlog %s\n' "$*"; "$BIN" "$@"; }
# show_as SHOWN ARGS...: prints SHOWN as the command line, runs ARGS.
show_as() { printf '$ ironlog %s\n' "$1"; shift; "$BIN" "$@"; }

# ---- setup (idempotent): see scripts/setup.sh
# shellcheck source=scripts/setup.sh
source scripts/setup.sh

step "building (release)"
cargo build --release
BIN="${CARGO_TARGET_DIR:-target}/release/ironlog"

# A demo directory from before TLS and the peer listener cannot be brought up
# again (its Raft membership names the old ports): start it afresh.
if [ -f "$DIR/node1.toml" ] && ! grep -q '^peer_listen' "$DIR/node1.toml"; then
  step "$DIR was made by an older Ironlog (no TLS, no peer listener); starting afresh"
  rm -rf "$DIR"
fi

step "starting a three-node cluster and the analysis node (a non-voting learner with a local model) in $DIR, TLS and roles on"
mkdir -p "$DIR"
CLUSTER_OUT="$DIR/cluster-up.out"
"$BIN" cluster up --dir "$DIR" --analysis-model "$IRONLOG_MODEL" >"$CLUSTER_OUT" 2>&1 &
CLUSTER_PID=$!

stop_cluster() {
  if kill -0 "$CLUSTER_PID" 2>/dev/null; then
    step "stopping the cluster"
    kill -TERM "$CLUSTER_PID"
    wait "$CLUSTER_PID" || true
    sed -n '/received; stopping/,$p' "$CLUSTER_OUT"
  fi
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/cluster-wait.sh
source scripts/cluster-wait.sh
wait_for_cluster "$CLUSTER_OUT" "$CLUSTER_PID" "$LEADER_WAIT_S"
cat "$CLUSTER_OUT"
# IRONLOG_ENDPOINT, IRONLOG_CA (the cluster CA) and the operator's client
# certificate (IRONLOG_CERT, IRONLOG_KEY): every command below uses them.
# shellcheck source=/dev/null
source "$DIR/env"

mapfile -t ENDPOINTS < <(awk '$1 == "node" && $3 ~ /^http/ { print $3 }' "$CLUSTER_OUT")
ANALYSIS=$(sed -n 's/^Ask: *ironlog --endpoint \([^ ]*\) ask.*/\1/p' "$CLUSTER_OUT")
FOLLOWER=""
LEADER=""
for endpoint in "${ENDPOINTS[@]}"; do
  role=$("$BIN" --endpoint "$endpoint" status --json | sed -n 's/.*"role":"\([a-z]*\)".*/\1/p' || true)
  if [ "$role" = leader ]; then LEADER=$endpoint; fi
  if [ "$role" = follower ] && [ -z "$FOLLOWER" ]; then FOLLOWER=$endpoint; fi
done
FOLLOWER=${FOLLOWER:-${ENDPOINTS[1]}}
LEADER=${LEADER:-${ENDPOINTS[0]}}
export IRONLOG_ENDPOINT="$FOLLOWER"

step "the trust boundary: a call without credentials is refused, the operator's bearer token works like its certificate"
printf '$ IRONLOG_CERT= IRONLOG_KEY= ironlog append --actor mallory ... --source payments-api\n'
env -u IRONLOG_CERT -u IRONLOG_KEY "$BIN" append --actor mallory --action db.drop --resource postgres://payments \
  --outcome success --source payments-api || true
printf '$ IRONLOG_CERT= IRONLOG_KEY= IRONLOG_TOKEN_FILE=%s ironlog status | sed -n 1,4p\n' "$DIR/tls/operator.token"
env -u IRONLOG_CERT -u IRONLOG_KEY IRONLOG_TOKEN_FILE="$DIR/tls/operator.token" "$BIN" status | sed -n 1,4p

step "appending $(grep -c . "$SAMPLE") real Kubernetes audit events through a follower ($FOLLOWER)"
show append --file "$SAMPLE"
TREE_SIZE=$("$BIN" --endpoint "$LEADER" status --json | sed -n 's/.*"tree_size":\([0-9]*\).*/\1/p')

step "waiting for a checkpoint that covers all $TREE_SIZE entries"
for ((i = 0; i < CHECKPOINT_WAIT_S * 2; i++)); do
  size=$("$BIN" checkpoint --json 2>/dev/null | sed -n 's/.*"size":\([0-9]*\).*/\1/p' || true)
  [ -n "$size" ] && [ "$size" -ge "$TREE_SIZE" ] && break
  sleep 0.5
done
if [ -z "$size" ] || [ "$size" -lt "$TREE_SIZE" ]; then
  echo "no checkpoint covers size $TREE_SIZE after ${CHECKPOINT_WAIT_S}s; showing the latest one" >&2
fi

VKEYS=()
VKEYS_SHOWN=""
for pub in "$DIR"/node*.key.pub; do
  VKEYS+=(--vkey "$(cat "$pub")")
  VKEYS_SHOWN+=" --vkey \"\$(cat $pub)\""
done

step "the latest signed checkpoint (each voter's signature is checked against its key)"
show_as "checkpoint$VKEYS_SHOWN" checkpoint "${VKEYS[@]}"

INDEX=$("$BIN" query --actor system:anonymous --limit 1 --json | grep -o '"index":[0-9]*' | head -n 1 | cut -d: -f2 || true)
INDEX=${INDEX:-0}
step "proving that leaf $INDEX (an anonymous request) is in that checkpoint, verified locally"
show_as "prove inclusion $INDEX$VKEYS_SHOWN" prove inclusion "$INDEX" "${VKEYS[@]}"

POLICY="$DIR/policy.toml"
step "an outside audit with only the trust policy: signatures, consistency with the last audit, every leaf recomputed"
show verify --policy "$POLICY" --state "$DIR/audit-state.json" --full

step "a receipt: append, wait for a cosigned checkpoint, verify the inclusion proof, keep it offline"
show append --actor demo-auditor --action audit.receipt --resource ironlog://demo --outcome success \
  --source demo --idempotency-key demo-receipt-1 --receipts "$DIR/receipt.tlog-proof" --policy "$POLICY"

step "exporting entries 0-4 with proofs to a bundle, and verifying it with no network"
show export --entries 0-4 --out "$DIR/evidence.tlog-proof" --policy "$POLICY"
show verify --policy "$POLICY" --bundle "$DIR/evidence.tlog-proof"

step "querying by actor"
show query --actor system:anonymous
show query --actor minikube-user --outcome success --limit 5

step "cluster status (as the leader sees it; node 4 is the analysis learner)"
show --endpoint "$LEADER" status

CLOUDTRAIL=tests/data/ingest/cloudtrail_otrf_ec2_proxy_s3_exfiltration.jsonl
step "ingesting a real CloudTrail log (OTRF: EC2 proxy, then S3 exfiltration) with a progress bar"
show ingest --format cloudtrail "$CLOUDTRAIL"
TREE_SIZE=$("$BIN" --endpoint "$LEADER" status --json | sed -n 's/.*"tree_size":\([0-9]*\).*/\1/p')

step "waiting for the analysis node ($ANALYSIS) to index all $TREE_SIZE entries"
for ((i = 0; i < CHECKPOINT_WAIT_S * 4; i++)); do
  # NOT_FOUND until the entry is indexed.
  "$BIN" --endpoint "$ANALYSIS" categorize --entries $((TREE_SIZE - 1)) >/dev/null 2>&1 && break
  sleep 0.5
done

export IRONLOG_ENDPOINT="$ANALYSIS"
step "categories: rules decide what they can, the model scores the labels for the rest"
show categorize --entries 0-2,52-56
# Events not in the log: the first two are for the rules; the rules know no
# word of the third, so the model scores the ten labels for it.
cat >"$DIR/to-categorise.jsonl" <<'EOF2'
{"actor": "mallory", "action": "login", "resource": "console", "outcome": "denied", "source": "sso"}
{"actor": "ops-bot", "action": "dataset.export", "resource": "s3://reports/q3.parquet", "outcome": "success", "source": "etl"}
{"actor": "carol", "action": "badge.swipe", "resource": "door/server-room-2", "outcome": "success", "source": "facilities"}
EOF2
show categorize --file "$DIR/to-categorise.jsonl"
step "anomaly flags over the whole log"
show anomalies --min-score 0.5
step "a summary of the CloudTrail window: facts by code, prose by the model only if it names nothing else"
show summarize --since 2020-09-14T00:00:00Z --until 2020-09-15T00:00:00Z
step "asking a question about the sample: answered from the indexes, each cited entry proven against a signed checkpoint"
show ask --now 2020-09-15T00:00:00Z --policy "$POLICY" "Who read ring.txt in the last 24 hours?"

echo
echo "Node logs: $DIR/node{1,2,3,4}.log   Data: $DIR/node{1,2,3,4}/"
