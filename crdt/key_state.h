// KeyState: everything a replica holds for one key — its CRDT and the CRDT's type.
//
// A key's type is fixed by its first write (DESIGN §2). Replicas partitioned
// from each other may still create one key with different types. So that every
// replica keeps the same one, a KeyState holds one variant per type ever written
// to it, and each variant carries its creation stamp (HLC, replica): the stamp of
// the write that (re)created the key as that type while the key was absent.
// Variants join per type (stores joined, stamps by max), so KeyState is a plain
// product lattice and its join is commutative, associative and idempotent.
//
// The visible type is the variant with the highest creation stamp, live or not:
// the latest creation wins, deterministically on every replica. Other variants
// that still hold data are "dropped" (EXPLAIN lists them); the next write through
// any replica removes what it observed of them, so they shrink to tombstones.
//
// Choice beyond DESIGN §2, which says "the one whose first dot has the higher
// (HLC, node)": stamps join by max, not min, so that a key deleted and then
// re-created as another type shows the new type; with min-joined stamps the old
// type's tombstone would hide every later creation. In the partition case the
// two rules agree.
//
// A string (DESIGN §2: an LWW base plus the increments since it) is the pair
// of variants kRegister (the base: SET) and kCounter (the increments: INCR),
// one type for reads, writes and WRONGTYPE: either may be written while the
// other holds the key, and a read joins both (crdt/string_value.h). SET
// removes the increments it observed (it clears the counter variant, as a
// write of one type clears what it observed of others); INCR keeps the base.
// Choice: two variants rather than a new one, so that keys written as
// counters or registers before strings counted read as strings with their
// encodings unchanged. The two share one dot sequence per replica (a write
// to one raises its context past this replica's dots in the other), so that
// the key's Context() says exactly which writes a replica has seen.
//
// Expiry (EXPIRE, SET EX) is a scheduled observed-remove (DESIGN §2): it stores,
// as an encoded KeyState, the removal of everything observed when it was set;
// once its deadline passes, ExpireDue joins that removal in, so a write made
// after the EXPIRE by a replica that had not seen it survives it. A write
// that keeps the TTL (every Mutate while the key has an expiry: INCR, SADD,
// HSET, ...; SET persists first) folds its own removal into the expiry in
// the same delta, so `INCR k; EXPIRE k 60; INCR k` is gone after 60 s.
// Concurrent expiries are siblings; the one set with the highest (HLC,
// replica) counts, with the removals of every sibling of the same EXPIRE
// (the same set time and deadline: concurrent folds). They have their own
// causal context.
//
// Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "crdt/counter.h"
#include "crdt/hll.h"
#include "crdt/or_map.h"
#include "crdt/or_set.h"
#include "crdt/register.h"
#include "crdt/string_value.h"

