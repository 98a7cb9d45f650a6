// Real latticed clusters on loopback addresses: replication at ONE/QUORUM/ALL,
// a killed node, restart and catch-up, an iptables partition and its heal,
// and a five-node cluster.
#include <doctest/doctest.h>

#include <unistd.h>

#include <functional>
#include <filesystem>
#include <set>
#include <thread>

#include "tests/integration/harness.h"

namespace lattice::test {
namespace {

using namespace std::chrono_literals;

bool WaitMemberNotAlive(const Node& observer, const std::string& name) {
  Client c(observer.port(), observer.host());
  return WaitFor([&] {
    std::string text = c.Call({"CLUSTER", "NODES"}).str;
    auto at = text.find(name + " ");
    if (at == std::string::npos) return false;
    std::string line = text.substr(at, text.find('\n', at) - at);
    return line.find(" suspect ") != std::string::npos || line.find(" dead ") != std::string::npos;
  });
}

std::set<std::string> Members(const Reply& r) {
  std::set<std::string> out;
  for (const auto& e : r.elems) out.insert(e.str);
  return out;
}

TEST_CASE("replication: three nodes; a write on one is read on the others; a killed node; catch-up") {
  auto nodes = StartCluster(3, "127.0.0.");
  Node& n1 = *nodes[0];
  Node& n3 = *nodes[2];
  Client c1(n1.port(), n1.host());
  Client c2(nodes[1]->port(), nodes[1]->host());
  Client c3(n3.port(), n3.host());

  for (int i = 0; i < 5; ++i) CHECK(c1.Call({"INCR", "hits"}).num == i + 1);
  CHECK(c2.Call({"SADD", "s", "a", "b", "c"}).num == 3);
  CHECK(c2.Call({"HSET", "h", "f", "v"}).num == 1);
  // QUORUM reads on any node see QUORUM writes.
  CHECK(c3.Call({"GET", "hits"}).Show() == "\"5\"");
  CHECK(Members(c1.Call({"SMEMBERS", "s"})) == std::set<std::string>{"a", "b", "c"});
  CHECK(c3.Call({"HGET", "h", "f"}).Show() == "\"v\"");
  // Every replica holds every write soon (ONE reads only the local copy).
  for (Client* c : {&c1, &c2, &c3}) {
    CHECK(WaitFor([&] { return c->Call({"CL", "ONE", "GET", "hits"}).Show() == "\"5\""; }));
  }
  CHECK(c1.Call({"CL", "ALL", "INCR", "hits"}).num == 6);
  CHECK(c2.Call({"MSET", "a", "1", "b", "2"}).Show() == "+OK");
  CHECK(c3.Call({"MGET", "a", "b", "nope"}).Show() == "[\"1\", \"2\", (nil)]");
  CHECK(c1.Call({"DEL", "a", "b", "nope"}).num == 2);
  CHECK(c2.Call({"SADD", "s", "a"}).num == 0);  // no change: answered at once
  CHECK(c2.Call({"INCR", "s"}).str.rfind("WRONGTYPE", 0) == 0);
  // Sessions: a token taken on one node and resumed on another keeps reading
  // its own writes, even at ONE.
  for (int i = 0; i < 20; ++i) {
    const std::string v = "v" + std::to_string(i);
    REQUIRE(c1.Call({"CL", "ONE", "SET", "mine", v}).Show() == "+OK");
    Reply token = c1.Call({"SESSION"});
    REQUIRE(token.type == '$');
    Client other(nodes[i % 3]->port(), nodes[i % 3]->host());
    CHECK(other.Call({"SESSION", "RESUME", token.str}).Show() == "+OK");
    CHECK(other.Call({"CL", "ONE", "GET", "mine"}).Show() == "\"" + v + "\"");
  }
  CHECK(c1.Call({"SESSION", "RESUME", "zz"}).str.rfind("ERR not a session token", 0) == 0);
  CHECK(c1.Call({"SESSION", "RESET"}).Show() == "+OK");
  std::string info = c1.Call({"INFO", "replication"}).str;
  CHECK(info.find("coordinated_writes:") != std::string::npos);

  n3.Kill();
  REQUIRE(WaitMemberNotAlive(n1, "n3"));
  CHECK(c1.Call({"INCR", "hits"}).num == 7);  // QUORUM: 2 of 3
  CHECK(c1.Call({"CL", "ALL", "INCR", "hits"}).str == "UNAVAILABLE need 3 of 3 replicas, 2 reachable");
  CHECK(c1.Call({"CL", "ALL", "GET", "hits"}).str == "UNAVAILABLE need 3 of 3 replicas, 2 reachable");
  CHECK(c2.Call({"SADD", "s", "d"}).num == 1);
  CHECK(c2.Call({"CL", "ONE", "INCR", "hits"}).num == 8);

  // Restart: the node catches up (anti-entropy and read repair) and ALL works again.
  REQUIRE(n3.Start());
  REQUIRE(WaitStates(n1, "alive", 3));
  Client c3b(n3.port(), n3.host());
  CHECK(WaitFor([&] { return c3b.Call({"CL", "ONE", "GET", "hits"}).Show() == "\"8\""; }));
  CHECK(WaitFor([&] { return Members(c3b.Call({"CL", "ONE", "SMEMBERS", "s"})).count("d") == 1; }));
  CHECK(WaitFor([&] { return c1.Call({"CL", "ALL", "INCR", "hits"}).num == 9; }));
}

// Needs iptables: its own ctest entry (node_integration_iptables_test), which
// ctest reports skipped where iptables is unusable.
TEST_CASE("replication: an iptables partition between two nodes, writes on both sides, heal" *
          doctest::test_suite("iptables")) {
  RequireIptables();
  auto nodes = StartCluster(3, "127.0.8.");
  Node& n1 = *nodes[0];
  Node& n2 = *nodes[1];
  Client c1(n1.port(), n1.host());
  Client c2(n2.port(), n2.host());
  REQUIRE(c1.Call({"CL", "ALL", "SADD", "gone", "x"}).num == 1);
  {
    Partition cut(n1.host(), n2.host());
    REQUIRE(WaitMemberNotAlive(n1, "n2"));
    REQUIRE(WaitMemberNotAlive(n2, "n1"));
    // Deleted on n1's side; n2 misses the delete until the partition heals.
    CHECK(c1.Call({"DEL", "gone"}).num == 1);
    // Each side still reaches n3, so QUORUM writes succeed on both sides.
    CHECK(c1.Call({"SADD", "cart", "apple"}).num == 1);
    CHECK(c2.Call({"SADD", "cart", "pear"}).num == 1);
    CHECK(c1.Call({"CL", "ONE", "INCR", "n"}).num >= 1);
    CHECK(c2.Call({"CL", "ONE", "INCR", "n"}).num >= 1);
    CHECK(c1.Call({"CL", "ALL", "GET", "n"}).str.rfind("UNAVAILABLE", 0) == 0);
    cut.Heal();
  }
  REQUIRE(WaitStates(n1, "alive", 3));
  for (auto& node : nodes) {
    Client c(node->port(), node->host());
    INFO("node " << node->host());
    CHECK(WaitFor([&] {
      return Members(c.Call({"CL", "ONE", "SMEMBERS", "cart"})) == std::set<std::string>{"apple", "pear"} &&
             c.Call({"CL", "ONE", "GET", "n"}).Show() == "\"2\"";
    }));
  }
  // The deleted key stays deleted everywhere, and once every replica holds
  // its tombstone, the tombstone is collected.
  Client c3(nodes[2]->port(), nodes[2]->host());
  CHECK(WaitFor([&] {
    for (Client* c : {&c1, &c2, &c3}) {
      if (c->Call({"INFO", "replication"}).str.find("tombstones_collected:0\r\n") != std::string::npos) return false;
    }
    return true;
  }));
  for (Client* c : {&c1, &c2, &c3}) {
    CHECK(c->Call({"CL", "ONE", "EXISTS", "gone"}).num == 0);
    CHECK(c->Call({"CL", "ONE", "SMEMBERS", "gone"}).elems.empty());
  }
  // Anti-entropy leaves every partition's roots equal on the three nodes.
  CHECK(WaitRootsEqual(nodes));
}

// Strings count (DESIGN §2): a SET and an INCR made on the two sides of a
// partition are concurrent; after the heal every node reads the base plus the
// increment the SET did not see. PFADDs on both sides both count.
TEST_CASE("replication: strings and HyperLogLogs through a partition: SET on one side, INCR on the other, heal" *
          doctest::test_suite("iptables")) {
  RequireIptables();
  auto nodes = StartCluster(3, "127.0.9.");
  Node& n1 = *nodes[0];
  Node& n2 = *nodes[1];
  Client c1(n1.port(), n1.host());
  Client c2(n2.port(), n2.host());
  REQUIRE(c1.Call({"CL", "ALL", "SET", "k", "10"}).Show() == "+OK");
  REQUIRE(c1.Call({"CL", "ALL", "SET", "c", "10"}).Show() == "+OK");
  REQUIRE(c1.Call({"CL", "ALL", "SET", "t", "1"}).Show() == "+OK");
  {
    Partition cut(n1.host(), n2.host());
    REQUIRE(WaitMemberNotAlive(n1, "n2"));
    REQUIRE(WaitMemberNotAlive(n2, "n1"));
    CHECK(c1.Call({"CL", "ONE", "SET", "k", "5"}).Show() == "+OK");
    CHECK(c2.Call({"CL", "ONE", "INCR", "k"}).Show() == ":11");  // n2's view: 10 + 1
    CHECK(c1.Call({"CL", "ONE", "INCR", "c"}).Show() == ":11");
    CHECK(c2.Call({"CL", "ONE", "INCRBY", "c", "2"}).Show() == ":12");
    CHECK(c1.Call({"CL", "ONE", "SET", "t", "abc"}).Show() == "+OK");
    CHECK(c2.Call({"CL", "ONE", "INCRBY", "t", "4"}).Show() == ":5");
    CHECK(c1.Call({"CL", "ONE", "PFADD", "hl", "a", "b"}).Show() == ":1");
    CHECK(c2.Call({"CL", "ONE", "PFADD", "hl", "b", "c"}).Show() == ":1");
    cut.Heal();
  }
  REQUIRE(WaitStates(n1, "alive", 3));
  for (auto& node : nodes) {
    Client c(node->port(), node->host());
    INFO("node " << node->host());
    CHECK(WaitFor([&] {
      return c.Call({"CL", "ONE", "GET", "k"}).Show() == "\"6\"" &&   // the SET's 5 + the INCR it did not see
             c.Call({"CL", "ONE", "GET", "c"}).Show() == "\"13\"" &&  // both increments
             c.Call({"CL", "ONE", "GET", "t"}).Show() == "\"abc\"" &&  // not an integer: reads as itself
             c.Call({"CL", "ONE", "PFCOUNT", "hl"}).Show() == ":3";     // both replicas' arrays merged
    }));
    CHECK(c.Call({"CL", "ONE", "INCR", "t"}).Show() == "-ERR value is not an integer or out of range");
  }
  // A SET that has seen the kept increment removes it (at ALL once n1 links
  // to n2 again: its reconnect backs off).
  CHECK(WaitFor([&] { return c1.Call({"CL", "ALL", "SET", "t", "7"}).Show() == "+OK"; }));
  std::string incr;  // UNAVAILABLE applies nothing: asked again until n2 links too
  CHECK(WaitFor([&] { return (incr = c2.Call({"CL", "ALL", "INCR", "t"}).Show()).rfind("-UNAVAILABLE", 0) != 0; }));
  CHECK(incr == ":8");
  CHECK(WaitRootsEqual(nodes));
}

// A session that saw a key's deletion keeps being served once the key's
// tombstone is collected: each replica's kept tombstone covers what the
// session saw (without it, every later command on the key answered STALE).
TEST_CASE("replication: a session that deleted a key is served after the tombstone is collected") {
  auto nodes = StartCluster(3, "127.0.0.");
  Client c(nodes[0]->port(), nodes[0]->host());
  REQUIRE(c.Call({"SADD", "k", "x"}).num == 1);
  REQUIRE(c.Call({"SET", "s", "1"}).Show() == "+OK");
  REQUIRE(c.Call({"CL", "ALL", "DEL", "k", "s"}).num == 2);
  std::vector<std::unique_ptr<Client>> all;
  for (auto& n : nodes) all.push_back(std::make_unique<Client>(n->port(), n->host()));
  CHECK(WaitFor([&] {
    for (auto& x : all) {
      if (x->Call({"INFO", "replication"}).str.find("tombstones_collected:0\r\n") != std::string::npos) return false;
    }
    return true;
  }));
  CHECK(c.Call({"SMEMBERS", "k"}).Show() == "[]");
  CHECK(c.Call({"GET", "s"}).Show() == "(nil)");
  CHECK(c.Call({"SADD", "k", "y"}).Show() == ":1");
  CHECK(c.Call({"INCR", "s"}).Show() == ":1");
  CHECK(c.Call({"CL", "ALL", "SMEMBERS", "k"}).Show() == "[\"y\"]");
}

TEST_CASE("replication: a node whose data directory was wiped rebuilds from its peers") {
  auto nodes = StartCluster(3, "127.0.0.");
  Client c1(nodes[0]->port(), nodes[0]->host());
  for (int k = 0; k < 200; ++k) {
    REQUIRE(c1.Call({"CL", "ALL", "SADD", "w" + std::to_string(k), "a", "b"}).num == 2);
  }
  Node& n3 = *nodes[2];
  REQUIRE(n3.Stop() == 0);
  std::filesystem::remove_all(n3.data_dir());
  REQUIRE(n3.Start());
  // It comes back joining (a new incarnation), pulls, then serves.
  CHECK(WaitFor([&] { return n3.Log().find("joined: every partition") != std::string::npos; }));
  REQUIRE(WaitStates(*nodes[0], "alive", 3));
  Client c3(n3.port(), n3.host());
  CHECK(c3.Call({"DBSIZE"}).num == 200);
  CHECK(Members(c3.Call({"CL", "ONE", "SMEMBERS", "w123"})) == std::set<std::string>{"a", "b"});
  CHECK(WaitRootsEqual(nodes));
  // And it writes again (with dots of its new incarnation).
  CHECK(c3.Call({"CL", "ALL", "SADD", "w0", "c"}).num == 1);
  CHECK(Members(c1.Call({"CL", "ONE", "SMEMBERS", "w0"})) == std::set<std::string>{"a", "b", "c"});
}

TEST_CASE("replication: five nodes, three replicas per key, every key readable through every node") {
  auto nodes = StartCluster(5, "127.0.0.");
  std::vector<std::unique_ptr<Client>> clients;
  for (auto& n : nodes) clients.push_back(std::make_unique<Client>(n->port(), n->host()));
  for (int k = 0; k < 40; ++k) {
    CHECK(clients[k % 5]->Call({"SET", "key" + std::to_string(k), "v" + std::to_string(k)}).Show() == "+OK");
  }
  for (int k = 0; k < 40; ++k) {
    CHECK(clients[(k + 2) % 5]->Call({"GET", "key" + std::to_string(k)}).Show() == "\"v" + std::to_string(k) + "\"");
  }
  Reply replicas = clients[0]->Call({"CLUSTER", "REPLICAS", "key7"});
  REQUIRE(replicas.elems.size() == 4);
  // SUBSCRIBE on a node that does not replicate the key still hears its changes.
  std::string watched;
  for (int k = 0; k < 100 && watched.empty(); ++k) {
    std::string key = "w" + std::to_string(k);
    Reply r = clients[0]->Call({"CLUSTER", "REPLICAS", key});
    bool n1_replica = false;
    for (const auto& e : r.elems) n1_replica = n1_replica || e.str == "n1";
    if (!n1_replica) watched = key;
  }
  REQUIRE(!watched.empty());
  {
    Client sub(nodes[0]->port(), nodes[0]->host());
    REQUIRE(sub.Call({"SUBSCRIBE", watched}).elems.size() == 3);
    // The watch reaches the replicas within a second; write until it is heard.
    Reply msg;
    CHECK(WaitFor([&] {
      clients[1]->Call({"SADD", watched, "x"});
      clients[2]->Call({"SREM", watched, "x"});
      msg = sub.Read(std::chrono::milliseconds(200));
      return msg.type == '*';
    }));
    CHECK(msg.elems.size() == 3);
    CHECK(msg.elems[0].str == "message");
    CHECK(msg.elems[1].str == watched);
  }
  // Each key lives on exactly its three replicas: DBSIZE counts a node's own keys.
  CHECK(WaitFor([&] {
    std::int64_t total = 0;
    for (auto& c : clients) total += c->Call({"DBSIZE"}).num;
    return total == 40 * 3;  // DBSIZE counts live keys; the watched set ends empty
  }));
}

}  // namespace
}  // namespace lattice::test

