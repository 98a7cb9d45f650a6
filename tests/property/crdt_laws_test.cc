// Seeded randomized checks of the CRDT laws, for every type and for KeyState
// (which mixes types):
//   join is commutative, associative and idempotent;
//   state.join(delta) equals the mutated state;
//   3-5 replicas exchanging deltas with duplication, reordering and
//   drop-then-resend converge to equal states with identical encodings;
//   encode/decode round-trips, and equal states encode to identical bytes
//   whatever order their history arrived in.
//
// Each case runs from its own seed. The base seed is random unless LATTICE_SEED
// is set; a failure prints the command that replays exactly the failing case.
// LATTICE_CASES sets the number of cases per law and type (default 10000).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "crdt/codec.h"

namespace lattice::crdt {
namespace {

using Rng = std::mt19937_64;

std::uint64_t EnvOr(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::strtoull(v, nullptr, 10);
}

std::uint64_t BaseSeed() {
  static const std::uint64_t seed = [] {
    std::uint64_t s = EnvOr("LATTICE_SEED", std::random_device{}() ^
                                                (std::uint64_t{std::random_device{}()} << 32));
    std::cout << "crdt laws: base seed " << s << " (replay with LATTICE_SEED=" << s << ")\n";
    return s;
  }();
  return seed;
}

std::uint64_t Cases() { return EnvOr("LATTICE_CASES", 10000); }

std::size_t Pick(Rng& rng, std::size_t n) { return static_cast<std::size_t>(rng() % n); }
bool Chance(Rng& rng, unsigned percent) { return rng() % 100 < percent; }

std::string SmallString(Rng& rng) {
  static const char* kWords[] = {"a", "b", "c", "", "longer value", "\x00\xff"};
  return kWords[Pick(rng, 6)];
}

// ---- per-type random mutators ---------------------------------------------------
// Op(state, rng, replica, hlc) applies one random mutation and returns its delta.

PNCounter Op(PNCounter& s, Rng& rng, ReplicaId r, Hlc hlc) {
  if (Chance(rng, 15)) return s.Clear();
  return s.Increment(r, static_cast<std::int64_t>(Pick(rng, 21)) - 10, hlc);
}

template <class Reg>
Reg RegisterOp(Reg& s, Rng& rng, ReplicaId r, Hlc hlc) {
  if (Chance(rng, 15)) return s.Clear();
  return s.Write(r, SmallString(rng), hlc);
}
LWWRegister Op(LWWRegister& s, Rng& rng, ReplicaId r, Hlc hlc) { return RegisterOp(s, rng, r, hlc); }
MVRegister Op(MVRegister& s, Rng& rng, ReplicaId r, Hlc hlc) { return RegisterOp(s, rng, r, hlc); }

ORSet Op(ORSet& s, Rng& rng, ReplicaId r, Hlc) {
  std::size_t k = Pick(rng, 10);
  if (k == 0) return s.Clear();
  if (k < 5) return s.Remove(SmallString(rng));
  return s.Add(r, SmallString(rng));
}

Flag Op(Flag& s, Rng& rng, ReplicaId r, Hlc) {
  std::size_t k = Pick(rng, 10);
  if (k == 0) return s.Clear();
  return k < 5 ? s.Disable(r) : s.Enable(r);
}

ORMap Op(ORMap& s, Rng& rng, ReplicaId r, Hlc hlc) {
  std::size_t k = Pick(rng, 15);
  std::string field = SmallString(rng);
  if (k == 0) return s.Clear();
  if (k < 4) return s.Remove(field);
  if (k == 12) {
    auto d = s.ExpireField(r, field, hlc.wall_ms + Pick(rng, 20), hlc);
    return d.ok() ? std::move(d).value() : ORMap{};
  }
  if (k == 13) return s.PersistField(field);
  if (k == 14) return s.ExpireDue(hlc.wall_ms);
  return k < 8 ? s.Set(r, field, SmallString(rng), hlc)
               : s.Increment(r, field, static_cast<std::int64_t>(Pick(rng, 11)) - 5, hlc);
}

HyperLogLog Op(HyperLogLog& s, Rng& rng, ReplicaId r, Hlc) {
  if (Chance(rng, 10)) return s.Clear();
  std::vector<std::string> elements;
  for (std::size_t n = Pick(rng, 4); n > 0; --n) elements.push_back(SmallString(rng));
  bool changed = false;
  return s.Add(r, elements, changed);
}

KeyState Op(KeyState& s, Rng& rng, ReplicaId r, Hlc hlc) {
  Stamp stamp{hlc, r};
  auto typed = [&](auto tag) -> KeyState {
    using T = decltype(tag);
    auto d = s.Mutate<T>(stamp, [&](T& v) { return Op(v, rng, r, hlc); });
    return d.ok() ? std::move(d).value() : KeyState{};
  };
  switch (Pick(rng, 12)) {
    case 0: return s.Clear();
    case 11: return typed(HyperLogLog{});
    case 8: return s.Expire(stamp, hlc.wall_ms + Pick(rng, 20));
    case 9: return s.Persist();
    case 10: {
      auto d = s.ExpireDue(hlc.wall_ms);
      return d.ok() ? std::move(d).value() : KeyState{};
    }
    case 1: return typed(PNCounter{});
    case 2: return typed(LWWRegister{});
    case 3: return typed(MVRegister{});
    case 4: return typed(ORSet{});
    case 5: return typed(Flag{});
    default: return typed(ORMap{});
  }
}

// ---- encoding through KeyState --------------------------------------------------

template <class T>
std::string Encode(const T& v) {
  if constexpr (std::is_same_v<T, KeyState>) {
    return EncodeKeyState(v);
  } else {
    KeyState s;
    s.PutVariant(Variant{Stamp{}, v});
    return EncodeKeyState(s);
  }
}

template <class T>
bool RoundTrips(const T& v, std::string& why) {
  std::string bytes = Encode(v);
  auto decoded = DecodeKeyState(bytes);
  if (!decoded.ok()) {
    why = "decode failed: " + decoded.status().ToString();
    return false;
  }
  if constexpr (std::is_same_v<T, KeyState>) {
    if (!(*decoded == v)) return why = "decoded state differs", false;
  } else {
    const T* got = std::get_if<T>(&decoded->variants().begin()->second.value);
    if (got == nullptr || !(*got == v)) return why = "decoded state differs", false;
  }
  if (Encode(*decoded) != bytes) return why = "re-encoding differs", false;
  return true;
}

template <class T>
T Joined(T a, const T& b) {
  a.Join(b);
  return a;
}

// ---- the world a case runs in ----------------------------------------------------

// Replicas with skewed wall clocks making random mutations; every delta is kept
// so that it can be delivered (or re-delivered) at any later time.
template <class T>
struct World {
  struct Message {
    std::size_t to;
    std::size_t delta;
  };

