#!/usr/bin/env bash
# Chaos runs against a real 3-node cluster on 127.0.0.51-53 (tests/chaos/):
# workers write sets, counters and registers at ONE, QUORUM and ALL while a
# seeded nemesis partitions (iptables), kills -9, pauses and wipes nodes; after
# healing, every Merkle root must be equal and the history must pass the
# checkers (README, Testing).
#
#   scripts/chaos.sh [--runs N] [--seconds S] [--seed X] [--nodes 3] [--out DIR] [--keep-data]
#
# LATTICED names the binary (default build/node/latticed; not built here).
# Prints one verdict line per run and "N passed, M failed"; exits 0 only if
# every run passed, 77 when not root or iptables is unusable (skipped).
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case "$arg" in
    -h|--help) exec python3 tests/chaos/chaos.py --help ;;
  esac
done
if [[ $(id -u) != 0 ]]; then
  echo "chaos: skipped: needs root (iptables partitions)" >&2
  exit 77
fi
if ! command -v iptables >/dev/null || ! iptables -w -L -n >/dev/null 2>&1; then
  echo "chaos: skipped: iptables is not usable here (scripts/setup.sh installs it; needs netfilter)" >&2
  exit 77
fi
export LATTICED=${LATTICED:-$PWD/build/node/latticed}
exec python3 tests/chaos/chaos.py "$@"
