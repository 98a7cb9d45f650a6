// The peer outbox (gossip/outbox.h): what one turn queues for a peer leaves
// in one message; a peer without batching gets one message each.
#include <doctest/doctest.h>

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "gossip/outbox.h"
#include "gossip/wire.h"

namespace lattice::gossip {
namespace {

struct FakeEnv : PeerEnv {
  std::uint64_t NowMs() override { return 1000; }
  void Send(const std::string& member, std::string message, bool must) override {
    CHECK(must);
    sent.emplace_back(member, std::move(message));
  }
  void Commit(storage::Store::Work, std::function<void(Status)>) override { FAIL("no commits"); }
  void After(std::uint64_t, std::function<void()>) override { FAIL("no timers"); }
  void Defer(std::function<void()> fn) override { deferred.push_back(std::move(fn)); }
  bool Batches(const std::string& member) override { return !old.count(member); }
  // Ends the turn: runs what was deferred.
  void EndTurn() {
    while (!deferred.empty()) {
      auto fn = std::move(deferred.front());
      deferred.pop_front();
      fn();
    }
  }
  std::set<std::string> old;  // peers on protocol 4
  std::deque<std::function<void()>> deferred;
  std::vector<std::pair<std::string, std::string>> sent;
};

// The ack ids a message carries (Ack or Acks).
std::vector<std::uint64_t> AckIds(const std::string& bytes) {
  std::vector<std::uint64_t> ids;
  REQUIRE(ReadPeerMessage(bytes, [&](wire::PeerMessage::Reader m) {
    if (m.which() == wire::PeerMessage::ACK) ids.push_back(m.getAck().getId());
    if (m.which() == wire::PeerMessage::ACKS) {
      for (auto id : m.getAcks()) ids.push_back(id);
    }
    return true;
  }));
  return ids;
}

std::string DeltaMessage(const std::string& key, std::size_t state_bytes) {
  return BuildPeerMessage(5, [&](auto root) {
    auto d = root.initDelta();
    d.setKey(Bytes(key));
    d.setState(Bytes(std::string(state_bytes, 'x')));
  });
}

// The keys of the deltas a message carries (Delta or Deltas).
std::vector<std::string> DeltaKeys(const std::string& bytes) {
  std::vector<std::string> keys;
  REQUIRE(ReadPeerMessage(bytes, [&](wire::PeerMessage::Reader m) {
    if (m.which() == wire::PeerMessage::DELTA) keys.emplace_back(View(m.getDelta().getKey()));
    if (m.which() == wire::PeerMessage::DELTAS) {
      for (auto d : m.getDeltas()) keys.emplace_back(View(d.getKey()));
    }
    return true;
  }));
  return keys;
}

TEST_CASE("outbox: one turn's acknowledgements for a peer leave in one message") {
  FakeEnv env;
  auto box = std::make_shared<PeerOutbox>(env);
  for (std::uint64_t id = 1; id <= 5; ++id) box->Ack("a", id);
  box->Ack("b", 9);
  CHECK(env.sent.empty());  // nothing before the turn ends
  env.EndTurn();
  REQUIRE(env.sent.size() == 2);
  std::map<std::string, std::vector<std::uint64_t>> by_peer;
  for (const auto& [to, bytes] : env.sent) by_peer[to] = AckIds(bytes);
  CHECK(by_peer["a"] == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
  CHECK(by_peer["b"] == std::vector<std::uint64_t>{9});
  auto st = box->stats();
  CHECK(st.acks == 6);
  CHECK(st.ack_messages == 2);
  // The next turn starts empty.
  box->Ack("a", 10);
  env.EndTurn();
  REQUIRE(env.sent.size() == 3);
  CHECK(AckIds(env.sent[2].second) == std::vector<std::uint64_t>{10});
}

TEST_CASE("outbox: a peer that does not batch gets each message at once") {
  FakeEnv env;
  env.old.insert("a");
  auto box = std::make_shared<PeerOutbox>(env);
  box->Ack("a", 1);
  box->Ack("a", 2);
  box->Delta("a", DeltaMessage("k", 10));
  CHECK(env.deferred.empty());
  REQUIRE(env.sent.size() == 3);
  CHECK(AckIds(env.sent[0].second) == std::vector<std::uint64_t>{1});
  CHECK(DeltaKeys(env.sent[2].second) == std::vector<std::string>{"k"});
  CHECK(box->stats().ack_messages == 2);
  CHECK(box->stats().delta_messages == 1);
}

TEST_CASE("outbox: one turn's deltas leave in Deltas messages of bounded size, in order") {
  FakeEnv env;
  auto box = std::make_shared<PeerOutbox>(env);
  // 40 deltas of 16 KiB: 640 KiB, so three messages of at most 256 KiB.
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) {
    keys.push_back("k" + std::to_string(i));
    box->Delta("a", DeltaMessage(keys.back(), 16 << 10));
  }
  env.EndTurn();
  REQUIRE(env.sent.size() == 3);
  std::vector<std::string> got;
  for (const auto& [to, bytes] : env.sent) {
    CHECK(to == "a");
    CHECK(bytes.size() <= PeerOutbox::kDeltaBatchBytes + 4096);
    for (auto& k : DeltaKeys(bytes)) got.push_back(k);
  }
  CHECK(got == keys);
  CHECK(box->stats().delta_messages == 3);
  // One alone goes as a plain Delta.
  box->Delta("a", DeltaMessage("solo", 8));
  env.EndTurn();
  REQUIRE(env.sent.size() == 4);
  CHECK(ReadPeerMessage(env.sent[3].second,
                        [](wire::PeerMessage::Reader m) { return m.which() == wire::PeerMessage::DELTA; }));
}

}  // namespace
}  // namespace lattice::gossip