  explicit World(Rng& rng) : rng(rng) {
    std::size_t n = 3 + Pick(rng, 3);
    for (std::size_t i = 0; i < n; ++i) {
      states.emplace_back();
      ids.push_back(MakeReplicaId("node" + std::to_string(i), rng() % 3));
      skew.push_back(Pick(rng, 50));
      clocks.emplace_back([this, i] { return wall + skew[i]; });
    }
  }

  // One random mutation at replica i; checks state.join(delta) == mutated state.
  bool Mutate(std::size_t i, std::string& why) {
    wall += Pick(rng, 3);
    T before = states[i];
    T delta = Op(states[i], rng, ids[i], clocks[i].Now());
    if (!(Joined(before, delta) == states[i])) return why = "state.join(delta) != mutated state", false;
    // Joining the delta again changes nothing (idempotence of delivery).
    if (!(Joined(states[i], delta) == states[i])) return why = "re-applying a delta changed the state", false;
    deltas.push_back(std::move(delta));
    for (std::size_t j = 0; j < states.size(); ++j) {
      if (j != i) queue.push_back(Message{j, deltas.size() - 1});
    }
    return true;
  }

  // Delivers one random queued message; it may be duplicated or dropped (and
  // resent later).
  void DeliverOne() {
    if (queue.empty()) return;
    std::size_t k = Pick(rng, queue.size());  // reordering
    Message m = queue[k];
    if (Chance(rng, 10)) {  // dropped, resent at the end
      dropped.push_back(m);
      queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(k));
      return;
    }
    states[m.to].Join(deltas[m.delta]);
    if (!Chance(rng, 20)) queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(k));  // else duplicated
  }

  void Run(std::size_t steps, std::string& why, bool& ok) {
    for (std::size_t s = 0; s < steps && ok; ++s) {
      if (Chance(rng, 55)) {
        ok = Mutate(Pick(rng, states.size()), why);
      } else {
        DeliverOne();
      }
    }
  }

