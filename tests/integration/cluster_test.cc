// Real latticed processes forming a cluster by gossip on loopback addresses.
#include <doctest/doctest.h>

#include <thread>

#include "tests/integration/harness.h"

namespace lattice::test {
namespace {

using namespace std::chrono_literals;

// Polls CLUSTER NODES on `node` until `pred(text)` holds or the deadline passes.
template <class Pred>
bool WaitNodes(const Node& node, Pred pred, std::chrono::seconds timeout = 20s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Client c(node.port(), node.host());
  while (std::chrono::steady_clock::now() < deadline) {
    std::string text = c.Call({"CLUSTER", "NODES"}).str;
    if (pred(text)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

int Count(const std::string& text, const std::string& word) {
  int n = 0;
  for (std::size_t pos = 0; (pos = text.find(word, pos)) != std::string::npos; pos += word.size()) ++n;
  return n;
}

TEST_CASE("cluster: three nodes find each other from one seed; a killed node turns suspect") {
  Node n1({}, "n1", "127.0.0.11");
  REQUIRE(n1.Start());
  Node n2({"--seeds", n1.peer_address()}, "n2", "127.0.0.12");
  Node n3({"--seeds", n1.peer_address()}, "n3", "127.0.0.13");
  REQUIRE(n2.Start());
  REQUIRE(n3.Start());
  for (const Node* n : {&n1, &n2, &n3}) {
    INFO("node on " << n->host());
    CHECK(WaitNodes(*n, [](const std::string& t) { return Count(t, " alive ") == 3; }));
  }
  Client c(n1.port(), n1.host());
  std::string nodes = c.Call({"CLUSTER", "NODES"}).str;
  CHECK(nodes.find("n2 127.0.0.12:" + std::to_string(n2.peer_port()) + " 127.0.0.12:" +
                   std::to_string(n2.port()) + " alive") != std::string::npos);
  CHECK(nodes.find("n1 127.0.0.11:" + std::to_string(n1.peer_port())) != std::string::npos);
  CHECK(nodes.find(" self\n") != std::string::npos);
  Reply replicas = c.Call({"CLUSTER", "REPLICAS", "some-key"});
  CHECK(replicas.elems.size() == 4);  // "partition p" and three replicas

  n3.Kill();
  CHECK(WaitNodes(n1, [](const std::string& t) {
    return t.find("n3 ") != std::string::npos &&
           (t.find("suspect", t.find("n3 ")) != std::string::npos || t.find("dead", t.find("n3 ")) != std::string::npos);
  }));
  CHECK(c.Call({"CLUSTER", "FORGET", "n2"}).str.rfind("ERR member 'n2' is alive", 0) == 0);
  CHECK(c.Call({"CLUSTER", "FORGET", "n3"}).str == "OK");
  CHECK(c.Call({"CLUSTER", "REPLICAS", "some-key"}).elems.size() == 3);
  CHECK(c.Call({"CLUSTER", "INFO"}).str.find("cluster_left:1") != std::string::npos);
}

TEST_CASE("cluster: a node of another cluster name is refused") {
  Node a({"--cluster-name", "blue"}, "a", "127.0.0.21");
  REQUIRE(a.Start());
  Node b({"--cluster-name", "green", "--seeds", a.peer_address()}, "b", "127.0.0.22");
  REQUIRE(b.Start());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (a.Log().find("refused peer connection") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  CHECK(a.Log().find("cluster 'green' is not ours ('blue')") != std::string::npos);
  Client c(a.port(), a.host());
  CHECK(Count(c.Call({"CLUSTER", "NODES"}).str, "\n") == 1);
}

}  // namespace
}  // namespace lattice::test
