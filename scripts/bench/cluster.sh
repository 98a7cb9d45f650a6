#!/usr/bin/env bash
# Cluster benchmark: a 3-node cluster on 127.0.0.11-13 (scripts/cluster.sh, data
# in a temporary directory) against one latticed on 127.0.0.20, every node with
# --sync always, measured side by side with redis-benchmark. Reports:
#   - throughput of SET and SADD at ONE, QUORUM and ALL as a ratio of the single
#     node's (load spread over the three nodes as coordinators);
#   - peer messages and bytes per operation (CLUSTER INFO counters), and deltas
#     dropped from full queues;
#   - bytes sent per replica by one SADD into a 10,000-member set;
#   - stable latency: from the ONE acknowledgement until every replica shows the
#     write (scripts/bench/stable_latency.py), idle and under a fixed-rate load
#     of 1k writes/s and of half the measured ONE peak (scripts/bench/rate_load.py).
# Writes the report to .bench/cluster.md.
#
# usage: scripts/bench/cluster.sh [--no-build]
# Environment: BENCH_N requests per run [60000], BENCH_CLIENTS connections per
# run [48], BENCH_PROBES stable-latency probes [400].
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
source scripts/lib/node.sh
source scripts/lib/bench.sh
bench_start cluster.sh "$@"

