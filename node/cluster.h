// Cluster: this node's membership in the cluster, kept by gossip over the peer
// transport (DESIGN §4). Every round (200 ms) the node raises its own record's
// version and sends its whole view to every member (the heartbeats that failure detection
// and reachability go by) and to every
// seed or joined address not yet known by name; what arrives is merged, and the
// phi-accrual detector moves silent members to suspect and then dead.
//
// The cluster owns the Replicator (node/replicator.h) and drives it: peer
// messages that are not gossip go to it, its view follows the membership, and
// an anti-entropy round runs every --ae-interval-ms.
//
// Owns: the transport (gossip/transport.h), the membership and formation
// state (gossip/membership.h, gossip/formation.h), the peer protocol each
// member speaks, the links found down, the Replicator's timers.
// Executor: the io_context given at construction (gossip loop, anti-entropy
// timer, the Replicator's timers and commit callbacks); a mutex guards the
// membership, so public methods may be called from any thread.
// Sends: membership gossip (PeerMessage.members) to every member and unknown
// seed each round; whatever the Replicator sends. Receives: every peer
// message (a heartbeat for failure detection), gossip merged here, the rest
// handed to the Replicator; link up/down from the transport.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "crdt/status.h"
#include "node/config.h"
#include "storage/store.h"

namespace asio {
class io_context;
}

namespace lattice::node {

class Engine;
class Replicator;

class Cluster {
 public:
  Cluster(asio::io_context& io, const Config& config, Engine& engine);
  ~Cluster();

  // Listens on --bind:--peer-port and starts gossiping to the seeds.
  Status Start();
  void Stop();

  // CLUSTER JOIN host:port (a peer address): gossip with it until it is known.
  Status Join(const std::string& address);
  // CLUSTER LEAVE: announce that this node leaves.
  // CLUSTER LEAVE: hands every partition off, then leaves; says what it does.
  std::string Leave();
  // CLUSTER FORGET name: mark a (dead) member left. Refused for ourselves or
  // for a member that is alive.
  Status Forget(const std::string& name);

  // CLUSTER NODES: one line per member, itself included:
  // "<name> <peer addr> <client addr> <state> <ms since last contact|self>".
  std::string Nodes() const;
  // CLUSTER INFO lines.
  std::string Info() const;
  // The member whose (name, incarnation) gives replica id `id`, or "".
  std::string NameOfReplica(std::uint64_t id) const;

  // The request coordinator.
  Replicator& replicator();
  // Called with keys changed by replicated writes (SUBSCRIBE).
  void OnChanged(std::function<void(const std::vector<std::string>&)> fn);
  // Called with (key, value) when a watched key this node does not replicate
  // changed on a replica (Replicator::Watch).
  void OnNotify(std::function<void(const std::string&, const std::string&)> fn);

  // CLUSTER REPLICAS key: the key's partition and its replicas, best first.
  std::vector<std::string> Replicas(const std::string& key, std::uint32_t* partition) const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace lattice::node
