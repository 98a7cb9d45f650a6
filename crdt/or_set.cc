#include "crdt/or_set.h"

namespace lattice::crdt {

ORSet ORSet::Add(ReplicaId replica, const std::string& element) {
  ORSet delta;
  auto& dots = state_.store[element];
  delta.state_.ctx = RemovalDelta(dots).ctx;
  Dot dot = state_.ctx.NextDot(replica);
  delta.state_.ctx.Insert(dot);
  dots.clear();
  dots.emplace(dot, Unit{});
  delta.state_.store[element].emplace(dot, Unit{});
  return delta;
}

ORSet ORSet::Remove(const std::string& element) {
  ORSet delta;
  auto it = state_.store.find(element);
  if (it == state_.store.end()) return delta;
  delta.state_.ctx = RemovalDelta(it->second).ctx;
  state_.store.erase(it);
  return delta;
}

ORSet ORSet::Clear() { return FromDelta(RemoveAll(state_)); }

std::vector<std::string> ORSet::Members() const {
  std::vector<std::string> out;
  out.reserve(state_.store.size());
  for (const auto& entry : state_.store) out.push_back(entry.first);
  return out;
}

Flag Flag::Write(ReplicaId replica, bool enabled) {
  return FromDelta(ReplaceAll(state_.store, state_.ctx, replica, enabled));
}

Flag Flag::Clear() { return FromDelta(RemoveAll(state_)); }

bool Flag::Enabled() const {
  for (const auto& entry : state_.store) {
    if (entry.second) return true;
  }
  return false;
}

}  // namespace lattice::crdt
