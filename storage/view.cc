#include "storage/view.h"

#include <mutex>

namespace lattice::storage {

using records::Table;

// One layer's records of one table, as a cursor. Keys are record keys
// (without the table byte).
struct MergedCursor::Source {
  virtual ~Source() = default;
  virtual void Seek(std::string_view target) = 0;
  virtual void Next() = 0;
  bool valid = false;
  bool present = false;
  std::string_view key, value;
  Status status;
};

namespace {

char TableByte(Table t) { return static_cast<char>(t); }

// A std::map of overlay keys: the write set, the active or the frozen layer.
// `step_lock` is the overlay's mutex for the active layer (null otherwise):
// taken shared around every step, and the value copied out, since the
// syncer replaces values; a map node and its key live as long as the layer.
template <class Map, class SlotOf>
struct MapSource : MergedCursor::Source {
  MapSource(const Map& map, Table table, std::shared_mutex* step_lock, SlotOf slot_of)
      : map_(map), table_(TableByte(table)), lock_(step_lock), slot_of_(slot_of) {}
  void Seek(std::string_view target) override {
    std::string k(1, table_);
    k.append(target);
    Locked([&] {
      it_ = map_.lower_bound(k);
      Settle();
    });
  }
  void Next() override {
    Locked([&] {
      if (it_ != map_.end()) ++it_;
      Settle();
    });
  }

