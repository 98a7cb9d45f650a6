// Cluster formation and failure detection with real processes (DESIGN §4):
// every node started on an empty data directory with the same seed list, in
// every order a person starts them (together, 10 s apart, one seed down at
// first, a wiped node first after a full stop, a wiped node under load), and
// a node killed with SIGKILL known unreachable at once.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "tests/integration/harness.h"

namespace lattice::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::vector<std::unique_ptr<Node>> MakeNodes(int n, const std::string& subnet, int first = 31,
                                             const std::string& request_timeout_ms = "1500") {
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < n; ++i) {
    nodes.push_back(std::make_unique<Node>(
        std::vector<std::string>{"--ae-interval-ms", "500", "--request-timeout-ms", request_timeout_ms},
        "n" + std::to_string(i + 1), subnet + std::to_string(first + i)));
  }
  const std::string seeds = SeedList(nodes);
  for (auto& node : nodes) node->AddArgs({"--seeds", seeds});
  return nodes;
}

std::string InfoField(Client& c, const std::string& field) {
  const std::string info = c.Call({"CLUSTER", "INFO"}).str;
  const auto at = info.find(field + ":");
  if (at == std::string::npos) return {};
  const auto start = at + field.size() + 1;
  return info.substr(start, info.find('\r', start) - start);
}

// True once a QUORUM write through `node` succeeds (within `timeout`).
bool WaitQuorumWrite(Node& node, std::chrono::seconds timeout) {
  Client c(node.port(), node.host());
  return WaitFor([&] { return c.Call({"CL", "QUORUM", "SET", "formation:probe", "1"}).str == "OK"; }, timeout);
}

// Every node reports the same cluster id, not forming.
void CheckOneCluster(std::vector<std::unique_ptr<Node>>& nodes) {
  std::set<std::string> ids;
  for (auto& node : nodes) {
    Client c(node->port(), node->host());
    CHECK(WaitFor([&] { return InfoField(c, "cluster_state") == "ok"; }, 30s));
    ids.insert(InfoField(c, "cluster_id"));
  }
  CHECK(ids.size() == 1);
  CHECK(ids.count("0000000000000000") == 0);
}

TEST_CASE("formation: the same seed list on empty data directories; a QUORUM write within 15 s") {
  auto nodes = MakeNodes(3, "127.0.0.");
  const auto start = Clock::now();
  for (auto& node : nodes) REQUIRE(node->Start());
  for (auto& node : nodes) CHECK(WaitQuorumWrite(*node, 15s));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  MESSAGE("a QUORUM write through every node " << ms << " ms after the first start");
  CHECK(ms < 15000);
  CheckOneCluster(nodes);
  for (auto& node : nodes) CHECK(WaitStates(*node, "alive", 3));
  // N is the founders' count from the start: every key has 3 replicas.
  Client c(nodes[0]->port(), nodes[0]->host());
  CHECK(c.Call({"CL", "ALL", "SADD", "s", "a"}).num == 1);
}

TEST_CASE("formation: nodes started 10 s apart wait, say why, then found one cluster") {
  auto nodes = MakeNodes(3, "127.0.0.");
  REQUIRE(nodes[0]->Start());
  Client c1(nodes[0]->port(), nodes[0]->host());
  CHECK(InfoField(c1, "cluster_state") == "forming");
  CHECK(InfoField(c1, "cluster_forming").find("bootstrap-expect 3") != std::string::npos);
  // Until it is formed a node refuses keyed commands, saying why.
  CHECK(c1.Call({"SET", "k", "v"}).str.rfind("CLUSTERDOWN the cluster is not formed yet", 0) == 0);
  std::this_thread::sleep_for(10s);  // the scenario: an operator starts the next node 10 s later
  REQUIRE(nodes[1]->Start());
  std::this_thread::sleep_for(10s);
  CHECK(InfoField(c1, "cluster_state") == "forming");
  CHECK(InfoField(c1, "cluster_forming").find("2 fresh nodes heard") != std::string::npos);
  const auto third = Clock::now();
  REQUIRE(nodes[2]->Start());
  for (auto& node : nodes) CHECK(WaitQuorumWrite(*node, 15s));
  MESSAGE("formed " << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - third).count()
                    << " ms after the third start");
  CheckOneCluster(nodes);
}

