#!/usr/bin/env bash
# A/B of two latticed builds on the same 3-node cluster layout (127.0.0.11-13,
# scripts/cluster.sh, --sync always), one after the other in one run, with the
# same redis-benchmark flags: SET, SADD and SREM at QUORUM (the connection
# default) and SET at ONE, load spread over the three nodes. Prints rps per
# build and the ratio B/A. A build without --bootstrap-expect (older than
# symmetric formation) is started the old way: node 1 without seeds.
#
# usage: scripts/bench/ab_cluster.sh LATTICED_A LATTICED_B
# Environment: BENCH_N requests per run [60000], BENCH_CLIENTS connections [48],
# BENCH_PIPELINE redis-benchmark -P [1].
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
source scripts/lib/node.sh
source scripts/lib/bench.sh
[[ $# -eq 2 ]] || { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 2; }
A=$(realpath "$1") B=$(realpath "$2")
N=${BENCH_N:-60000}
C=${BENCH_CLIENTS:-48}
P=${BENCH_PIPELINE:-1}
bench_cluster_dir ab

# Sum of rps of one redis-benchmark run per node, run concurrently.
spread() {
  local per=$((N / 3)) c=$((C / 3)) i total=0 pids=()
  for i in 1 2 3; do
    timeout 900 redis-benchmark -h "127.0.0.1$i" -p 7379 -c "$c" -n "$per" -r 100000 -P "$P" --csv "$@" |
      awk -F'","' 'NR==2 {print $2}' >"$work/rps.$i" &
    pids+=($!)
  done
  wait "${pids[@]}"
  for i in 1 2 3; do total=$(awk -v t="$total" -v r="$(<"$work/rps.$i")" 'BEGIN {printf "%.0f", t + r}'); done
  echo "$total"
}

declare -A rps
for build in A B; do
  bin=${!build}
  scripts/cluster.sh down >/dev/null 2>&1 || true
  rm -rf "$LATTICE_CLUSTER_DIR"
  if "$bin" --help | grep -q -- --bootstrap-expect; then
    LATTICED=$bin scripts/cluster.sh up 3 >/dev/null
  else
    # The old start: node 1 founds alone, the others join through it.
    mkdir -p "$LATTICE_CLUSTER_DIR"
    for i in 1 2 3; do
      d=$LATTICE_CLUSTER_DIR/n$i; mkdir -p "$d"
      seeds=(); ((i == 1)) || seeds=(--seeds 127.0.0.11:17379)
      "$bin" --node-id "n$i" --bind "127.0.0.1$i" --port 7379 --peer-port 17379 --data-dir "$d/data" \
        "${seeds[@]}" >>"$d/latticed.log" 2>&1 &
      echo $! >"$d/pid"
      wait_for_ping "127.0.0.1$i" 7379 15 "$!"
      # Joiners serve once they pulled their (empty) partitions.
      sleep 0.5
    done
  fi
  wait_cluster_formed 3 30 || { echo "ab_cluster: build $build did not form" >&2; exit 1; }
  until [[ $(redis-cli -h 127.0.0.11 -p 7379 CL ALL SET ab:probe 1 2>&1) == OK ]]; do sleep 0.2; done
  rps[$build,set]=$(spread -t set)
  rps[$build,sadd]=$(spread sadd ab:s __rand_int__)
  rps[$build,srem]=$(spread srem ab:s __rand_int__)
  rps[$build,set1]=$(spread CL ONE SET key:__rand_int__ v)
done
printf '| %-24s | %10s | %10s | %6s |\n' "command (3 nodes, -c $C -n $N -P $P)" "A rps" "B rps" "B/A"
printf '|%s|%s|%s|%s|\n' "--------------------------" "------------" "------------" "--------"
for k in set sadd srem set1; do
  name=$k
  case $k in set) name="SET (QUORUM)" ;; sadd) name="SADD (QUORUM)" ;; srem) name="SREM (QUORUM)" ;; set1) name="CL ONE SET" ;; esac
  printf '| %-24s | %10s | %10s | %6s |\n' "$name" "${rps[A,$k]}" "${rps[B,$k]}" \
    "$(awk -v a="${rps[A,$k]}" -v b="${rps[B,$k]}" 'BEGIN {printf "%.2f", b / a}')"
done
