#include "storage/overlay.h"

#include <mutex>

namespace lattice::storage {

Overlay::Overlay() : active_(std::make_shared<Layer>()) {}

Overlay::Layer::iterator Overlay::Layer::Emplace(std::string_view key, bool& created) {
  return Emplace(key, [&] { return std::string(key); }, created);
}

template <class MakeKey>
Overlay::Layer::iterator Overlay::Layer::Emplace(std::string_view key, MakeKey&& make_key, bool& created) {
  if (auto it = index.find(key); it != index.end()) {
    created = false;
    return it->second;
  }
  auto it = records.emplace(make_key(), Entry{}).first;
  index.emplace(std::string_view(it->first), it);  // the node's key: stable while the layer lives
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

std::vector<Overlay::Layer::iterator> Overlay::AddPending(WriteSet& writes) {
  std::vector<Layer::iterator> touched;
  touched.reserve(writes.size());
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
  }
  active_bytes_ += added;  // unsigned wrap-around adds the net change
  return touched;
}

void Overlay::Promote(const std::vector<Layer::iterator>& touched) {
  std::unique_lock lock(mu_);
  std::size_t change = 0;
  for (auto it : touched) {
    change -= Cost(it->first, it->second);
    it->second.durable = std::move(it->second.pending);
    it->second.pending = Slot{};
    change += Cost(it->first, it->second);
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

std::size_t Overlay::active_records() const {
  std::shared_lock lock(mu_);
  return active_->size();
}

}  // namespace lattice::storage
