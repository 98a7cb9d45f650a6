// Internal to the replicator: the state of a Replicator (Replicator::Impl)
// and the helpers its source files share: node/replicator.cc (building and
// wiring the components, dispatching commands, views, ticks),
// node/replicator_reads.cc (which replicas serve reads), node/peer_messages.cc
// (decoding peer messages and routing them), node/handoff.cc (scheduling
// repair, what the gossip components ask of the ring). The components with
// their own state and lock, which it owns and feeds: the write and read
// coordinators (node/write_coordinator.h, node/read_coordinator.h), the
// replica side (node/replica.h), the watch relay (node/watch_relay.h),
// anti-entropy (gossip/anti_entropy.h), joins and hand-offs
// (gossip/partition_sync.h), the tombstone collector (gossip/collector.h) and
// the peer outbox (gossip/outbox.h). Not a public header: nothing else
// includes it.
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>

#include "crdt/codec.h"
#include "gossip/anti_entropy.h"
#include "gossip/collector.h"
#include "gossip/outbox.h"
#include "gossip/partition_sync.h"
#include "gossip/wire.h"
#include "merkle/tree.h"
#include "node/answer_wire.h"
#include "node/coordination.h"
#include "node/replicator.h"
#include "node/read_coordinator.h"
#include "node/replica.h"
#include "node/watch_relay.h"
#include "node/write_coordinator.h"
#include "node/resp.h"

namespace lattice::node {

struct Replicator::Impl : std::enable_shared_from_this<Impl> {
  // Builds the components and wires their hooks (node/replicator.cc).
  Impl(ReplicaEnv& e, Engine& en, ReplicatorOptions o, std::string s, std::uint64_t seed);



  ReplicaEnv& env;
  Engine& engine;
  ReplicatorOptions opt;
  std::string self;

  mutable std::mutex mu;  // everything below
  Ring ring;       // every member that has not left: a key's N replicas
  Ring read_ring;  // without joining members: the replicas before they joined
  Ring next_ring;  // without leaving members: the replicas after they left
  ReplicaView view;
  // view.members is this node alone and it is not forming (Alone: read
  // without the mutex, once per pipelined batch).
  std::atomic<bool> alone{false};
  bool stopped = false;
  std::mt19937_64 rng;
  Stats stats;
  std::map<std::string, std::uint64_t> clock_warned;  // peer -> last warning (ms)
  std::string prune_cursor;                           // where PruneRequests goes on
  int ticks = 0;
  std::set<std::string> reconnected;  // peers reachable again: an exchange at the next Tick

  // Acknowledgements and deltas leave through the outbox, coalesced per peer
  // per turn (peer batching): a component with its own state and lock.
  std::shared_ptr<gossip::PeerOutbox> outbox = std::make_shared<gossip::PeerOutbox>(env);

  // SUBSCRIBE across nodes: a component with its own state and lock
  // (declared after env, engine, self and ring, which it is built from). It
  // reads the ring through this, under mu, never while it holds its own lock.
  WatchRelay watch{env, engine, self, [this](std::string_view key) {
                     std::lock_guard lock(mu);
                     return ring.ReplicasOf(key);
                   }};

  // Tombstone collection (DESIGN §2): a component with its own state and
  // lock; it asks Placement (under mu, never while holding its own lock)
  // which replicas must confirm a tombstone.
  std::shared_ptr<gossip::TombstoneCollector> collector;
  // The replica side (minting, pushing and applying deltas): a component
  // with its own state and lock.
  std::shared_ptr<Replica> replica;

  // The read coordinator: a component with its own state and lock.
  std::shared_ptr<ReadCoordinator> rc;
  std::optional<std::pair<std::size_t, std::vector<std::string>>> Serving(const std::string& key);

  // The write coordinator: a component with its own state and lock.
  std::shared_ptr<WriteCoordinator> wc;
  std::optional<WriteCoordinator::Placement> WritePlacement(const std::string& key);

  // Joins and hand-offs (what is pulled, which roots matched): a component
  // with its own state and lock, called under mu with the rings and view.
  std::unique_ptr<gossip::PartitionSync> sync;
  struct RingLayout final : gossip::PartitionSync::Layout {
    explicit RingLayout(const Impl& impl) : im(impl) {}
    std::uint32_t partitions() const override { return im.ring.partitions(); }
    const std::vector<std::string>& Now(std::uint32_t p) const override { return im.ring.Replicas(p); }
    const std::vector<std::string>& Before(std::uint32_t p) const override { return im.read_ring.Replicas(p); }
    const std::vector<std::string>& After(std::uint32_t p) const override { return im.next_ring.Replicas(p); }
    const std::vector<std::string>& Members() const override { return im.view.members; }
    bool Joining(const std::string& m) const override { return im.view.joining.count(m) > 0; }
    bool Leaving(const std::string& m) const override { return im.view.leaving.count(m) > 0; }
    bool Reachable(const std::string& m) const override { return im.view.reachable.count(m) > 0; }
    const Impl& im;
  };

  // Merkle anti-entropy (exchanges, the descent, states; the roots joins and
  // hand-offs compare): a component with its own state and lock.
  std::unique_ptr<gossip::AntiEntropy> ae;
  std::vector<std::optional<std::set<std::string>>> Placement(const std::vector<std::string>& keys);



  // ---- local store ---------------------------------------------------------

  Answer RunLocal(const CommandSpec& spec, const Args& args,
                  const std::map<std::string, crdt::KeyState, std::less<>>* overlay);

  // Encoded whole states of `keys` ("" for an absent key).
  std::vector<std::string> LoadEncoded(const std::vector<std::string>& keys,
                                       const storage::Members& members = storage::Members::All());

  // ---- write path: coordinator ---------------------------------------------

  void Execute(const CommandSpec& spec, Args args, Level level, SessionContexts need, Reply done);
  // ExecuteGroup once the cluster is more than this node: group items from
  // `i` on, each after the one before it answered.
  static void RunInOrder(const std::shared_ptr<Impl>& im, std::shared_ptr<CommandGroup> g, std::size_t i,
                         std::function<void()> done);

  // ---- read path -------------------------------------------------------------

  using StateMap = std::map<std::string, crdt::KeyState, std::less<>>;

  // The reachable members of `replicas` (of `key`) that serve reads (not
  // joining; this node not while it pulls the key's partition), this node first.
  std::vector<std::string> ReachableReplicasLocked(const std::vector<std::string>& replicas,
                                                   std::string_view key) const;

  // ---- anti-entropy ------------------------------------------------------------

  // Forgets remembered request ids older than request_memory_ms, a slice per call.
  void PruneRequests();

  void AntiEntropyRound();

  // True when `member` replicates partition `p` for writes or for reads (while
  // a node joins, an old replica stays a read replica and must answer it).
  bool Replicates(std::uint32_t p, const std::string& member);

  // ---- messages ------------------------------------------------------------------

  bool OnMessage(const std::string& from, std::string_view bytes);
  // One Delta of a Delta or Deltas message; false when malformed.
  bool OnDelta(gossip::wire::Delta::Reader d, std::uint64_t hlc);

  void Tick();

  // One anti-entropy exchange with `peer`: our roots of the partitions both
  // replicate (it compares; see OnAeRoots). Not with or by a joining node.
  void ExchangeRoots(const std::string& peer);

  // Keys whose due expiry this node applied: the first reachable replica of
  // each tells its watchers.
  void Swept(const std::vector<std::string>& keys);

  void Stop();
};

}  // namespace lattice::node
