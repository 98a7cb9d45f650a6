#!/usr/bin/env bash
# Installs what is missing, builds, starts one latticed node on 127.0.0.1 and
# walks through a short narrated session with redis-cli and nc, then starts a
# three-node cluster (scripts/cluster.sh): replication, a killed node and its
# catch-up, then the two client demos (client/examples): presence and the
# shopping cart, each through a partition that is injected and healed. Exits
# 0 only if every node ends with the same view in both demos.
#   scripts/demo.sh [--no-build] [--keep]   --keep leaves the node running
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/node.sh

build=1 keep=0
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    *) echo "usage: scripts/demo.sh [--no-build] [--keep]" >&2; exit 2 ;;
  esac
done
if ((build)); then
  scripts/setup.sh
  scripts/build.sh
fi

port=${DEMO_PORT:-7379}
if port_in_use 127.0.0.1 "$port"; then
  free_port 7380 7480 >/dev/null
  port=$NODE_LAST_PORT
fi
dir=.cluster/demo-n1
rm -rf "$dir"
mkdir -p "$dir"
build/node/latticed --node-id n1 --bind 127.0.0.1 --port "$port" --data-dir "$dir/data" >"$dir/latticed.log" 2>&1 &
pid=$!
cleanup() { ((keep)) || kill_and_wait "$pid" 10 >/dev/null || true; }
trap cleanup EXIT
wait_for_ping 127.0.0.1 "$port" 15 "$pid"

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
run() {
  printf '$ %s\n' "$*"
  "$@"
}
cli() { run redis-cli -p "$port" "$@"; }
# check REGEX CMD...: runs CMD, prints its output, and stops the demo unless the
# output (lines joined by spaces) matches REGEX: each line checks what it narrates.
check() {
  local want=$1 out
  shift
  printf '$ %s\n' "$*"
  out=$("$@" 2>&1) || true
  printf '%s\n' "$out"
  out=$(tr '\n' ' ' <<<"$out")
  if ! [[ $out =~ $want ]]; then
    echo "demo: expected output matching /$want/, got: $out" >&2
    exit 1
  fi
}
# until_ok TIMEOUT_S WHAT REGEX CMD...: waits (polling) until CMD's output matches.
until_ok() {
  local timeout_s=$1 what=$2 want=$3 deadline out
  shift 3
  deadline=$((SECONDS + timeout_s))
  while :; do
    out=$("$@" 2>&1 | tr '\n' ' ') || true
    [[ $out =~ $want ]] && return 0
    ((SECONDS < deadline)) || { echo "demo: $what within ${timeout_s} s did not happen (last: $out)" >&2; exit 1; }
    sleep 0.1
  done
}
ccheck() { local want=$1; shift; check "$want" redis-cli -p "$port" "$@"; }

say "A LatticeKV node on 127.0.0.1:$port, data in $dir/data. Any Redis client works."
ccheck '^PONG $' PING
say "Counters are CRDTs: every replica may increment; a DEL removes exactly what it saw."
ccheck '^1 $' INCR page:views
ccheck '^42 $' INCRBY page:views 41
ccheck '^42 $' GET page:views
say "Inline commands work too, so plain nc is a client:"
check '^:43' bash -c "printf 'INCR page:views\r\n' | nc -q1 127.0.0.1 $port"
say "Registers (last writer wins, but a causally later write always wins):"
ccheck '^OK $' SET greeting "hello, world" EX 3600
ccheck '^hello, world $' GET greeting
ccheck '^(3600|3599) $' TTL greeting
say "Sets are add-wins; each member is its own LMDB record, so large sets stay cheap:"
ccheck '^3 $' SADD cart:alice book pen lamp
ccheck '^1 $' SREM cart:alice pen
ccheck '^(book lamp|lamp book) $' SMEMBERS cart:alice
say "Hashes hold registers or counters per field; fields can expire (Redis 7.4 HEXPIRE):"
cli HSET presence:room1 alice online bob away
cli HINCRBY presence:room1 visits 1
cli HEXPIRE presence:room1 1 FIELDS 1 bob
say "Waiting for bob's field to expire ..."
deadline=$((SECONDS + 10))
until [[ -z $(redis-cli -p "$port" HGET presence:room1 bob) ]]; do
  ((SECONDS < deadline)) || { echo "field did not expire" >&2; exit 1; }
  sleep 0.1
done
ccheck '^(alice online visits 1|visits 1 alice online) $' HGETALL presence:room1
say "A key's type is fixed by its first write:"
ccheck '^WRONGTYPE' SADD page:views x
say "Commands that would need consensus say so instead of pretending:"
ccheck 'consensus' SETNX greeting x
say "EXPLAIN shows the causal metadata behind a key:"
cli EXPLAIN cart:alice
say "Data survives a restart:"
kill_and_wait "$pid" 10 >/dev/null
build/node/latticed --node-id n1 --bind 127.0.0.1 --port "$port" --data-dir "$dir/data" >>"$dir/latticed.log" 2>&1 &
pid=$!
wait_for_ping 127.0.0.1 "$port" 15 "$pid"
ccheck '^43 $' GET page:views
ccheck '^(book lamp|lamp book) $' SMEMBERS cart:alice
if ((keep)); then
  say "Node left running (pid $pid, port $port); stop it with: kill $pid"
else
  kill_and_wait "$pid" 10 >/dev/null
fi

