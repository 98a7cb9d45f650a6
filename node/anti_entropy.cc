// Replicator::Impl, the repair half (DESIGN §2-§4): anti-entropy rounds and
// the Merkle descent, a joining node's pulls and a leaving node's hand-off
// (tombstone collection: node/tombstones.cc). The request paths are in node/replicator.cc and
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
  CollectRound();
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
    ++stats.ae_rounds;
  }
  if (shared.empty()) return;
  env.Send(peer, RootsMessage(shared, Roots::kRound), false);
}

std::string Replicator::Impl::RootsMessage(const std::vector<std::uint32_t>& parts, Roots kind) {
  storage::Store& store = engine.store();
  {
    std::lock_guard lock(mu);
    stats.ae_tree_bytes_sent += parts.size() * 20;
  }
  return Build(WallHlc(), [&](auto root) {
    auto m = root.initAeRoots();
    m.setSync(kind == Roots::kSync);
    m.setAnswer(kind == Roots::kAnswer);
    m.setConfirm(kind == Roots::kConfirm);
    auto list = m.initRoots(static_cast<unsigned>(parts.size()));
    for (unsigned i = 0; i < parts.size(); ++i) {
      merkle::Digest d = store.PartitionRoot(parts[i]);
      list[i].setPartition(parts[i]);
      list[i].setHi(d.hi);
      list[i].setLo(d.lo);
    }
  });
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

void Replicator::Impl::OnAeRoots(const std::string& from, std::vector<std::pair<std::uint32_t, merkle::Digest>> roots, Roots kind) {
  storage::Store& store = engine.store();
  const bool sync = kind == Roots::kSync;
  if (kind == Roots::kAnswer) {
    // Roots we asked for while joining: a partition equal to this peer's is
    // pulled from it.
    std::lock_guard lock(mu);
    for (const auto& [p, digest] : roots) {
      if (p < ring.partitions() && store.PartitionRoot(p) == digest) synced[{p, from}] = digest;
    }
    return;
  }
  if (sync) {
    std::vector<std::uint32_t> asked;
    for (const auto& [p, digest] : roots) {
      if (p < ring.partitions()) asked.push_back(p);
    }
    env.Send(from, RootsMessage(asked, Roots::kAnswer), false);
  }
  for (const auto& [p, digest] : roots) {
    if (!Replicates(p, self) || !Replicates(p, from)) continue;
    if (kind != Roots::kRound) {
      if (store.PartitionRoot(p) == digest) continue;
    } else {
      // Only a difference seen twice is repaired: one seen once is most
      // often a delta still in flight. The second look comes ae_confirm_ms
      // later (Tick sends our roots back with `confirm`), or in the next
      // round.
      std::lock_guard lock(mu);
      auto& seen = ae_differing[from];
      if (store.PartitionRoot(p) == digest) {
        seen.erase(p);
        continue;
      }
      if (seen.insert(p).second) {
        auto& recheck = ae_recheck[from];
        if (recheck.second.empty()) recheck.first = env.NowMs() + opt.ae_confirm_ms;
        recheck.second.push_back(p);
        continue;
      }
    }
    {
      std::lock_guard lock(mu);
      ++stats.ae_partitions_differing;
    }
    StartDescent(from, p);
  }
}

void Replicator::Impl::SendNodes(const std::string& to, std::uint32_t p, const merkle::Tree& tree, int level, const std::vector<std::uint32_t>& indices) {
  {
    std::lock_guard lock(mu);
    stats.ae_tree_bytes_sent += indices.size() * 20;
  }
  env.Send(to, Build(WallHlc(), [&](auto root) {
             auto m = root.initAeNodes();
             m.setPartition(p);
             m.setLevel(static_cast<std::uint8_t>(level));
             auto idx = m.initIndices(static_cast<unsigned>(indices.size()));
             auto dig = m.initDigests(static_cast<unsigned>(2 * indices.size()));
             for (unsigned i = 0; i < indices.size(); ++i) {
               const merkle::Digest& d = tree.Node(level, indices[i]);
               idx.set(i, indices[i]);
               dig.set(2 * i, d.hi);
               dig.set(2 * i + 1, d.lo);
             }
           }),
           false);
}

void Replicator::Impl::StartDescent(const std::string& to, std::uint32_t p) {
  merkle::Tree tree = engine.store().PartitionTree(p);
  const int level = std::min(kAeStep, tree.leaf_bits());
  std::vector<std::uint32_t> all(std::size_t{1} << level);
  for (std::uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  SendNodes(to, p, tree, level, all);
}

void Replicator::Impl::OnAeNodes(const std::string& from, std::uint32_t p, int level, const std::vector<std::uint32_t>& indices, const std::vector<merkle::Digest>& digests) {
  if (!Replicates(p, self) || !Replicates(p, from)) return;
  merkle::Tree tree = engine.store().PartitionTree(p);
  if (level > tree.leaf_bits() || indices.size() != digests.size()) return;
  std::vector<std::uint32_t> differing, remote_empty;
  for (std::size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] >= (std::uint32_t{1} << level)) return;
    if (tree.Node(level, indices[i]) == digests[i]) continue;
    if (level == tree.leaf_bits() && digests[i] == merkle::Digest{}) {
      remote_empty.push_back(indices[i]);
    } else {
      differing.push_back(indices[i]);
    }
  }
  if (level < tree.leaf_bits()) {
    if (differing.empty()) return;
    const int next = std::min(level + kAeStep, tree.leaf_bits());
    const int shift = next - level;
    std::vector<std::uint32_t> children;
    for (std::uint32_t d : differing) {
      for (std::uint32_t c = d << shift; c < (d + 1) << shift; ++c) children.push_back(c);
    }
    return SendNodes(from, p, tree, next, children);
  }
  if (!remote_empty.empty()) SendStates(from, LeafKeys(tree, remote_empty));
  if (!differing.empty()) SendKeyDigests(from, p, tree, differing);
}

