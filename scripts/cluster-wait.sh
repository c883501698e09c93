# Sourced by the scripts that start a local cluster with `ironlog cluster up`.
#
# wait_for_cluster OUT PID SECONDS: waits until `cluster up` (process PID,
# output in OUT) prints that the cluster is running. If the process exits
# first, or SECONDS pass, prints its output and the reason to stderr and
# returns 1; callers run under `set -e` or test the status.
#
# Once it returns, callers `source <cluster dir>/env`, which `cluster up`
# writes: IRONLOG_ENDPOINT (https://, or http:// with --insecure) and, with
# TLS, IRONLOG_CA, IRONLOG_CERT and IRONLOG_KEY (the operator's client
# certificate, which holds every role), so every later CLI call is
# authenticated.
wait_for_cluster() {
  local out=$1 pid=$2 seconds=$3 i
  for ((i = 0; i < seconds * 2; i++)); do
    grep -q '^Ironlog cluster running' "$out" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$out" >&2
      echo "error: the cluster did not start (node logs are beside $out)" >&2
      return 1
    fi
    sleep 0.5
  done
  cat "$out" >&2
  echo "error: no leader after ${seconds}s (node logs are beside $out)" >&2
  return 1
}