namespace lattice::crdt {

// Wire values: they appear in encodings, so never renumber.
enum class CrdtType : std::uint8_t {
  kCounter = 1,
  kRegister = 2,    // LWW register (SET/GET)
  kMultiValue = 3,  // MV register (MV.SET/MV.GET)
  kSet = 4,
  kFlag = 5,
  kMap = 6,
  kHll = 7,  // HyperLogLog (PFADD/PFCOUNT)
};

// Redis-style name: "string", "mvregister", "set", "flag", "hash", "hyperloglog".
// Both halves of a string are "string".
std::string_view TypeName(CrdtType type);

// The halves of a string (see above).
inline bool StringHalf(CrdtType t) { return t == CrdtType::kRegister || t == CrdtType::kCounter; }
// One type as commands see it: equal, or both halves of a string.
inline bool SameType(CrdtType a, CrdtType b) { return a == b || (StringHalf(a) && StringHalf(b)); }

struct Stamp {
  Hlc hlc;
  ReplicaId replica = 0;
  auto operator<=>(const Stamp&) const = default;
};

using CrdtValue = std::variant<PNCounter, LWWRegister, MVRegister, ORSet, Flag, ORMap, HyperLogLog>;

template <class T> struct TypeOf;
template <> struct TypeOf<PNCounter> { static constexpr CrdtType value = CrdtType::kCounter; };
template <> struct TypeOf<LWWRegister> { static constexpr CrdtType value = CrdtType::kRegister; };
template <> struct TypeOf<MVRegister> { static constexpr CrdtType value = CrdtType::kMultiValue; };
template <> struct TypeOf<ORSet> { static constexpr CrdtType value = CrdtType::kSet; };
template <> struct TypeOf<Flag> { static constexpr CrdtType value = CrdtType::kFlag; };
template <> struct TypeOf<ORMap> { static constexpr CrdtType value = CrdtType::kMap; };
template <> struct TypeOf<HyperLogLog> { static constexpr CrdtType value = CrdtType::kHll; };

CrdtType TypeOfValue(const CrdtValue& value);
// An empty value of `type`.
CrdtValue EmptyValue(CrdtType type);
// True when the value holds data a read would show.
bool IsLive(const CrdtValue& value);
// The causal context of the value.
const DotContext& ContextOf(const CrdtValue& value);

struct KeyExpiry {
  Hlc set;                  // when the expiry was set (orders siblings)
  std::uint64_t at_ms = 0;  // wall-clock deadline
  std::string removal;      // canonical encoding of the KeyState removal it applies
  auto operator<=>(const KeyExpiry&) const = default;
};
using ExpiryStore = DotFun<KeyExpiry>;

struct Variant {
  Stamp created;
  CrdtValue value;
  bool operator==(const Variant&) const = default;
};

class KeyState {
 public:
  using Variants = std::map<CrdtType, Variant>;

  // The variant a read sees, or nullptr for a key never written.
  const Variant* Visible() const;
  // The visible type when the key holds live data (of a string, the visible
  // half, or the other one when only it is live).
  std::optional<CrdtType> LiveType() const;
  // The key's string (base and increments) when it holds a live one.
  std::optional<StringValue> String() const;
  // True when a read would find the key.
  bool Live() const { return LiveType().has_value(); }

  // The visible value as T, or nullptr when the key is absent or of another type.
  template <class T>
  const T* Get() const {
    const Variant* v = Visible();
    if (v == nullptr || !IsLive(v->value)) return nullptr;
    return std::get_if<T>(&v->value);
  }

  // Applies a mutation of type T made by `stamp.replica` at `stamp.hlc`.
  // `mutate(T& state)` changes the state and returns its delta (a T or a
  // Result<T>). WrongType when the key holds live data of another type. The
  // returned KeyState is the delta to ship; it also removes whatever this
  // replica observed of dropped variants.
  //
  // `floor` (mint floor, DESIGN §2): the highest counter of `stamp.replica`
  // in any context this replica retired in the key's partition. When the
  // target variant holds no dot of `stamp.replica` at all, its context first
  // takes 1..floor of that replica, so the dot minted next lies above every
  // dot of a collected tombstone (which a replica that has not collected it
  // yet would otherwise read as already removed). Any dot of this replica at
  // or below the floor for this key belonged to a collected tombstone, so
  // claiming them removes nothing live.
  template <class T, class F>
  Result<KeyState> Mutate(Stamp stamp, F&& mutate, std::uint64_t floor = 0) {
    Variant* target = nullptr;
    std::optional<Variant> before;  // set when BeginWrite (re)created the variant
    if (Status s = BeginWrite(TypeOf<T>::value, stamp, target, before); !s.ok()) return s;
    KeyState delta;
    std::optional<Variant> unraised;
    if (std::uint64_t to = RaiseTo(TypeOf<T>::value, *target, stamp.replica, floor); to != 0) {
      unraised = *target;
      Variant raise = FloorVariant(*target, stamp.replica, to);
      JoinVariant(raise);
      delta.JoinVariant(std::move(raise));
    }
    auto d = mutate(std::get<T>(target->value));
    if constexpr (std::is_same_v<decltype(d), Result<T>>) {
      if (!d.ok()) {
        if (unraised) *target = std::move(*unraised);
        Rollback(TypeOf<T>::value, std::move(before));
        return d.status();
      }
      delta.JoinVariant(Variant{target->created, CrdtValue(std::move(d).value())});
    } else {
      delta.JoinVariant(Variant{target->created, CrdtValue(std::move(d))});
    }
    ClearOthers(TypeOf<T>::value, delta);
    if (!expiry_.store.empty()) KeepExpiry(stamp, delta, floor);
    return delta;
  }

