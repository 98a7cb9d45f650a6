#include "crdt/vector_clock.h"

namespace lattice::crdt {

VectorClock::VectorClock(std::map<ReplicaId, std::uint64_t> entries) {
  for (auto& [replica, count] : entries) {
    if (count != 0) entries_.emplace(replica, count);
  }
}

std::uint64_t VectorClock::Get(ReplicaId replica) const {
  auto it = entries_.find(replica);
  return it == entries_.end() ? 0 : it->second;
}

void VectorClock::Increment(ReplicaId replica) { ++entries_[replica]; }

void VectorClock::Merge(const VectorClock& other) {
  for (const auto& [replica, count] : other.entries_) {
    auto& mine = entries_[replica];
    if (count > mine) mine = count;
  }
}

Causality VectorClock::Compare(const VectorClock& other) const {
  bool less = false;     // some entry of ours is below theirs
  bool greater = false;  // some entry of ours is above theirs
  auto a = entries_.begin();
  auto b = other.entries_.begin();
  while (a != entries_.end() || b != other.entries_.end()) {
    if (b == other.entries_.end() || (a != entries_.end() && a->first < b->first)) {
      greater = true;
      ++a;
    } else if (a == entries_.end() || b->first < a->first) {
      less = true;
      ++b;
    } else {
      if (a->second < b->second) less = true;
      if (a->second > b->second) greater = true;
      ++a;
      ++b;
    }
  }
  if (less && greater) return Causality::kConcurrent;
  if (less) return Causality::kBefore;
  if (greater) return Causality::kAfter;
  return Causality::kEqual;
}

}  // namespace lattice::crdt
