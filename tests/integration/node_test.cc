// latticed as a process: durability across restarts and kill -9, malformed
// input, limits, SUBSCRIBE, graceful shutdown.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <random>
#include <thread>

#include "tests/integration/harness.h"

namespace lattice::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("node: a restart keeps all data; SIGTERM exits cleanly") {
  Node node;
  REQUIRE(node.Start());
  {
    Client c(node.port());
    CHECK(c.Call({"SET", "s", "v"}).str == "OK");
    CHECK(c.Call({"INCRBY", "n", "7"}).num == 7);
    for (int i = 0; i < 200; ++i) c.Send({"SADD", "set", "m" + std::to_string(i)});
    for (int i = 0; i < 200; ++i) CHECK(c.Read().num == 1);
    CHECK(c.Call({"HSET", "h", "f", "x"}).num == 1);
    CHECK(c.Call({"EXPIRE", "s", "1000"}).num == 1);
  }
  CHECK(node.Stop() == 0);
  CHECK(node.Log().find("stopped cleanly") != std::string::npos);
  REQUIRE(node.Start());
  {
    Client c(node.port());
    c.Send({"SHUTDOWN"});
    CHECK(c.WaitClosed(5s));
    CHECK(node.WaitExit(10s) == 0);  // SHUTDOWN stops the node cleanly too
  }
  REQUIRE(node.Start());
  Client c(node.port());
  CHECK(c.Call({"GET", "s"}).str == "v");
  CHECK(c.Call({"GET", "n"}).str == "7");
  CHECK(c.Call({"SCARD", "set"}).num == 200);
  CHECK(c.Call({"HGET", "h", "f"}).str == "x");
  CHECK(c.Call({"TTL", "s"}).num > 990);
  CHECK(c.Call({"DBSIZE"}).num == 4);
  CHECK(c.Call({"INCR", "n"}).num == 8);
}

