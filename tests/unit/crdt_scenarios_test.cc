// The classic CRDT scenarios, each a named test (issue: foundation, §6).
#include <doctest/doctest.h>

#include "crdt/key_state.h"

namespace lattice::crdt {
namespace {

constexpr ReplicaId kA = 1;
constexpr ReplicaId kB = 2;

Hlc At(std::uint64_t ms) { return Hlc{ms, 0}; }

template <class T>
T Joined(T a, const T& b) {
  a.Join(b);
  return a;
}

TEST_CASE("set: concurrent add and remove of one element -> the add wins") {
  ORSet a;
  ORSet b;
  b.Join(a.Add(kA, "x"));  // both replicas have seen x
  ORSet removal = b.Remove("x");
  ORSet re_add = a.Add(kA, "x");  // concurrent with the remove
  a.Join(removal);
  b.Join(re_add);
  CHECK(a == b);
  CHECK(a.Contains("x"));
}

TEST_CASE("set: a remove that has seen the add removes it") {
  ORSet a;
  ORSet b;
  b.Join(a.Add(kA, "x"));
  a.Join(b.Remove("x"));
  CHECK_FALSE(a.Contains("x"));
  CHECK(a == b);
}

TEST_CASE("flag: concurrent enable and disable -> enabled") {
  Flag a;
  Flag b;
  b.Join(a.Enable(kA));
  Flag disable = a.Disable(kA);
  Flag enable = b.Enable(kB);
  a.Join(enable);
  b.Join(disable);
  CHECK(a == b);
  CHECK(a.Enabled());
  // A disable that has seen the enable wins.
  b.Join(a.Disable(kA));
  CHECK_FALSE(b.Enabled());
}

TEST_CASE("mv-register: concurrent writes -> both siblings; a write that saw both -> one value") {
  MVRegister a;
  MVRegister b;
  MVRegister da = a.Write(kA, "left", At(100));
  MVRegister db = b.Write(kB, "right", At(100));
  a.Join(db);
  b.Join(da);
  CHECK(a == b);
  CHECK(a.Values() == std::vector<std::string>{"left", "right"});
  b.Join(a.Write(kA, "merged", At(101)));
  CHECK(b.Values() == std::vector<std::string>{"merged"});
}

TEST_CASE("lww: a node 10 minutes behind wins with a write that causally follows") {
  const std::uint64_t now = 1'800'000'000'000;
  const std::uint64_t ten_minutes = 10 * 60 * 1000;
  HlcClock clock_a([&] { return now; });
  HlcClock clock_b([&] { return now - ten_minutes; });  // slow wall clock

  LWWRegister a;
  LWWRegister b;
  b.Join(a.Write(kA, "from-a", clock_a.Now()));
  REQUIRE(b.Value() == "from-a");
  // B refuses to let A's clock drag its own forward by 10 minutes ...
  CHECK(clock_b.Observe(a.Timestamp()).code() == Status::Code::kRefused);
  // ... and still its write wins, because it has observed A's write.
  LWWRegister later = b.Write(kB, "from-b", clock_b.Now());
  CHECK(b.Timestamp() < Hlc{now, 0});
  a.Join(later);
  CHECK(a.Value() == "from-b");
  CHECK(a == b);
}

TEST_CASE("lww: truly concurrent writes fall to the highest (HLC, node id)") {
  LWWRegister a;
  LWWRegister b;
  LWWRegister da = a.Write(kA, "a", At(200));
  LWWRegister db = b.Write(kB, "b", At(100));
  a.Join(db);
  b.Join(da);
  CHECK(a.Value() == "a");
  CHECK(b.Value() == "a");
  // Equal HLCs: the higher node id wins.
  LWWRegister c;
  LWWRegister dc = c.Write(kA, "low-id", At(300));
  LWWRegister e;
  LWWRegister de = e.Write(kB, "high-id", At(300));
  LWWRegister f;
  f.Join(dc);
  f.Join(de);
  CHECK(f.Value() == "high-id");
}

TEST_CASE("or-map: HDEL concurrent with HINCRBY 2 from a node that contributed 5 -> 2") {
  ORMap a;
  ORMap b;
  a.Join(b.Increment(kB, "visits", 5, At(10)));
  REQUIRE(a.Get("visits")->Text() == "5");
  ORMap hdel = a.Remove("visits");
  ORMap incr = b.Increment(kB, "visits", 2, At(11));
  a.Join(incr);
  b.Join(hdel);
  CHECK(a == b);
  REQUIRE(a.Get("visits").has_value());
  CHECK(a.Get("visits")->Text() == "2");
}

TEST_CASE("counter: top-level DEL concurrent with INCRBY 2 from a node that contributed 5 -> 2") {
  KeyState a;
  KeyState b;
  auto incr = [](std::int64_t n, std::uint64_t ms) {
    return [=](PNCounter& c) { return c.Increment(kB, n, At(ms)); };
  };
  a.Join(*b.Mutate<PNCounter>(Stamp{At(10), kB}, incr(5, 10)));
  REQUIRE(a.Get<PNCounter>()->Value() == 5);
  KeyState del = a.Clear();
  CHECK_FALSE(a.Live());
  KeyState more = *b.Mutate<PNCounter>(Stamp{At(11), kB}, incr(2, 11));
  a.Join(more);
  b.Join(del);
  CHECK(a == b);
  REQUIRE(a.Get<PNCounter>() != nullptr);
  CHECK(a.Get<PNCounter>()->Value() == 2);
}

TEST_CASE("key type: concurrent creation as set and as register -> every replica keeps the same") {
  KeyState a;
  KeyState b;
  KeyState as_set = *a.Mutate<ORSet>(Stamp{At(100), kA}, [](ORSet& s) { return s.Add(kA, "m"); });
  KeyState as_reg = *b.Mutate<LWWRegister>(Stamp{At(50), kB},
                                           [](LWWRegister& r) { return r.Write(kB, "v", At(50)); });
  a.Join(as_reg);
  b.Join(as_set);
  CHECK(a == b);
  CHECK(a.LiveType() == CrdtType::kSet);  // the creation with the higher (HLC, node)
  CHECK(b.Get<ORSet>()->Contains("m"));
  CHECK(b.Get<LWWRegister>() == nullptr);
  // The register is dropped but still listed until a write removes it.
  CHECK(IsLive(b.variants().at(CrdtType::kRegister).value));
  KeyState next = *b.Mutate<ORSet>(Stamp{At(101), kB}, [](ORSet& s) { return s.Add(kB, "n"); });
  CHECK_FALSE(IsLive(b.variants().at(CrdtType::kRegister).value));
  a.Join(next);
  CHECK(a == b);
  // A write of the dropped type is refused while the set is live.
  auto refused = a.Mutate<LWWRegister>(Stamp{At(102), kA},
                                       [](LWWRegister& r) { return r.Write(kA, "x", At(102)); });
  CHECK(refused.status().IsWrongType());
  CHECK(a == b);  // a refused write changes nothing
}

TEST_CASE("key type: a key deleted and re-created as another type shows the new type") {
  KeyState a;
  KeyState b;
  b.Join(*a.Mutate<ORSet>(Stamp{At(100), kA}, [](ORSet& s) { return s.Add(kA, "m"); }));
  b.Join(a.Clear());
  KeyState reg = *a.Mutate<LWWRegister>(Stamp{At(90), kA},  // clock went backwards
                                        [](LWWRegister& r) { return r.Write(kA, "v", At(90)); });
  b.Join(reg);
  CHECK(a == b);
  CHECK(b.LiveType() == CrdtType::kRegister);
  CHECK(b.Get<LWWRegister>()->Value() == "v");
}

TEST_CASE("set: a removed element does not come back when an old delta arrives late") {
  ORSet a;
  ORSet b;
  ORSet old_add = a.Add(kA, "x");
  b.Join(old_add);
  a.Join(b.Remove("x"));
  a.Join(old_add);  // late duplicate
  b.Join(old_add);
  CHECK_FALSE(a.Contains("x"));
  CHECK_FALSE(b.Contains("x"));
}

TEST_CASE("or-map: a removed field does not come back when an old delta arrives late") {
  ORMap a;
  ORMap b;
  ORMap old_set = a.Set(kA, "name", "alice", At(1));
  ORMap old_incr = a.Increment(kA, "count", 3, At(2));
  b.Join(old_set);
  b.Join(old_incr);
  ORMap removal = b.Remove("name");
  removal.Join(b.Remove("count"));
  a.Join(removal);
  for (ORMap* m : {&a, &b}) {
    m->Join(old_set);
    m->Join(old_incr);
    CHECK_FALSE(m->Get("name").has_value());
    CHECK_FALSE(m->Get("count").has_value());
    CHECK(m->Size() == 0);
  }
}

TEST_CASE("or-map: a field is a string: HSET sets the base, HINCRBY adds, HSET removes what it observed") {
  ORMap m;
  m.Set(kA, "f", "10", At(1));
  m.Increment(kA, "f", 5, At(2));
  CHECK(m.Get("f")->Text() == "15");
  CHECK(m.Get("f")->Integer() == 15);
  // A concurrent HSET 5 (it did not see the +5) and HINCRBY 1.
  ORMap other = m;
  ORMap set = other.Set(kB, "f", "5", At(3));
  ORMap incr = m.Increment(kA, "f", 1, At(4));
  m.Join(set);
  other.Join(incr);
  CHECK(m == other);
  CHECK(m.Get("f")->Text() == "6");  // the 5 plus the increment HSET did not see
  // A base that is not an integer reads as itself; its increments are kept.
  ORMap text = m.Set(kA, "f", "abc", At(5));
  ORMap late = other.Increment(kB, "f", 2, At(5));
  m.Join(late);
  other.Join(text);
  CHECK(m == other);
  CHECK(m.Get("f")->Text() == "abc");
  CHECK_FALSE(m.Get("f")->Integer().has_value());
  CHECK(m.Get("f")->increments == 2);
  // After HDEL the field starts again.
  m.Remove("f");
  m.Increment(kA, "f", 7, At(6));
  CHECK(m.Get("f")->Text() == "7");
}

}  // namespace
}  // namespace lattice::crdt

