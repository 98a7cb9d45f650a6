#include "crdt/or_map.h"

#include <tuple>

namespace lattice::crdt {

bool IsBottom(const FieldStore& s) { return IsBottom(s.reg) && IsBottom(s.counter); }

void CollectDots(const FieldStore& s, DotContext& out) {
  CollectDots(s.reg, out);
  CollectDots(s.counter, out);
}

FieldStore JoinStore(const FieldStore& a, const DotContext& ca, const FieldStore& b,
                     const DotContext& cb) {
  return FieldStore{JoinStore(a.reg, ca, b.reg, cb), JoinStore(a.counter, ca, b.counter, cb)};
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
  Causal<RegisterStore> d = RegisterWrite(f.reg, state_.ctx, replica, std::move(value), hlc);
  delta.state_.ctx = std::move(d.ctx);
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
