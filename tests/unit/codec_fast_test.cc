// The codec's fast paths (crdt/codec.h: PeekRegister, OverwriteRegister)
// against the general path they stand in for, on random states: whenever a
// fast path answers, its answer is the general path's, byte for byte; and it
// answers for the simple shape it is for.
#include <doctest/doctest.h>

#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "crdt/codec.h"
#include "tests/test_seed.h"

namespace lattice::crdt {
namespace {

// A random history of one key on a few replicas that exchange states:
// string writes (concurrent ones leave siblings), DEL, EXPIRE and PERSIST,
// counter increments (another type), and joins of whole or partial
// states, which leave dots of a replica outside the version vector.
class History {
 public:
  // mode 0: strings (and a counter now and then), 1: counters only, 2: both.
  History(std::mt19937_64& rng, int mode) : rng_(rng), replicas_(3), mode_(mode) {}

  KeyState& Pick() { return replicas_[rng_() % replicas_.size()]; }
  ReplicaId Replica() { return 1 + rng_() % 3; }
  Hlc NextHlc() { return Hlc{++wall_, static_cast<std::uint32_t>(rng_() % 3)}; }
  std::string Value() {
    static const std::size_t sizes[] = {0, 1, 3, 15, 16, 200, 1024, 5000};
    return std::string(sizes[rng_() % std::size(sizes)], static_cast<char>('a' + rng_() % 26));
  }

  void Step() {
    KeyState& s = Pick();
    const ReplicaId r = Replica();
    const Stamp stamp{NextHlc(), r};
    switch (rng_() % 10) {
      case 0:
        s.Clear();
        break;
      case 1:
        s.Expire(stamp, 1000000 + rng_() % 1000);
        break;
      case 2:
        s.Persist();
        break;
      case 3:
        if (mode_ == 1) break;
        (void)s.Mutate<PNCounter>(stamp, [&](PNCounter& c) { return c.Increment(r, 1, stamp.hlc); });
        break;
      case 4: {  // a partial exchange: only the latest write's delta
        KeyState other = Pick();
        const Stamp st{NextHlc(), r};
        Result<KeyState> d = Status::Ok();
        if (Counting()) {
          d = other.Mutate<PNCounter>(st, [&](PNCounter& c) { return c.Increment(r, Amount(), st.hlc); });
        } else {
          d = other.Mutate<LWWRegister>(st, [&](LWWRegister& reg) { return reg.Write(r, Value(), st.hlc); });
        }
        if (d.ok()) s.Join(*d);
        break;
      }
      case 5:
        s.Join(Pick());
        break;
      default:
        if (Counting()) {
          (void)s.Mutate<PNCounter>(stamp, [&](PNCounter& c) { return c.Increment(r, Amount(), stamp.hlc); });
        } else {
          (void)s.Mutate<LWWRegister>(stamp, [&](LWWRegister& reg) { return reg.Write(r, Value(), stamp.hlc); });
        }
    }
  }

 private:
  bool Counting() { return mode_ == 1 || (mode_ == 2 && rng_() % 2 == 0); }
  std::int64_t Amount() { return static_cast<std::int64_t>(rng_() % 11) - 5; }

