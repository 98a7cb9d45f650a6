#!/usr/bin/env bash
# Client benchmark: what lattice::Client costs over raw RESP, and what its
# sessions cost. A 3-node cluster on 127.0.0.11-13 (--sync always), loaded in
# turn, with the same keys (-r 100000), request count and 48 calls in flight
# spread over the three nodes, by:
#   - redis-benchmark (48 connections, 16 per node): the raw protocol reference;
#   - build/client/lattice-client-bench with sessions off (3 clients, each
#     preferring its own node, 16 pooled connections each);
#   - the same with sessions on (each call also fetches its session token).
# for SET and GET at QUORUM. Reports ops/s, the ratios and latencies; writes
# .bench/client.md.
#
# usage: scripts/bench/client.sh [--no-build]
# Environment: BENCH_N requests per run [60000].
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
source scripts/lib/node.sh
source scripts/lib/bench.sh
bench_start client.sh "$@"

N=${BENCH_N:-60000}
bench_cluster_dir client
mkdir -p .bench
log() { echo "bench: $*" >&2; }

LATTICE_NODE_ARGS="--ae-interval-ms 2000" scripts/cluster.sh up 3 >/dev/null
wait_cluster_formed 3 30 || { echo "cluster did not form" >&2; exit 1; }
nodes=127.0.0.11:7379,127.0.0.12:7379,127.0.0.13:7379

# Sum of rps of one redis-benchmark run per node, run concurrently.
redis_spread() {
  local outs=() pids=()
  for i in 1 2 3; do
    outs+=("$work/rps.$i")
    timeout 900 redis-benchmark -h "127.0.0.1$i" -p 7379 -c 16 -n $((N / 3)) -r 100000 --csv "$@" |
      awk -F'","' 'NR==2 {print $2}' >"$work/rps.$i" &
    pids+=($!)
  done
  wait "${pids[@]}"
  cat "${outs[@]}" | awk '{s += $1} END {printf "%.0f", s}'
}

client_run() {  # cmd sessions -> "ops p50 p99"
  timeout 900 build/client/lattice-client-bench --nodes "$nodes" --cmd "$1" --ops "$N" --inflight 48 \
    --keys 100000 --pool 16 --sessions "$2" --level quorum |
    sed -E 's/ops_per_s=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+) errors=0.*/\1 \2 \3/'
}

report=".bench/client.md"
{
  echo "# Client benchmark ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "3 nodes, --sync always, QUORUM, $N requests, 48 in flight over the three nodes, keys from 100,000."
  echo
  echo "| command | redis-benchmark ops/s | client, sessions off | ratio | client, sessions on | ratio to off | p50 / p99 µs (off; on) |"
  echo "|---|---|---|---|---|---|---|"
} >"$report"
for cmd in set get; do
  if [[ $cmd == set ]]; then
    log "SET"
    raw=$(redis_spread CL QUORUM SET 'bench:__rand_int__' xxx)
  else
    log "GET"
    raw=$(redis_spread CL QUORUM GET 'bench:__rand_int__')
  fi
  read -r off off50 off99 <<<"$(client_run "$cmd" off)"
  read -r on on50 on99 <<<"$(client_run "$cmd" on)"
  r1=$(awk -v a="$off" -v b="$raw" 'BEGIN {printf "%.2f", a / b}')
  r2=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.2f", a / b}')
  echo "| ${cmd^^} | $raw | $off | x$r1 | $on | x$r2 | $off50 / $off99; $on50 / $on99 |" >>"$report"
done
cat "$report"