TEST_CASE("formation: one seed down at first; the cluster forms once it is up") {
  auto nodes = MakeNodes(3, "127.0.0.");
  REQUIRE(nodes[0]->Start());
  REQUIRE(nodes[1]->Start());
  Client c2(nodes[1]->port(), nodes[1]->host());
  CHECK(WaitFor([&] { return InfoField(c2, "cluster_forming").find("2 fresh nodes heard") != std::string::npos; }));
  std::this_thread::sleep_for(3s);  // the third seed stays down a while
  CHECK(InfoField(c2, "cluster_state") == "forming");
  // A node restarted while forming forms again (its data directory is no
  // longer empty, but it has founded nothing).
  CHECK(nodes[0]->Stop() == 0);
  REQUIRE(nodes[0]->Start());
  Client c1(nodes[0]->port(), nodes[0]->host());
  CHECK(InfoField(c1, "cluster_state") == "forming");
  REQUIRE(nodes[2]->Start());
  for (auto& node : nodes) CHECK(WaitQuorumWrite(*node, 15s));
  CheckOneCluster(nodes);
}

TEST_CASE("formation: after a full stop, a wiped node that comes up first joins the old cluster") {
  auto nodes = MakeNodes(3, "127.0.0.");
  for (auto& node : nodes) REQUIRE(node->Start());
  for (auto& node : nodes) REQUIRE(WaitQuorumWrite(*node, 15s));
  Client c2(nodes[1]->port(), nodes[1]->host());
  const std::string id = InfoField(c2, "cluster_id");
  for (int i = 0; i < 50; ++i) REQUIRE(c2.Call({"CL", "ALL", "SADD", "kept", "m" + std::to_string(i)}).num == 1);
  for (auto& node : nodes) CHECK(node->Stop() == 0);
  std::filesystem::remove_all(nodes[0]->data_dir());
  REQUIRE(nodes[0]->Start());
  Client c1(nodes[0]->port(), nodes[0]->host());
  std::this_thread::sleep_for(2s);
  // Alone and fresh it does not found a cluster of its own.
  CHECK(InfoField(c1, "cluster_state") == "forming");
  REQUIRE(nodes[1]->Start());
  REQUIRE(nodes[2]->Start());
  Client c1b(nodes[0]->port(), nodes[0]->host());
  CHECK(WaitFor([&] { return InfoField(c1b, "cluster_state") == "ok"; }, 30s));
  CHECK(InfoField(c1b, "cluster_id") == id);
  CheckOneCluster(nodes);
  CHECK(WaitRootsEqual(nodes, 60s));
  CHECK(c1b.Call({"CL", "ONE", "SCARD", "kept"}).num == 50);
}

TEST_CASE("formation: a wiped node rejoins under write load; no acknowledged write is lost") {
  auto nodes = MakeNodes(3, "127.0.0.");
  for (auto& node : nodes) REQUIRE(node->Start());
  for (auto& node : nodes) REQUIRE(WaitQuorumWrite(*node, 15s));
  std::atomic<bool> stop{false};
  std::vector<std::string> acked;
  int refused = 0, timeouts = 0;
  std::thread writer([&] {
    Client c(nodes[0]->port(), nodes[0]->host());
    for (int i = 0; !stop; ++i) {
      const std::string m = "m" + std::to_string(i);
      Reply r = c.Call({"CL", "QUORUM", "SADD", "load", m});
      if (r.type == ':') acked.push_back(m);
      else if (r.str.rfind("TIMEOUT", 0) == 0) ++timeouts;
      else ++refused;
      std::this_thread::sleep_for(5ms);
    }
  });
  std::this_thread::sleep_for(1s);
  nodes[2]->Kill();
  std::filesystem::remove_all(nodes[2]->data_dir());
  std::this_thread::sleep_for(1s);
  REQUIRE(nodes[2]->Start());
  Client c3(nodes[2]->port(), nodes[2]->host());
  CHECK(WaitFor([&] { return InfoField(c3, "cluster_state") == "ok"; }, 60s));
  std::this_thread::sleep_for(1s);
  stop = true;
  writer.join();
  MESSAGE(acked.size() << " acknowledged, " << timeouts << " timed out, " << refused << " refused");
  CHECK(acked.size() > 100);
  CheckOneCluster(nodes);
  CHECK(WaitRootsEqual(nodes, 60s));
  Client all(nodes[1]->port(), nodes[1]->host());
  Reply members = all.Call({"CL", "ALL", "SMEMBERS", "load"});
  std::set<std::string> present;
  for (const auto& e : members.elems) present.insert(e.str);
  std::size_t lost = 0;
  for (const auto& m : acked) lost += present.count(m) == 0;
  CHECK(lost == 0);
  // The rebuilt node holds them itself.
  CHECK(c3.Call({"CL", "ONE", "SCARD", "load"}).num >= static_cast<std::int64_t>(acked.size()));
}

