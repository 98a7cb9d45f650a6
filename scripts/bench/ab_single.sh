#!/usr/bin/env bash
# A/B of two latticed binaries on one node each, side by side in the same
# minutes: both start fresh (--sync always) on loopback, are filled with the
# same keys, then each test runs on A, B, A, B, ... (ROUNDS times each), so
# that the machine's noise falls on both alike. Prints req/s per run, the
# medians and B / A.
#
# usage: scripts/bench/ab_single.sh A_BINARY B_BINARY
# Environment (defaults in brackets):
#   AB_TESTS     redis-benchmark tests [get set]
#   AB_PIPELINE  -P [16]
#   AB_N         requests per run [400000]
#   AB_KEYSPACE  -r [100000]
#   AB_ROUNDS    runs per binary and test [3]
#   AB_PORT      first port; A uses it, B the next two [7700]
set -euo pipefail

if [[ $# -ne 2 || ! -x $1 || ! -x $2 ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
fi
a_bin=$1
b_bin=$2
tests=${AB_TESTS:-get set}
pipeline=${AB_PIPELINE:-16}
n=${AB_N:-400000}
keyspace=${AB_KEYSPACE:-100000}
rounds=${AB_ROUNDS:-3}
port=${AB_PORT:-7700}
dir=$(mktemp -d /tmp/lattice-ab.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

start() {  # name binary port
  "$2" --node-id "$1" --bind 127.0.0.1 --port "$3" --peer-port $(($3 + 1000)) --data-dir "$dir/$1" \
    --sync always --log-level warn >"$dir/$1.log" 2>&1 &
  pids+=($!)
  local deadline=$((SECONDS + 30))
  until [[ $(redis-cli -p "$3" PING 2>/dev/null) == PONG ]]; do
    if ((SECONDS > deadline)); then
      echo "ab_single.sh: $1 ($2) did not answer PING within 30 s; its log:" >&2
      tail -20 "$dir/$1.log" >&2
      exit 1
    fi
    sleep 0.1
  done
}

rps() {  # port test -> req/s
  redis-benchmark -p "$1" -c 50 -n "$n" -r "$keyspace" -P "$pipeline" -t "$2" --csv 2>/dev/null |
    awk -F, 'NR == 2 { gsub(/"/, "", $2); print $2 }'
}

start a "$a_bin" "$port"
start b "$b_bin" $((port + 2))
for p in "$port" $((port + 2)); do  # the same keys in both
  redis-benchmark -p "$p" -c 50 -n $((2 * keyspace)) -r "$keyspace" -P 16 -t set -q >/dev/null
done

echo "A: $a_bin"
echo "B: $b_bin"
echo "redis-benchmark -c 50 -n $n -r $keyspace -P $pipeline; $rounds runs each, interleaved"
for t in $tests; do
  as=() bs=()
  for ((i = 0; i < rounds; i++)); do
    as+=("$(rps "$port" "$t")")
    bs+=("$(rps $((port + 2)) "$t")")
  done
  ma=$(printf '%s\n' "${as[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  mb=$(printf '%s\n' "${bs[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  printf '%s: A %s (median %s), B %s (median %s), B / A %.2f\n' "$t" "${as[*]}" "$ma" "${bs[*]}" "$mb" \
    "$(awk -v a="$ma" -v b="$mb" 'BEGIN { print (a > 0 ? b / a : 0) }')"
done
