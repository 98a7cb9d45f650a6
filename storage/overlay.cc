#include "storage/overlay.h"

#include <xxhash.h>

#include <algorithm>
#include <mutex>

namespace lattice::storage {

Overlay::Overlay() : active_(std::make_shared<Layer>()) {}

Overlay::Layer::iterator Overlay::Layer::Emplace(std::string_view key, bool& created) {
  return Emplace(key, [&] { return std::string(key); }, created);
}

std::uint64_t Overlay::Layer::Index::Hash(std::string_view key) { return XXH3_64bits(key.data(), key.size()) | 1; }

const Overlay::Layer::iterator* Overlay::Layer::Index::Find(std::string_view key, std::uint64_t hash) const {
  if (slots_.empty()) return nullptr;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.hash == 0) return nullptr;
    if (s.hash == hash && s.node->first == key) return &s.node;
  }
}

void Overlay::Layer::Index::Insert(std::uint64_t hash, iterator node) {
  if (2 * (used_ + 1) > slots_.size()) {  // grow to keep the table at most half full
    std::vector<Slot> old(std::max<std::size_t>(64, 2 * slots_.size()));
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.hash == 0) continue;
      std::size_t i = s.hash & mask;
      while (slots_[i].hash != 0) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = hash & mask;
  while (slots_[i].hash != 0) i = (i + 1) & mask;
  slots_[i] = Slot{hash, node};
  ++used_;
}

Overlay::Layer::Records::const_iterator Overlay::Layer::Find(std::string_view key) const {
  const iterator* node = index.Find(key, Index::Hash(key));
  return node == nullptr ? records.end() : Records::const_iterator(*node);
}

template <class MakeKey>
Overlay::Layer::iterator Overlay::Layer::Emplace(std::string_view key, MakeKey&& make_key, bool& created) {
  const std::uint64_t hash = Index::Hash(key);
  if (const iterator* node = index.Find(key, hash)) {
    created = false;
    return *node;
  }
  auto it = records.emplace(make_key(), Entry{}).first;
  index.Insert(hash, it);  // the node's key: stable while the layer lives
  created = true;
  return it;
}

Overlay::Layers Overlay::Snapshot() const {
  std::shared_lock lock(mu_);
  return Layers{active_, frozen_};
}

Overlay::Found Overlay::Lookup(const Layer& active, std::string_view key, bool latest, std::string* out) const {
  std::shared_lock lock(mu_);
  auto it = active.Find(key);
  if (it == active.records.end()) return Found::kAbsent;
  const Slot& s = latest && it->second.pending.set ? it->second.pending : it->second.durable;
  if (!s.set) return Found::kAbsent;
  if (!s.present) return Found::kDeleted;
  out->assign(s.value);
  return Found::kPresent;
}

Overlay::Found Overlay::LookupFrozen(const Layer& frozen, std::string_view key, std::string_view* out) {
  auto it = frozen.Find(key);
  if (it == frozen.records.end() || !it->second.durable.set) return Found::kAbsent;
  if (!it->second.durable.present) return Found::kDeleted;
  *out = it->second.durable.value;
  return Found::kPresent;
}

void Overlay::AddPending(WriteSet& writes, std::vector<Layer::iterator>& touched, Spares* spares) {
  touched.reserve(touched.size() + writes.size());
  std::unique_lock lock(mu_);
  std::size_t added = 0;
  while (!writes.empty()) {
    auto node = writes.extract(writes.begin());  // its key moves into the layer when new
    bool created = false;
    auto it = active_->Emplace(node.key(), [&] { return std::move(node.key()); }, created);
    if (!created) added -= Cost(it->first, it->second);
    it->second.pending = std::move(node.mapped());
    it->second.pending.set = true;
    added += Cost(it->first, it->second);
    touched.push_back(it);
    if (spares != nullptr) spares->GiveNode(std::move(node));
  }
  active_bytes_ += added;  // unsigned wrap-around adds the net change
}

