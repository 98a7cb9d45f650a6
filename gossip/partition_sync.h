// PartitionSync: joins and hand-offs (DESIGN §4, membership epochs). A
// joining node pulls every partition it replicates, and a node that gained
// partitions by a membership change (a member forgotten or gone) pulls
// those, before it serves their reads: it asks each replica that serves the
// partition, old or new, one at a time, for its roots (AeRoots with `sync`;
// the answer carries the leaves of what differs, whose states come as
// anti-entropy sends them), and a partition is pulled once its root has
// equalled each such replica's. A leaving node sends its roots to each
// replica that takes its place and is done once every such root has equalled
// its own, and is still its own (a write that reached it since, minted by a
// node that did not know of the leave yet, must reach the heir too).
//
// Owns: the partitions being pulled, the (partition, peer) pairs whose roots
// matched and with which root, when each was last asked, and whether the
// hand-off is done, under its own mutex. Executor: the replicator calls
// Round, Gained, Leaving and Pulling while it holds its own lock (so the
// Layout it passes stays put), and Matched without it; this component calls
// nothing while it holds its lock: it returns whom to ask, and the replicator
// sends (through gossip/anti_entropy.h) after releasing its own. Sends
// nothing itself. Receives: matched roots (Matched, from anti-entropy's
// answers), the layout at each round and at each membership change.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "merkle/tree.h"
#include "storage/store.h"

namespace lattice::gossip {

class PartitionSync {
 public:
  // The replicator's ring and view, read while it holds its lock.
  class Layout {
   public:
    virtual ~Layout() = default;
    virtual std::uint32_t partitions() const = 0;
    // A partition's replicas over every member not left (`Now`), over those
    // not joining (`Before`: who served it before the joins) and over those not
    // leaving (`After`: who serves it once the leaves are done).
    virtual const std::vector<std::string>& Now(std::uint32_t p) const = 0;
    virtual const std::vector<std::string>& Before(std::uint32_t p) const = 0;
    virtual const std::vector<std::string>& After(std::uint32_t p) const = 0;
    virtual const std::vector<std::string>& Members() const = 0;
    virtual bool Joining(const std::string& member) const = 0;
    virtual bool Leaving(const std::string& member) const = 0;
    virtual bool Reachable(const std::string& member) const = 0;
  };
  // What a round found: whom to ask for the roots of which partitions, and
  // whether the join or the hand-off is done.
  struct Step {
    std::map<std::string, std::vector<std::uint32_t>> asks;
    bool done = false;
  };
  static constexpr std::uint64_t kRetryMs = 200;  // a peer is asked again after this long

  PartitionSync(storage::Store& store, std::string self) : store_(store), self_(std::move(self)) {}

  // While this node joins: each partition it replicates; otherwise those in
  // pulling. `done` (joining only): every partition is pulled.
  Step Pull(const Layout& l, std::uint64_t now);
  // While this node leaves; `done` once every heir matched (reported once).
  Step HandOff(const Layout& l, std::uint64_t now);
  // A membership change: `l` is the new layout, `had` whether this node
  // replicated each partition before it. Partitions gained are pulled (not
  // by a joining node, which pulls everything, nor at the first view); when
  // this node starts to leave, its heirs are compared afresh.
  void Changed(const Layout& l, const std::vector<bool>& had, bool first_view, bool started_leaving);
  // `from`'s root of p equalled this node's, `root`.
  void Matched(std::uint32_t p, const std::string& from, const merkle::Digest& root);
  // True while this node pulls partition p (it refuses p's reads until then).
  bool Pulling(std::uint32_t p) const;

 private:
  // True when `peer` was asked for p's roots less than kRetryMs ago; else
  // records that it is asked now. Caller holds mu_.
  bool AskedRecently(std::uint32_t p, const std::string& peer, std::uint64_t now);

  storage::Store& store_;
  const std::string self_;
  mutable std::mutex mu_;  // everything below
  std::set<std::uint32_t> pulling_;  // partitions gained by a membership change, not yet pulled
  bool handed_off_ = false;
  std::map<std::pair<std::uint32_t, std::string>, merkle::Digest> synced_;
  std::map<std::pair<std::uint32_t, std::string>, std::uint64_t> asked_;  // when asked for its roots (ms)
};

}  // namespace lattice::gossip