say "Three nodes on 127.0.0.11-13, each started with the same seed list, found one cluster together:"
scripts/cluster.sh down >/dev/null 2>&1 || true
rm -rf .cluster/n1 .cluster/n2 .cluster/n3
trap 'scripts/cluster.sh down >/dev/null 2>&1 || true; cleanup' EXIT
run scripts/cluster.sh up 3
# Formed: every node sees three alive members it has heard from directly.
wait_cluster_formed 3 20 || { echo "the cluster did not form" >&2; exit 1; }
run redis-cli -h 127.0.0.11 -p 7379 CLUSTER NODES
run redis-cli -h 127.0.0.11 -p 7379 CLUSTER REPLICAS cart:bob
c1() { local want=$1; shift; check "$want" redis-cli -h 127.0.0.11 -p 7379 "$@"; }
c2() { local want=$1; shift; check "$want" redis-cli -h 127.0.0.12 -p 7379 "$@"; }
c3() { local want=$1; shift; check "$want" redis-cli -h 127.0.0.13 -p 7379 "$@"; }
bob3='^(bread eggs milk|bread milk eggs|eggs bread milk|eggs milk bread|milk bread eggs|milk eggs bread) $'
say "A write on n1 is read on n2 (QUORUM by default: 2 of 3 replicas acknowledge, 2 answer reads):"
c1 '^2 $' SADD cart:bob milk eggs
c1 '^12 $' INCRBY stock:eggs 12
c2 '^(eggs milk|milk eggs) $' SMEMBERS cart:bob
c2 '^12 $' GET stock:eggs
say "Kill n3: its connections close, so its peers count it unreachable at once; CLUSTER NODES marks it"
echo "suspect within a few seconds:"
run scripts/cluster.sh kill 3
until_ok 5 "ALL refused at once after the kill" '^UNAVAILABLE' redis-cli -h 127.0.0.11 -p 7379 CL ALL GET stock:eggs
deadline=$((SECONDS + 20))
until redis-cli -h 127.0.0.11 -p 7379 CLUSTER NODES | grep -Eq '^n3 .* (suspect|dead) '; do
  ((SECONDS < deadline)) || { echo "n3 was not detected" >&2; exit 1; }
  sleep 0.2
done
run redis-cli -h 127.0.0.11 -p 7379 CLUSTER NODES
say "QUORUM keeps working with 2 of 3 replicas:"
c1 '^1 $' SADD cart:bob bread
c2 '^10 $' DECRBY stock:eggs 2
c2 "$bob3" SMEMBERS cart:bob
say "ALL refuses at once, naming what is missing, instead of waiting or answering less:"
c1 '^UNAVAILABLE need 3 of 3 replicas, 2 reachable' CL ALL SADD cart:bob jam
c2 '^UNAVAILABLE need 3 of 3 replicas, 2 reachable' CL ALL GET stock:eggs
say "Restart n3 on its data: anti-entropy brings it up to date; a ONE read on n3 shows its own copy:"
run scripts/cluster.sh restart 3
until_ok 20 "n3 catching up on stock:eggs" '^10 $' redis-cli -h 127.0.0.13 -p 7379 CL ONE GET stock:eggs
until_ok 20 "n3 catching up on cart:bob" "$bob3" redis-cli -h 127.0.0.13 -p 7379 CL ONE SMEMBERS cart:bob
c3 "$bob3" CL ONE SMEMBERS cart:bob
c3 '^10 $' CL ONE GET stock:eggs
# Every node must count n3 reachable again before ALL works through it.
for i in 1 2 3; do
  until_ok 20 "ALL working through n$i" '^(bread eggs milk|bread milk eggs|eggs bread milk|eggs milk bread|milk bread eggs|milk eggs bread) $' \
    redis-cli -h "127.0.0.1$i" -p 7379 CL ALL SMEMBERS cart:bob
done
say "With n3 back, ALL works again:"
c1 '^1 $' CL ALL SADD cart:bob jam
c3 '^(.* )?jam ' CL ALL SMEMBERS cart:bob
run redis-cli -h 127.0.0.11 -p 7379 INFO replication

# The client demos: C++ programs on lattice::Client (client/examples).
nodes=127.0.0.11:7379,127.0.0.12:7379,127.0.0.13:7379
partition_args=()
if [[ $(id -u) -eq 0 ]] && iptables -w -L -n >/dev/null 2>&1; then
  partition_args=(--partition-cmd "scripts/cluster.sh partition 1 2 && scripts/cluster.sh partition 1 3"
                  --heal-cmd "scripts/cluster.sh heal")
else
  say "(iptables needs root: the demos below run without their partition.)"
fi
trap 'scripts/cluster.sh heal >/dev/null 2>&1 || true; scripts/cluster.sh down >/dev/null 2>&1 || true; cleanup' EXIT
say "Demo 1, presence (client/examples/presence)"
echo "Simulated users keep their status in one map, each field with a TTL that their heartbeats renew."
echo "Every node's view comes from SUBSCRIBE on that node. Watch users who stop heartbeating vanish"
echo "everywhere, two devices racing to set one status, and what each side of a partition sees."
run build/client/presence --nodes "$nodes" "${partition_args[@]}"
say "Demo 2, the shopping cart (client/examples/cart)"
echo "Two shoppers on different nodes edit one cart while the network is split; the cart merges when"
echo "it heals, and checkout reads it at ALL."
run build/client/cart --nodes "$nodes" "${partition_args[@]}"
run scripts/cluster.sh down
say "Done: both demos ended with every node holding the same view."
