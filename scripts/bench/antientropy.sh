#!/usr/bin/env bash
# Anti-entropy benchmark: a 3-node cluster (scripts/cluster.sh on 127.0.0.11-13,
# data in a temporary directory, --sync none so loading is quick) holding
# BENCH_KEYS keys, every node a replica of every key. Reports:
#   - restart: seconds from start until a node with BENCH_KEYS keys answers PING,
#     and the time its open-time Merkle rebuild took (INFO merkle_rebuild_ms);
#   - after 1 and after 1,000 diverged keys: n3 is killed, the keys are written
#     at ONE through n1, n1 and n2 are killed too (their queued deltas for n3 die
#     with them), all three restart; then only anti-entropy can repair n3.
#     Measured until the three nodes' Merkle roots are equal (INFO
#     merkle_roots; every node replicates every partition): seconds, keys sent
#     (ae_keys_sent), keys repaired (keys_repaired), Merkle tree bytes exchanged
#     (ae_tree_bytes_sent), all summed over the three nodes;
#   - a wiped node: n3's data directory is deleted and n3 restarted; seconds
#     until it has pulled every partition (CLUSTER NODES shows it alive again)
#     and holds as many keys as n1;
#   - a quiet minute: with all three up and nothing written, the keys that
#     anti-entropy repairs over 60 s (keys_repaired; should be 0).
# Writes the report to .bench/antientropy.md.
#
# usage: scripts/bench/antientropy.sh [--no-build]
# Environment: BENCH_KEYS [1000000], BENCH_AE_MS anti-entropy period [2000],
# BENCH_TIMEOUT seconds allowed for each repair [600].
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
source scripts/lib/node.sh

source scripts/lib/bench.sh
bench_start antientropy.sh "$@"