namespace lattice::test {
namespace {

TEST_CASE("replication: a fourth node joins, pulls its partitions, then serves reads") {
  auto nodes = StartCluster(3, "127.0.0.");
  Client c1(nodes[0]->port(), nodes[0]->host());
  for (int k = 0; k < 60; ++k) {
    REQUIRE(c1.Call({"CL", "ALL", "SET", "j" + std::to_string(k), "v" + std::to_string(k)}).Show() == "+OK");
  }
  Node n4({"--seeds", nodes[0]->peer_address(), "--ae-interval-ms", "500"}, "n4", "127.0.0.14");
  REQUIRE(n4.Start());
  // It is listed as joining until it has every partition, then alive.
  REQUIRE(WaitStates(*nodes[0], "alive", 4));
  Client c4(n4.port(), n4.host());
  int owned = 0;
  for (int k = 0; k < 60; ++k) {
    const std::string key = "j" + std::to_string(k);
    Reply replicas = c4.Call({"CLUSTER", "REPLICAS", key});
    bool mine = false;
    for (const auto& e : replicas.elems) mine = mine || e.str == "n4";
    if (!mine) continue;
    ++owned;
    // A ONE read on a replica answers from its own copy: pulled, not empty.
    CHECK(c4.Call({"CL", "ONE", "GET", key}).Show() == "\"v" + std::to_string(k) + "\"");
  }
  CHECK(owned > 0);
  // It holds exactly its partitions: the keys it replicates, no others.
  CHECK(c4.Call({"DBSIZE"}).num == owned);
  CHECK(n4.Log().find("joined: every partition") != std::string::npos);

  // Keys written while it is a member: the replicas of some are n4 and two
  // of the three others, so the third lacks them.
  for (int k = 0; k < 60; ++k) {
    REQUIRE(c1.Call({"CL", "ALL", "SET", "l" + std::to_string(k), "v"}).Show() == "+OK");
  }
  // It leaves again: it hands its partitions off, then is listed as left,
  // and the three others hold every key (each replicates all of them).
  CHECK(c4.Call({"CLUSTER", "LEAVE"}).str.rfind("OK leaving", 0) == 0);
  REQUIRE(WaitFor([&] {
    std::string text = c1.Call({"CLUSTER", "NODES"}).str;
    return text.find("n4 ") != std::string::npos && text.find(" left ", text.find("n4 ")) != std::string::npos;
  }));
  CHECK(n4.Log().find("left the cluster") != std::string::npos);
  n4.Stop();
  for (auto& node : nodes) {
    Client c(node->port(), node->host());
    INFO("node " << node->host());
    CHECK(c.Call({"DBSIZE"}).num == 120);
  }
}

}  // namespace
}  // namespace lattice::test