N=${BENCH_N:-60000}
C=${BENCH_CLIENTS:-48}
PROBES=${BENCH_PROBES:-400}
work=$(mktemp -d /tmp/lattice-bench-cluster.XXXXXX)
export LATTICE_CLUSTER_DIR=$work/cluster
single_pid=
cleanup() {
  local rc=$?
  if ((rc != 0)); then
    for f in "$work"/single/log "$work"/cluster/n*/latticed.log; do
      [[ -f $f ]] && { echo "--- $f" >&2; tail -5 "$f" >&2; }
    done
  fi
  scripts/cluster.sh down >/dev/null 2>&1 || true
  [[ -n $single_pid ]] && kill_and_wait "$single_pid" 10 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p .bench
log() { echo "bench: $*" >&2; }

# "rps p99_ms" of one redis-benchmark run of a custom command (CSV: "name",
# "rps","avg","min","p50","p95","p99","max").
run_bench() {
  local host=$1 clients=$2 n=$3
  shift 3
  timeout 900 redis-benchmark -h "$host" -p 7379 -c "$clients" -n "$n" -r 100000 --csv "$@" |
    awk -F'","' 'NR==2 {print $2, $7}'
}

# "rps p99_ms" of one run per node, run concurrently (load spread over the
# nodes): the sum of their rps and the highest of their p99s.
run_spread() {
  local per=$((N / 3)) c=$((C / 3)) outs=() pids=()
  for i in 1 2 3; do
    outs+=("$work/rps.$i")
    run_bench "127.0.0.1$i" "$c" "$per" "$@" >"$work/rps.$i" &
    pids+=($!)
  done
  wait "${pids[@]}"
  cat "${outs[@]}" | awk '{s += $1; if ($2 > p) p = $2} END {printf "%.0f %s\n", s, p}'
}

info_sum() {  # sum of a CLUSTER INFO / INFO field over the three nodes
  local field=$1 section=$2 total=0 v
  for i in 1 2 3; do
    v=$(redis-cli -h "127.0.0.1$i" -p 7379 $section | tr -d '\r' | awk -F: -v f="$field" '$1 == f {print $2}')
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# CPU time (user + system) of processes, in clock ticks.
hz=$(getconf CLK_TCK)
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
cluster_pids() { local i; for i in 1 2 3; do cat "$LATTICE_CLUSTER_DIR/n$i/pid"; done; }
us_per_op() {  # ticks0 ticks1 ops nodes: CPU microseconds per operation per node
  awk -v a="$1" -v b="$2" -v n="$3" -v k="$4" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz * 1e6 / n / k}'
}

# fdatasync latency of this machine's disk where the data lives: 500 4-KiB
# appends, each followed by fdatasync. Prints "p50 X ms, p99 Y ms".
fsync_latency() {
  python3 - "$work/fsync.probe" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
lat = []
for _ in range(500):
    os.write(fd, b"x" * 4096)
    t = time.perf_counter()
    os.fdatasync(fd)
    lat.append((time.perf_counter() - t) * 1000)
os.close(fd)
lat.sort()
print("p50 %.2f ms, p99 %.2f ms" % (lat[len(lat) // 2], lat[int(len(lat) * 0.99)]))
PY
}

PIPES=(1 16)
log "fsync latency"
fsync=$(fsync_latency)
fsync_p99=$(sed 's/.*p99 \([0-9.]*\) ms.*/\1/' <<<"$fsync")

log "single node on 127.0.0.20:7379"
mkdir -p "$work/single"
build/node/latticed --node-id s1 --bind 127.0.0.20 --port 7379 --peer-port 17379 \
  --data-dir "$work/single/data" >"$work/single/log" 2>&1 &
single_pid=$!
wait_for_ping 127.0.0.20 7379 15 "$single_pid"
declare -A single single_p99 single_cpu
for P in "${PIPES[@]}"; do
  for cmd in SET SADD; do
    key='k:__rand_int__'
    [[ $cmd == SADD ]] && key='s:__rand_int__'
    t0=$(cpu_ticks "$single_pid")
    read -r r p < <(run_bench 127.0.0.20 "$C" "$N" -P "$P" "$cmd" "$key" m)
    t1=$(cpu_ticks "$single_pid")
    single[$P.$cmd]=$r single_p99[$P.$cmd]=$p
    single_cpu[$P.$cmd]=$(us_per_op "$t0" "$t1" "$N" 1)
    log "single -P $P $cmd: $r rps, p99 $p ms"
  done
done
kill_and_wait "$single_pid" 10 >/dev/null
single_pid=

log "3-node cluster"
LATTICE_NODE_ARGS="--ae-interval-ms 2000" scripts/cluster.sh up 3 >/dev/null
wait_cluster_formed 3 30 || { echo "cluster did not form" >&2; exit 1; }
mapfile -t pids < <(cluster_pids)

declare -A rps p99 cpu msgs frames bytes
for P in "${PIPES[@]}"; do
  for level in ONE QUORUM ALL; do
    for cmd in SET SADD; do
      key='k:__rand_int__'
      [[ $cmd == SADD ]] && key='s:__rand_int__'
      m0=$(info_sum peer_messages_sent "CLUSTER INFO")
      f0=$(info_sum peer_frames_sent "CLUSTER INFO")
      b0=$(info_sum peer_bytes_sent "CLUSTER INFO")
      t0=$(cpu_ticks "${pids[@]}")
      read -r r p < <(run_spread -P "$P" CL "$level" "$cmd" "$key" m)
      t1=$(cpu_ticks "${pids[@]}")
      m1=$(info_sum peer_messages_sent "CLUSTER INFO")
      f1=$(info_sum peer_frames_sent "CLUSTER INFO")
      b1=$(info_sum peer_bytes_sent "CLUSTER INFO")
      ops=$(((N / 3) * 3))
      k=$P.$level.$cmd
      rps[$k]=$r p99[$k]=$p
      cpu[$k]=$(us_per_op "$t0" "$t1" "$ops" 3)
      msgs[$k]=$(awk -v a="$m0" -v b="$m1" -v n="$ops" 'BEGIN {printf "%.2f", (b - a) / n}')
      frames[$k]=$(awk -v a="$f0" -v b="$f1" -v n="$ops" 'BEGIN {printf "%.2f", (b - a) / n}')
      bytes[$k]=$(awk -v a="$b0" -v b="$b1" -v n="$ops" 'BEGIN {printf "%.0f", (b - a) / n}')
      log "-P $P $level $cmd: $r rps, p99 $p ms, ${msgs[$k]} peer messages/op, ${cpu[$k]} us CPU/op/node"
    done
  done
done
dropped=$(info_sum peer_messages_dropped "CLUSTER INFO")

log "SADD into a 10,000-member set"
redis-cli -h 127.0.0.11 -p 7379 DEL bigset >/dev/null
for ((i = 0; i < 100; i++)); do
  args=()
  for ((j = 0; j < 100; j++)); do args+=("member-$i-$j"); done
  redis-cli -h 127.0.0.11 -p 7379 SADD bigset "${args[@]}" >/dev/null
done
size=$(redis-cli -h 127.0.0.11 -p 7379 SCARD bigset)
# Quiet first: anti-entropy may still be moving the whole set between replicas.
quiet_deadline=$((SECONDS + 30))
last=$(info_sum ae_keys_sent "INFO replication")
stable=0
while ((stable < 3 && SECONDS < quiet_deadline)); do
  sleep 1
  now=$(info_sum ae_keys_sent "INFO replication")
  if [[ $now == "$last" ]]; then stable=$((stable + 1)); else stable=0; fi
  last=$now
done
b0=$(info_sum peer_bytes_sent "CLUSTER INFO")
ae0=$(info_sum ae_keys_sent "INFO replication")
for ((i = 0; i < 500; i++)); do echo "CL ONE SADD bigset extra-$i"; done | redis-cli -h 127.0.0.11 -p 7379 >/dev/null
sleep 0.3  # acknowledgements of the last writes
b1=$(info_sum peer_bytes_sent "CLUSTER INFO")
ae1=$(info_sum ae_keys_sent "INFO replication")
per_replica=$(awk -v a="$b0" -v b="$b1" 'BEGIN {printf "%.0f", (b - a) / 500 / 2}')

log "stable latency"
idle=$(python3 scripts/bench/stable_latency.py --probes "$PROBES")
# Half of the measured ONE peak (the best SET rate at ONE over the pipeline depths).
peak=0
for P in "${PIPES[@]}"; do ((rps[$P.ONE.SET] > peak)) && peak=${rps[$P.ONE.SET]}; done
half=$((peak / 2))
declare -A stable achieved
for rate in 1000 "$half"; do
  python3 scripts/bench/rate_load.py --rate "$rate" --seconds 8 --conns 48 >"$work/load.$rate" &
  load=$!
  sleep 1
  stable[$rate]=$(python3 scripts/bench/stable_latency.py --probes "$PROBES")
  wait "$load"
  achieved[$rate]=$(<"$work/load.$rate")
done

machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
{
  echo "# Cluster benchmark"
  echo
  echo "$(date -u +%Y-%m-%d), $machine. 3 nodes and the single node all run on this machine,"
  echo "--sync always. redis-benchmark -n $N -r 100000 -P 1 and -P 16, $C connections spread over the"
  echo "three nodes (the single node: $C connections, the same commands without CL)."
  echo
  echo "fsync on this disk (500 x 4 KiB append + fdatasync): $fsync."
  echo
  echo "| -P | level | command | cluster rps | single-node rps | ratio | p99 ms (single) | CPU us/op/node (single) | peer messages/op | peer frames/op | peer bytes/op |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for P in "${PIPES[@]}"; do
    for level in ONE QUORUM ALL; do
      for cmd in SET SADD; do
        k=$P.$level.$cmd
        ratio=$(awk -v a="${rps[$k]}" -v b="${single[$P.$cmd]}" 'BEGIN {printf "%.2f", a / b}')
        echo "| $P | $level | $cmd | ${rps[$k]} | ${single[$P.$cmd]} | $ratio | ${p99[$k]} (${single_p99[$P.$cmd]}) | ${cpu[$k]} (${single_cpu[$P.$cmd]}) | ${msgs[$k]} | ${frames[$k]} | ${bytes[$k]} |"
      done
    done
  done
  echo
  echo "- QUORUM p99 against single-node p99 + 2 x fsync p99 ($fsync_p99 ms):"
  for P in "${PIPES[@]}"; do
    for cmd in SET SADD; do
      bound=$(awk -v s="${single_p99[$P.$cmd]}" -v f="$fsync_p99" 'BEGIN {printf "%.2f", s + 2 * f}')
      verdict=$(awk -v q="${p99[$P.QUORUM.$cmd]}" -v b="$bound" 'BEGIN {print (q <= b) ? "met" : "not met"}')
      echo "  -P $P $cmd: ${p99[$P.QUORUM.$cmd]} ms against $bound ms: $verdict."
    done
  done
  echo "- p99 of a spread run is the highest of the three coordinators' p99s. CPU is user +"
  echo "  system time of the latticed processes over the run, per operation and node."
  echo "- Peer messages count every message (forward, reply, delta, acknowledgement, gossip,"
  echo "  anti-entropy); frames count TCP writes, each carrying a batch of messages."
  echo "- Deltas dropped from full peer queues during the runs: $dropped."
  echo "- One SADD into a set of $size members at ONE: $per_replica bytes sent per replica (all peer traffic of 500 SADDs / 500 / 2 replicas;"
  echo "  anti-entropy sent $((ae1 - ae0)) whole states during that window)."
  echo "- Stable latency (ONE acknowledgement on n1 until n2 and n3 both show the write), $PROBES probes:"
  echo "  idle: $idle."
  for rate in 1000 "$half"; do
    echo "  offered $rate SET/s at ONE over 48 connections (achieved: ${achieved[$rate]}): ${stable[$rate]}."
  done
  echo "  ($half/s is half of the measured ONE peak, $peak SET/s.)"
} >.bench/cluster.md
cat .bench/cluster.md
