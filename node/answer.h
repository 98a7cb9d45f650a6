// Answer: the typed result of a data command as the parts of a node pass it
// on (the write and read coordinators, the minting replica, the server). A
// part decides by its outcome and adds up its count; none reads the reply's
// text. The reply bytes a command produced travel opaque to the client-facing
// server, which alone renders the other outcomes as RESP errors
// (AppendAnswer).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "crdt/dot_context.h"

namespace lattice::node {

// Session guarantees (DESIGN §2): a connection keeps, per key it touched, the
// causal context of what it wrote or read (see node/replicator.h).
using SessionContexts = std::map<std::string, crdt::DotContext, std::less<>>;

enum class Outcome : std::uint8_t {
  kReplied,      // the command ran: `reply` is its answer
  kRefused,      // the command ran and refused (wrong type, bad argument): `reply` is its error
  kTryAgain,     // a rebuilding replica did not apply it (another may)
  kUnavailable,  // too few replicas reachable for the level
  kTimeout,      // the deadline passed first
  kStale,        // nothing reachable covers what the session has seen
  kClusterDown,  // the node waits to found or join a cluster
  kError,        // the node is stopping, the store failed, a malformed forward
};

// The error code a client sees for `o` ("TRYAGAIN", "UNAVAILABLE", ...; "" for
// kReplied and kRefused, whose reply is the command's own).
std::string_view OutcomeCode(Outcome o);

struct Answer {
  Outcome outcome = Outcome::kReplied;
  std::string reply;       // kReplied, kRefused: the command's reply, as the engine rendered it
  std::string message;     // the other outcomes: what happened, after the code
  std::int64_t count = 0;  // what the command counted (DEL, UNLINK: keys removed)
  SessionContexts observed;  // the contexts the session now covers

  static Answer Of(Outcome o, std::string message) {
    Answer a;
    a.outcome = o;
    a.message = std::move(message);
    return a;
  }
  bool ran() const { return outcome == Outcome::kReplied || outcome == Outcome::kRefused; }
};

// Appends what the client receives for `a`: the command's reply, or
// `-CODE message`.
void AppendAnswer(std::string& out, const Answer& a);

}  // namespace lattice::node
