// node/answer.h: how each outcome reaches a client, and the typed answer of a
// forwarded write on the wire, from this protocol and from a protocol-4 minter.
#include <capnp/message.h>
#include <doctest/doctest.h>

#include "gossip/wire.h"
#include "node/answer_wire.h"

namespace lattice::node {
namespace {

std::string Shown(const Answer& a) {
  std::string out;
  AppendAnswer(out, a);
  return out;
}

// `a` through a ForwardReply, as the coordinator reads it back.
std::optional<Answer> Through(const Answer& a, bool legacy = false) {
  capnp::MallocMessageBuilder mb;
  auto r = mb.initRoot<gossip::wire::ForwardReply>();
  PutAnswer(r, a);
  if (legacy) {  // what a protocol-4 minter sends: the client's reply only
    r.setOutcome(0);
    r.setCount(0);
    r.setMessage("");
  }
  return GetAnswer(r.asReader());
}

TEST_CASE("answer: each outcome as the client sees it, and through a forward reply") {
  Answer ok;
  ok.reply = ":3\r\n";
  ok.count = 3;
  CHECK(Shown(ok) == ":3\r\n");
  Answer refused;
  refused.outcome = Outcome::kRefused;
  refused.reply = "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
  CHECK(Shown(refused) == refused.reply);
  const Answer again = Answer::Of(Outcome::kTryAgain, "this replica is rebuilding its data");
  CHECK(Shown(again) == "-TRYAGAIN this replica is rebuilding its data\r\n");
  CHECK(Shown(Answer::Of(Outcome::kUnavailable, "need 2 of 3 replicas, 1 reachable")) ==
        "-UNAVAILABLE need 2 of 3 replicas, 1 reachable\r\n");
  CHECK(Shown(Answer::Of(Outcome::kError, "node shutting down")) == "-ERR node shutting down\r\n");

  for (bool legacy : {false, true}) {
    INFO("from a protocol-" << (legacy ? 4 : 5) << " minter");
    auto back = Through(ok, legacy);
    REQUIRE(back);
    CHECK(back->outcome == Outcome::kReplied);
    CHECK(back->count == 3);
    CHECK(Shown(*back) == ":3\r\n");
    back = Through(refused, legacy);
    REQUIRE(back);
    CHECK(back->outcome == Outcome::kRefused);
    CHECK(Shown(*back) == refused.reply);
    back = Through(again, legacy);
    REQUIRE(back);
    CHECK(back->outcome == Outcome::kTryAgain);
    CHECK(back->message == "this replica is rebuilding its data");
    CHECK(Shown(*back) == Shown(again));
  }
  // An outcome this build does not know is malformed.
  capnp::MallocMessageBuilder mb;
  auto r = mb.initRoot<gossip::wire::ForwardReply>();
  r.setOutcome(200);
  CHECK_FALSE(GetAnswer(r.asReader()).has_value());
}

}  // namespace
}  // namespace lattice::node