  void Flush() {
    queue.insert(queue.end(), dropped.begin(), dropped.end());
    dropped.clear();
    while (!queue.empty()) {
      Message m = queue.back();
      queue.pop_back();
      states[m.to].Join(deltas[m.delta]);
    }
  }

  Rng& rng;
  std::uint64_t wall = 1'700'000'000'000;
  std::vector<T> states;
  std::vector<ReplicaId> ids;
  std::vector<std::uint64_t> skew;
  std::vector<HlcClock> clocks;
  std::vector<T> deltas;
  std::vector<Message> queue;
  std::vector<Message> dropped;
};

// A random state or delta from the world, or the empty state.
template <class T>
const T& AnyValue(World<T>& w) {
  static const T empty{};
  std::size_t k = Pick(w.rng, 5);
  if (k == 0) return empty;
  if (k < 3 || w.deltas.empty()) return w.states[Pick(w.rng, w.states.size())];
  return w.deltas[Pick(w.rng, w.deltas.size())];
}

// One case: every law once. Returns an empty string on success.
template <class T>
std::string RunCase(std::uint64_t seed) {
  Rng rng(seed);
  World<T> w(rng);
  std::string why;
  bool ok = true;
  w.Run(4 + Pick(rng, 30), why, ok);
  if (!ok) return why;

  // Join laws over states and deltas of one history.
  const T& a = AnyValue(w);
  const T& b = AnyValue(w);
  const T& c = AnyValue(w);
  if (!(Joined(a, b) == Joined(b, a))) return "join is not commutative";
  if (!(Joined(Joined(a, b), c) == Joined(a, Joined(b, c)))) return "join is not associative";
  if (!(Joined(a, a) == a)) return "join is not idempotent";
  if (!RoundTrips(a, why)) return "round trip: " + why;

  // Equal states, different histories: join every delta in two random orders
  // (with duplicates); the results must be equal and encode identically.
  std::vector<std::size_t> order(w.deltas.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  T x;
  T y;
  std::shuffle(order.begin(), order.end(), rng);
  for (std::size_t i : order) x.Join(w.deltas[i]);
  std::shuffle(order.begin(), order.end(), rng);
  for (std::size_t i : order) {
    y.Join(w.deltas[i]);
    if (Chance(rng, 10)) y.Join(w.deltas[order[Pick(rng, order.size())]]);
  }
  if (!(x == y)) return "joining the same deltas in another order gave another state";
  if (Encode(x) != Encode(y)) return "equal states encode to different bytes";

  // Convergence of replicas after every message (including resent drops) lands.
  w.Flush();
  for (const T& s : w.states) {
    if (!(s == w.states[0])) return "replicas did not converge";
    if (Encode(s) != Encode(w.states[0])) return "converged replicas encode differently";
  }
  if (!(w.states[0] == x)) return "replicas differ from the join of all deltas";
  return {};
}

template <class T>
void CheckLaws(const char* type_name) {
  const std::uint64_t base = BaseSeed();
  const std::uint64_t cases = Cases();
  for (std::uint64_t i = 0; i < cases; ++i) {
    const std::uint64_t seed = base + i;
    std::string failure = RunCase<T>(seed);
    if (!failure.empty()) {
      std::ostringstream msg;
      msg << type_name << ": " << failure << " (case seed " << seed
          << "; replay: LATTICE_SEED=" << seed << " LATTICE_CASES=1 crdt_property_test -tc='*"
          << type_name << "*')";
      FAIL(msg.str());
    }
  }
  MESSAGE(std::string(type_name) << ": " << cases << " cases, every law held");
}

TEST_CASE("laws: PNCounter") { CheckLaws<PNCounter>("PNCounter"); }
TEST_CASE("laws: LWWRegister") { CheckLaws<LWWRegister>("LWWRegister"); }
TEST_CASE("laws: MVRegister") { CheckLaws<MVRegister>("MVRegister"); }
TEST_CASE("laws: ORSet") { CheckLaws<ORSet>("ORSet"); }
TEST_CASE("laws: Flag") { CheckLaws<Flag>("Flag"); }
TEST_CASE("laws: ORMap") { CheckLaws<ORMap>("ORMap"); }
TEST_CASE("laws: HyperLogLog") { CheckLaws<HyperLogLog>("HyperLogLog"); }
TEST_CASE("laws: KeyState (mixed types)") { CheckLaws<KeyState>("KeyState"); }

}  // namespace
}  // namespace lattice::crdt
