// The daemon's cluster settings from its Config (node/cluster_options.h).
#include "node/cluster_options.h"

#include <chrono>

namespace lattice::node {

std::uint64_t ClockMs() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// No seeds, or only this node's own address.
bool FoundsAloneAtOnce(const Config& c) {
  const std::string self = c.bind + ":" + std::to_string(c.peer_port);
  for (const auto& s : c.seeds) {
    if (s != self) return false;
  }
  return true;
}

ReplicatorOptions ReplicatorOptionsFor(const Config& c) {
  ReplicatorOptions o;
  o.replicas = static_cast<std::uint32_t>(c.replicas);
  o.request_timeout_ms = c.request_timeout_ms;
  o.max_clock_offset_ms = c.max_clock_offset_ms;
  o.tombstone_grace_ms = c.tombstone_grace_ms;
  o.ae_bytes_per_s = c.ae_rate_mb << 20;
  o.ae_on_reconnect = c.ae_interval_ms > 0;
  return o;
}

gossip::TransportOptions TransportOptionsFor(const Config& c, const storage::NodeIdentity& id) {
  gossip::TransportOptions o;
  o.cluster = c.cluster_name;
  o.node = id.name;
  o.incarnation = id.incarnation;
  o.encodings = {"counter", "lww", "mv", "set", "flag", "map"};  // crdt/state.capnp Variant.store
  o.bind = c.bind;
  o.port = c.peer_port;
  return o;
}

gossip::Member SelfRecord(const Config& c, const storage::NodeIdentity& id) {
  // The version starts at the wall clock, so a restart with the same
  // incarnation still supersedes what peers remember of the earlier run.
  // A node on a new data directory that joins others pulls its partitions
  // before it serves reads (a wiped node rebuilds the same way), and so does
  // one that took a new incarnation because durable state may have been lost.
  return gossip::Member{id.name, c.bind + ":" + std::to_string(c.peer_port),
                        c.bind + ":" + std::to_string(c.port), id.incarnation, ClockMs(),
                        gossip::MemberState::kAlive, (id.fresh || id.rejoin) && !FoundsAloneAtOnce(c)};
}

}  // namespace lattice::node
