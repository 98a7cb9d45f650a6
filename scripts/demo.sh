#!/usr/bin/env bash
# Installs what is missing, builds, starts one latticed node on 127.0.0.1 and
# walks through a short narrated session with redis-cli and nc, then stops it.
# (The three-node cluster demo arrives with the cluster layer.)
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

say "A LatticeKV node on 127.0.0.1:$port, data in $dir/data. Any Redis client works."
cli PING
say "Counters are CRDTs: every replica may increment; a DEL removes exactly what it saw."
cli INCR page:views
cli INCRBY page:views 41
cli GET page:views
say "Inline commands work too, so plain nc is a client:"
run bash -c "printf 'INCR page:views\r\n' | nc -q1 127.0.0.1 $port"
say "Registers (last writer wins, but a causally later write always wins):"
cli SET greeting "hello, world" EX 3600
cli GET greeting
cli TTL greeting
say "Sets are add-wins; each member is its own LMDB record, so large sets stay cheap:"
cli SADD cart:alice book pen lamp
cli SREM cart:alice pen
cli SMEMBERS cart:alice
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
cli HGETALL presence:room1
say "A key's type is fixed by its first write:"
cli SADD page:views x || true
say "Commands that would need consensus say so instead of pretending:"
cli SETNX greeting x || true
say "EXPLAIN shows the causal metadata behind a key:"
cli EXPLAIN cart:alice
say "Data survives a restart:"
kill_and_wait "$pid" 10 >/dev/null
build/node/latticed --node-id n1 --bind 127.0.0.1 --port "$port" --data-dir "$dir/data" >>"$dir/latticed.log" 2>&1 &
pid=$!
wait_for_ping 127.0.0.1 "$port" 15 "$pid"
cli GET page:views
cli SMEMBERS cart:alice
if ((keep)); then
  say "Node left running (pid $pid, port $port); stop it with: kill $pid"
else
  say "Done; stopping the node."
fi