TEST_CASE("failure detection: right after a kill -9, ALL answers UNAVAILABLE, not TIMEOUT") {
  auto nodes = MakeNodes(3, "127.0.0.");
  for (auto& node : nodes) REQUIRE(node->Start());
  for (auto& node : nodes) REQUIRE(WaitQuorumWrite(*node, 15s));
  for (int round = 0; round < 3; ++round) {
    Client c1(nodes[0]->port(), nodes[0]->host());
    REQUIRE(WaitFor([&] { return c1.Call({"CL", "ALL", "INCR", "hits"}).type == ':'; }));
    nodes[2]->Kill();
    Reply r = c1.Call({"CL", "ALL", "INCR", "hits"});
    MESSAGE("right after the kill: " << r.Show());
    CHECK_MESSAGE(r.str.rfind("UNAVAILABLE need 3 of 3 replicas, 2 reachable", 0) == 0, r.Show());
    CHECK(c1.Call({"CL", "QUORUM", "INCR", "hits"}).type == ':');
    REQUIRE(nodes[2]->Start());
  }
}

TEST_CASE("failure detection: a write waiting on a replica whose link closes answers TIMEOUT at once") {
  auto nodes = MakeNodes(3, "127.0.0.", 31, "10000");
  for (auto& node : nodes) REQUIRE(node->Start());
  for (auto& node : nodes) REQUIRE(WaitQuorumWrite(*node, 15s));
  Client c1(nodes[0]->port(), nodes[0]->host());
  REQUIRE(c1.Call({"CL", "ALL", "SADD", "s", "a"}).num == 1);
  nodes[2]->Pause();  // holds its connections, acknowledges nothing
  REQUIRE(c1.Send({"CL", "ALL", "SADD", "s", "b"}));
  std::this_thread::sleep_for(300ms);  // the scenario: the write is waiting on n3
  const auto killed = Clock::now();
  nodes[2]->Kill();
  Reply r = c1.Read(9s);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  MESSAGE("answered " << ms << " ms after the kill (deadline 10 s): " << r.Show());
  CHECK(r.str.rfind("TIMEOUT acknowledged by 2 of 3 required replicas", 0) == 0);
  CHECK(ms < 2000);
}

TEST_CASE("formation: two clusters of one name never merge") {
  auto a = MakeNodes(2, "127.0.0.", 31);
  for (auto& node : a) REQUIRE(node->Start());
  for (auto& node : a) REQUIRE(WaitQuorumWrite(*node, 15s));
  Node other({}, "x1", "127.0.0.33");
  REQUIRE(other.Start());  // no seeds: founds alone
  Client cx(other.port(), other.host());
  CHECK(cx.Call({"SET", "k", "v"}).str == "OK");
  CHECK(cx.Call({"CLUSTER", "JOIN", a[0]->peer_address()}).str == "OK");
  std::this_thread::sleep_for(2s);
  CHECK(cx.Call({"CLUSTER", "NODES"}).str.find("n1 ") == std::string::npos);
  Client ca(a[0]->port(), a[0]->host());
  CHECK(ca.Call({"CLUSTER", "NODES"}).str.find("x1 ") == std::string::npos);
  CHECK(other.Log().find("another cluster of the same name") != std::string::npos);
}

}  // namespace
}  // namespace lattice::test
