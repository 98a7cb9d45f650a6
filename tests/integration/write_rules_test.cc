// DESIGN §4's write rules with real processes: a removal at QUORUM is minted
// on the join of a quorum's states, so it removes every write acknowledged at
// QUORUM before it began, even through a node that never received that write.
// The partition cases are in doctest suite "iptables" (their own ctest entry,
// reported skipped where iptables is unusable).
#include <doctest/doctest.h>

#include <set>
#include <thread>

#include "tests/integration/harness.h"

namespace lattice::test {
namespace {

using namespace std::chrono_literals;

std::set<std::string> Members(const Reply& r) {
  std::set<std::string> out;
  for (const auto& e : r.elems) out.insert(e.str);
  return out;
}

// Three nodes with anti-entropy off, so that only a request itself can tell
// n3 what n1 wrote while their link is cut.
struct ThreeNodes {
  std::vector<std::unique_ptr<Node>> nodes = StartCluster(3, "127.0.12.", {"--ae-interval-ms", "0"});
  Client c1{nodes[0]->port(), nodes[0]->host()};
  Client c3{nodes[2]->port(), nodes[2]->host()};
};

TEST_CASE("write rules: a QUORUM removal through a node that lacks an acknowledged QUORUM write removes it" *
          doctest::test_suite("iptables")) {
  RequireIptables();
  ThreeNodes t;
  auto& [nodes, c1, c3] = t;
  {
    Partition cut(nodes[0]->host(), nodes[2]->host());  // n1's deltas reach n2 only
    for (const std::string cmd : {"DEL", "SREM", "HDEL"}) {
      const std::string key = "rule:" + cmd;
      if (cmd == "HDEL") {
        REQUIRE(c1.Call({"CL", "QUORUM", "HSET", key, "f", "v"}).num == 1);
        CHECK(c3.Call({"CL", "ONE", "HLEN", key}).num == 0);  // n3 has not seen it (its own copy)
        CHECK(c3.Call({"CL", "QUORUM", "HDEL", key, "f"}).num == 1);
      } else {
        REQUIRE(c1.Call({"CL", "QUORUM", "SADD", key, "a"}).num == 1);
        CHECK(c3.Call({"CL", "ONE", "SCARD", key}).num == 0);
        CHECK(c3.Call({"CL", "QUORUM", cmd, key, "a"}).num == 1);
      }
    }
  }
  // Healed: n1 still holds the adds; nothing brings them back.
  for (auto& node : nodes) {
    Client c(node->port(), node->host());
    REQUIRE(WaitFor([&] { return c.Call({"CL", "ALL", "SCARD", "rule:DEL"}).type == ':'; }));
    for (const std::string key : {"rule:DEL", "rule:SREM"}) {
      CHECK_MESSAGE(Members(c.Call({"CL", "ALL", "SMEMBERS", key})).empty(), key);
    }
    CHECK(c.Call({"CL", "ALL", "HLEN", "rule:HDEL"}).num == 0);
  }
}

TEST_CASE("write rules: a QUORUM SREM through a node that lacks a concurrent add keeps that add" *
          doctest::test_suite("iptables")) {
  RequireIptables();
  // The SREM's gather loads only the member it names; the state it hands the
  // minter must not claim to have seen (and so removed) the other members.
  ThreeNodes t;
  auto& [nodes, c1, c3] = t;
  REQUIRE(c1.Call({"CL", "ALL", "SADD", "s", "b"}).num == 1);
  {
    Partition cut(nodes[0]->host(), nodes[2]->host());  // n1's deltas reach n2 only
    REQUIRE(c1.Call({"CL", "QUORUM", "SADD", "s", "a"}).num == 1);
    CHECK(Members(c3.Call({"CL", "ONE", "SMEMBERS", "s"})) == std::set<std::string>{"b"});
    CHECK(c3.Call({"CL", "QUORUM", "SREM", "s", "b"}).num == 1);
  }
  // Healed: the add's delta reaches n3 (TCP retransmits it); a stays everywhere.
  for (auto& node : nodes) {
    Client c(node->port(), node->host());
    CHECK(WaitFor([&] { return Members(c.Call({"CL", "ONE", "SMEMBERS", "s"})) == std::set<std::string>{"a"}; }));
  }
  CHECK(Members(c1.Call({"CL", "ALL", "SMEMBERS", "s"})) == std::set<std::string>{"a"});
}

TEST_CASE("write rules: COMMAND INFO says which writes are idempotent") {
  Node n({}, "t1", "127.0.0.1");
  REQUIRE(n.Start());
  Client c(n.port());
  Reply r = c.Call({"COMMAND", "INFO", "incr", "sadd", "get", "nosuch"});
  REQUIRE(r.elems.size() == 4);
  CHECK(r.elems[0].elems[0].str == "incr");
  CHECK(r.elems[0].elems[2].Show() == "[+write, +non_idempotent]");
  CHECK(r.elems[1].elems[2].Show() == "[+write, +idempotent]");
  CHECK(r.elems[2].elems[2].Show() == "[+readonly, +idempotent]");
  CHECK(r.elems[3].null);
  Reply del = c.Call({"COMMAND", "INFO", "del"});
  CHECK(del.elems[0].elems[3].num == 1);
  CHECK(del.elems[0].elems[4].num == -1);
  CHECK(del.elems[0].elems[5].num == 1);
}

}  // namespace
}  // namespace lattice::test
