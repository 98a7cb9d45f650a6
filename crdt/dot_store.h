// Dot stores: the one causal core every CRDT here is built on (Almeida, Shoker,
// Baquero, "Delta State Replicated Data Types", §6).
//
// A causal CRDT is a store paired with the DotContext of everything it has seen
// (Causal<Store>). Joining two of them keeps a dot that both stores hold, keeps a
// dot that one store holds and the other side's context has not seen, and drops a
// dot that one side has seen and no longer holds: that is how observed-remove
// works, for every type alike.
//
//   DotFun<V>      dot -> V                 (registers: V = value; sets, flags: Unit)
//   DotMap<K, S>   key -> nested store      (sets: element -> DotFun, maps: field -> FieldStore)
//
// A store that is empty ("bottom") is never kept inside a DotMap, so equal states
// have equal representations.
#pragma once

#include <compare>
#include <map>
#include <utility>

#include "crdt/dot_context.h"

namespace lattice::crdt {

struct Unit {
  auto operator<=>(const Unit&) const = default;
};

// The dot kernel: dot -> payload.
template <class V>
using DotFun = std::map<Dot, V>;
template <class V>
using DotKernel = DotFun<V>;

template <class K, class S>
using DotMap = std::map<K, S>;

template <class V>
bool IsBottom(const DotFun<V>& s) {
  return s.empty();
}

template <class K, class S>
bool IsBottom(const DotMap<K, S>& s) {
  return s.empty();
}

template <class V>
void CollectDots(const DotFun<V>& s, DotContext& out) {
  for (const auto& entry : s) out.Insert(entry.first);
}

template <class K, class S>
void CollectDots(const DotMap<K, S>& s, DotContext& out) {
  for (const auto& entry : s) CollectDots(entry.second, out);
}

template <class V>
DotFun<V> JoinStore(const DotFun<V>& a, const DotContext& ca, const DotFun<V>& b,
                    const DotContext& cb) {
  DotFun<V> out;
  for (const auto& [dot, value] : a) {
    auto it = b.find(dot);
    if (it != b.end()) {
      // A dot is minted once, so both sides carry the same value; taking the
      // larger keeps join commutative even for a corrupted peer.
      out.emplace(dot, value < it->second ? it->second : value);
    } else if (!cb.Contains(dot)) {
      out.emplace(dot, value);
    }
  }
  for (const auto& [dot, value] : b) {
    if (!a.count(dot) && !ca.Contains(dot)) out.emplace(dot, value);
  }
  return out;
}

template <class K, class S>
DotMap<K, S> JoinStore(const DotMap<K, S>& a, const DotContext& ca, const DotMap<K, S>& b,
                       const DotContext& cb) {
  DotMap<K, S> out;
  const S bottom{};
  for (const auto& [key, sa] : a) {
    auto it = b.find(key);
    S joined = JoinStore(sa, ca, it == b.end() ? bottom : it->second, cb);
    if (!IsBottom(joined)) out.emplace(key, std::move(joined));
  }
  for (const auto& [key, sb] : b) {
    if (a.count(key)) continue;
    S joined = JoinStore(bottom, ca, sb, cb);
    if (!IsBottom(joined)) out.emplace(key, std::move(joined));
  }
  return out;
}

// A store with the context of everything it has seen. The unit of state and of
// delta for every causal type.
template <class Store>
struct Causal {
  Store store{};
  DotContext ctx;

  void Join(const Causal& other) {
    store = JoinStore(store, ctx, other.store, other.ctx);
    ctx.Join(other.ctx);
  }
  bool operator==(const Causal&) const = default;
};

// Base of every CRDT class: holds the Causal state and gives the shared value
// semantics (join, equality, access for codecs). `Derived` is the CRDT class,
// so deltas keep their type.
template <class Derived, class Store>
class CausalValue {
 public:
  void Join(const Derived& other) { state_.Join(other.state_); }
  const Causal<Store>& state() const { return state_; }
  Causal<Store>& mutable_state() { return state_; }
  bool operator==(const CausalValue&) const = default;

 protected:
  static Derived FromDelta(Causal<Store> delta) {
    Derived out;
    out.state_ = std::move(delta);
    return out;
  }

  Causal<Store> state_;
};

// The delta that removes every dot `store` holds: nothing in the store, those
// dots in the context.
template <class Store>
Causal<Store> RemovalDelta(const Store& store) {
  Causal<Store> delta;
  CollectDots(store, delta.ctx);
  return delta;
}

// Replaces every value `store` holds with one new value under a fresh dot of
// `replica` (a register write); applies it and returns the delta.
template <class V>
Causal<DotFun<V>> ReplaceAll(DotFun<V>& store, DotContext& ctx, ReplicaId replica, V value) {
  Causal<DotFun<V>> delta = RemovalDelta(store);
  Dot dot = ctx.NextDot(replica);
  delta.ctx.Insert(dot);
  delta.store.emplace(dot, std::move(value));
  store = delta.store;
  return delta;
}

// Removes everything `state` holds (observed-remove of all of it); applies the
// change and returns the delta.
template <class Store>
Causal<Store> RemoveAll(Causal<Store>& state) {
  Causal<Store> delta = RemovalDelta(state.store);
  state.store = Store{};
  return delta;
}

}  // namespace lattice::crdt