std::vector<std::pair<std::string, merkle::Digest>> Replicator::Impl::KeyDigestsIn(const merkle::Tree& tree, std::vector<std::uint32_t>& leaves) {
  std::vector<std::pair<std::string, merkle::Digest>> out;
  std::size_t listed = 0;
  Status s = engine.store().Read([&](storage::Txn& t) {
    for (; listed < leaves.size() && out.size() < opt.ae_max_keys; ++listed) {
      const auto [first, last] = tree.LeafRange(leaves[listed]);
      Status st = t.KeyDigests(first, last, [&](std::string_view key, const merkle::Digest& d) {
        out.emplace_back(std::string(key), d);
      });
      if (!st.ok()) return st;
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    spdlog::error("anti-entropy digest scan: {}", s.ToString());
    out.clear();
    listed = 0;
  }
  leaves.resize(listed);
  return out;
}

void Replicator::Impl::SendKeyDigests(const std::string& to, std::uint32_t p, const merkle::Tree& tree, std::vector<std::uint32_t> leaves) {
  auto keys = KeyDigestsIn(tree, leaves);
  if (leaves.empty()) return;
  std::uint64_t bytes = leaves.size() * 4;
  for (const auto& [key, d] : keys) bytes += key.size() + 16;
  {
    std::lock_guard lock(mu);
    stats.ae_tree_bytes_sent += bytes;
  }
  env.Send(to, Build(WallHlc(), [&](auto root) {
             auto m = root.initAeKeys();
             m.setPartition(p);
             auto l = m.initLeaves(static_cast<unsigned>(leaves.size()));
             for (unsigned i = 0; i < leaves.size(); ++i) l.set(i, leaves[i]);
             auto k = m.initKeys(static_cast<unsigned>(keys.size()));
             for (unsigned i = 0; i < keys.size(); ++i) {
               k[i].setKey(Bytes(keys[i].first));
               k[i].setHi(keys[i].second.hi);
               k[i].setLo(keys[i].second.lo);
             }
           }),
           false);
}

void Replicator::Impl::OnAeKeys(const std::string& from, std::uint32_t p, std::vector<std::uint32_t> leaves, const std::vector<std::pair<std::string, merkle::Digest>>& theirs) {
  if (!Replicates(p, self) || !Replicates(p, from)) return;
  merkle::Tree tree = engine.store().PartitionTree(p);
  for (auto l : leaves) {
    if (l >= tree.leaves()) return;
  }
  const std::set<std::uint32_t> asked(leaves.begin(), leaves.end());
  std::map<std::string_view, merkle::Digest> remote;
  for (const auto& [key, d] : theirs) {
    const std::uint64_t h = storage::KeyHash(key);
    if (engine.store().PartitionOfHash(h) == p && asked.count(tree.LeafOf(h))) remote.emplace(key, d);
  }
  const std::size_t n = leaves.size();
  auto mine = KeyDigestsIn(tree, leaves);
  if (leaves.size() < n) {  // too many keys here: the leaves not listed wait for a later round
    const std::set<std::uint32_t> kept(leaves.begin(), leaves.end());
    for (auto it = remote.begin(); it != remote.end();) {
      it = kept.count(tree.LeafOf(storage::KeyHash(it->first))) ? std::next(it) : remote.erase(it);
    }
  }
  std::vector<std::string> send, want;
  for (const auto& [key, d] : mine) {
    auto it = remote.find(key);
    if (it == remote.end() || !(it->second == d)) send.push_back(key);
    if (it != remote.end()) {
      if (!(it->second == d)) want.emplace_back(key);
      remote.erase(it);
    }
  }
  for (const auto& [key, d] : remote) want.emplace_back(key);
  if (!send.empty()) SendStates(from, send);
  if (want.empty()) return;
  env.Send(from, Build(WallHlc(), [&](auto root) {
             auto m = root.initAeWant();
             m.setPartition(p);
             auto k = m.initKeys(static_cast<unsigned>(want.size()));
             for (unsigned i = 0; i < want.size(); ++i) k.set(i, Bytes(want[i]));
           }),
           false);
}

void Replicator::Impl::OnAeWant(const std::string& from, std::uint32_t p, std::vector<std::string> keys) {
  if (!Replicates(p, self) || !Replicates(p, from)) return;
  std::erase_if(keys, [&](const std::string& k) {
    return engine.store().PartitionOfHash(storage::KeyHash(k)) != p;
  });
  if (keys.size() > opt.ae_max_keys) keys.resize(opt.ae_max_keys);
  SendStates(from, keys);
}

std::vector<std::string> Replicator::Impl::LeafKeys(const merkle::Tree& tree, const std::vector<std::uint32_t>& leaves) {
  std::vector<std::string> keys;
  Status s = engine.store().Read([&](storage::Txn& t) {
    for (auto leaf : leaves) {
      const auto [first, last] = tree.LeafRange(leaf);
      auto r = t.ScanKeys(first, opt.ae_max_keys, [&](std::string_view key) {
        if (storage::KeyHash(key) > last) return false;
        keys.emplace_back(key);
        return true;
      });
      if (!r.ok()) return r.status();
      if (keys.size() >= opt.ae_max_keys) break;
    }
    return Status::Ok();
  });
  if (!s.ok()) spdlog::error("anti-entropy scan: {}", s.ToString());
  return keys;
}

bool Replicator::Impl::AeBudget(std::size_t bytes) {
  if (opt.ae_bytes_per_s == 0) return true;
  std::lock_guard lock(mu);
  const std::uint64_t now = env.NowMs();
  const double rate = static_cast<double>(opt.ae_bytes_per_s);
  ae_tokens = std::min(rate, ae_tokens + static_cast<double>(now - std::min(now, ae_refilled_ms)) * rate / 1000);
  ae_refilled_ms = now;
  if (ae_tokens <= 0) {
    ++stats.ae_throttled;
    return false;
  }
  ae_tokens -= static_cast<double>(bytes);
  return true;
}

void Replicator::Impl::SendStates(const std::string& to, const std::vector<std::string>& keys) {
  std::uint64_t bytes = 0, sent = 0;
  Status s = engine.store().Read([&](storage::Txn& t) {
    for (const auto& key : keys) {
      auto loaded = t.Load(key, storage::Members::All());
      if (!loaded.ok()) continue;
      std::string encoded = crdt::EncodeKeyState(loaded->state);
      if (!AeBudget(encoded.size() + key.size())) break;
      if (!SendState(to, key, encoded, false, true)) {
        std::lock_guard lock(mu);
        ++stats.ae_queue_full;
        break;
      }
      bytes += encoded.size() + key.size();
      ++sent;
    }
    return Status::Ok();
  });
  if (!s.ok()) spdlog::error("anti-entropy read: {}", s.ToString());
  std::lock_guard lock(mu);
  stats.ae_keys_sent += sent;
  stats.ae_bytes_sent += bytes;
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
  for (const auto& [peer, parts] : asks) env.Send(peer, RootsMessage(parts, Roots::kSync), false);
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
  for (const auto& [peer, parts] : asks) env.Send(peer, RootsMessage(parts, Roots::kSync), false);
}

}  // namespace lattice::node
