// VectorClock: replica -> count of events, compared as a partial order.
#pragma once

#include <cstdint>
#include <map>

#include "crdt/dot.h"

namespace lattice::crdt {

enum class Causality { kBefore, kAfter, kEqual, kConcurrent };

class VectorClock {
 public:
  VectorClock() = default;
  explicit VectorClock(std::map<ReplicaId, std::uint64_t> entries);

  std::uint64_t Get(ReplicaId replica) const;
  void Increment(ReplicaId replica);
  // Pointwise maximum.
  void Merge(const VectorClock& other);
  // How this clock relates to `other`: kBefore means this happened before it.
  Causality Compare(const VectorClock& other) const;

  const std::map<ReplicaId, std::uint64_t>& entries() const { return entries_; }
  bool operator==(const VectorClock&) const = default;

 private:
  std::map<ReplicaId, std::uint64_t> entries_;  // no zero entries
};

}  // namespace lattice::crdt
