// gossip::Transport between in-process nodes on loopback.
#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/executor_work_guard.hpp>

#include <chrono>
#include <mutex>
#include <thread>

#include "gossip/transport.h"
#include "tests/integration/harness.h"

namespace lattice::gossip {
namespace {

using namespace std::chrono_literals;

// A transport with its own io_context thread and a record of what it received.
struct Peer {
  explicit Peer(TransportOptions o) : guard(asio::make_work_guard(io)), transport(io, std::move(o)) {
    transport.OnMessage([this](const PeerInfo& from, std::string_view m) {
      std::lock_guard lock(mu);
      got.emplace_back(m);
      senders.push_back(from.node);
    });
    thread = std::thread([this] { io.run(); });
  }
  ~Peer() {
    transport.Stop();
    guard.reset();
    io.stop();
    thread.join();
  }
  std::size_t Count() {
    std::lock_guard lock(mu);
    return got.size();
  }
  bool WaitFor(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (Count() < n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(2ms);
    }
    return true;
  }
  std::string Address() { return "127.0.0.1:" + std::to_string(transport.port()); }

  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  Transport transport;
  std::thread thread;
  std::mutex mu;
  std::vector<std::string> got;
  std::vector<std::string> senders;
};

TransportOptions Options(const std::string& node, const std::string& cluster = "test") {
  TransportOptions o;
  o.node = node;
  o.cluster = cluster;
  o.incarnation = 1;
  return o;
}

TEST_CASE("transport: messages arrive in order, batched into frames") {
  Peer a(Options("a"));
  Peer b(Options("b"));
  REQUIRE(a.transport.Listen().ok());
  REQUIRE(b.transport.Listen().ok());
  for (int i = 0; i < 5000; ++i) CHECK(a.transport.Send(b.Address(), "m" + std::to_string(i)));
  REQUIRE(b.WaitFor(5000));
  std::lock_guard lock(b.mu);
  for (int i = 0; i < 5000; ++i) CHECK(b.got[static_cast<std::size_t>(i)] == "m" + std::to_string(i));
  CHECK(b.senders[0] == "a");
  auto s = a.transport.stats();
  MESSAGE("5000 messages in " << s.frames_sent << " frames, " << s.bytes_sent << " bytes");
  CHECK(s.frames_sent < s.messages_sent);
  CHECK(s.dropped == 0);
}

TEST_CASE("transport: a peer of another cluster is refused, with the reason on both sides") {
  Peer b(Options("b", "blue"));
  Peer c(Options("c", "green"));
  REQUIRE(b.transport.Listen().ok());
  REQUIRE(c.transport.Listen().ok());
  c.transport.Send(b.Address(), "hello?");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((b.transport.stats().handshakes_refused == 0 || c.transport.stats().handshakes_refused == 0) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  CHECK(b.transport.stats().handshakes_refused > 0);
  CHECK(c.transport.stats().handshakes_refused > 0);
  CHECK(b.Count() == 0);
}

TEST_CASE("transport: a link reconnects with backoff once the peer listens") {
  std::uint16_t port = test::FreePort();
  Peer a(Options("a"));
  REQUIRE(a.transport.Listen().ok());
  std::string address = "127.0.0.1:" + std::to_string(port);
  CHECK(a.transport.Send(address, "early"));
  std::this_thread::sleep_for(100ms);  // let a few dials fail first (not a wait for a result)
  TransportOptions o = Options("b");
  o.port = port;
  Peer b(o);
  REQUIRE(b.transport.Listen().ok());
  CHECK(b.WaitFor(1));
  CHECK(a.transport.stats().connects == 1);
}

TEST_CASE("transport: a full queue drops and counts, except must-deliver messages") {
  TransportOptions o = Options("a");
  o.max_queue_bytes = 1000;
  Peer a(o);
  std::string nowhere = "127.0.0.1:" + std::to_string(test::FreePort());  // nothing listens
  int accepted = 0;
  for (int i = 0; i < 50; ++i) accepted += a.transport.Send(nowhere, std::string(100, 'x'));
  CHECK(accepted == 10);
  CHECK(a.transport.stats().dropped == 40);
  CHECK(a.transport.Send(nowhere, std::string(100, 'y'), /*must_deliver=*/true));
  CHECK(a.transport.stats().dropped == 40);
}

}  // namespace
}  // namespace lattice::gossip
