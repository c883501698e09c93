#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read untrusted input (signed
# notes and trust policies, proofs, offline bundles), with cargo-fuzz and
# libFuzzer. Needs a nightly toolchain; installs cargo-fuzz if missing.
#
#   ./scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 60, all)
#
# Not part of ./scripts/test.sh: tests/parser_robustness.rs runs the same
# entry points under seeded random mutations on stable in every CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(note proof bundle)
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for t in "${TARGETS[@]}"; do
  echo "== fuzzing $t for ${SECS}s"
  (cd fuzz && cargo +nightly fuzz run "$t" -- -max_total_time="$SECS" -rss_limit_mb=2048)
done
