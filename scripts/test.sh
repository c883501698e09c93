#!/usr/bin/env bash
# The whole test suite: formatting, lints and every test, all in the release
# profile so that the heavy dependencies compile once.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- setup (idempotent): see scripts/setup.sh
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
install_fault_tools

# ---- checks
echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (release, the workspace, all targets)"
cargo clippy --release --workspace --all-targets -- -D warnings

echo "== cargo test (release)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace 2>&1 | tee "$log" || status=$?

echo
echo "== summary"
grep -E '^(     Running|   Doc-tests|test result:)' "$log" | sed -e 's/^ *//' || true
if [ "$status" -ne 0 ]; then
  echo "FAILED (cargo test exit status $status)" >&2
  exit "$status"
fi
echo "all tests passed"
