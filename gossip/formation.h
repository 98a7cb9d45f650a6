// Formation (DESIGN §4): how a fresh node comes to belong to a cluster. It
// joins a member of an existing cluster that it hears directly, or it founds
// one once bootstrap_expect fresh nodes hear each other and agree on the set
// of founders; the cluster id is a hash of the founders' sorted (name,
// incarnation), so two clusters never merge silently.
//
// Owns: nothing but the founders expected and when the node started. Pure:
// each gossip round the caller (node/cluster.h, or a simulation) passes the
// membership and the time and gets the decision; it persists, logs and
// announces it. Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gossip/membership.h"

namespace lattice::gossip {

// The cluster id of a set of founders: a hash of their sorted (name,
// incarnation); never 0 (no cluster).
std::uint64_t FoundersId(std::vector<std::pair<std::string, std::uint64_t>> founders);

struct FormationStep {
  enum class Kind {
    kWait,     // still forming: `reason` says why
    kJoin,     // joins the existing cluster `cluster_id` through member `through`
    kCofound,  // `through` founded with the set this node agreed on, a round earlier
    kAdopt,    // a node with data but no id (older than formation) adopts `through`'s id
    kFound,    // founds `cluster_id` with `founders` (names, comma-separated)
  };
  Kind kind = Kind::kWait;
  std::uint64_t cluster_id = 0;
  std::string through;
  std::string founders;
  std::size_t founder_count = 0;
  std::string reason;
  // While forming: a digest of the fresh nodes heard, which this node
  // announces in its record (Membership::SetCluster(0, forming)).
  std::uint64_t forming = 0;
};

class Formation {
 public:
  // `expect`: the founders needed (bootstrap_expect); `started_ms`: when this
  // node started (a lone founder with seeds of others waits a while first).
  Formation(std::size_t expect, std::uint64_t started_ms) : expect_(expect), started_ms_(started_ms) {}

  // One step. `forming`: the node is fresh and has neither founded nor joined;
  // without it only kAdopt can come (a node with data and no cluster id).
  FormationStep Step(const Membership& membership, bool forming, std::uint64_t now_ms) const;

  std::size_t expect() const { return expect_; }

  // A fresh node that would found alone although it has seeds of others waits
  // this long to reach a member of an existing cluster first.
  static constexpr std::uint64_t kFoundAloneAfterMs = 5000;

 private:
  std::size_t expect_;
  std::uint64_t started_ms_;
};

}  // namespace lattice::gossip
