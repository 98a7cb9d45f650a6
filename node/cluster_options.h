// What the cluster wiring (node/cluster.cc) derives from the daemon's Config:
// the replicator's and the transport's options, this node's own member
// record, and the wall clock it stamps them with.
#pragma once

#include <cstdint>

#include "gossip/membership.h"
#include "gossip/transport.h"
#include "node/config.h"
#include "node/replicator.h"
#include "storage/store.h"

namespace lattice::node {

// Wall-clock milliseconds.
std::uint64_t ClockMs();
// No seeds, or only this node's own address: it founds a cluster of one at once.
bool FoundsAloneAtOnce(const Config& c);
ReplicatorOptions ReplicatorOptionsFor(const Config& c);
gossip::TransportOptions TransportOptionsFor(const Config& c, const storage::NodeIdentity& id);
// This node's member record as it starts.
gossip::Member SelfRecord(const Config& c, const storage::NodeIdentity& id);

}  // namespace lattice::node
