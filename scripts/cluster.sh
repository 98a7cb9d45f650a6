#!/usr/bin/env bash
# A local cluster: node i runs on 127.0.0.(10+i) with the default ports (client
# 7379, peer 17379), data and logs under .cluster/n<i>/.
#
#   scripts/cluster.sh up N          start nodes 1..N, each seeded with all N (they found the
#                                    cluster together once all N see each other)
#   scripts/cluster.sh down          stop every node (SIGTERM, then SIGKILL)
#   scripts/cluster.sh status        CLUSTER NODES as each running node sees it
#   scripts/cluster.sh kill I        SIGKILL node I
#   scripts/cluster.sh restart I     start node I again on its data
#   scripts/cluster.sh partition I J drop traffic between nodes I and J (iptables)
#   scripts/cluster.sh heal          remove every partition rule
#
# Any node coordinates any request over the key's replicas (see README).
# LATTICE_CLUSTER_DIR moves the data and logs elsewhere (benchmarks use it);
# LATTICE_NODE_ARGS adds latticed flags to every node started; LATTICED names
# another latticed binary (benchmarks comparing two builds use it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/node.sh

root=${LATTICE_CLUSTER_DIR:-.cluster}
bin=${LATTICED:-build/node/latticed}
chain=LATTICE_PARTITION

addr() { echo "127.0.0.$((10 + $1))"; }
pidfile() { echo "$root/n$1/pid"; }

start_node() {
  local i=$1 dir=$root/n$1
  mkdir -p "$dir"
  if [[ -f $(pidfile "$i") ]] && _node_alive "$(<"$(pidfile "$i")")"; then
    echo "n$i already running (pid $(<"$(pidfile "$i")"))"
    return 0
  fi
  # Every node gets the same seed list, the one `up` wrote (DESIGN §4 formation).
  local seeds=()
  [[ -f $root/seeds ]] && seeds=(--seeds "$(<"$root/seeds")")
  "$bin" --node-id "n$i" --bind "$(addr "$i")" --port 7379 --peer-port 17379 \
    --data-dir "$dir/data" "${seeds[@]}" ${LATTICE_NODE_ARGS:-} >>"$dir/latticed.log" 2>&1 &
  echo $! >"$(pidfile "$i")"
  wait_for_ping "$(addr "$i")" 7379 15 "$!"
  echo "n$i up on $(addr "$i"):7379 (pid $!)"
}

nodes() { ls -d "$root"/n* 2>/dev/null | sed 's/.*\/n//' | sort -n; }

need_iptables() {
  command -v iptables >/dev/null || { echo "iptables is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
  iptables -L >/dev/null 2>&1 || { echo "iptables is not usable here (needs root and netfilter)" >&2; exit 1; }
}

cmd=${1:-}
case "$cmd" in
  up)
    n=${2:?usage: cluster.sh up N}
    [[ -x $bin ]] || scripts/build.sh
    mkdir -p "$root"
    list=
    for ((i = 1; i <= n; i++)); do list+="${list:+,}$(addr "$i"):17379"; done
    echo "$list" >"$root/seeds"
    for ((i = 1; i <= n; i++)); do start_node "$i"; done
    ;;
  down)
    for i in $(nodes); do
      f=$(pidfile "$i")
      [[ -f $f ]] || continue
      kill_and_wait "$(<"$f")" 20 >/dev/null || true
      rm -f "$f"
      echo "n$i stopped"
    done
    ;;
  status)
    for i in $(nodes); do
      echo "== n$i ($(addr "$i"))"
      timeout 5 redis-cli -h "$(addr "$i")" -p 7379 CLUSTER NODES 2>/dev/null || echo "(not answering)"
    done
    ;;
  kill)
    i=${2:?usage: cluster.sh kill I}
    f=$(pidfile "$i")
    [[ -f $f ]] && kill -KILL "$(<"$f")" 2>/dev/null || true
    rm -f "$f"
    echo "n$i killed"
    ;;
  restart)
    start_node "${2:?usage: cluster.sh restart I}"
    ;;
  partition)
    i=${2:?usage: cluster.sh partition I J} j=${3:?usage: cluster.sh partition I J}
    need_iptables
    iptables -N "$chain" 2>/dev/null || true
    iptables -C OUTPUT -j "$chain" 2>/dev/null || iptables -I OUTPUT -j "$chain"
    iptables -A "$chain" -s "$(addr "$i")" -d "$(addr "$j")" -j DROP
    iptables -A "$chain" -s "$(addr "$j")" -d "$(addr "$i")" -j DROP
    echo "partitioned n$i <-> n$j"
    ;;
  heal)
    need_iptables
    if iptables -L "$chain" >/dev/null 2>&1; then
      iptables -D OUTPUT -j "$chain" 2>/dev/null || true
      iptables -F "$chain"
      iptables -X "$chain"
    fi
    echo "healed"
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
