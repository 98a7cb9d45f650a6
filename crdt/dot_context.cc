#include "crdt/dot_context.h"

#include <xxhash.h>

#include <iterator>
#include <string>

namespace lattice::crdt {

ReplicaId MakeReplicaId(std::string_view node_name, std::uint64_t incarnation) {
  std::string buf(node_name);
  buf.push_back('\0');
  for (int i = 0; i < 8; ++i) buf.push_back(static_cast<char>(incarnation >> (8 * i)));
  return XXH3_64bits(buf.data(), buf.size());
}

bool DotContext::Contains(const Dot& dot) const {
  auto it = vv_.find(dot.replica);
  if (it != vv_.end() && dot.counter <= it->second) return true;
  return cloud_.count(dot) != 0;
}

bool DotContext::Covers(const DotContext& other) const {
  for (const auto& [replica, counter] : other.vv_) {
    auto it = vv_.find(replica);
    std::uint64_t mine = it == vv_.end() ? 0 : it->second;
    if (counter <= mine) continue;
    // The cloud holds no duplicates, so (mine, counter] is covered exactly when
    // the cloud holds that many dots of `replica` in the range.
    std::uint64_t need = counter - mine;
    if (need > cloud_.size()) return false;
    auto lo = cloud_.lower_bound(Dot{replica, mine + 1});
    auto hi = cloud_.upper_bound(Dot{replica, counter});
    if (static_cast<std::uint64_t>(std::distance(lo, hi)) != need) return false;
  }
  for (const Dot& d : other.cloud_) {
    if (!Contains(d)) return false;
  }
  return true;
}

std::uint64_t DotContext::MaxCounter(ReplicaId replica) const {
  std::uint64_t max = 0;
  if (auto it = vv_.find(replica); it != vv_.end()) max = it->second;
  auto it = cloud_.lower_bound(Dot{replica + 1, 0});
  if (it != cloud_.begin()) {
    --it;
    if (it->replica == replica && it->counter > max) max = it->counter;
  }
  return max;
}

Dot DotContext::NextDot(ReplicaId replica) {
  Dot dot{replica, MaxCounter(replica) + 1};
  Insert(dot);
  return dot;
}

void DotContext::Insert(const Dot& dot) {
  if (dot.counter == 0 || Contains(dot)) return;
  cloud_.insert(dot);
  Compact();
}

bool DotContext::AssignCompacted(VersionVector vv, std::set<Dot> cloud) {
  for (const auto& entry : vv) {
    if (entry.second == 0) return false;
  }
  for (const Dot& d : cloud) {
    auto it = vv.find(d.replica);
    std::uint64_t have = it == vv.end() ? 0 : it->second;
    if (d.counter <= have + 1) return false;
  }
  vv_ = std::move(vv);
  cloud_ = std::move(cloud);
  return true;
}

void DotContext::Join(const DotContext& other) {
  if (&other == this) return;
  for (const auto& [replica, counter] : other.vv_) {
    auto& mine = vv_[replica];
    if (counter > mine) mine = counter;
  }
  cloud_.insert(other.cloud_.begin(), other.cloud_.end());
  Compact();
}

std::size_t DotContext::DotCount() const {
  std::size_t n = cloud_.size();
  for (const auto& [replica, counter] : vv_) n += counter;
  return n;
}

void DotContext::Compact() {
  for (auto it = cloud_.begin(); it != cloud_.end();) {
    auto vit = vv_.find(it->replica);
    std::uint64_t have = vit == vv_.end() ? 0 : vit->second;
    if (it->counter <= have) {
      it = cloud_.erase(it);
    } else if (it->counter == have + 1) {
      vv_[it->replica] = it->counter;
      it = cloud_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace lattice::crdt