TEST_CASE("node: kill -9 under concurrent INCR load loses no acknowledged increment") {
  Node node;
  REQUIRE(node.Start());
  constexpr int kClients = 8;
  std::atomic<long> acked{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> load;
  for (int i = 0; i < kClients; ++i) {
    load.emplace_back([&] {
      Client c(node.port());
      while (!stop) {
        Reply r = c.Call({"INCR", "counter"});
        if (r.type != ':') return;  // the node died
        ++acked;
      }
    });
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (acked < 2000 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  node.Kill();
  stop = true;
  for (auto& t : load) t.join();
  long acknowledged = acked.load();
  REQUIRE(acknowledged >= 2000);
  REQUIRE(node.Start());
  Client c(node.port());
  long stored = std::stol(c.Call({"GET", "counter"}).str);
  MESSAGE("acknowledged " << acknowledged << ", stored " << stored);
  CHECK(stored >= acknowledged);
  CHECK(stored <= acknowledged + kClients);  // at most the in-flight ones on top
}

// Malformed requests in the style of Redis's tests/unit/protocol.tcl. Each
// runs on its own connection; another client is served afterwards.
TEST_CASE("node: malformed input gets a protocol error and never disturbs other clients") {
  Node node;
  REQUIRE(node.Start());
  Client bystander(node.port());
  CHECK(bystander.Call({"SET", "k", "v"}).str == "OK");
  struct Case {
    const char* name;
    std::string bytes;
    std::string error;  // expected error prefix
    bool closes;
  };
  std::string big_inline(1024 * 1024, 'a');
  std::mt19937 rng(7);
  std::string garbage = "*";
  for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>(rng() % 200 + 40));
  garbage += "\r\n";
  const Case cases[] = {
      {"out of range multibulk length", "*3000000000\r\n", "ERR Protocol error: invalid multibulk length", true},
      {"wrong multibulk payload header", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "ERR Protocol error: expected '$', got 'f'", true},
      {"negative multibulk payload length", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", "ERR Protocol error: invalid bulk length", true},
      {"out of range multibulk payload length", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", "ERR Protocol error: invalid bulk length", true},
      {"non-number multibulk payload length", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n", "ERR Protocol error: invalid bulk length", true},
      {"multibulk not followed by bulk", "*1\r\nfoo\r\n", "ERR Protocol error: expected '$', got 'f'", true},
      {"missing CRLF after bulk", "*1\r\n$4\r\nPINGxx\r\n", "ERR Protocol error: expected CRLF after bulk data", true},
      {"1 MB inline line", big_inline, "ERR Protocol error: too big inline request", true},
      {"binary garbage", garbage, "ERR Protocol error", true},
      {"unbalanced quotes", "set \"\"\"test-key\"\"\" test-value\r\nPING\r\n", "ERR Protocol error: unbalanced quotes", false},
      {"unknown command", "FOOBAR x\r\nPING\r\n", "ERR unknown command 'FOOBAR'", false},
      {"wrong number of args", "ping x y z\r\nPING\r\n", "ERR wrong number of arguments for 'ping' command", false},
  };
  for (const Case& tc : cases) {
    INFO("case: " << std::string(tc.name));
    Client c(node.port());
    REQUIRE(c.connected());
    c.SendRaw(tc.bytes);
    Reply r = c.Read();
    CHECK(r.type == '-');
    CHECK(r.str.rfind(tc.error, 0) == 0);
    if (tc.closes) {
      CHECK(c.WaitClosed(5s));
    } else {
      CHECK(c.Read().str == "PONG");  // the stream resynchronised
    }
    CHECK(bystander.Call({"GET", "k"}).str == "v");
  }
  // A negative multibulk count is ignored, as in Redis.
  Client c(node.port());
  c.SendRaw("*-10\r\nPING\r\n");
  CHECK(c.Read().str == "PONG");
}

TEST_CASE("node: limits: max clients, idle timeout, bulk size") {
  Node node({"--max-clients", "2", "--idle-timeout", "1", "--max-bulk", "1000"});
  REQUIRE(node.Start());
  Client a(node.port());
  // Wait until the start-up probe's connection is gone.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (a.Call({"INFO", "clients"}).str.find("connected_clients:1\r\n") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  Client b(node.port());
  CHECK(a.Call({"PING"}).str == "PONG");
  CHECK(b.Call({"PING"}).str == "PONG");
  Client c(node.port());
  Reply refused = c.Read();
  CHECK(refused.str == "ERR max number of clients reached");
  CHECK(c.WaitClosed(5s));
  CHECK(a.Call({"SET", "k", std::string(2000, 'x')}).str.rfind("ERR Protocol error: invalid bulk length", 0) == 0);
  CHECK(a.WaitClosed(5s));
  CHECK(b.WaitClosed(5s));  // idle for more than a second
}

TEST_CASE("node: SUBSCRIBE hears writes, deletes and expiries") {
  Node node;
  REQUIRE(node.Start());
  Client sub(node.port());
  Reply ack = sub.Call({"SUBSCRIBE", "room"});
  CHECK(ack.Show() == "[\"subscribe\", \"room\", :1]");
  CHECK(sub.Call({"GET", "room"}).str.rfind("ERR Can't execute 'get'", 0) == 0);
  Client w(node.port());
  CHECK(w.Call({"SADD", "room", "alice"}).num == 1);
  CHECK(sub.Read().Show() == "[\"message\", \"room\", \"[\"alice\"]\"]");
  CHECK(w.Call({"HSET", "other", "f", "v"}).num == 1);  // not subscribed
  CHECK(w.Call({"PEXPIRE", "room", "200"}).num == 1);
  CHECK(sub.Read().Show() == "[\"message\", \"room\", \"[\"alice\"]\"]");
  // The expiry fires without any client touching the key.
  Reply expired = sub.Read(5s);
  CHECK(expired.Show() == "[\"message\", \"room\", \"\"]");
  CHECK(w.Call({"EXISTS", "room"}).num == 0);
  CHECK(sub.Call({"UNSUBSCRIBE"}).Show() == "[\"unsubscribe\", \"room\", :0]");
  CHECK(sub.Call({"PING"}).str == "PONG");
}

TEST_CASE("node: AUTH with --requirepass") {
  Node node({"--requirepass", "s3cret"});
  REQUIRE(node.Start());
  Client c(node.port());
  CHECK(c.Call({"GET", "k"}).str == "NOAUTH Authentication required.");
  CHECK(c.Call({"AUTH", "wrong"}).str.rfind("WRONGPASS", 0) == 0);
  CHECK(c.Call({"AUTH", "s3cret"}).str == "OK");
  CHECK(c.Call({"PING"}).str == "PONG");
}

}  // namespace
}  // namespace lattice::test

namespace lattice::test {
namespace {

TEST_CASE("node: options from a config file") {
  std::string path = "/tmp/latticed-test-" + std::to_string(FreePort()) + ".toml";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs("requirepass = \"from-file\"\nmax-clients = 7\n", f);
    std::fclose(f);
  }
  Node node({"--config", path});
  REQUIRE(node.Start());
  Client c(node.port());
  CHECK(c.Call({"PING"}).str == "NOAUTH Authentication required.");
  CHECK(c.Call({"AUTH", "from-file"}).str == "OK");
  CHECK(c.Call({"CONFIG", "GET", "maxclients"}).Show() == "[\"maxclients\", \"7\"]");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace lattice::test
