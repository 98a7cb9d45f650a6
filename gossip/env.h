// PeerEnv: everything outside the replication machinery (the network, the
// writer thread, timers, the clock), so the daemon drives its components with
// Asio (node/cluster.cc) and tests/sim with one seeded event queue. The
// node's replicator extends it (node::ReplicaEnv) with what only the node
// hears of: changed keys, joins and hand-offs, notifications.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "storage/store.h"

namespace lattice::gossip {

class PeerEnv {
 public:
  virtual ~PeerEnv() = default;
  // Wall-clock milliseconds (expiry, clock-offset checks).
  virtual std::uint64_t NowMs() = 0;
  // The wall clock as a peer message's HLC stamp (milliseconds above 16
  // logical bits, logical 0: node/coordination.h PackHlc).
  std::uint64_t WallHlc() { return NowMs() << 16; }
  // Queues `message` for member `member`; `must_deliver`: a request waits for
  // it, so it is never dropped from a queue.
  virtual void Send(const std::string& member, std::string message, bool must_deliver) = 0;
  // Background traffic (anti-entropy states): queued only while the link's
  // queue is at most half full, so it never crowds out deltas. False when it
  // was not queued (the sender sends the rest later).
  virtual bool SendBulk(const std::string& member, std::string message) {
    Send(member, std::move(message), false);
    return true;
  }
  // Runs `work` in a write transaction; `done` runs after the commit.
  virtual void Commit(storage::Store::Work work, std::function<void(Status)> done) = 0;
  // Runs `fn` after `delay_ms` (not after the replicator stopped).
  virtual void After(std::uint64_t delay_ms, std::function<void()> fn) = 0;
  // Runs `fn` at the end of this turn: the daemon answers the commits of one
  // writer batch in one handler and runs what they Defer at its end, so the
  // acknowledgements and deltas they make go out together (peer batching);
  // elsewhere it posts `fn`. The simulation runs it at the same instant.
  virtual void Defer(std::function<void()> fn) { fn(); }
  // True when `member` reads coalesced messages (peer protocol 5: Acks in
  // one message); false when unknown.
  virtual bool Batches(const std::string& member) { return false; }
};

}  // namespace lattice::gossip
