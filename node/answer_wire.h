// The typed answer of a forwarded write on the wire (gossip/peer.capnp
// ForwardReply, protocol 5), and its reading from a protocol-4 minter.
#pragma once

#include <optional>

#include "gossip/peer.capnp.h"
#include "node/answer.h"

namespace lattice::node {

// Fills `r` with `a`. Its `reply` carries what the client gets also when the
// command did not run, for protocol-4 coordinators, which read only that.
void PutAnswer(gossip::wire::ForwardReply::Builder r, const Answer& a);

// The answer in `r`; nullopt when malformed (an unknown outcome). From a
// protocol-4 minter (outcome 0) the client's reply is all there is: the one
// place that reads a reply's text (its error code and integer), so that a
// cluster can be upgraded node by node.
std::optional<Answer> GetAnswer(gossip::wire::ForwardReply::Reader r);

}  // namespace lattice::node
