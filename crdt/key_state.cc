#include "crdt/key_state.h"

#include <string>
#include <tuple>

namespace lattice::crdt {

std::string_view TypeName(CrdtType type) {
  switch (type) {
    case CrdtType::kCounter: return "counter";
    case CrdtType::kRegister: return "string";
    case CrdtType::kMultiValue: return "mvregister";
    case CrdtType::kSet: return "set";
    case CrdtType::kFlag: return "flag";
    case CrdtType::kMap: return "hash";
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
  if (v == nullptr || !IsLive(v->value)) return std::nullopt;
  return TypeOfValue(v->value);
}

Status KeyState::BeginWrite(CrdtType type, Stamp stamp, Variant*& target,
                            std::optional<Variant>& before) {
  const Variant* visible = Visible();
  bool visible_live = visible != nullptr && IsLive(visible->value);
  if (visible_live && TypeOfValue(visible->value) != type) {
    return Status::WrongType("Operation against a key holding the wrong kind of value (key is a " +
                             std::string(TypeName(TypeOfValue(visible->value))) +
                             ", command is for a " + std::string(TypeName(type)) + ")");
  }
  auto it = variants_.find(type);
  if (visible_live) {  // the live visible variant is of this type
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
    delta.JoinVariant(Variant{other.created, ClearValue(other.value)});
  }
}

KeyState KeyState::Clear() {
  KeyState delta;
  for (auto& [type, v] : variants_) {
    if (IsLive(v.value)) delta.JoinVariant(Variant{v.created, ClearValue(v.value)});
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
}

DotContext KeyState::Context() const {
  DotContext out;
  for (const auto& [type, v] : variants_) out.Join(ContextOf(v.value));
  return out;
}

void KeyState::PutVariant(Variant v) {
  CrdtType type = TypeOfValue(v.value);
  variants_.insert_or_assign(type, std::move(v));
}

}  // namespace lattice::crdt
