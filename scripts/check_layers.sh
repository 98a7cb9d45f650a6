#!/usr/bin/env bash
# Checks the module rules of DESIGN §1 on the sources (run by ctest):
#   crdt/ and merkle/ do no I/O: no Asio, LMDB, sockets, files or streams to files;
#   only storage/ includes <lmdb.h>;
#   no module includes a module above it.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0

fail() { echo "layering: $*" >&2; status=1; }

io_pattern='#include <(asio(\.hpp)?|asio/.*|lmdb\.h|sys/socket\.h|netinet/.*|arpa/.*|unistd\.h|fcntl\.h|fstream|cstdio|stdio\.h|filesystem|spdlog/.*)>'
for dir in crdt merkle; do
  [[ -d $dir ]] || continue
  if hits=$(grep -nE "$io_pattern" "$dir"/* 2>/dev/null); then
    fail "$dir/ must do no I/O:"$'\n'"$hits"
  fi
done

if hits=$(grep -rnE '#include <lmdb\.h>' --include='*.h' --include='*.cc' . 2>/dev/null |
          grep -vE '^\./(storage|build)/'); then
  fail "only storage/ may include <lmdb.h>:"$'\n'"$hits"
fi

# module -> modules it must not include
declare -A forbidden=(
  [crdt]="storage merkle gossip node client"
  [merkle]="crdt storage gossip node client"
  [storage]="gossip node client"
  [gossip]="node client"
  [client]="crdt storage merkle gossip node"
)
for module in "${!forbidden[@]}"; do
  [[ -d $module ]] || continue
  for above in ${forbidden[$module]}; do
    if hits=$(grep -rnE "#include \"$above/" "$module" 2>/dev/null); then
      fail "$module/ must not include $above/:"$'\n'"$hits"
    fi
  done
done

((status == 0)) && echo "layering: ok"
exit $status
