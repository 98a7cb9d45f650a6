// gossip::Transport between in-process nodes on loopback.
#include <doctest/doctest.h>

#include <asio/io_context.hpp>
#include <asio/executor_work_guard.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <capnp/message.h>
#include <capnp/serialize-packed.h>

#include "gossip/peer.capnp.h"
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

TEST_CASE("transport: a full queue drops and counts; a must-deliver message over the limit resets the link") {
  TransportOptions o = Options("a");
  o.max_queue_bytes = 1000;
  Peer a(o);
  std::string nowhere = "127.0.0.1:" + std::to_string(test::FreePort());  // nothing listens
  int accepted = 0;
  for (int i = 0; i < 50; ++i) accepted += a.transport.Send(nowhere, std::string(100, 'x'));
  CHECK(accepted == 10);
  CHECK(a.transport.stats().dropped == 40);
  // A must-deliver message is never dropped from a queue: one that does not
  // fit resets the link (queue emptied, the waiting requests told by the link
  // going down) instead of growing it without bound.
  CHECK_FALSE(a.transport.Send(nowhere, std::string(100, 'y'), /*must_deliver=*/true));
  CHECK(a.transport.stats().links_reset == 1);
  CHECK(a.transport.Send(nowhere, std::string(100, 'z'), /*must_deliver=*/true));  // the queue is empty again
  CHECK(a.transport.stats().links_reset == 1);
}

// Records link changes.
struct LinkLog {
  std::mutex mu;
  std::vector<std::pair<std::string, bool>> changes;
  int Count(bool up) {
    std::lock_guard lock(mu);
    int n = 0;
    for (const auto& c : changes) n += c.second == up;
    return n;
  }
};

bool Eventually(const std::function<bool()>& fn) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!fn()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

TEST_CASE("transport: a link goes down as soon as the peer's end closes, and up when it is back") {
  Peer a(Options("a"));
  LinkLog log;
  a.transport.OnLinkChange([&](const std::string& address, bool up) {
    std::lock_guard lock(log.mu);
    log.changes.emplace_back(address, up);
  });
  REQUIRE(a.transport.Listen().ok());
  const std::uint16_t port = test::FreePort();
  TransportOptions ob = Options("b");
  ob.port = port;
  auto b = std::make_unique<Peer>(ob);
  REQUIRE(b->transport.Listen().ok());
  const std::string address = b->Address();
  CHECK(a.transport.Send(address, "one"));
  REQUIRE(b->WaitFor(1));
  CHECK(Eventually([&] { return log.Count(true) == 1; }));
  const auto stopped = std::chrono::steady_clock::now();
  b.reset();  // its sockets close; nothing more is sent on the link
  CHECK(Eventually([&] { return log.Count(false) == 1; }));
  MESSAGE("link reported down " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - stopped).count()
                                << " ms after the peer closed");
  b = std::make_unique<Peer>(ob);
  REQUIRE(b->transport.Listen().ok());
  CHECK(a.transport.Send(address, "two"));
  CHECK(b->WaitFor(1));
  CHECK(Eventually([&] { return log.Count(true) == 2; }));
}

TEST_CASE("transport: two clusters of one name (different ids) are refused; id 0 links with either") {
  TransportOptions ox = Options("x");
  ox.cluster_id = 11;
  TransportOptions oy = Options("y");
  oy.cluster_id = 22;
  Peer x(ox), y(oy), z(Options("z"));  // z: not formed or joined yet
  REQUIRE(x.transport.Listen().ok());
  REQUIRE(y.transport.Listen().ok());
  REQUIRE(z.transport.Listen().ok());
  y.transport.Send(x.Address(), "merge?");
  CHECK(Eventually([&] { return x.transport.stats().handshakes_refused > 0; }));
  z.transport.Send(x.Address(), "join?");
  z.transport.Send(y.Address(), "join?");
  CHECK(x.WaitFor(1));
  CHECK(y.WaitFor(1));
  std::lock_guard lock(x.mu);
  CHECK(x.senders == std::vector<std::string>{"z"});
}

}  // namespace
}  // namespace lattice::gossip

namespace lattice::gossip {
namespace {

// Dials 127.0.0.1:`port`, sends one Hello speaking protocols min..max, and
// returns the answer frame's refusal ("" if it was a Welcome).
std::string RefusalFor(std::uint16_t port, std::uint32_t min, std::uint32_t max) {
  capnp::MallocMessageBuilder message;
  auto h = message.initRoot<wire::Frame>().initHello();
  h.setCluster("test");
  h.setNode("old");
  h.setIncarnation(1);
  h.setProtocol(max);
  h.setProtocolMin(min);
  h.setAddress("127.0.0.1:1");
  kj::VectorOutputStream packed;
  capnp::writePackedMessage(packed, message);
  auto bytes = packed.getArray();
  std::string frame(4, '\0');
  for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>(bytes.size() >> (8 * (3 - i)));
  frame.append(reinterpret_cast<const char*>(bytes.begin()), bytes.size());

  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(socket, asio::buffer(frame));
  unsigned char len[4];
  asio::read(socket, asio::buffer(len));
  std::vector<kj::byte> body((std::size_t{len[0]} << 24) | (len[1] << 16) | (len[2] << 8) | len[3]);
  asio::read(socket, asio::buffer(body));
  kj::ArrayInputStream in(kj::arrayPtr(body.data(), body.size()));
  capnp::PackedMessageReader reader(in);
  auto f = reader.getRoot<wire::Frame>();
  return f.isRefuse() ? std::string(f.getRefuse().cStr()) : std::string();
}

TEST_CASE("transport: the handshake negotiates the protocol version; ranges that do not overlap are refused") {
  Peer a(Options("a"));
  REQUIRE(a.transport.Listen().ok());
  CHECK(RefusalFor(a.transport.port(), kProtocolMinVersion, kProtocolVersion + 5).empty());  // a newer peer
  const std::string old = RefusalFor(a.transport.port(), 1, kProtocolMinVersion - 1);
  CHECK(old.find("do not overlap ours") != std::string::npos);
  const std::string newer = RefusalFor(a.transport.port(), kProtocolVersion + 1, kProtocolVersion + 2);
  CHECK(newer.find("do not overlap ours") != std::string::npos);
}

}  // namespace
}  // namespace lattice::gossip
