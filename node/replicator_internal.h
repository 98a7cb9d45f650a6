// Internal to the replicator: the state of a Replicator (Replicator::Impl)
// and the helpers its source files share: node/replicator.cc (dispatching
// commands, views, ticks), node/replicator_replica.cc (minting, pushing and applying
// deltas), node/replicator_reads.cc (which replicas serve reads), node/peer_messages.cc (decoding
// peer messages), node/handoff.cc (scheduling repair, joining pulls, leaving
// hand-offs). Components with their own state and lock, which it owns and
// feeds: the write and read coordinators (node/write_coordinator.h,
// node/read_coordinator.h), the watch relay
// (node/watch_relay.h), anti-entropy
// (gossip/anti_entropy.h), the tombstone collector (gossip/collector.h) and
// the peer outbox (gossip/outbox.h). Not a public header: nothing else
// includes it.
#pragma once

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>

#include "crdt/codec.h"
#include "gossip/anti_entropy.h"
#include "gossip/collector.h"
#include "gossip/outbox.h"
#include "gossip/wire.h"
#include "merkle/tree.h"
#include "node/answer_wire.h"
#include "node/coordination.h"
#include "node/replicator.h"
#include "node/read_coordinator.h"
#include "node/watch_relay.h"
#include "node/write_coordinator.h"
#include "node/resp.h"

namespace lattice::node {

struct Replicator::Impl : std::enable_shared_from_this<Impl> {
  // Builds the components and wires their hooks (node/replicator.cc).
  Impl(ReplicaEnv& e, Engine& en, ReplicatorOptions o, std::string s, std::uint64_t seed);


  std::uint64_t started_ms = 0;
  bool earlier_life = false;

  ReplicaEnv& env;
  Engine& engine;
  ReplicatorOptions opt;
  std::string self;

  mutable std::mutex mu;  // everything below
  Ring ring;       // every member that has not left: a key's N replicas
  Ring read_ring;  // without joining members: the replicas before they joined
  Ring next_ring;  // without leaving members: the replicas after they left
  std::set<std::uint32_t> pulling;  // partitions gained by a membership change, not yet pulled
  bool handed_off = false;
  ReplicaView view;
  bool stopped = false;
  std::mt19937_64 rng;
  Stats stats;
  std::map<std::string, std::uint64_t> clock_warned;  // peer -> last warning (ms)
  std::string prune_cursor;                           // where PruneRequests goes on
  int ticks = 0;
  // (partition, peer) whose root equalled ours (a joining node's pulls, a
  // leaving node's hand-off), with our root then: a hand-off counts it only
  // while our root is still that (a write that reached us since, minted by a
  // node that did not know of the leave yet, must reach the heir too).
  std::map<std::pair<std::uint32_t, std::string>, merkle::Digest> synced;
  std::map<std::pair<std::uint32_t, std::string>, std::uint64_t> sync_asked;  // when asked for its roots (ms)
  std::set<std::string> reconnected;  // peers reachable again: an exchange at the next Tick
  static constexpr std::uint64_t kSyncRetryMs = 200;

  // The minting replica's record of a command, by (coordinator, id): while it
  // runs (`done` false) duplicates are ignored; afterwards a duplicate gets
  // the same reply and the delta is pushed again.
  struct Minted {
    bool done = false;
    Answer answer;  // its outcome, reply and count (no session contexts)
    bool replicated = false;
    bool uncovered = false;    // the replica does not cover the session's context
    crdt::DotContext written;  // the write's own context
    std::string delta_message;
    std::vector<std::string> targets;
  };
  std::map<std::pair<std::string, std::uint64_t>, Minted> minted;
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
  std::deque<std::pair<std::string, std::uint64_t>> minted_order;

  // Tombstone collection (DESIGN §2): a component with its own state and
  // lock; it asks Placement (under mu, never while holding its own lock)
  // which replicas must confirm a tombstone.
  std::shared_ptr<gossip::TombstoneCollector> collector;
  // The read coordinator: a component with its own state and lock.
  std::shared_ptr<ReadCoordinator> rc;
  std::optional<std::pair<std::size_t, std::vector<std::string>>> Serving(const std::string& key);

  // The write coordinator: a component with its own state and lock.
  std::shared_ptr<WriteCoordinator> wc;
  std::optional<WriteCoordinator::Placement> WritePlacement(const std::string& key);

  // Merkle anti-entropy (exchanges, the descent, states; the roots joins and
  // hand-offs compare): a component with its own state and lock.
  std::unique_ptr<gossip::AntiEntropy> ae;
  std::vector<std::optional<std::set<std::string>>> Placement(const std::vector<std::string>& keys);

  std::weak_ptr<Impl> weak() { return weak_from_this(); }

  std::uint64_t WallHlc() { return PackHlc(crdt::Hlc{env.NowMs(), 0}); }

  // ---- local store ---------------------------------------------------------

  Answer RunLocal(const CommandSpec& spec, const Args& args,
                  const std::map<std::string, crdt::KeyState, std::less<>>* overlay);

  // Encoded whole states of `keys` ("" for an absent key).
  std::vector<std::string> LoadEncoded(const std::vector<std::string>& keys,
                                       const storage::Members& members = storage::Members::All());

  // ---- write path: coordinator ---------------------------------------------

  void Execute(const CommandSpec& spec, Args args, Level level, SessionContexts need, Reply done);

  // ---- write path: minting replica -----------------------------------------

  void Mint(const std::string& coordinator, std::uint64_t id, const Args& args, const crdt::DotContext& need,
            const std::string& base, bool base_partial = false);

  void Finish(const std::string& coordinator, std::uint64_t id, Answer answer, std::optional<KeyDelta> delta,
              const std::string& key, std::uint64_t hlc);

  static std::string DeltaMessage(const KeyDelta& d, const std::string& ack_to, std::uint64_t ack_id,
                                  std::uint64_t hlc);

  // Answers the coordinator and pushes the delta to the other replicas.
  void Replay(const std::string& coordinator, std::uint64_t id, const Minted& m);

  // ---- replica: applying a delta -------------------------------------------

  void ApplyDelta(KeyDelta d, std::uint64_t hlc, std::string ack_to, std::uint64_t ack_id);

  // Sends a whole state to `to` (read repair, anti-entropy); applied locally
  // when `to` is this node.
  // Sends a key's whole state (read repair, anti-entropy); to itself it is
  // applied here. `bulk`: background traffic that waits while the link is
  // busy (ReplicaEnv::SendBulk). False when it was not queued.
  bool SendState(const std::string& to, const std::string& key, const std::string& encoded, bool must,
                 bool bulk = false);

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

  // True when `peer` was asked for the roots of `p` (SyncRound, HandOffRound)
  // less than kSyncRetryMs ago; else records that it is asked now. Caller
  // holds mu.
  bool AskedRecently(std::uint32_t p, const std::string& peer, std::uint64_t now);

  // While joining: asks each read replica of every partition we replicate for
  // its roots (and the leaves of what differs); Joined() once all are equal.
  // Otherwise pulls the partitions in `pulling` likewise, from the replicas
  // that are reachable (at least one).
  void SyncRound();

  // While this node leaves: sends its roots of each partition it replicates to
  // the replicas that take its place there (they answer theirs, and the
  // leaves of what differs, whose states this node then sends); HandedOff()
  // once every such root has equalled this node's.
  void HandOffRound();

  // Keys whose due expiry this node applied: the first reachable replica of
  // each tells its watchers.
  void Swept(const std::vector<std::string>& keys);

  void Stop();
};

}  // namespace lattice::node
