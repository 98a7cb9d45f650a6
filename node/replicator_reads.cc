// Replicator::Impl, the read side of its ring: which replicas serve a key's
// reads (for the read coordinator, node/read_coordinator.h) and who reports
// a swept key to its watchers. The shared state is declared in
// node/replicator_internal.h.
#include "node/replicator_internal.h"

namespace lattice::node {

std::vector<std::string> Replicator::Impl::ReachableReplicasLocked(const std::vector<std::string>& replicas, std::string_view key) const {
  std::vector<std::string> order;
  auto serves = [&](const std::string& r) { return view.reachable.count(r) && !view.joining.count(r); };
  if (serves(self) && !sync->Pulling(ring.PartitionOf(key)) &&
      std::find(replicas.begin(), replicas.end(), self) != replicas.end()) {
    order.push_back(self);
  }
  for (const auto& r : replicas) {
    if (r != self && serves(r)) order.push_back(r);
  }
  return order;
}

std::optional<std::pair<std::size_t, std::vector<std::string>>> Replicator::Impl::Serving(const std::string& key) {
  std::lock_guard lock(mu);
  if (stopped) return std::nullopt;
  const auto& replicas = ring.ReplicasOf(key);
  return std::make_pair(replicas.size(), ReachableReplicasLocked(replicas, key));
}

void Replicator::Impl::Swept(const std::vector<std::string>& keys) {
  for (const auto& key : keys) {
    bool first = false;
    {
      std::lock_guard lock(mu);
      auto replicas = ReachableReplicasLocked(ring.ReplicasOf(key), key);
      first = !replicas.empty() && replicas.front() == self;
    }
    if (first) watch.Changed(key);
  }
}

}  // namespace lattice::node
