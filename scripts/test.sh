#!/usr/bin/env bash
# The whole test suite: formatting, lints and every test, all in the release
# profile so that the heavy dependencies compile once.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- setup (idempotent): Rust with rustfmt and clippy, and a C compiler for
# the crates that build C. Nothing else is needed (protobuf is compiled in Rust).
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found. Install Rust 1.90 or newer (https://rustup.rs) and run this again." >&2
  exit 1
fi
# "cargo SUBCOMMAND" comes from rustup component COMPONENT.
for pair in fmt:rustfmt clippy:clippy; do
  subcommand=${pair%%:*} component=${pair#*:}
  if ! cargo "$subcommand" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      rustup component add "$component"
    else
      echo "error: cargo $subcommand is missing and rustup is not available to add $component." >&2
      exit 1
    fi
  fi
done
if ! command -v cc >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing a C compiler (gcc) with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev
  else
    echo "error: no C compiler (cc) found; install gcc or clang." >&2
    exit 1
  fi
fi

# ---- checks
echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (release, all targets)"
cargo clippy --release --all-targets -- -D warnings

echo "== cargo test (release)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release 2>&1 | tee "$log" || status=$?

echo
echo "== summary"
grep -E '^(     Running|   Doc-tests|test result:)' "$log" | sed -e 's/^ *//' || true
if [ "$status" -ne 0 ]; then
  echo "FAILED (cargo test exit status $status)" >&2
  exit "$status"
fi
echo "all tests passed"
