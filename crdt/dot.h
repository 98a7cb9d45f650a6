// Replica ids and dots: the unit of causality shared by every CRDT here.
#pragma once

#include <compare>
#include <cstdint>
#include <string_view>

namespace lattice::crdt {

// A replica id stands for (node name, incarnation). A node that starts on an empty
// data directory takes a fresh incarnation and therefore a fresh replica id, so a
// rebuilt node never mints a dot its earlier life already used (DESIGN §2).
using ReplicaId = std::uint64_t;

// Derives the replica id from the node name and incarnation (xxh3-64 of both).
ReplicaId MakeReplicaId(std::string_view node_name, std::uint64_t incarnation);

// One event: the `counter`-th event minted by `replica` for a given key.
struct Dot {
  ReplicaId replica = 0;
  std::uint64_t counter = 0;
  auto operator<=>(const Dot&) const = default;
};

}  // namespace lattice::crdt