void Overlay::Promote(const std::vector<Layer::iterator>& touched, std::vector<std::string>* freed) {
  const std::size_t local = std::string().capacity();  // a value this short holds no buffer
  std::size_t freed_bytes = 0;
  std::unique_lock lock(mu_);
  std::size_t change = 0;
  for (auto it : touched) {
    Entry& e = it->second;
    change -= Cost(it->first, e);
    const std::size_t capacity = e.durable.value.capacity();
    if (freed != nullptr && capacity > local && capacity <= Spares::kMaxValueBytes &&
        freed->size() < Spares::kMaxValues && freed_bytes + capacity <= Spares::kMaxSpareBytes) {
      freed_bytes += capacity;
      freed->push_back(std::move(e.durable.value));
    }
    e.durable = std::move(e.pending);
    e.pending = Slot{};
    change += Cost(it->first, e);
  }
  active_bytes_ += change;
}

void Overlay::PutDurable(std::string_view key, Slot slot) {
  std::unique_lock lock(mu_);
  std::size_t change = 0;
  bool created = false;
  auto it = active_->Emplace(key, created);
  if (!created) change -= Cost(it->first, it->second);
  slot.set = true;
  it->second.durable = std::move(slot);
  change += Cost(it->first, it->second);
  active_bytes_ += change;
}

std::shared_ptr<const Overlay::Layer> Overlay::Freeze() {
  std::unique_lock lock(mu_);
  if (frozen_ != nullptr || active_->empty()) return nullptr;
  frozen_ = active_;
  active_ = std::make_shared<Layer>();
  frozen_bytes_ = active_bytes_.load();
  active_bytes_ = 0;
  return frozen_;
}

void Overlay::DropFrozen() {
  std::shared_ptr<const Layer> old;
  {
    std::unique_lock lock(mu_);
    old = std::move(frozen_);
    frozen_bytes_ = 0;
  }
  // `old` is freed here (or by the last reader holding it), outside the lock.
}

// ---- Spares ----------------------------------------------------------------------

Overlay::WriteSet::node_type Overlay::Spares::TakeNode(std::string_view key) {
  if (nodes_.empty()) return {};
  WriteSet::node_type node = std::move(nodes_.back());
  nodes_.pop_back();
  std::string& k = node.key();
  if (!Fits(k.capacity(), key.size()) && k.capacity() > std::string().capacity()) std::string().swap(k);
  k.assign(key);
  return node;
}

void Overlay::Spares::TakeValue(std::string& into, std::size_t size) {
  if (size <= into.capacity()) return;
  // The last few given (a batch writes records of a few sizes: headers, members, indexes).
  constexpr std::size_t kLooks = 8;
  for (std::size_t i = values_.size(), looked = 0; i-- > 0 && looked < kLooks; ++looked) {
    if (!Fits(values_[i].capacity(), size)) continue;
    value_bytes_ -= values_[i].capacity();
    into.swap(values_[i]);
    values_[i].swap(values_.back());
    values_.pop_back();  // frees what `into` had, if anything
    return;
  }
}

void Overlay::Spares::GiveNode(WriteSet::node_type node) {
  if (nodes_.size() >= kMaxNodes) return;  // freed
  if (node.key().capacity() > kMaxKeyBytes) std::string().swap(node.key());
  Slot& slot = node.mapped();
  if (slot.value.capacity() > std::string().capacity()) GiveValue(std::move(slot.value));
  slot = Slot{};
  nodes_.push_back(std::move(node));
}

void Overlay::Spares::GiveValue(std::string&& value) {
  const std::size_t capacity = value.capacity();
  if (capacity <= std::string().capacity() || capacity > kMaxValueBytes) return;  // nothing to keep, or too much
  if (values_.size() >= kMaxValues || value_bytes_ + capacity > kMaxSpareBytes) {
    // Full: the newest buffer replaces the last one given, which is the one
    // the next take would try (the sizes written lately are the likely next).
    if (values_.empty() || value_bytes_ - values_.back().capacity() + capacity > kMaxSpareBytes) return;
    value_bytes_ -= values_.back().capacity();
    values_.pop_back();
  }
  value_bytes_ += capacity;
  values_.push_back(std::move(value));
  values_.back().clear();
}

void Overlay::Spares::Reclaim(WriteSet& writes) {
  while (!writes.empty()) GiveNode(writes.extract(writes.begin()));
}

std::size_t Overlay::active_records() const {
  std::shared_lock lock(mu_);
  return active_->size();
}

}  // namespace lattice::storage
