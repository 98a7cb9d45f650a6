// TombstoneCollector: collects causally stable tombstones (DESIGN §2). A round
// scans the next `batch` tombstones of the store's tombstone index; one that
// this node has seen for at least `grace_ms` and whose partition's replicas
// (write and read replicas, joining ones included) are all reachable is
// offered to those replicas (GcQuery); a tombstone every one of them holds,
// or has no record of, is collected here (retired: storage/store.h). Each
// replica decides for itself, by its own rounds.
//
// Owns: the scan cursor, when this node first saw each tombstone (and in
// which pass of the scan), the one stability query in flight, its own request
// ids and the count collected, under its own mutex (no lock shared with the
// replicator). Executor: whatever thread calls it (the daemon's io_context,
// the simulation's event loop); it calls `placement` and the environment
// outside its lock, and its commits finish on the writer's completion
// handler. Sends: GcQuery (id, tombstones with their contexts) to the other
// replicas of a tombstone's partition, GcReply (id, held per tombstone) to a
// querying peer. Receives: GcQuery and GcReply (OnQuery, OnReply), rounds
// (Round, from the replicator's anti-entropy timer).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/dot_context.h"
#include "gossip/env.h"

namespace lattice::gossip {

class TombstoneCollector : public std::enable_shared_from_this<TombstoneCollector> {
 public:
  struct Options {
    std::size_t batch = 512;             // tombstones examined per round
    std::uint64_t grace_ms = 10000;      // seen this long before it is offered
    std::uint64_t timeout_ms = 2000;     // a query unanswered this long is dropped
  };
  // Per key (in order): the other replicas that must confirm its tombstone,
  // or nullopt when this node must not collect it now (it does not replicate
  // the key's partition, or one of its replicas is unreachable).
  using Placement =
      std::function<std::vector<std::optional<std::set<std::string>>>(const std::vector<std::string>& keys)>;

  TombstoneCollector(PeerEnv& env, storage::Store& store, Options options, Placement placement,
                     std::uint64_t seed);

  void Round();
  // A peer asks whether this node holds these tombstones (keys with the
  // contexts it would retire).
  void OnQuery(const std::string& from, std::uint64_t id,
               const std::vector<std::pair<std::string, crdt::DotContext>>& tombstones);
  void OnReply(const std::string& from, std::uint64_t id, const std::vector<bool>& held);
  // No more rounds or commits; a query in flight is forgotten.
  void Stop();

  std::uint64_t collected() const;

 private:
  struct Query {
    std::uint64_t id = 0;
    std::uint64_t deadline_ms = 0;
    std::vector<std::string> keys;
    std::vector<crdt::DotContext> contexts;
    std::vector<std::set<std::string>> waiting;  // per key: replicas yet to confirm
    std::vector<bool> failed;                    // per key: a replica does not hold it
    std::map<std::string, std::vector<std::size_t>> asked;  // member -> key indices, in query order
  };
  // Collects the tombstones of `q` every replica confirmed.
  void RetireStable(Query q);

  PeerEnv& env_;
  storage::Store& store_;
  const Options opt_;
  const Placement placement_;

  mutable std::mutex mu_;  // everything below
  bool stopped_ = false;
  std::uint64_t next_id_;
  std::string cursor_;
  std::uint64_t pass_ = 0;
  // key -> (when first seen, ms; the pass that last saw it)
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>, std::less<>> seen_;
  std::optional<Query> query_;
  std::uint64_t collected_ = 0;
};

}  // namespace lattice::gossip