namespace lattice::crdt {
namespace {

KeyState SetWith(std::initializer_list<const char*> members, std::uint64_t ms) {
  KeyState s;
  for (const char* m : members) {
    (void)s.Mutate<ORSet>(Stamp{Hlc{ms, 0}, kA}, [&](ORSet& v) { return v.Add(kA, m); });
  }
  return s;
}

TEST_CASE("expiry: a key expires on every replica; a write made after EXPIRE survives") {
  KeyState a = SetWith({"x", "y"}, 10);
  KeyState b = a;
  KeyState expire = a.Expire(Stamp{Hlc{20, 0}, kA}, 1000);
  CHECK(a.ExpiresAt() == 1000);
  // B adds z concurrently with (not after) the EXPIRE.
  KeyState add = *b.Mutate<ORSet>(Stamp{Hlc{21, 0}, kB}, [](ORSet& s) { return s.Add(kB, "z"); });
  a.Join(add);
  b.Join(expire);
  CHECK(a == b);
  for (KeyState* s : {&a, &b}) {
    KeyState nothing = *s->ExpireDue(999);
    CHECK(nothing.Empty());
    CHECK(s->Get<ORSet>()->Size() == 3);
  }
  KeyState due_a = *a.ExpireDue(1000);
  KeyState due_b = *b.ExpireDue(1500);
  CHECK(a == b);
  a.Join(due_b);
  b.Join(due_a);
  CHECK(a == b);
  REQUIRE(a.Get<ORSet>() != nullptr);
  CHECK(a.Get<ORSet>()->Members() == std::vector<std::string>{"z"});
  CHECK_FALSE(a.ExpiresAt().has_value());
}

TEST_CASE("expiry: PERSIST removes the expiry; DEL removes it too") {
  KeyState a = SetWith({"x"}, 10);
  a.Expire(Stamp{Hlc{20, 0}, kA}, 1000);
  a.Persist();
  CHECK(a.ExpireDue(5000)->Empty());
  CHECK(a.Get<ORSet>()->Contains("x"));
  a.Expire(Stamp{Hlc{30, 0}, kA}, 1000);
  a.Clear();
  CHECK_FALSE(a.ExpiresAt().has_value());
}

TEST_CASE("expiry: INCR; EXPIRE; INCR is gone once due; an increment the EXPIRE's replicas never saw survives") {
  KeyState a;
  auto incr = [](ReplicaId r, std::int64_t n) {
    return [=](PNCounter& c) { return c.Increment(r, n, Hlc{1, 0}); };
  };
  a.Mutate<PNCounter>(Stamp{Hlc{1, 0}, kA}, incr(kA, 5));
  KeyState b = a;
  a.Join(a.Expire(Stamp{Hlc{2, 0}, kA}, 100));
  // The rate limiter idiom (Redis's INCR page): the INCR after the EXPIRE keeps
  // the TTL, so it goes with the key.
  KeyState kept = *a.Mutate<PNCounter>(Stamp{Hlc{3, 0}, kA}, incr(kA, 2));
  CHECK(a.ExpiresAt() == 100);
  // Concurrently, b (which never saw the EXPIRE) increments.
  KeyState concurrent = *b.Mutate<PNCounter>(Stamp{Hlc{3, 0}, kB}, incr(kB, 7));
  b.Join(a);
  a.Join(concurrent);
  CHECK(a == b);
  CHECK(a.String()->Text() == "14");
  for (KeyState* s : {&a, &b}) {
    REQUIRE(s->ExpireDue(100).ok());
    REQUIRE(s->String().has_value());
    CHECK(s->String()->Text() == "7");
  }
  CHECK(a == b);
  // Every replica gets there whatever the order: the kept expiry alone, then the rest.
  KeyState c;
  c.Join(kept);
  c.Join(b);
  CHECK(c == a);
}

TEST_CASE("field expiry: HEXPIRE removes the field once due; HSET clears it; HINCRBY keeps it") {
  ORMap m;
  m.Set(kA, "online", "yes", Hlc{1, 0});
  m.Increment(kA, "n", 5, Hlc{1, 0});
  CHECK(m.ExpireField(kA, "missing", 100, Hlc{2, 0}).status().IsNotFound());
  REQUIRE(m.ExpireField(kA, "online", 100, Hlc{2, 0}).ok());
  REQUIRE(m.ExpireField(kA, "n", 100, Hlc{2, 0}).ok());
  CHECK(m.FieldExpiresAt("online") == 100);
  CHECK(m.NextExpiry() == 100);
  // HINCRBY keeps the field's TTL, and its own contribution goes with it.
  m.Increment(kA, "n", 2, Hlc{3, 0});
  CHECK(m.FieldExpiresAt("n") == 100);
  ORMap copy = m;
  m.Set(kA, "online", "again", Hlc{3, 0});
  CHECK_FALSE(m.FieldExpiresAt("online").has_value());
  std::vector<std::string> expired;
  ORMap due = m.ExpireDue(100, &expired);
  CHECK(m.Get("online")->Text() == "again");
  CHECK_FALSE(m.Get("n").has_value());
  CHECK(expired == std::vector<std::string>{"n"});
  expired.clear();
  copy.ExpireDue(100, &expired);
  CHECK_FALSE(copy.Get("online").has_value());
  CHECK(expired == std::vector<std::string>{"n", "online"});
  copy.Join(due);
  m.Join(copy);
  CHECK(m.Get("online")->Text() == "again");
}

}  // namespace
}  // namespace lattice::crdt