KEYS=${BENCH_KEYS:-1000000}
AE_MS=${BENCH_AE_MS:-2000}
LIMIT=${BENCH_TIMEOUT:-600}
work=$(mktemp -d /tmp/lattice-bench-ae.XXXXXX)
export LATTICE_CLUSTER_DIR=$work/cluster
export LATTICE_NODE_ARGS="--sync none --ae-interval-ms $AE_MS"
cleanup() {
  local rc=$?
  if ((rc != 0)); then
    for f in "$work"/cluster/n*/latticed.log; do
      [[ -f $f ]] && { echo "--- $f" >&2; tail -5 "$f" >&2; }
    done
  fi
  scripts/cluster.sh down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p .bench
log() { echo "bench: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }
cli() { timeout 30 redis-cli -h "127.0.0.1$1" -p 7379 "${@:2}"; }
field() { cli "$1" $2 | tr -d '\r' | awk -F: -v f="$3" '$1 == f {print $2}'; }
info_sum() {  # sum of an INFO replication field over the three nodes
  local total=0 v
  for i in 1 2 3; do
    v=$(field "$i" "INFO replication" "$1")
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
dbsize() { cli "$1" DBSIZE 2>/dev/null || echo -1; }

# Waits until `cond` succeeds, at most LIMIT seconds.
wait_until() {
  local deadline=$((SECONDS + LIMIT))
  until "$@"; do
    ((SECONDS < deadline)) || { log "timed out waiting for: $*"; return 1; }
    sleep 0.1
  done
}
all_alive() {
  local i out
  for i in 1 2 3; do
    out=$(cli "$i" CLUSTER NODES 2>/dev/null) || return 1
    [[ $(grep -c ' alive ' <<<"$out") == 3 ]] && ! grep -q ' never' <<<"$out" || return 1
  done
}
same_size() {
  local a b c
  a=$(dbsize 1) b=$(dbsize 2) c=$(dbsize 3)
  ((a > 0 && a == b && b == c))
}
same_roots() {
  local a b c
  a=$(field 1 "INFO persistence" merkle_roots) b=$(field 2 "INFO persistence" merkle_roots)
  c=$(field 3 "INFO persistence" merkle_roots)
  [[ -n $a && $a == "$b" && $b == "$c" ]]
}

log "3-node cluster, loading $KEYS keys"
scripts/cluster.sh up 3 >/dev/null
wait_until all_alive
load_start=$(now)
per=$((KEYS / 3))
pids=()
for i in 1 2 3; do
  timeout 1800 redis-benchmark -h "127.0.0.1$i" -p 7379 -c 16 -n "$per" -r 1000000000 -P 1 -q \
    CL ONE SET "k$i:__rand_int__" v >/dev/null &
  pids+=($!)
done
wait "${pids[@]}"
wait_until same_size
loaded=$(dbsize 1)
load_s=$(since "$load_start")
log "loaded $loaded keys in $load_s s"

log "restart of a node holding $loaded keys"
scripts/cluster.sh kill 1 >/dev/null
t=$(now)
scripts/cluster.sh restart 1 >/dev/null
wait_for_ping 127.0.0.11 7379 120
restart_s=$(since "$t")
rebuild_ms=$(field 1 INFO merkle_rebuild_ms)
wait_until all_alive

declare -A secs sent repaired tree
diverge() {
  local n=$1 i
  log "$n diverged key(s)"
  scripts/cluster.sh kill 3 >/dev/null
  for ((i = 0; i < n; i++)); do echo "CL ONE SET div$n:$i v"; done | cli 1 >/dev/null
  scripts/cluster.sh kill 1 >/dev/null
  scripts/cluster.sh kill 2 >/dev/null
  for i in 1 2 3; do scripts/cluster.sh restart "$i" >/dev/null; done
  for i in 1 2 3; do wait_for_ping "127.0.0.1$i" 7379 120; done
  wait_until all_alive
  local s0 r0 t0 start
  s0=$(info_sum ae_keys_sent) r0=$(info_sum keys_repaired) t0=$(info_sum ae_tree_bytes_sent)
  start=$(now)
  wait_until same_roots
  secs[$n]=$(since "$start")
  sent[$n]=$(($(info_sum ae_keys_sent) - s0))
  repaired[$n]=$(($(info_sum keys_repaired) - r0))
  tree[$n]=$(($(info_sum ae_tree_bytes_sent) - t0))
  log "$n: repaired in ${secs[$n]} s, ${sent[$n]} keys sent, ${repaired[$n]} repaired, ${tree[$n]} tree bytes"
}
diverge 1
diverge 1000

log "wiped node"
scripts/cluster.sh kill 3 >/dev/null
rm -rf "$LATTICE_CLUSTER_DIR/n3/data"
t=$(now)
scripts/cluster.sh restart 3 >/dev/null
wait_until all_alive
wait_until same_size
wiped_s=$(since "$t")
log "wiped node rebuilt $(dbsize 3) keys in $wiped_s s"
wait_until same_roots

log "a quiet minute"
quiet0=$(info_sum keys_repaired)
sleep 60
quiet_repaired=$(($(info_sum keys_repaired) - quiet0))
same_roots && quiet_equal=yes || quiet_equal=no
log "quiet minute: $quiet_repaired keys repaired, roots equal: $quiet_equal"

scripts/cluster.sh down >/dev/null

{
  echo "# Anti-entropy benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "3 nodes, N=3, $loaded keys per node (loaded at ONE in $load_s s), --sync none, --ae-interval-ms $AE_MS."
  echo
  echo "| measurement | value | target |"
  echo "|---|---|---|"
  echo "| restart: start until PING answers | $restart_s s (Merkle rebuild scan $rebuild_ms ms) | <= 5 s |"
  echo "| 1 diverged key: keys sent / repaired | ${sent[1]} / ${repaired[1]} | <= 10 transferred |"
  echo "| 1 diverged key: tree bytes exchanged | ${tree[1]} | <= 64 KB |"
  echo "| 1 diverged key: time until all roots are equal | ${secs[1]} s | |"
  echo "| 1,000 diverged keys: time until all roots are equal | ${secs[1000]} s | <= 2 s |"
  echo "| 1,000 diverged keys: keys sent / repaired | ${sent[1000]} / ${repaired[1000]} | |"
  echo "| 1,000 diverged keys: tree bytes exchanged | ${tree[1000]} | |"
  echo "| wiped node rebuilt | $wiped_s s | <= 30 s |"
  echo "| a quiet minute afterwards: keys repaired (roots equal at its end) | $quiet_repaired ($quiet_equal) | 0 |"
} >.bench/antientropy.md
cat .bench/antientropy.md
