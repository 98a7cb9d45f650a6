// AntiEntropy (gossip/anti_entropy.h): roots, the Merkle descent, key
// digests and whole states.
#include "gossip/anti_entropy.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "crdt/codec.h"
#include "gossip/wire.h"

namespace lattice::gossip {

AntiEntropy::AntiEntropy(PeerEnv& env, storage::Store& store, std::string self, Options options, Hooks hooks)
    : env_(env), store_(store), self_(std::move(self)), opt_(options), hooks_(std::move(hooks)) {}

void AntiEntropy::Count(std::uint64_t Stats::*field, std::uint64_t n) {
  std::lock_guard lock(mu_);
  stats_.*field += n;
}

AntiEntropy::Stats AntiEntropy::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void AntiEntropy::Stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
}

bool AntiEntropy::Shared(std::uint32_t p, const std::string& peer) const {
  return p < opt_.partitions && hooks_.replicates(p, self_) && hooks_.replicates(p, peer);
}

void AntiEntropy::Exchange(const std::string& peer, const std::vector<std::uint32_t>& shared) {
  Count(&Stats::rounds, 1);
  if (!shared.empty()) SendRoots(peer, shared, Roots::kRound);
}

void AntiEntropy::SendRoots(const std::string& to, const std::vector<std::uint32_t>& parts, Roots kind) {
  Count(&Stats::tree_bytes_sent, parts.size() * 20);
  env_.Send(to, BuildPeerMessage(env_.WallHlc(), [&](auto root) {
              auto m = root.initAeRoots();
              m.setSync(kind == Roots::kSync);
              m.setAnswer(kind == Roots::kAnswer);
              m.setConfirm(kind == Roots::kConfirm);
              auto list = m.initRoots(static_cast<unsigned>(parts.size()));
              for (unsigned i = 0; i < parts.size(); ++i) {
                merkle::Digest d = store_.PartitionRoot(parts[i]);
                list[i].setPartition(parts[i]);
                list[i].setHi(d.hi);
                list[i].setLo(d.lo);
              }
            }),
            false);
}

void AntiEntropy::Tick() {
  std::vector<std::pair<std::string, std::vector<std::uint32_t>>> due;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    const std::uint64_t now = env_.NowMs();
    for (auto it = recheck_.begin(); it != recheck_.end();) {
      if (it->second.first > now) {
        ++it;
        continue;
      }
      due.emplace_back(it->first, std::move(it->second.second));
      it = recheck_.erase(it);
    }
  }
  for (const auto& [peer, parts] : due) {
    if (hooks_.reachable(peer)) SendRoots(peer, parts, Roots::kConfirm);
  }
}

void AntiEntropy::OnRoots(const std::string& from, const std::vector<std::pair<std::uint32_t, merkle::Digest>>& roots,
                          Roots kind) {
  if (kind == Roots::kAnswer) {
    // Roots a join or hand-off asked for: a partition equal to this peer's
    // is pulled from it (or handed to it).
    for (const auto& [p, digest] : roots) {
      if (p < opt_.partitions && store_.PartitionRoot(p) == digest) hooks_.matched(p, from, digest);
    }
    return;
  }
  if (kind == Roots::kSync) {
    std::vector<std::uint32_t> asked;
    for (const auto& [p, digest] : roots) {
      if (p < opt_.partitions) asked.push_back(p);
    }
    SendRoots(from, asked, Roots::kAnswer);
  }
  for (const auto& [p, digest] : roots) {
    if (!Shared(p, from)) continue;
    const bool equal = store_.PartitionRoot(p) == digest;
    if (kind != Roots::kRound) {
      if (equal) continue;
    } else {
      // Only a difference seen twice is repaired: one seen once is most
      // often a delta still in flight. The second look comes confirm_ms
      // later (Tick sends our roots back with `confirm`), or in the next
      // round.
      std::lock_guard lock(mu_);
      auto& seen = differing_[from];
      if (equal) {
        seen.erase(p);
        continue;
      }
      if (seen.insert(p).second) {
        auto& recheck = recheck_[from];
        if (recheck.second.empty()) recheck.first = env_.NowMs() + opt_.confirm_ms;
        recheck.second.push_back(p);
        continue;
      }
    }
    Count(&Stats::partitions_differing, 1);
    StartDescent(from, p);
  }
}

