// gossip/formation.h: fresh nodes that hear each other agree on their founders
// and found one cluster; a fresh node that hears a member of a cluster joins
// it; a lone fresh node with seeds of others waits before founding alone; the
// membership gossip message round-trips.
#include <doctest/doctest.h>

#include <memory>

#include "gossip/formation.h"

namespace lattice::gossip {
namespace {

struct Fresh {
  Membership membership;
  Formation formation;
  Fresh(const std::string& name, std::size_t expect)
      : membership(Member{name, name + ":1", name + ":2", 7, 1, MemberState::kAlive}), formation(expect, 0) {}
};

// Every node hears every other's record at `now`.
void Exchange(std::vector<std::unique_ptr<Fresh>>& nodes, std::uint64_t now) {
  for (auto& from : nodes) {
    const Member me = from->membership.Tick();
    for (auto& to : nodes) {
      if (to == from) continue;
      to->membership.Merge({me});
      to->membership.Heard(me.name, now);
    }
  }
}

TEST_CASE("formation: three fresh nodes agree on their founders and found one cluster") {
  std::vector<std::unique_ptr<Fresh>> nodes;
  for (const char* name : {"a", "b", "c"}) nodes.push_back(std::make_unique<Fresh>(name, 3));
  // Before they hear each other: each waits and says why.
  FormationStep alone = nodes[0]->formation.Step(nodes[0]->membership, true, 10000);
  CHECK(alone.kind == FormationStep::Kind::kWait);
  CHECK(alone.reason == "bootstrap-expect 3, 1 fresh node heard (a)");
  Exchange(nodes, 10000);
  // They hear each other but have not yet announced the same set.
  std::vector<FormationStep> steps;
  for (auto& n : nodes) {
    steps.push_back(n->formation.Step(n->membership, true, 10000));
    CHECK(steps.back().kind == FormationStep::Kind::kWait);
    CHECK(steps.back().reason == "bootstrap-expect 3, 3 fresh nodes heard (a,b,c), agreeing on the founders");
    n->membership.SetCluster(0, steps.back().forming);
  }
  CHECK(steps[0].forming == steps[1].forming);
  CHECK(steps[1].forming == steps[2].forming);
  Exchange(nodes, 10100);
  // Now each sees the others announce the same set: all found the same id.
  std::uint64_t id = 0;
  for (auto& n : nodes) {
    FormationStep s = n->formation.Step(n->membership, true, 10100);
    REQUIRE(s.kind == FormationStep::Kind::kFound);
    CHECK(s.founder_count == 3);
    CHECK(s.founders == "a,b,c");
    if (id == 0) id = s.cluster_id;
    CHECK(s.cluster_id == id);
  }
  CHECK(id == FoundersId({{"c", 7}, {"a", 7}, {"b", 7}}));
  CHECK(id != 0);
}

TEST_CASE("formation: a fresh node that hears a member of a cluster joins it; a cofounder follows") {
  std::vector<std::unique_ptr<Fresh>> nodes;
  for (const char* name : {"a", "b"}) nodes.push_back(std::make_unique<Fresh>(name, 2));
  nodes[1]->membership.SetCluster(42, 0);
  Exchange(nodes, 10000);
  FormationStep s = nodes[0]->formation.Step(nodes[0]->membership, true, 10000);
  CHECK(s.kind == FormationStep::Kind::kJoin);
  CHECK(s.cluster_id == 42);
  CHECK(s.through == "b");
  // Had `a` announced the set that founded 42, it founded too.
  nodes[0]->membership.SetCluster(0, 42);
  CHECK(nodes[0]->formation.Step(nodes[0]->membership, true, 10000).kind == FormationStep::Kind::kCofound);
  // A node with data and no id (not forming) adopts it.
  CHECK(nodes[0]->formation.Step(nodes[0]->membership, false, 10000).kind == FormationStep::Kind::kAdopt);
  // A member not heard from for kReachableMs does not count.
  CHECK(nodes[0]->formation.Step(nodes[0]->membership, true, 10000 + kReachableMs + 1).kind ==
        FormationStep::Kind::kWait);
}

TEST_CASE("formation: a lone fresh node expecting itself only founds after a wait") {
  Fresh a("a", 1);
  CHECK(a.formation.Step(a.membership, true, Formation::kFoundAloneAfterMs - 1).kind == FormationStep::Kind::kWait);
  CHECK(a.formation.Step(a.membership, true, Formation::kFoundAloneAfterMs).kind == FormationStep::Kind::kFound);
}

TEST_CASE("membership gossip message: encoded and decoded back; malformed bytes refused") {
  std::vector<Member> view{Member{"a", "h:1", "h:2", 3, 9, MemberState::kSuspect, true, false, 5, 6},
                           Member{"b", "h:3", "h:4", 1, 2, MemberState::kLeft, false, true, 0, 0}};
  std::vector<Member> back;
  REQUIRE(DecodeMembers(EncodeMembers(view, 77 << 16), back));
  CHECK(back == view);
  back.clear();
  CHECK_FALSE(DecodeMembers("not a message", back));
}

TEST_CASE("membership: reachable members, the gossip view and its targets") {
  Membership m(Member{"a", "a:1", "a:2", 1, 1, MemberState::kAlive});
  m.Merge({Member{"b", "b:1", "b:2", 1, 1, MemberState::kAlive}, Member{"c", "c:1", "c:2", 1, 1, MemberState::kAlive},
           Member{"d", "d:1", "d:2", 1, 1, MemberState::kLeft}});
  m.Heard("b", 1000);
  m.Heard("c", 1000);
  CHECK(m.Reachable({}, 1000) == std::set<std::string>{"a", "b", "c"});
  CHECK(m.Reachable({"c"}, 1000) == std::set<std::string>{"a", "b"});       // its link is down
  CHECK(m.Reachable({}, 1000 + kReachableMs + 1) == std::set<std::string>{"a"});  // not heard of late
  const std::vector<Member> view = m.View();
  REQUIRE(view.size() == 4);
  CHECK(view[0].name == "a");
  CHECK(m.GossipTargets({"b:1", "e:1"}) == std::vector<std::string>{"b:1", "c:1", "e:1"});
}

}  // namespace
}  // namespace lattice::gossip