  std::mt19937_64& rng_;
  std::vector<KeyState> replicas_;
  int mode_;
  std::uint64_t wall_ = 1000;
};

// The single live register without expiry that the fast paths are for.
bool Simple(const KeyState& s) {
  return s.variants().size() == 1 && s.Get<LWWRegister>() != nullptr && s.expiry().store.empty();
}

TEST_CASE("codec fast paths: equal to decode, mutate and encode on random states") {
  const std::uint64_t seed = test::TestSeed("codec fast paths");
  INFO("seed " << seed << " (replay: LATTICE_SEED=" << seed << " build/tests/unit/crdt_unit_test)");
  std::mt19937_64 rng(seed);
  int peeked = 0, overwritten = 0, simple = 0, counters = 0, incremented = 0;
  for (int trial = 0; trial < 300; ++trial) {
    History h(rng, trial % 3);
    const int steps = 1 + static_cast<int>(rng() % 12);
    for (int i = 0; i < steps; ++i) h.Step();
    const KeyState state = h.Pick();
    const std::string bytes = EncodeKeyState(state);
    const bool is_simple = Simple(state);
    simple += is_simple;

    // GET.
    auto peek = PeekRegister(bytes);
    CHECK(peek.has_value() == is_simple);
    if (peek) {
      ++peeked;
      CHECK(*peek == *state.Get<LWWRegister>()->Value());
    }

    // INCRBY by each replica (IncrBy: no Persist), with and without a mint floor.
    const bool is_counter = state.variants().size() == 1 && state.Get<PNCounter>() != nullptr &&
                            state.expiry().store.empty();
    counters += is_counter;
    for (ReplicaId r = 1; r <= 4; ++r) {
      const std::uint64_t floor = rng() % 2 == 0 ? 0 : 1 + rng() % 5;
      const Hlc hlc{5000000 + rng() % 10, static_cast<std::uint32_t>(rng() % 2)};
      const std::int64_t by = rng() % 8 == 0 ? std::numeric_limits<std::int64_t>::max() : static_cast<std::int64_t>(rng() % 21) - 10;
      KeyState general = state;
      auto delta = general.Mutate<PNCounter>(Stamp{hlc, r}, [&](PNCounter& c) { return c.Increment(r, by, hlc); }, floor);
      std::string fast = "prefix";
      std::int64_t value = 0;
      const bool handled = IncrementCounter(bytes, r, hlc, floor, by, fast, value);
      if (!is_counter) CHECK_FALSE(handled);
      if (!handled) continue;
      ++incremented;
      REQUIRE(delta.ok());
      CHECK(value == general.Get<PNCounter>()->Value());
      CHECK(fast.substr(6) == EncodeKeyState(general));
      std::int64_t sum = 0;
      CHECK_FALSE(__builtin_add_overflow(state.Get<PNCounter>()->Value(), by, &sum));
    }

    // SET by each replica, with and without a mint floor.
    for (ReplicaId r = 1; r <= 4; ++r) {
      const std::uint64_t floor = rng() % 2 == 0 ? 0 : 1 + rng() % 5;
      const Hlc hlc{5000000 + rng() % 10, static_cast<std::uint32_t>(rng() % 2)};
      const std::string value = h.Value();
      KeyState general = state;
      general.Persist();
      auto delta = general.Mutate<LWWRegister>(
          Stamp{hlc, r}, [&](LWWRegister& reg) { return reg.Write(r, value, hlc); }, floor);
      std::string fast = "prefix";  // appended to, not replaced
      const bool handled = OverwriteRegister(bytes, r, hlc, floor, value, fast);
      if (!is_simple) CHECK_FALSE(handled);
      if (!handled) continue;
      ++overwritten;
      REQUIRE(delta.ok());
      CHECK(fast.substr(0, 6) == "prefix");
      CHECK(fast.substr(6) == EncodeKeyState(general));
      auto decoded = DecodeKeyState(std::string_view(fast).substr(6));
      REQUIRE(decoded.ok());
      CHECK(*decoded == general);
    }
  }
  // The fast paths must actually serve the shape they are for.
  CHECK(simple > 30);
  CHECK(counters > 30);
  CHECK(incremented > counters);
  CHECK(peeked == simple);
  CHECK(overwritten > simple);
  MESSAGE("simple states " << simple << ", peeks " << peeked << ", overwrites " << overwritten << "; counters "
                           << counters << ", increments " << incremented);
}

TEST_CASE("codec fast paths: CreateRegister is SET on an empty state") {
  for (const std::string& value : {std::string(), std::string("v"), std::string(3000, 'z')}) {
    for (ReplicaId r : {ReplicaId{1}, ReplicaId{0xfedcba9876543210}}) {
      const Hlc hlc{1234567, 3};
      KeyState general;
      general.Persist();
      auto delta = general.Mutate<LWWRegister>(Stamp{hlc, r}, [&](LWWRegister& reg) { return reg.Write(r, value, hlc); });
      REQUIRE(delta.ok());
      std::string fast = "p";
      CreateRegister(r, hlc, value, fast);
      CHECK(fast.substr(1) == EncodeKeyState(general));
      CHECK(PeekRegister(fast.substr(1)) == std::optional<std::string_view>(value));
    }
  }
}

TEST_CASE("codec fast paths: CreateCounter is INCRBY on an empty state") {
  for (std::int64_t by : {std::int64_t{1}, std::int64_t{-7}, std::numeric_limits<std::int64_t>::min()}) {
    const ReplicaId r = 0x1234;
    const Hlc hlc{99, 1};
    KeyState general;
    auto delta = general.Mutate<PNCounter>(Stamp{hlc, r}, [&](PNCounter& c) { return c.Increment(r, by, hlc); });
    REQUIRE(delta.ok());
    std::string fast;
    CreateCounter(r, hlc, by, fast);
    CHECK(fast == EncodeKeyState(general));
    std::string next;
    std::int64_t value = 0;
    if (by != std::numeric_limits<std::int64_t>::min()) {
      REQUIRE(IncrementCounter(fast, r, hlc, 0, -1, next, value));
      CHECK(value == by - 1);
    } else {
      CHECK_FALSE(IncrementCounter(fast, r, hlc, 0, -1, next, value));  // would overflow
      CHECK(next.empty());
    }
  }
}

TEST_CASE("codec fast paths: bytes that are not a state are not handled") {
  std::string out;
  CHECK_FALSE(PeekRegister("").has_value());
  CHECK_FALSE(PeekRegister("abc").has_value());
  CHECK_FALSE(PeekRegister(std::string(64, '\xff')).has_value());
  CHECK_FALSE(OverwriteRegister(std::string(64, '\xff'), 1, Hlc{1, 0}, 0, "v", out));
  CHECK(out.empty());
  CHECK_FALSE(PeekRegister(EncodeKeyState(KeyState{})).has_value());
}

TEST_CASE("codec: AppendKeyState appends EncodeKeyState's bytes, also past the thread's first segment") {
  for (std::size_t n : {std::size_t{0}, std::size_t{10}, std::size_t{100000}}) {
    KeyState s;
    (void)s.Mutate<LWWRegister>(Stamp{Hlc{1, 0}, 1},
                                [&](LWWRegister& r) { return r.Write(1, std::string(n, 'x'), Hlc{1, 0}); });
    std::string out = "ab";
    AppendKeyState(s, out);
    CHECK(out == "ab" + EncodeKeyState(s));
    // After a build larger than the first segment, a small one still
    // encodes canonically (the segment was zeroed again).
    KeyState small;
    (void)small.Mutate<PNCounter>(Stamp{Hlc{2, 0}, 2}, [](PNCounter& c) { return c.Increment(2, 5, Hlc{2, 0}); });
    auto round = DecodeKeyState(EncodeKeyState(small));
    REQUIRE(round.ok());
    CHECK(*round == small);
  }
}

}  // namespace
}  // namespace lattice::crdt

namespace lattice::crdt {
namespace {

// Increments that overflow only once merged (two replicas' contributions
// summing past int64): the general path saturates and answers the overflow
// error, so the fast path must not add to a wrapped sum.
TEST_CASE("codec fast path: INCRBY of a counter whose merged sum leaves int64 is left to the general path") {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  KeyState s;
  auto incr = [&](ReplicaId r, std::int64_t by) {
    s.Join(*s.Mutate<PNCounter>(Stamp{Hlc{1, 0}, r}, [&](PNCounter& c) { return c.Increment(r, by, Hlc{1, 0}); }));
  };
  incr(1, kMax - 5);
  incr(2, 20);
  REQUIRE(s.String()->overflow);
  const std::string bytes = EncodeKeyState(s);
  std::string out;
  std::int64_t value = 0;
  CHECK_FALSE(IncrementCounter(bytes, 1, Hlc{2, 0}, 0, 1, out, value));
  CHECK_FALSE(IncrementCounter(bytes, 1, Hlc{2, 0}, 0, -30, out, value));
}

}  // namespace
}  // namespace lattice::crdt
