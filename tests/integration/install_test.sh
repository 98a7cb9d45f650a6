#!/usr/bin/env bash
# `cmake --install` of the build tree into a temporary prefix, then a consumer
# project outside the tree is built against it twice, with find_package(LatticeKV)
# and with pkg-config, and both binaries run against a real latticed.
#   install_test.sh BUILD_DIR LATTICED
set -euo pipefail
build=$(cd "$1" && pwd)
latticed=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib/node.sh"

tmp=$(mktemp -d /tmp/lattice-install-test.XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill_and_wait "$pid" 10 >/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"
for f in include/lattice/client.h include/lattice/client_async.h lib/liblattice-client.a \
         lib/cmake/LatticeKV/LatticeKVConfig.cmake lib/pkgconfig/lattice-client.pc bin/lattice-cli; do
  [[ -e $tmp/prefix/$f ]] || { echo "install_test: $f was not installed" >&2; exit 1; }
done

echo "== find_package(LatticeKV)"
cmake -S "$here/consumer" -B "$tmp/consumer-build" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/configure.log" ||
  { cat "$tmp/configure.log"; exit 1; }
cmake --build "$tmp/consumer-build" >"$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }

echo "== pkg-config lattice-client"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
g++ -o "$tmp/consumer-pc" "$here/consumer/main.cc" $(pkg-config --cflags --libs lattice-client)

free_port 7600 7699 >/dev/null
port=$NODE_LAST_PORT
free_port 7600 7699 >/dev/null
peer_port=$NODE_LAST_PORT
"$latticed" --node-id c1 --bind 127.0.0.1 --port "$port" --peer-port "$peer_port" --data-dir "$tmp/data" >"$tmp/latticed.log" 2>&1 &
pid=$!
wait_for_ping 127.0.0.1 "$port" 15 "$pid" || { cat "$tmp/latticed.log"; exit 1; }
"$tmp/consumer-build/consumer" "127.0.0.1:$port"
"$tmp/consumer-pc" "127.0.0.1:$port"
"$tmp/prefix/bin/lattice-cli" -p "$port" GET consumer:visits | grep -qx '"10"' ||
  { echo "install_test: the installed lattice-cli did not read 10" >&2; exit 1; }
echo "install_test: ok"
