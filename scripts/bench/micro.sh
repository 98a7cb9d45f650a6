#!/usr/bin/env bash
# Micro-benchmarks (Google Benchmark, bench/): the write-ahead log's append
# path (N records of 40, 1024 or 40..1024 bytes, then one Sync) on tmpfs and
# on the repository's disk, CRDT join/encode/decode of a set of 10 and 1000
# members, the RESP request parser, and one request's path through a single
# node with the heap allocations it makes (BM_Get, BM_Set, BM_GetParts:
# allocs_per_op; bench/request_bench.cc). Prints Google Benchmark's table and
# keeps it in .bench/micro.txt.
#
# usage: scripts/bench/micro.sh [--no-build] [Google Benchmark flags, e.g.
#        --benchmark_filter=Log --benchmark_repetitions=3]
# Environment: BENCH_MIN_TIME seconds per benchmark [0.5];
#              LATTICE_BENCH_TMPFS [/dev/shm/lattice-micro-log],
#              LATTICE_BENCH_DISK [.bench/micro-log]: where the log is written.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"

build=1
args=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    --benchmark_*) args+=("$arg") ;;
    *) echo "micro.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done
if ((build)); then
  scripts/setup.sh
  flock /tmp/lattice-build.lock scripts/build.sh
fi
bin=build/bench/lattice_micro_bench
if [[ ! -x $bin ]]; then
  echo "micro.sh: $bin was not built (Google Benchmark missing? scripts/setup.sh installs libbenchmark-dev)" >&2
  exit 1
fi

mkdir -p .bench
export LATTICE_BENCH_TMPFS=${LATTICE_BENCH_TMPFS:-/dev/shm/lattice-micro-log}
export LATTICE_BENCH_DISK=${LATTICE_BENCH_DISK:-$repo/.bench/micro-log}
trap 'rm -rf "$LATTICE_BENCH_TMPFS" "$LATTICE_BENCH_DISK"' EXIT
fs_of() { mkdir -p "$1" && df -PT "$1" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }'; }
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (working tree modified)')"
  echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), kernel $(uname -sr)"
  echo "log on tmpfs: $LATTICE_BENCH_TMPFS on $(fs_of "$LATTICE_BENCH_TMPFS")"
  echo "log on disk:  $LATTICE_BENCH_DISK on $(fs_of "$LATTICE_BENCH_DISK")"
  echo "command: $bin --benchmark_min_time=${BENCH_MIN_TIME:-0.5} --benchmark_counters_tabular=true ${args[*]}"
  "$bin" --benchmark_min_time="${BENCH_MIN_TIME:-0.5}" --benchmark_counters_tabular=true "${args[@]}" 2>&1
} | tee .bench/micro.txt
