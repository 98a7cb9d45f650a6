#include "crdt/or_map.h"

#include <iterator>
#include <tuple>

namespace lattice::crdt {

bool IsBottom(const FieldStore& s) {
  return IsBottom(s.reg) && IsBottom(s.counter) && IsBottom(s.expiry);
}

void CollectDots(const FieldStore& s, DotContext& out) {
  CollectDots(s.reg, out);
  CollectDots(s.counter, out);
  CollectDots(s.expiry, out);
}

FieldStore JoinStore(const FieldStore& a, const DotContext& ca, const FieldStore& b,
                     const DotContext& cb) {
  return FieldStore{JoinStore(a.reg, ca, b.reg, cb), JoinStore(a.counter, ca, b.counter, cb),
                    JoinStore(a.expiry, ca, b.expiry, cb)};
}

std::string FieldValue::Text() const {
  return kind == FieldKind::kRegister ? bytes : std::to_string(number);
}

namespace {

std::optional<FieldKind> VisibleKind(const FieldStore& f) {
  bool reg_live = !f.reg.empty();
  bool counter_live = CounterLive(f.counter);
  if (reg_live && counter_live) {
    ReplicaId reg_replica = 0;
    const RegisterValue* winner = RegisterWinner(f.reg, &reg_replica);
    auto [counter_hlc, counter_replica] = CounterNewest(f.counter);
    return std::tie(winner->hlc, reg_replica) > std::tie(counter_hlc, counter_replica)
               ? FieldKind::kRegister
               : FieldKind::kCounter;
  }
  if (reg_live) return FieldKind::kRegister;
  if (counter_live) return FieldKind::kCounter;
  return std::nullopt;
}

std::optional<FieldValue> ValueOf(const FieldStore& f) {
  auto kind = VisibleKind(f);
  if (!kind) return std::nullopt;
  if (*kind == FieldKind::kRegister) {
    return FieldValue{FieldKind::kRegister, RegisterWinner(f.reg)->bytes, 0};
  }
  return FieldValue{FieldKind::kCounter, {}, CounterValue(f.counter)};
}

}  // namespace

bool FieldLive(const FieldStore& f) { return VisibleKind(f).has_value(); }

namespace {

Status KindMismatch(const std::string& field, FieldKind held) {
  return Status::WrongType(held == FieldKind::kCounter
                               ? "field '" + field + "' holds a counter; use HINCRBY"
                               : "hash value is not an integer (field '" + field +
                                     "' holds a string)");
}

}  // namespace

Result<ORMap> ORMap::Set(ReplicaId replica, const std::string& field, std::string value, Hlc hlc) {
  if (auto kind = KindOf(field); kind && *kind != FieldKind::kRegister) {
    return KindMismatch(field, *kind);
  }
  FieldStore& f = state_.store[field];
  ORMap delta;
  // HSET clears the field's expiry, as in Redis.
  delta.state_.ctx = RemovalDelta(f.expiry).ctx;
  f.expiry.clear();
  Causal<RegisterStore> d =
      ReplaceAll(f.reg, state_.ctx, replica, RegisterValue{std::move(value), hlc});
  delta.state_.ctx.Join(d.ctx);
  delta.state_.store[field].reg = std::move(d.store);
  return delta;
}

Result<ORMap> ORMap::Increment(ReplicaId replica, const std::string& field, std::int64_t amount,
                               Hlc hlc) {
  if (auto kind = KindOf(field); kind && *kind != FieldKind::kCounter) {
    return KindMismatch(field, *kind);
  }
  FieldStore& f = state_.store[field];
  // The counter needs its own Causal view of the shared context to mint a dot.
  Causal<CounterStore> view{std::move(f.counter), std::move(state_.ctx)};
  Causal<CounterStore> d = CounterAdd(view, replica, amount, hlc);
  f.counter = std::move(view.store);
  state_.ctx = std::move(view.ctx);
  ORMap delta;
  delta.state_.ctx = std::move(d.ctx);
  delta.state_.store[field].counter = std::move(d.store);
  return delta;
}

ORMap ORMap::Remove(const std::string& field) {
  ORMap delta;
  auto it = state_.store.find(field);
  if (it == state_.store.end()) return delta;
  FieldStore& f = it->second;
  Causal<RegisterStore> reg_delta = RemovalDelta(f.reg);
  Causal<CounterStore> counter_view{std::move(f.counter), {}};
  Causal<CounterStore> counter_delta = CounterReset(counter_view);
  f.counter = std::move(counter_view.store);
  f.reg.clear();

  delta.state_.ctx = std::move(reg_delta.ctx);
  delta.state_.ctx.Join(counter_delta.ctx);
  delta.state_.ctx.Join(RemovalDelta(f.expiry).ctx);
  f.expiry.clear();
  if (!IsBottom(counter_delta.store)) {
    delta.state_.store[field].counter = std::move(counter_delta.store);
  }
  if (IsBottom(f)) state_.store.erase(it);
  return delta;
}

ORMap ORMap::Clear() {
  ORMap delta;
  std::vector<std::string> fields;
  for (const auto& entry : state_.store) fields.push_back(entry.first);
  for (const auto& field : fields) delta.Join(Remove(field));
  return delta;
}

namespace {

const FieldExpiry* WinningExpiry(const FieldStore& f) {
  const FieldExpiry* best = nullptr;
  ReplicaId best_replica = 0;
  for (const auto& [dot, e] : f.expiry) {
    if (best == nullptr || std::tie(best->set, best_replica) < std::tie(e.set, dot.replica)) {
      best = &e;
      best_replica = dot.replica;
    }
  }
  return best;
}

// Live counter entries (above their floors), as an expiry or reset observes them.
std::map<ReplicaId, CounterEntry> LiveEntries(const CounterStore& s) {
  std::map<ReplicaId, CounterEntry> out;
  for (const auto& [replica, entry] : s.entries) {
    auto floor = s.floors.find(replica);
    if (floor == s.floors.end() || entry.counter > floor->second.counter) {
      out.emplace(replica, entry);
    }
  }
  return out;
}

}  // namespace

Result<ORMap> ORMap::ExpireField(ReplicaId replica, const std::string& field,
                                 std::uint64_t at_ms, Hlc hlc) {
  if (!KindOf(field)) return Status::NotFound("no such field");
  FieldStore& f = state_.store[field];
  FieldExpiry e{hlc, at_ms, {}, LiveEntries(f.counter)};
  for (const auto& entry : f.reg) e.reg_dots.insert(entry.first);
  Causal<DotFun<FieldExpiry>> d = ReplaceAll(f.expiry, state_.ctx, replica, std::move(e));
  ORMap delta;
  delta.state_.ctx = std::move(d.ctx);
  delta.state_.store[field].expiry = std::move(d.store);
  return delta;
}

ORMap ORMap::PersistField(const std::string& field) {
  ORMap delta;
  auto it = state_.store.find(field);
  if (it == state_.store.end()) return delta;
  delta.state_.ctx = RemovalDelta(it->second.expiry).ctx;
  it->second.expiry.clear();
  if (IsBottom(it->second)) state_.store.erase(it);
  return delta;
}

std::optional<std::uint64_t> ORMap::FieldExpiresAt(const std::string& field) const {
  auto it = state_.store.find(field);
  if (it == state_.store.end()) return std::nullopt;
  const FieldExpiry* e = WinningExpiry(it->second);
  if (e == nullptr) return std::nullopt;
  return e->at_ms;
}

std::optional<std::uint64_t> ORMap::NextExpiry() const {
  std::optional<std::uint64_t> next;
  for (const auto& entry : state_.store) {
    const FieldExpiry* e = WinningExpiry(entry.second);
    if (e != nullptr && (!next || e->at_ms < *next)) next = e->at_ms;
  }
  return next;
}

ORMap ORMap::ExpireDue(std::uint64_t now_ms, std::vector<std::string>* expired) {
  ORMap delta;
  for (auto it = state_.store.begin(); it != state_.store.end();) {
    FieldStore& f = it->second;
    const FieldExpiry* e = WinningExpiry(f);
    if (e == nullptr || e->at_ms > now_ms) {
      ++it;
      continue;
    }
    bool was_live = VisibleKind(f).has_value();
    // Remove what the expiry observed, and the expiry entries themselves.
    // The removed dots enter the context, so a value this replica has not yet
    // received stays removed when it arrives.
    for (const Dot& d : e->reg_dots) {
      f.reg.erase(d);
      state_.ctx.Insert(d);
      delta.state_.ctx.Insert(d);
    }
    if (!e->floors.empty()) {
      std::map<ReplicaId, CounterEntry> floors = e->floors;
      for (const auto& [replica, floor] : floors) {
        auto [fit, inserted] = f.counter.floors.emplace(replica, floor);
        if (!inserted && fit->second < floor) fit->second = floor;
      }
      delta.state_.store[it->first].counter.floors = std::move(floors);
    }
    delta.state_.ctx.Join(RemovalDelta(f.expiry).ctx);
    f.expiry.clear();
    if (was_live && !VisibleKind(f) && expired != nullptr) expired->push_back(it->first);
    it = IsBottom(f) ? state_.store.erase(it) : std::next(it);
  }
  return delta;
}

std::optional<FieldKind> ORMap::KindOf(const std::string& field) const {
  auto it = state_.store.find(field);
  if (it == state_.store.end()) return std::nullopt;
  return VisibleKind(it->second);
}

std::optional<FieldValue> ORMap::Get(const std::string& field) const {
  auto it = state_.store.find(field);
  if (it == state_.store.end()) return std::nullopt;
  return ValueOf(it->second);
}

std::vector<std::pair<std::string, FieldValue>> ORMap::Entries() const {
  std::vector<std::pair<std::string, FieldValue>> out;
  for (const auto& [name, f] : state_.store) {
    if (auto value = ValueOf(f)) out.emplace_back(name, std::move(*value));
  }
  return out;
}

std::size_t ORMap::Size() const {
  std::size_t n = 0;
  for (const auto& entry : state_.store) n += VisibleKind(entry.second).has_value();
  return n;
}

bool ORMap::Live() const {
  for (const auto& entry : state_.store) {
    if (VisibleKind(entry.second)) return true;
  }
  return false;
}

}  // namespace lattice::crdt
