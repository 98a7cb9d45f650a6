// PartitionSync (gossip/partition_sync.h).
#include "gossip/partition_sync.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace lattice::gossip {

namespace {
bool Has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }
}  // namespace

bool PartitionSync::AskedRecently(std::uint32_t p, const std::string& peer, std::uint64_t now) {
  auto& at = asked_[{p, peer}];
  if (at != 0 && now < at + kRetryMs) return true;
  at = now;
  return false;
}

PartitionSync::Step PartitionSync::Pull(const Layout& l, std::uint64_t now) {
  Step step;
  const bool joining = l.Joining(self_);
  std::lock_guard lock(mu_);
  if (!joining && pulling_.empty()) return step;
  // Nothing to pull from until a member that serves reads is known (a node
  // that has not heard of its cluster yet would otherwise be "done").
  bool known = false;
  for (const auto& m : l.Members()) known = known || (m != self_ && !l.Joining(m));
  if (!known) return step;
  bool done = true;
  for (std::uint32_t p = 0; p < l.partitions(); ++p) {
    if (!Has(l.Now(p), self_)) {
      pulling_.erase(p);
      continue;
    }
    if (!joining && !pulling_.count(p)) continue;
    // Pull from every replica that serves the partition, old or new.
    std::set<std::string> peers(l.Now(p).begin(), l.Now(p).end());
    peers.insert(l.Before(p).begin(), l.Before(p).end());
    bool pulled = true, any = false, asking = false;
    for (const auto& peer : peers) {
      if (peer == self_ || l.Joining(peer)) continue;
      if (synced_.count({p, peer})) {
        any = true;
        continue;
      }
      if (!joining && !l.Reachable(peer)) continue;
      pulled = false;
      // One peer at a time (the next then sends only what the first
      // lacked), every kRetryMs: each answer sends what fits in half the
      // link's queue (SendBulk), the next ask what is still missing.
      if (!l.Reachable(peer) || asking) continue;
      asking = true;
      if (AskedRecently(p, peer, now)) continue;
      step.asks[peer].push_back(p);
    }
    if (!joining && pulled && (any || peers.size() <= 1)) {
      pulling_.erase(p);
      if (pulling_.empty()) spdlog::info("pulled every partition gained by a membership change; serving their reads");
    }
    done = done && pulled;
  }
  step.done = joining && done;
  if (step.done) step.asks.clear();
  return step;
}

PartitionSync::Step PartitionSync::HandOff(const Layout& l, std::uint64_t now) {
  Step step;
  std::lock_guard lock(mu_);
  if (handed_off_ || !l.Leaving(self_)) return step;
  bool done = true;
  for (std::uint32_t p = 0; p < l.partitions(); ++p) {
    const auto& replicas = l.Now(p);
    if (!Has(replicas, self_)) continue;
    for (const auto& heir : l.After(p)) {
      if (Has(replicas, heir)) continue;
      if (auto it = synced_.find({p, heir}); it != synced_.end()) {
        if (it->second == store_.PartitionRoot(p)) continue;
        synced_.erase(it);  // changed since: compare again
      }
      done = false;
      if (l.Reachable(heir) && !AskedRecently(p, heir, now)) step.asks[heir].push_back(p);
    }
  }
  handed_off_ = done;
  step.done = done;
  if (done) step.asks.clear();
  return step;
}

void PartitionSync::Changed(const Layout& l, const std::vector<bool>& had, bool first_view, bool started_leaving) {
  std::lock_guard lock(mu_);
  if (!first_view && !l.Joining(self_)) {
    for (std::uint32_t p = 0; p < l.partitions(); ++p) {
      const auto& r = l.Now(p);
      if ((p < had.size() && had[p]) || !Has(r, self_)) continue;
      pulling_.insert(p);
      for (const auto& peer : r) synced_.erase({p, peer});
    }
  }
  if (started_leaving) {
    for (std::uint32_t p = 0; p < l.partitions(); ++p) {
      for (const auto& heir : l.After(p)) synced_.erase({p, heir});
    }
  }
}

void PartitionSync::Matched(std::uint32_t p, const std::string& from, const merkle::Digest& root) {
  std::lock_guard lock(mu_);
  synced_[{p, from}] = root;
}

bool PartitionSync::Pulling(std::uint32_t p) const {
  std::lock_guard lock(mu_);
  return pulling_.count(p) > 0;
}

}  // namespace lattice::gossip
