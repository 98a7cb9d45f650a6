// Strings that count (DESIGN §2, crdt/string_value.h): the named races of a
// key's string (an LWW base plus the increments since it) and of a map field.
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>

#include "crdt/key_state.h"

namespace lattice::crdt {
namespace {

constexpr ReplicaId kA = 1;
constexpr ReplicaId kB = 2;

// SET and INCRBY as the engine mutates a key (SET persists first).
KeyState Set(KeyState& s, ReplicaId r, std::uint64_t ms, const std::string& v) {
  KeyState delta = s.Persist();
  delta.Join(*s.Mutate<LWWRegister>(Stamp{Hlc{ms, 0}, r},
                                    [&](LWWRegister& reg) { return reg.Write(r, v, Hlc{ms, 0}); }));
  return delta;
}
KeyState Incr(KeyState& s, ReplicaId r, std::uint64_t ms, std::int64_t by) {
  return *s.Mutate<PNCounter>(Stamp{Hlc{ms, 0}, r}, [&](PNCounter& c) { return c.Increment(r, by, Hlc{ms, 0}); });
}
std::string Get(const KeyState& s) { return s.String() ? s.String()->Text() : "(nil)"; }

// Both replicas take the other's delta; they must then be equal.
void Exchange(KeyState& a, const KeyState& da, KeyState& b, const KeyState& db) {
  a.Join(db);
  b.Join(da);
  CHECK(a == b);
}

TEST_CASE("string: SET 100 then INCR gives 101; the key is one string type") {
  KeyState s;
  Set(s, kA, 1, "100");
  Incr(s, kA, 2, 1);
  CHECK(Get(s) == "101");
  REQUIRE(s.LiveType().has_value());
  CHECK(TypeName(*s.LiveType()) == "string");
  // INCR on a new key, then SET: the SET removes the increments it saw.
  KeyState t;
  Incr(t, kA, 1, 5);
  CHECK(Get(t) == "5");
  Set(t, kA, 2, "hello");
  CHECK(Get(t) == "hello");
  CHECK_FALSE(t.String()->counted);
  // Another type is still refused.
  auto sadd = t.Mutate<ORSet>(Stamp{Hlc{3, 0}, kA}, [](ORSet& set) { return set.Add(kA, "x"); });
  CHECK(sadd.status().IsWrongType());
}

TEST_CASE("string: SET 5 concurrent with INCR gives 6 on every replica") {
  KeyState a, b;
  Exchange(a, Set(a, kA, 1, "10"), b, KeyState{});
  KeyState set = Set(a, kA, 2, "5");
  KeyState incr = Incr(b, kB, 2, 1);
  Exchange(a, set, b, incr);
  CHECK(Get(a) == "6");
  // A SET that saw the increment removes it.
  Set(a, kA, 3, "5");
  CHECK(Get(a) == "5");
}

TEST_CASE("string: a non-integer base keeps its concurrent increments until a SET removes them") {
  KeyState a, b;
  Exchange(a, Set(a, kA, 1, "1"), b, KeyState{});
  KeyState text = Set(a, kA, 2, "abc");
  KeyState incr = Incr(b, kB, 2, 3);
  Exchange(a, text, b, incr);
  CHECK(Get(a) == "abc");
  CHECK_FALSE(a.String()->Integer().has_value());
  CHECK(a.String()->increments == 3);
  Set(a, kA, 3, "7");
  CHECK(Get(a) == "7");
  CHECK_FALSE(a.String()->counted);
}

TEST_CASE("string: increments that overflow only once merged saturate") {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  KeyState a, b;
  Exchange(a, Incr(a, kA, 1, kMax - 10), b, KeyState{});
  KeyState da = Incr(a, kA, 2, 5);   // each fits on its own replica
  KeyState db = Incr(b, kB, 2, 20);
  CHECK(Get(a) == std::to_string(kMax - 5));
  Exchange(a, da, b, db);
  CHECK(Get(a) == std::to_string(kMax));
  CHECK(a.String()->overflow);
  // A decrement that brings the sum back in range reads exactly again.
  Incr(a, kA, 3, -100);
  CHECK(Get(a) == std::to_string(kMax - 85));
  CHECK_FALSE(a.String()->overflow);
}

TEST_CASE("string: DEL racing INCR keeps only the increment DEL did not see") {
  KeyState a, b;
  Exchange(a, Incr(a, kA, 1, 5), b, KeyState{});
  KeyState del = a.Clear();
  KeyState incr = Incr(b, kB, 2, 2);
  Exchange(a, del, b, incr);
  CHECK(Get(a) == "2");
}

TEST_CASE("string: a replica's base and increments draw dots from one sequence") {
  KeyState s;
  Set(s, kA, 1, "1");
  Set(s, kA, 2, "2");
  Incr(s, kA, 3, 1);
  const Variant* counter = s.MutableVariant(CrdtType::kCounter);
  REQUIRE(counter != nullptr);
  // The increment's dot lies above both SETs' (1 and 2), so that the key's
  // context tells a replica that has seen the SETs from one that has seen the INCR.
  CHECK(ContextOf(counter->value).MaxCounter(kA) == 3);
  KeyState seen_sets;
  Set(seen_sets, kA, 1, "1");
  CHECK_FALSE(seen_sets.Context().Contains(Dot{kA, 3}));
  CHECK(s.Context().Contains(Dot{kA, 3}));
}

TEST_CASE("string: INCR after EXPIRE is removed with the key; EXPIRE concurrent with SADD keeps the add") {
  KeyState s;
  Incr(s, kA, 1, 1);
  s.Join(s.Expire(Stamp{Hlc{2, 0}, kA}, 100));
  Incr(s, kA, 3, 1);
  CHECK(Get(s) == "2");
  REQUIRE(s.ExpireDue(100).ok());
  CHECK_FALSE(s.Live());

  KeyState a, b;
  Exchange(a, *a.Mutate<ORSet>(Stamp{Hlc{1, 0}, kA}, [](ORSet& set) { return set.Add(kA, "x"); }), b, KeyState{});
  KeyState expire = a.Expire(Stamp{Hlc{2, 0}, kA}, 100);
  a.Join(expire);
  KeyState sadd = *b.Mutate<ORSet>(Stamp{Hlc{2, 0}, kB}, [](ORSet& set) { return set.Add(kB, "y"); });
  Exchange(a, expire, b, sadd);
  for (KeyState* r : {&a, &b}) {
    REQUIRE(r->ExpireDue(100).ok());
    REQUIRE(r->Get<ORSet>() != nullptr);
    CHECK(r->Get<ORSet>()->Members() == std::vector<std::string>{"y"});
  }
  CHECK(a == b);
}

}  // namespace
}  // namespace lattice::crdt

