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
((long)) && label_args=()
ctest --test-dir build --output-on-failure --timeout 900 "${label_args[@]}"
