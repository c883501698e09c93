#!/usr/bin/env bash
# The fault harness (tests/chaos/): three real nodes, each in its own network
# namespace, under appending clients, while partitions, one-way, flapping,
# slow and lossy links, SIGSTOP pauses, kill -9, wiped nodes and full disks are
# injected from a printed seed; then every acknowledged event, every node's
# files (fsck) and every checkpoint a client saw are checked.
#
#   scripts/chaos.sh                          # a short run (as in the test suite)
#   scripts/chaos.sh --seconds 1200           # twenty minutes of faults
#   scripts/chaos.sh --seed 42 --seconds 90   # replay a run: same seed, same length
#   scripts/chaos.sh --kills 30               # a longer kill -9 + fsck loop first
#   scripts/chaos.sh --keep                   # keep the run directory (kept on failure anyway)
#
# Needs root (network namespaces, tmpfs mounts, iptables).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "error: scripts/chaos.sh needs root: it makes network namespaces, tmpfs mounts and iptables rules" >&2
  exit 1
fi
# shellcheck source=scripts/setup.sh
source scripts/setup.sh
install_fault_tools
exec cargo test --release --test chaos -- "$@"