namespace lattice::crdt {
namespace {

// HyperLogLog (crdt/hll.h): the named race and convergence.
TEST_CASE("hll: concurrent PFADDs on two replicas count the union; DEL racing PFADD keeps the racing add") {
  HyperLogLog a, b;
  bool changed = false;
  HyperLogLog da = a.Add(1, {"x1", "x2", "x3"}, changed);
  CHECK(changed);
  HyperLogLog db = b.Add(2, {"y1", "y2"}, changed);
  a.Join(db);
  b.Join(da);
  CHECK(a == b);
  CHECK(a.Count() == 5);
  (void)a.Add(1, {"x1"}, changed);
  CHECK_FALSE(changed);  // no register rose: no write
  // DEL on a (it saw both arrays) races b adding y3: b's new array, with
  // everything b ever added, survives; a's is gone.
  HyperLogLog del = a.Clear();
  HyperLogLog add = b.Add(2, {"y3"}, changed);
  a.Join(add);
  b.Join(del);
  CHECK(a == b);
  CHECK(a.Count() == 3);  // y1 y2 y3: what replica 2 added
  // Registers survive the canonical encoding.
  std::string registers = a.Merged();
  std::string back;
  REQUIRE(HyperLogLog::FromSparse(HyperLogLog::Sparse(registers), back));
  CHECK(back == registers);
  CHECK_FALSE(HyperLogLog::FromSparse(std::string("\x00\x01", 2), back));
}

}  // namespace
}  // namespace lattice::crdt

namespace lattice::crdt {
namespace {

TEST_CASE("field expiry: HINCRBY folds only its own increment; an HSET that never saw the HEXPIRE survives it") {
  ORMap a;
  a.Set(1, "f", "10", Hlc{1, 0});
  ORMap b = a;
  REQUIRE(a.ExpireField(1, "f", 100, Hlc{2, 0}).ok());
  ORMap set = b.Set(2, "f", "20", Hlc{2, 0});  // concurrent with the HEXPIRE
  a.Join(set);
  a.Increment(1, "f", 5, Hlc{3, 0});  // keeps the TTL: its +5 goes with it
  CHECK(a.Get("f")->Text() == "25");
  a.ExpireDue(100);
  REQUIRE(a.Get("f").has_value());
  CHECK(a.Get("f")->Text() == "20");  // B's value stays, A's increment went with the TTL
}

}  // namespace
}  // namespace lattice::crdt
