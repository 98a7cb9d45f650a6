#!/usr/bin/env bash
# Installs what is missing, builds, runs every test of the default run.
#   scripts/test.sh          the default run (CI)
#   scripts/test.sh --long   also the long soak / chaos / fuzz runs
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

long=0
for arg in "$@"; do
  case "$arg" in
    --long) long=1 ;;
    *) echo "usage: scripts/test.sh [--long]" >&2; exit 2 ;;
  esac
done

scripts/setup.sh
scripts/build.sh

label_args=(-LE long)
if ((long)); then
  label_args=()
  # Ten times the default simulation seeds and property cases.
  export LATTICE_SIM_SEEDS=${LATTICE_SIM_SEEDS:-2000}
  export LATTICE_CASES=${LATTICE_CASES:-100000}
fi
ctest --test-dir build --output-on-failure --timeout 3600 "${label_args[@]}"