 private:
  template <class Fn>
  void Locked(Fn&& fn) {
    if (lock_ == nullptr) return fn();
    std::shared_lock l(*lock_);
    fn();
  }
  void Settle() {
    valid = false;
    for (; it_ != map_.end(); ++it_) {
      if (it_->first.empty() || it_->first[0] != table_) return;
      const Slot* s = slot_of_(it_->second);
      if (s == nullptr || !s->set) continue;  // nothing at this layer: transparent
      valid = true;
      present = s->present;
      key = std::string_view(it_->first).substr(1);
      if (lock_ != nullptr) {
        copy_.assign(s->value);
        value = copy_;
      } else {
        value = s->value;
      }
      return;
    }
  }
  const Map& map_;
  char table_;
  std::shared_mutex* lock_;
  SlotOf slot_of_;
  typename Map::const_iterator it_;
  std::string copy_;
};

template <class Map, class SlotOf>
std::unique_ptr<MergedCursor::Source> MakeMapSource(const Map& map, Table table, std::shared_mutex* lock, SlotOf f) {
  return std::make_unique<MapSource<Map, SlotOf>>(map, table, lock, f);
}

struct LmdbSource : MergedCursor::Source {
  explicit LmdbSource(std::unique_ptr<Lmdb::Cursor> c) : cur(std::move(c)) {}
  void Seek(std::string_view target) override {
    cur->Seek(target);
    Take();
  }
  void Next() override {
    cur->Next();
    Take();
  }
  void Take() {
    valid = cur->Valid();
    present = true;
    status = cur->status();
    if (valid) key = cur->key(), value = cur->value();
  }
  std::unique_ptr<Lmdb::Cursor> cur;
};

}  // namespace

MergedCursor::~MergedCursor() = default;

void MergedCursor::Seek(std::string_view target) {
  for (auto& s : sources_) s->Seek(target);
  Settle();
}

void MergedCursor::Next() {
  if (!valid_) return;
  current_.assign(key_);
  for (auto& s : sources_) {
    if (s->valid && s->key == current_) s->Next();
  }
  Settle();
}

void MergedCursor::Settle() {
  for (;;) {
    Source* top = nullptr;
    for (auto& s : sources_) {  // topmost first: on equal keys the first wins
      if (s->valid && (top == nullptr || s->key < top->key)) top = s.get();
    }
    if (top == nullptr) {
      valid_ = false;
      return;
    }
    if (top->present) {
      valid_ = true;
      key_ = top->key;
      value_ = top->value;
      return;
    }
    current_.assign(top->key);  // a deletion hides the records below it
    for (auto& s : sources_) {
      if (s->valid && s->key == current_) s->Next();
    }
  }
}

Status MergedCursor::status() const {
  for (const auto& s : sources_) {
    if (!s->status.ok()) return s->status;
  }
  return Status::Ok();
}

Result<std::unique_ptr<View>> View::Open(Overlay& overlay, Lmdb& lmdb, Overlay::WriteSet* writes) {
  auto v = std::make_unique<View>(overlay, lmdb, writes);
  if (Status s = v->Begin(); !s.ok()) return s;
  return v;
}

Status View::Begin() {
  End();
  ops_.clear();
  if (ops_.capacity() > kKeptOpsBytes) std::string().swap(ops_);
  if (scratch_value_.capacity() > kKeptBufferBytes) std::string().swap(scratch_value_);
  if (record_key_.capacity() > kKeptBufferBytes) std::string().swap(record_key_);
  written_bytes_ = 0;
  layers_ = overlay_.Snapshot();  // before the LMDB transaction: see overlay.h
  lmdb_txn_.emplace();
  Status s = lmdb_db_->Begin(*lmdb_txn_);
  if (!s.ok()) End();
  return s;
}

void View::End() {
  lmdb_txn_.reset();  // back to LMDB's pool of read transactions
  layers_ = Overlay::Layers{};
}

Result<std::optional<std::string_view>> View::Get(Table table, std::string_view key) {
  using R = std::optional<std::string_view>;
  thread_local std::string scratch_key_;  // keeps its capacity from read to read
  scratch_key_.assign(1, TableByte(table));
  scratch_key_.append(key);
  if (writes_ != nullptr) {
    if (auto it = writes_->find(scratch_key_); it != writes_->end()) {
      return it->second.present ? R(it->second.value) : R();
    }
  }
  switch (overlay_.Lookup(*layers_.active, scratch_key_, writes_ != nullptr, &scratch_value_)) {
    case Overlay::Found::kPresent: return R(scratch_value_);
    case Overlay::Found::kDeleted: return R();
    case Overlay::Found::kAbsent: break;
  }
  if (layers_.frozen != nullptr) {
    std::string_view v;
    switch (Overlay::LookupFrozen(*layers_.frozen, scratch_key_, &v)) {
      case Overlay::Found::kPresent: return R(v);
      case Overlay::Found::kDeleted: return R();
      case Overlay::Found::kAbsent: break;
    }
  }
  return lmdb_txn_->Get(table, key);
}

std::unique_ptr<MergedCursor> View::Cursor(Table table) {
  std::unique_ptr<MergedCursor> c(new MergedCursor());
  if (writes_ != nullptr) {
    c->sources_.push_back(MakeMapSource(*writes_, table, nullptr, [](const Slot& s) { return &s; }));
  }
  const bool latest = writes_ != nullptr;
  c->sources_.push_back(MakeMapSource(layers_.active->records, table, &overlay_.mutex(), [latest](const Overlay::Entry& e) {
    return latest && e.pending.set ? &e.pending : &e.durable;
  }));
  if (layers_.frozen != nullptr) {
    c->sources_.push_back(
        MakeMapSource(layers_.frozen->records, table, nullptr, [](const Overlay::Entry& e) { return &e.durable; }));
  }
  c->sources_.push_back(std::make_unique<LmdbSource>(lmdb_txn_->OpenCursor(table)));
  return c;
}

void View::Record(Table table, std::string_view key, const std::string_view* value) {
  record_key_.assign(1, TableByte(table));
  record_key_.append(key);
  written_bytes_ += record_key_.size() + (value != nullptr ? value->size() : 0) + 64;
  auto it = writes_->lower_bound(record_key_);
  if (it == writes_->end() || it->first != record_key_) {
    // A new entry of the batch: a spare node (its key's buffer too) when there is one.
    Overlay::WriteSet::node_type node;
    if (spares_ != nullptr) node = spares_->TakeNode(record_key_);
    it = node ? writes_->insert(it, std::move(node)) : writes_->emplace_hint(it, record_key_, Slot{});
  }
  Slot& slot = it->second;
  slot.set = true;
  slot.present = value != nullptr;
  if (value != nullptr) {
    if (spares_ != nullptr) spares_->TakeValue(slot.value, value->size());
    slot.value.assign(*value);
  } else {
    slot.value.clear();
  }
  ops_.push_back(TableByte(table));
  records::PutLE32(ops_, static_cast<std::uint32_t>(key.size()));
  ops_.append(key);
  ops_.push_back(value != nullptr ? 1 : 0);
  records::PutLE32(ops_, value != nullptr ? static_cast<std::uint32_t>(value->size()) : 0);
  if (value != nullptr) ops_.append(*value);
}

void View::Put(Table table, std::string_view key, std::string_view value) { Record(table, key, &value); }
void View::Del(Table table, std::string_view key) { Record(table, key, nullptr); }

Status DecodeOps(std::string_view p,
                 const std::function<void(std::string_view key, bool present, std::string_view value)>& fn) {
  std::string k;
  while (!p.empty()) {
    if (p.size() < 5) return Status::Corruption("log record: op header cut short");
    const auto table = static_cast<std::uint8_t>(p[0]);
    const std::uint32_t klen = records::GetLE32(p.data() + 1);
    if (table >= records::kTables || p.size() < 5 + std::size_t{klen} + 5) {
      return Status::Corruption("log record: op key cut short or unknown table");
    }
    k.assign(1, static_cast<char>(table));
    k.append(p.substr(5, klen));
    const bool present = p[5 + klen] != 0;
    const std::uint32_t vlen = records::GetLE32(p.data() + 6 + klen);
    const std::size_t at = 10 + std::size_t{klen};
    if (p.size() < at + vlen) return Status::Corruption("log record: op value cut short");
    fn(k, present, p.substr(at, vlen));
    p.remove_prefix(at + vlen);
  }
  return Status::Ok();
}

}  // namespace lattice::storage
