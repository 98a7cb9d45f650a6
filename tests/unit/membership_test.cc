// Membership merge order and failure detection.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "gossip/membership.h"
#include "tests/test_seed.h"

namespace lattice::gossip {
namespace {

Member M(std::string name, std::uint64_t inc, std::uint64_t ver, MemberState s) {
  return Member{std::move(name), "127.0.0.1:1", "127.0.0.1:2", inc, ver, s};
}

TEST_CASE("membership: records merge to the same view in any order") {
  const std::uint64_t seed = test::TestSeed("membership merge");
  INFO("seed " << seed << " (replay: LATTICE_SEED=" << seed << " build/tests/unit/membership_unit_test)");
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 2000; ++round) {
    std::vector<Member> records;
    for (int i = 0; i < 12; ++i) {
      records.push_back(M("n" + std::to_string(rng() % 3), rng() % 2, rng() % 4,
                          static_cast<MemberState>(rng() % 4)));
    }
    Membership a(M("self", 1, 1, MemberState::kAlive));
    Membership b(M("self", 1, 1, MemberState::kAlive));
    a.Merge(records);
    std::shuffle(records.begin(), records.end(), rng);
    for (const auto& r : records) b.Merge({r});
    REQUIRE(a.members() == b.members());
  }
}

TEST_CASE("membership: order of precedence") {
  CHECK(Supersedes(M("x", 2, 0, MemberState::kAlive), M("x", 1, 9, MemberState::kLeft)));  // new life
  CHECK(Supersedes(M("x", 1, 0, MemberState::kLeft), M("x", 1, 9, MemberState::kAlive)));  // left is final
  CHECK(Supersedes(M("x", 1, 5, MemberState::kAlive), M("x", 1, 4, MemberState::kDead)));  // refuted
  CHECK(Supersedes(M("x", 1, 4, MemberState::kSuspect), M("x", 1, 4, MemberState::kAlive)));
}

TEST_CASE("membership: a node refutes suspicion of itself") {
  Membership me(M("me", 1, 3, MemberState::kAlive));
  CHECK(me.Merge({M("me", 1, 3, MemberState::kSuspect)}));
  CHECK(me.Find("me")->version == 4);
  CHECK(me.Find("me")->state == MemberState::kAlive);
  Membership other(M("o", 1, 1, MemberState::kAlive));
  other.Merge({M("me", 1, 3, MemberState::kSuspect)});
  other.Merge({*me.Find("me")});
  CHECK(other.Find("me")->state == MemberState::kAlive);
}

TEST_CASE("membership: phi-accrual detector: alive, suspect, dead, alive again") {
  DetectorOptions opt;
  opt.dead_after_ms = 1000;
  Membership m(M("me", 1, 1, MemberState::kAlive), opt);
  m.Merge({M("peer", 1, 1, MemberState::kAlive)});
  std::uint64_t t = 10'000;
  for (int i = 0; i < 20; ++i, t += 100) m.Heard("peer", t);
  CHECK(m.Phi("peer", t) < 1.0);
  CHECK(m.Detect(t).empty());
  t += 2500;  // 25 missed heartbeats: phi ~ 10.9
  CHECK(m.Phi("peer", t) > 8.0);
  CHECK(m.Detect(t) == std::vector<std::string>{"peer"});
  CHECK(m.Find("peer")->state == MemberState::kSuspect);
  CHECK(m.Detect(t + 500).empty());
  CHECK(m.Detect(t + 1000) == std::vector<std::string>{"peer"});
  CHECK(m.Find("peer")->state == MemberState::kDead);
  CHECK(m.NotLeft().size() == 2);  // dead members stay replicas
  m.Merge({M("peer", 1, 2, MemberState::kAlive)});  // it restarted and gossips again
  CHECK(m.Find("peer")->state == MemberState::kAlive);
  CHECK(m.Forget("peer"));
  CHECK(m.NotLeft() == std::vector<std::string>{"me"});
}

}  // namespace
}  // namespace lattice::gossip
