#include "crdt/key_state.h"

#include "crdt/codec.h"

#include <algorithm>
#include <string>
#include <tuple>

namespace lattice::crdt {

std::string_view TypeName(CrdtType type) {
  switch (type) {
    case CrdtType::kCounter: return "string";  // a string's increments
    case CrdtType::kRegister: return "string";
    case CrdtType::kMultiValue: return "mvregister";
    case CrdtType::kSet: return "set";
    case CrdtType::kFlag: return "flag";
    case CrdtType::kMap: return "hash";
    case CrdtType::kHll: return "hyperloglog";
  }
  return "unknown";
}

CrdtType TypeOfValue(const CrdtValue& value) {
  return std::visit([](const auto& v) { return TypeOf<std::decay_t<decltype(v)>>::value; },
                    value);
}

CrdtValue EmptyValue(CrdtType type) {
  switch (type) {
    case CrdtType::kCounter: return PNCounter{};
    case CrdtType::kRegister: return LWWRegister{};
    case CrdtType::kMultiValue: return MVRegister{};
    case CrdtType::kSet: return ORSet{};
    case CrdtType::kFlag: return Flag{};
    case CrdtType::kMap: return ORMap{};
    case CrdtType::kHll: return HyperLogLog{};
  }
  return LWWRegister{};
}

bool IsLive(const CrdtValue& value) {
  return std::visit([](const auto& v) { return v.Live(); }, value);
}

const DotContext& ContextOf(const CrdtValue& value) {
  return std::visit([](const auto& v) -> const DotContext& { return v.state().ctx; }, value);
}

namespace {

CrdtValue ClearValue(CrdtValue& value) {
  return std::visit([](auto& v) -> CrdtValue { return v.Clear(); }, value);
}

void JoinValue(CrdtValue& into, const CrdtValue& from) {
  std::visit([&](auto& v) { v.Join(std::get<std::decay_t<decltype(v)>>(from)); }, into);
}

}  // namespace

const Variant* KeyState::Visible() const {
  const Variant* best = nullptr;
  CrdtType best_type{};
  for (const auto& [type, v] : variants_) {
    if (best == nullptr || std::tie(best->created, best_type) < std::tie(v.created, type)) {
      best = &v;
      best_type = type;
    }
  }
  return best;
}

std::optional<CrdtType> KeyState::LiveType() const {
  const Variant* v = Visible();
  if (v == nullptr) return std::nullopt;
  const CrdtType type = TypeOfValue(v->value);
  if (IsLive(v->value)) return type;
  if (StringHalf(type)) {
    // The visible half holds nothing: the other may (a DEL raced an INCR).
    const CrdtType other = type == CrdtType::kRegister ? CrdtType::kCounter : CrdtType::kRegister;
    if (auto it = variants_.find(other); it != variants_.end() && IsLive(it->second.value)) return other;
  }
  return std::nullopt;
}

std::optional<StringValue> KeyState::String() const {
  auto live = LiveType();
  if (!live || !StringHalf(*live)) return std::nullopt;
  const RegisterStore* base = nullptr;
  const CounterStore* increments = nullptr;
  if (auto it = variants_.find(CrdtType::kRegister); it != variants_.end()) {
    base = &std::get<LWWRegister>(it->second.value).state().store;
  }
  if (auto it = variants_.find(CrdtType::kCounter); it != variants_.end()) {
    increments = &std::get<PNCounter>(it->second.value).state().store;
  }
  return ReadString(base, increments);
}

std::uint64_t KeyState::RaiseTo(CrdtType type, const Variant& target, ReplicaId replica, std::uint64_t floor) const {
  const std::uint64_t mine = ContextOf(target.value).MaxCounter(replica);
  std::uint64_t to = mine == 0 ? floor : 0;
  if (StringHalf(type)) {
    const CrdtType other = type == CrdtType::kRegister ? CrdtType::kCounter : CrdtType::kRegister;
    if (auto it = variants_.find(other); it != variants_.end()) {
      to = std::max(to, ContextOf(it->second.value).MaxCounter(replica));
    }
  }
  return to > mine ? to : 0;
}

Status KeyState::BeginWrite(CrdtType type, Stamp stamp, Variant*& target,
                            std::optional<Variant>& before) {
  const std::optional<CrdtType> live = LiveType();
  if (live && !SameType(*live, type)) {
    return Status::WrongType("Operation against a key holding the wrong kind of value (key is a " +
                             std::string(TypeName(*live)) + ", command is for a " + std::string(TypeName(type)) +
                             ")");
  }
  auto it = variants_.find(type);
  if (live) {  // the key is live with this type (or the other half of its string)
    if (it == variants_.end()) {
      // A string's other half: not a (re)creation, so the visible stamp.
      it = variants_.emplace(type, Variant{Visible()->created, EmptyValue(type)}).first;
    }
    target = &it->second;
    return Status::Ok();
  }
  // (Re)creation: the new stamp must beat every existing one, even one from a
  // peer whose clock runs a little ahead, or the write would be invisible.
  for (const auto& [t, other] : variants_) {
    if (other.created >= stamp) {
      stamp = Stamp{Hlc{other.created.hlc.wall_ms, other.created.hlc.logical + 1}, stamp.replica};
    }
  }
  if (it == variants_.end()) {
    it = variants_.emplace(type, Variant{stamp, EmptyValue(type)}).first;
  } else {
    before = it->second;
    it->second.created = stamp;
  }
  target = &it->second;
  return Status::Ok();
}

void KeyState::Rollback(CrdtType type, std::optional<Variant> before) {
  if (before) {
    variants_.insert_or_assign(type, std::move(*before));
  } else if (auto it = variants_.find(type); it != variants_.end() && !IsLive(it->second.value) &&
                                             ContextOf(it->second.value).Empty()) {
    variants_.erase(it);  // created by BeginWrite and still untouched
  }
}

void KeyState::ClearOthers(CrdtType type, KeyState& delta) {
  for (auto& [t, other] : variants_) {
    if (t == type || !IsLive(other.value)) continue;
    if (type == CrdtType::kCounter && t == CrdtType::kRegister) continue;  // INCR keeps the base
    delta.JoinVariant(Variant{other.created, ClearValue(other.value)});
  }
}

KeyState KeyState::Clear() {
  KeyState delta = Persist();
  for (auto& [type, v] : variants_) {
    if (IsLive(v.value)) delta.JoinVariant(Variant{v.created, ClearValue(v.value)});
  }
  return delta;
}

namespace {

// The removal of everything `v` holds now, as a delta of its own type: every
// observed dot in the context, counter contributions as floors.
template <class T>
T RemovalOf(const T& v) {
  T out;
  out.mutable_state().ctx = v.state().ctx;
  return out;
}

template <>
PNCounter RemovalOf(const PNCounter& v) {
  PNCounter copy = v;
  PNCounter out = copy.Clear();
  out.mutable_state().ctx = v.state().ctx;
  return out;
}

template <>
ORMap RemovalOf(const ORMap& v) {
  ORMap out;
  out.mutable_state().ctx = v.state().ctx;
  for (const auto& [name, field] : v.state().store) {
    if (field.counter.entries.empty()) continue;
    Causal<CounterStore> view{field.counter, {}};
    Causal<CounterStore> reset = CounterReset(view);
    if (!IsBottom(reset.store)) out.mutable_state().store[name].counter = std::move(reset.store);
  }
  return out;
}

const KeyExpiry* WinningExpiry(const ExpiryStore& store) {
  const KeyExpiry* best = nullptr;
  ReplicaId best_replica = 0;
  for (const auto& [dot, e] : store) {
    if (best == nullptr || std::tie(best->set, best_replica) < std::tie(e.set, dot.replica)) {
      best = &e;
      best_replica = dot.replica;
    }
  }
  return best;
}

// The expiries set by the same EXPIRE as `winner` (its set time and deadline):
// siblings that writes keeping the TTL made concurrently, each with its own
// removal folded in.
std::vector<const KeyExpiry*> SameExpiry(const ExpiryStore& store, const KeyExpiry& winner) {
  std::vector<const KeyExpiry*> out;
  for (const auto& [dot, e] : store) {
    if (e.set == winner.set && e.at_ms == winner.at_ms) out.push_back(&e);
  }
  return out;
}

// The removal of everything `state` holds now (a KeyState without expiries).
KeyState RemovalOfState(const KeyState& state) {
  KeyState removal;
  for (const auto& [type, v] : state.variants()) {
    removal.PutVariant(
        Variant{v.created, std::visit([](const auto& x) -> CrdtValue { return RemovalOf(x); }, v.value)});
  }
  return removal;
}

}  // namespace

Causal<ExpiryStore> KeyState::ReplaceExpiry(Stamp stamp, KeyExpiry e, std::uint64_t floor) {
  DotContext raised;
  if (floor != 0 && expiry_.ctx.MaxCounter(stamp.replica) == 0) {
    raised.AssignCompacted({{stamp.replica, floor}}, {});
    expiry_.ctx.Join(raised);  // see Mutate: no dot of this replica is live here
  }
  Causal<ExpiryStore> delta = ReplaceAll(expiry_.store, expiry_.ctx, stamp.replica, std::move(e));
  delta.ctx.Join(raised);
  return delta;
}

KeyState KeyState::Expire(Stamp stamp, std::uint64_t at_ms, std::uint64_t floor) {
  KeyState delta;
  delta.expiry_ = ReplaceExpiry(stamp, KeyExpiry{stamp.hlc, at_ms, EncodeKeyState(RemovalOfState(*this))}, floor);
  return delta;
}

void KeyState::KeepExpiry(Stamp stamp, KeyState& delta, std::uint64_t floor) {
  const KeyExpiry* winner = WinningExpiry(expiry_.store);
  if (winner == nullptr) return;
  KeyState removal;
  for (const KeyExpiry* e : SameExpiry(expiry_.store, *winner)) {
    Result<KeyState> r = DecodeKeyState(e->removal);
    if (r.ok()) removal.Join(*r);  // a removal that does not decode: ExpireDue reports it
  }
  removal.Join(RemovalOfState(delta));
  KeyExpiry kept{winner->set, winner->at_ms, EncodeKeyState(removal)};
  delta.expiry_.Join(ReplaceExpiry(stamp, std::move(kept), floor));
}

KeyState KeyState::Persist() {
  KeyState delta;
  delta.expiry_ = RemoveAll(expiry_);
  return delta;
}

std::optional<std::uint64_t> KeyState::ExpiresAt() const {
  const KeyExpiry* e = WinningExpiry(expiry_.store);
  if (e == nullptr) return std::nullopt;
  return e->at_ms;
}

std::optional<std::uint64_t> KeyState::NextExpiry() const {
  std::optional<std::uint64_t> next = ExpiresAt();
  for (const auto& [type, v] : variants_) {
    if (const ORMap* m = std::get_if<ORMap>(&v.value)) {
      auto field_next = m->NextExpiry();
      if (field_next && (!next || *field_next < *next)) next = field_next;
    }
  }
  return next;
}

Result<KeyState> KeyState::ExpireDue(std::uint64_t now_ms,
                                     std::vector<std::string>* expired_fields) {
  KeyState delta;
  if (const KeyExpiry* winner = WinningExpiry(expiry_.store); winner != nullptr && winner->at_ms <= now_ms) {
    KeyState removal;
    for (const KeyExpiry* e : SameExpiry(expiry_.store, *winner)) {
      Result<KeyState> r = DecodeKeyState(e->removal);
      if (!r.ok()) return r.status();
      removal.Join(*r);
    }
    delta = Persist();
    Join(removal);
    delta.Join(removal);
  }
  for (auto& [type, v] : variants_) {
    ORMap* m = std::get_if<ORMap>(&v.value);
    if (m == nullptr) continue;
    auto next = m->NextExpiry();
    if (!next || *next > now_ms) continue;
    delta.JoinVariant(Variant{v.created, m->ExpireDue(now_ms, expired_fields)});
  }
  return delta;
}

void KeyState::JoinVariant(Variant v) {
  CrdtType type = TypeOfValue(v.value);
  auto [it, inserted] = variants_.try_emplace(type, v);
  if (inserted) return;
  if (it->second.created < v.created) it->second.created = v.created;
  JoinValue(it->second.value, v.value);
}

void KeyState::Join(const KeyState& other) {
  if (&other == this) return;
  for (const auto& [type, v] : other.variants_) JoinVariant(v);
  expiry_.Join(other.expiry_);
}

DotContext KeyState::Context() const {
  DotContext out;
  for (const auto& [type, v] : variants_) out.Join(ContextOf(v.value));
  return out;
}

DotContext KeyState::AllContext() const {
  DotContext out = Context();
  out.Join(expiry_.ctx);
  return out;
}

bool KeyState::Tombstone() const {
  if (Empty() || !expiry_.store.empty()) return false;
  for (const auto& [type, v] : variants_) {
    if (IsLive(v.value)) return false;
  }
  return true;
}

Variant KeyState::FloorVariant(const Variant& v, ReplicaId replica, std::uint64_t floor) {
  Variant out{v.created, EmptyValue(TypeOfValue(v.value))};
  DotContext ctx;
  ctx.AssignCompacted({{replica, floor}}, {});
  std::visit([&](auto& x) { x.mutable_state().ctx = ctx; }, out.value);
  return out;
}

Variant* KeyState::MutableVariant(CrdtType type) {
  auto it = variants_.find(type);
  return it == variants_.end() ? nullptr : &it->second;
}

void KeyState::PutVariant(Variant v) {
  CrdtType type = TypeOfValue(v.value);
  variants_.insert_or_assign(type, std::move(v));
}

}  // namespace lattice::crdt
