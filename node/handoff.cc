// Replicator::Impl, the repair half (DESIGN §2-§4): when anti-entropy and
// tombstone collection run and what those components (gossip/anti_entropy.h,
// gossip/collector.h) ask of the ring, a joining node's pulls and a leaving
// node's hand-off. The request paths are in node/replicator.cc and
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
  env.Commit(std::move(work), [wk = weak(), next](Status s) {
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

bool Replicator::Impl::AskedRecently(std::uint32_t p, const std::string& peer, std::uint64_t now) {
  auto& at = sync_asked[{p, peer}];
  if (at != 0 && now < at + kSyncRetryMs) return true;
  at = now;
  return false;
}

void Replicator::Impl::SyncRound() {
  std::map<std::string, std::vector<std::uint32_t>> asks;
  bool done = true;
  bool joining = false;
  const std::uint64_t now = env.NowMs();
  {
    std::lock_guard lock(mu);
    joining = view.joining.count(self) > 0;
    if (stopped || (!joining && pulling.empty())) return;
    // Nothing to pull from until a member that serves reads is known (a
    // node that has not heard of its cluster yet would otherwise be "done").
    bool known = false;
    for (const auto& m : view.members) known = known || (m != self && !view.joining.count(m));
    if (!known) return;
    for (std::uint32_t p = 0; p < ring.partitions(); ++p) {
      auto mine = ring.Replicas(p);
      if (std::find(mine.begin(), mine.end(), self) == mine.end()) {
        pulling.erase(p);
        continue;
      }
      if (!joining && !pulling.count(p)) continue;
      // Pull from every replica that serves the partition, old or new.
      std::set<std::string> peers;
      for (const auto& r : ring.Replicas(p)) peers.insert(r);
      for (const auto& r : read_ring.Replicas(p)) peers.insert(r);
      bool pulled = true, any = false, asking = false;
      for (const auto& peer : peers) {
        if (peer == self || view.joining.count(peer)) continue;
        if (synced.count({p, peer})) {
          any = true;
          continue;
        }
        if (!joining && !view.reachable.count(peer)) continue;
        pulled = false;
        // One peer at a time (the next then sends only what the first
        // lacked), every kSyncRetryMs: each answer sends what fits in half
        // the link's queue (SendBulk), the next ask what is still missing.
        if (!view.reachable.count(peer) || asking) continue;
        asking = true;
        if (AskedRecently(p, peer, now)) continue;
        asks[peer].push_back(p);
      }
      if (!joining && pulled && (any || peers.size() <= 1)) {
        pulling.erase(p);
        if (pulling.empty()) spdlog::info("pulled every partition gained by a membership change; serving their reads");
      }
      done = done && pulled;
    }
  }
  if (joining && done) return env.Joined();
  for (const auto& [peer, parts] : asks) ae->SendRoots(peer, parts, gossip::AntiEntropy::Roots::kSync);
}

void Replicator::Impl::HandOffRound() {
  std::map<std::string, std::vector<std::uint32_t>> asks;
  bool done = true;
  const std::uint64_t at = env.NowMs();
  {
    std::lock_guard lock(mu);
    if (stopped || handed_off || !view.leaving.count(self)) return;
    for (std::uint32_t p = 0; p < ring.partitions(); ++p) {
      auto now = ring.Replicas(p);
      if (std::find(now.begin(), now.end(), self) == now.end()) continue;
      for (const auto& heir : next_ring.Replicas(p)) {
        if (std::find(now.begin(), now.end(), heir) != now.end()) continue;
        if (auto it = synced.find({p, heir}); it != synced.end()) {
          if (it->second == engine.store().PartitionRoot(p)) continue;
          synced.erase(it);  // changed since: compare again
        }
        done = false;
        if (view.reachable.count(heir) && !AskedRecently(p, heir, at)) asks[heir].push_back(p);
      }
    }
    handed_off = done;
  }
  if (done) return env.HandedOff();
  for (const auto& [peer, parts] : asks) ae->SendRoots(peer, parts, gossip::AntiEntropy::Roots::kSync);
}

}  // namespace lattice::node
