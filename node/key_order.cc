#include "node/key_order.h"

#include <algorithm>

namespace lattice::node {

void KeyOrder::Depend(std::size_t slot, std::size_t on) {
  Item& dep = items_[on];
  if (dep.done) return;
  if (std::find(dep.then.begin(), dep.then.end(), slot) != dep.then.end()) return;
  dep.then.push_back(slot);
  ++items_[slot].waiting;
}

bool KeyOrder::Add(std::size_t slot, const std::vector<std::string>& keys) {
  if (items_.size() <= slot) items_.resize(slot + 1);
  Item& item = items_[slot];
  item.added = true;
  item.done = false;
  item.waiting = 0;
  item.then.clear();
  if (keys.size() != 1) {
    for (std::size_t earlier : added_) Depend(slot, earlier);
    last_.clear();
    has_barrier_ = true;
    barrier_ = slot;
  } else {
    if (has_barrier_) Depend(slot, barrier_);
    auto [it, fresh] = last_.try_emplace(keys[0], slot);
    if (!fresh) {
      Depend(slot, it->second);
      it->second = slot;
    }
  }
  added_.push_back(slot);
  ++unfinished_;
  return items_[slot].waiting == 0;
}

void KeyOrder::Finished(std::size_t slot, std::vector<std::size_t>& ready) {
  Item& item = items_[slot];
  if (!item.added || item.done) return;
  item.done = true;
  --unfinished_;
  std::size_t first = ready.size();
  for (std::size_t next : item.then) {
    if (--items_[next].waiting == 0) ready.push_back(next);
  }
  item.then.clear();
  std::sort(ready.begin() + static_cast<std::ptrdiff_t>(first), ready.end());
}

void KeyOrder::Reset() {
  for (std::size_t slot : added_) {
    Item& item = items_[slot];
    item.added = item.done = false;
    item.waiting = 0;
    item.then.clear();
  }
  added_.clear();
  last_.clear();
  has_barrier_ = false;
  unfinished_ = 0;
}

}  // namespace lattice::node