void AntiEntropy::SendNodes(const std::string& to, std::uint32_t p, const merkle::Tree& tree, int level,
                            const std::vector<std::uint32_t>& indices) {
  Count(&Stats::tree_bytes_sent, indices.size() * 20);
  env_.Send(to, BuildPeerMessage(env_.WallHlc(), [&](auto root) {
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

void AntiEntropy::StartDescent(const std::string& to, std::uint32_t p) {
  merkle::Tree tree = store_.PartitionTree(p);
  const int level = std::min(kAeStep, tree.leaf_bits());
  std::vector<std::uint32_t> all(std::size_t{1} << level);
  for (std::uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  SendNodes(to, p, tree, level, all);
}

void AntiEntropy::OnNodes(const std::string& from, std::uint32_t p, int level,
                          const std::vector<std::uint32_t>& indices, const std::vector<merkle::Digest>& digests) {
  if (!Shared(p, from)) return;
  merkle::Tree tree = store_.PartitionTree(p);
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

std::vector<std::pair<std::string, merkle::Digest>> AntiEntropy::KeyDigestsIn(const merkle::Tree& tree,
                                                                              std::vector<std::uint32_t>& leaves) {
  std::vector<std::pair<std::string, merkle::Digest>> out;
  std::size_t listed = 0;
  Status s = store_.Read([&](storage::Txn& t) {
    for (; listed < leaves.size() && out.size() < opt_.max_keys; ++listed) {
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

void AntiEntropy::SendKeyDigests(const std::string& to, std::uint32_t p, const merkle::Tree& tree,
                                 std::vector<std::uint32_t> leaves) {
  auto keys = KeyDigestsIn(tree, leaves);
  if (leaves.empty()) return;
  std::uint64_t bytes = leaves.size() * 4;
  for (const auto& [key, d] : keys) bytes += key.size() + 16;
  Count(&Stats::tree_bytes_sent, bytes);
  env_.Send(to, BuildPeerMessage(env_.WallHlc(), [&](auto root) {
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

void AntiEntropy::OnKeys(const std::string& from, std::uint32_t p, std::vector<std::uint32_t> leaves,
                         const std::vector<std::pair<std::string, merkle::Digest>>& theirs) {
  if (!Shared(p, from)) return;
  merkle::Tree tree = store_.PartitionTree(p);
  for (auto l : leaves) {
    if (l >= tree.leaves()) return;
  }
  const std::set<std::uint32_t> asked(leaves.begin(), leaves.end());
  std::map<std::string_view, merkle::Digest> remote;
  for (const auto& [key, d] : theirs) {
    const std::uint64_t h = storage::KeyHash(key);
    if (store_.PartitionOfHash(h) == p && asked.count(tree.LeafOf(h))) remote.emplace(key, d);
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
  env_.Send(from, BuildPeerMessage(env_.WallHlc(), [&](auto root) {
              auto m = root.initAeWant();
              m.setPartition(p);
              auto k = m.initKeys(static_cast<unsigned>(want.size()));
              for (unsigned i = 0; i < want.size(); ++i) k.set(i, Bytes(want[i]));
            }),
            false);
}

void AntiEntropy::OnWant(const std::string& from, std::uint32_t p, std::vector<std::string> keys) {
  if (!Shared(p, from)) return;
  std::erase_if(keys, [&](const std::string& k) { return store_.PartitionOfHash(storage::KeyHash(k)) != p; });
  if (keys.size() > opt_.max_keys) keys.resize(opt_.max_keys);
  SendStates(from, keys);
}

std::vector<std::string> AntiEntropy::LeafKeys(const merkle::Tree& tree, const std::vector<std::uint32_t>& leaves) {
  std::vector<std::string> keys;
  Status s = store_.Read([&](storage::Txn& t) {
    for (auto leaf : leaves) {
      const auto [first, last] = tree.LeafRange(leaf);
      auto r = t.ScanKeys(first, opt_.max_keys, [&](std::string_view key) {
        if (storage::KeyHash(key) > last) return false;
        keys.emplace_back(key);
        return true;
      });
      if (!r.ok()) return r.status();
      if (keys.size() >= opt_.max_keys) break;
    }
    return Status::Ok();
  });
  if (!s.ok()) spdlog::error("anti-entropy scan: {}", s.ToString());
  return keys;
}

bool AntiEntropy::Budget(std::size_t bytes) {
  if (opt_.bytes_per_s == 0) return true;
  std::lock_guard lock(mu_);
  const std::uint64_t now = env_.NowMs();
  const double rate = static_cast<double>(opt_.bytes_per_s);
  tokens_ = std::min(rate, tokens_ + static_cast<double>(now - std::min(now, refilled_ms_)) * rate / 1000);
  refilled_ms_ = now;
  if (tokens_ <= 0) {
    ++stats_.throttled;
    return false;
  }
  tokens_ -= static_cast<double>(bytes);
  return true;
}

void AntiEntropy::SendStates(const std::string& to, const std::vector<std::string>& keys) {
  std::uint64_t bytes = 0, sent = 0;
  Status s = store_.Read([&](storage::Txn& t) {
    for (const auto& key : keys) {
      auto loaded = t.Load(key, storage::Members::All());
      if (!loaded.ok()) continue;
      std::string encoded = crdt::EncodeKeyState(loaded->state);
      if (!Budget(encoded.size() + key.size())) break;
      std::string message = BuildPeerMessage(env_.WallHlc(), [&](auto root) {
        auto m = root.initDelta();
        m.setKey(Bytes(key));
        m.setState(Bytes(encoded));
        m.setTouchedAll(true);
      });
      if (!env_.SendBulk(to, std::move(message))) {
        Count(&Stats::queue_full, 1);
        break;
      }
      bytes += encoded.size() + key.size();
      ++sent;
    }
    return Status::Ok();
  });
  if (!s.ok()) spdlog::error("anti-entropy read: {}", s.ToString());
  std::lock_guard lock(mu_);
  stats_.keys_sent += sent;
  stats_.bytes_sent += bytes;
}

}  // namespace lattice::gossip
