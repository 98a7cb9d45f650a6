// PeerOutbox: peer batching for delta push and acknowledgements (DESIGN §4).
// The acknowledgements and deltas a node makes in one turn of its event loop
// for one peer leave in one message: Acks (ids) and Deltas (at most
// kDeltaBatchBytes each), sent at the turn's end (PeerEnv::Defer). A peer
// that does not read them (PeerEnv::Batches false: an older protocol) gets
// one Ack or Delta message each, at once.
//
// Owns: what waits for the end of the turn, per peer, and the counts of
// acknowledgements and of the messages that carried them and the deltas,
// under its own mutex (no lock shared with the replicator). Executor:
// whatever thread calls it; the flush runs where PeerEnv::Defer runs it (the
// daemon: at the end of the writer-completion handler; the simulation: at the
// same instant). Sends: Ack, Acks, Delta, Deltas (gossip/peer.capnp).
// Receives: Ack(to, id) and Delta(to, message) from the replicator.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gossip/env.h"

namespace lattice::gossip {

class PeerOutbox : public std::enable_shared_from_this<PeerOutbox> {
 public:
  static constexpr std::size_t kDeltaBatchBytes = 256 << 10;

  explicit PeerOutbox(PeerEnv& env) : env_(env) {}

  // Acknowledges write `id` to its coordinator `to`.
  void Ack(const std::string& to, std::uint64_t id);
  // `message`: a PeerMessage holding one Delta, for replica `to`.
  void Delta(const std::string& to, std::string message);

  struct Stats {
    std::uint64_t acks = 0, ack_messages = 0, delta_messages = 0;
  };
  Stats stats() const;

 private:
  void FlushAcks(const std::string& to);
  void FlushDeltas(const std::string& to);
  // Appends `item` to what waits for `to` in `queue`; the first of a turn
  // has (this->*flush)(to) run at the turn's end.
  template <class T>
  void Coalesce(std::map<std::string, std::vector<T>>& queue, const std::string& to, T item,
                void (PeerOutbox::*flush)(const std::string&));
  template <class T>
  std::vector<T> Take(std::map<std::string, std::vector<T>>& queue, const std::string& to);

  PeerEnv& env_;
  mutable std::mutex mu_;  // everything below
  std::map<std::string, std::vector<std::uint64_t>> acks_;
  std::map<std::string, std::vector<std::string>> deltas_;
  Stats stats_;
};

}  // namespace lattice::gossip
