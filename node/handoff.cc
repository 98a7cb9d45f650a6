// Replicator::Impl, the repair half (DESIGN §2-§4): when anti-entropy and
// tombstone collection run and what those components (gossip/anti_entropy.h,
// gossip/collector.h) ask of the ring (a joining node's pulls and a leaving
// node's hand-off: gossip/partition_sync.h, driven from Tick). The request paths are in node/replicator.cc and
// node/replicator_reads.cc; the shared state is declared in
// node/replicator_internal.h.
#include "node/replicator_internal.h"

namespace lattice::node {

void Replicator::Impl::PruneRequests() {
  const std::uint64_t now = env.NowMs();
  if (now < opt.request_memory_ms) return;
  auto next = std::make_shared<std::string>();
  std::string cursor;
  {
    std::lock_guard lock(mu);
    cursor = prune_cursor;
  }
  storage::Store::Work work = [next, cursor, before = now - opt.request_memory_ms](storage::Txn& t) {
    auto r = t.PruneRequests(cursor, before, 2000);
    if (!r.ok()) return r.status();
    *next = std::move(*r);
    return Status::Ok();
  };
  env.Commit(std::move(work), [wk = weak_from_this(), next](Status s) {
    auto im = wk.lock();
    if (!im || !s.ok()) return;
    std::lock_guard lock(im->mu);
    im->prune_cursor = *next;
  });
}

void Replicator::Impl::AntiEntropyRound() {
  // The storage overlay is nearly full: repairs wait for the checkpoint (DESIGN §3).
  if (engine.store().Pressured()) return;
  PruneRequests();
  collector->Round();
  std::string peer;
  {
    std::lock_guard lock(mu);
    std::vector<std::string> peers;
    for (const auto& m : view.reachable) {
      if (m != self && !view.joining.count(m)) peers.push_back(m);
    }
    if (peers.empty()) return;
    peer = peers[rng() % peers.size()];
  }
  ExchangeRoots(peer);
}

std::vector<std::optional<std::set<std::string>>> Replicator::Impl::Placement(const std::vector<std::string>& keys) {
  std::vector<std::optional<std::set<std::string>>> out;
  out.reserve(keys.size());
  std::lock_guard lock(mu);
  for (const auto& key : keys) {
    const std::uint32_t p = ring.PartitionOf(key);
    std::set<std::string> replicas;
    for (const auto& r : ring.Replicas(p)) replicas.insert(r);
    for (const auto& r : read_ring.Replicas(p)) replicas.insert(r);
    bool all_reachable = replicas.count(self) > 0;  // not ours (any more): left to its replicas
    for (const auto& r : replicas) all_reachable = all_reachable && view.reachable.count(r) > 0;
    if (!all_reachable || stopped) {
      out.emplace_back(std::nullopt);
      continue;
    }
    replicas.erase(self);
    out.emplace_back(std::move(replicas));
  }
  return out;
}

void Replicator::Impl::ExchangeRoots(const std::string& peer) {
  std::vector<std::uint32_t> shared;
  {
    std::lock_guard lock(mu);
    // A joining node pulls by its own rounds (SyncRound); a round with it
    // would only send the same states again.
    if (stopped || view.joining.count(self) || view.joining.count(peer) || !view.reachable.count(peer)) return;
    for (std::uint32_t p = 0; p < ring.partitions(); ++p) {
      auto r = ring.Replicas(p);
      if (std::find(r.begin(), r.end(), self) != r.end() && std::find(r.begin(), r.end(), peer) != r.end()) {
        shared.push_back(p);
      }
    }
  }
  ae->Exchange(peer, shared);
}

bool Replicator::Impl::Replicates(std::uint32_t p, const std::string& member) {
  std::lock_guard lock(mu);
  if (p >= ring.partitions()) return false;
  for (const Ring* g : {&ring, &read_ring, &next_ring}) {
    auto r = g->Replicas(p);
    if (std::find(r.begin(), r.end(), member) != r.end()) return true;
  }
  return false;
}

}  // namespace lattice::node