  // DEL: removes every observed dot of every variant and every expiry; returns
  // the delta. What remains is a tombstone (contexts, no data).
  KeyState Clear();

  // EXPIRE: schedules the removal of everything observed now for `at_ms`.
  // `floor` as for Mutate, for the expiries' own context.
  KeyState Expire(Stamp stamp, std::uint64_t at_ms, std::uint64_t floor = 0);
  // PERSIST: removes the observed expiries.
  KeyState Persist();
  // The deadline of the key's expiry, if it has one.
  std::optional<std::uint64_t> ExpiresAt() const;
  // Earliest deadline of the key or of any map field.
  std::optional<std::uint64_t> NextExpiry() const;
  // Applies the key's expiry and map-field expiries due at `now_ms`; returns the
  // delta (empty when nothing was due). Corruption if a stored removal does not
  // decode. `expired_fields` receives map fields that stopped being live.
  Result<KeyState> ExpireDue(std::uint64_t now_ms,
                             std::vector<std::string>* expired_fields = nullptr);

  void Join(const KeyState& other);

  // Every dot the state has seen, over all variants.
  DotContext Context() const;
  // Context() and the expiries' context: everything a tombstone remembers.
  DotContext AllContext() const;
  // True when the state is a tombstone: it has seen dots but holds no data
  // (no live value in any variant, no expiry).
  bool Tombstone() const;
  const Variants& variants() const { return variants_; }
  const Causal<ExpiryStore>& expiry() const { return expiry_; }
  // For decoders and storage: installs one variant (no validation beyond the
  // type match), or gives access to one.
  void PutVariant(Variant v);
  Variant* MutableVariant(CrdtType type);
  void PutExpiry(Causal<ExpiryStore> expiry) { expiry_ = std::move(expiry); }
  // True when the state holds nothing at all (not even a tombstone).
  bool Empty() const { return variants_.empty() && expiry_.ctx.Empty(); }

  bool operator==(const KeyState&) const = default;

 private:
  // Checks the type and picks (or creates) the target variant and its stamp.
  // `before` receives the variant's prior value when this changed it.
  Status BeginWrite(CrdtType type, Stamp stamp, Variant*& target, std::optional<Variant>& before);
  // Undoes BeginWrite after a mutation that failed.
  void Rollback(CrdtType type, std::optional<Variant> before);
  // Removes this replica's observed data of every variant but `type` into
  // `delta` (INCR keeps the string's base).
  void ClearOthers(CrdtType type, KeyState& delta);
  // The counter a write of `type` by `replica` raises the target variant's
  // context to before minting (0: none): the mint floor when it holds no dot
  // of the replica, and for a string half the replica's dots in the other.
  std::uint64_t RaiseTo(CrdtType type, const Variant& target, ReplicaId replica, std::uint64_t floor) const;
  // A write that keeps the key's TTL: the expiry it observed, with the
  // write's own removal folded in, replaces it (into `delta`).
  void KeepExpiry(Stamp stamp, KeyState& delta, std::uint64_t floor);
  // Replaces every observed expiry with `e` (mint floor as for Mutate); the delta.
  Causal<ExpiryStore> ReplaceExpiry(Stamp stamp, KeyExpiry e, std::uint64_t floor);
  void JoinVariant(Variant v);
  // An empty variant of v's type and stamp whose context is 1..floor of `replica`.
  static Variant FloorVariant(const Variant& v, ReplicaId replica, std::uint64_t floor);

  Variants variants_;
  Causal<ExpiryStore> expiry_;
};

}  // namespace lattice::crdt
