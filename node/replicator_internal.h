// Internal to the replicator: the state of a Replicator (Replicator::Impl)
// and the helpers its source files share: node/replicator.cc (coordinating
// writes, ticks), node/replicator_replica.cc (minting, pushing and applying
// deltas), node/replicator_reads.cc (reads), node/peer_messages.cc (decoding
// peer messages), node/handoff.cc (scheduling repair, joining pulls, leaving
// hand-offs). Components with their own state and lock, which it owns and
// feeds: the watch relay (node/watch_relay.h), anti-entropy
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
#include "node/replicator.h"
#include "node/watch_relay.h"
#include "node/resp.h"

namespace lattice::node {

using gossip::Bytes;
using gossip::View;
using gossip::PutContext;
using gossip::GetContext;

inline std::uint64_t PackHlc(crdt::Hlc h) { return (h.wall_ms << 16) | std::min<std::uint32_t>(h.logical, 0xffff); }
inline crdt::Hlc UnpackHlc(std::uint64_t v) { return crdt::Hlc{v >> 16, static_cast<std::uint32_t>(v & 0xffff)}; }

inline std::string UpperCase(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

inline bool ArityOk(int arity, std::size_t n) {
  return arity >= 0 ? n == static_cast<std::size_t>(arity) : n >= static_cast<std::size_t>(-arity);
}

// Commands that must not be applied twice (counters); their ids are persisted.
// The members a command names (CommandSpec::first_member), or All.
inline storage::Members NamedMembers(const CommandSpec& spec, const Args& args) {
  if (spec.first_member == 0) return storage::Members::All();
  std::vector<std::string> names;
  for (std::size_t i = static_cast<std::size_t>(spec.first_member); i < args.size();
       i += static_cast<std::size_t>(spec.member_step)) {
    names.push_back(args[i]);
  }
  return storage::Members::Of(std::move(names));
}

inline std::uint32_t Required(Level level, std::size_t n) {
  switch (level) {
    case Level::kOne: return 1;
    case Level::kQuorum: return static_cast<std::uint32_t>(n / 2 + 1);
    case Level::kAll: return static_cast<std::uint32_t>(n);
  }
  return 1;
}

// Fills a List(Data) builder.
template <class ListBuilder>
inline void FillBytes(ListBuilder list, const std::vector<std::string>& values) {
  for (unsigned i = 0; i < values.size(); ++i) list.set(i, Bytes(values[i]));
}

inline Answer Stale(const std::string& key) {
  return Answer::Of(Outcome::kStale, "no reachable replica covers what this session has seen of '" + key +
                                         "' yet; retry, or resume the session where it wrote");
}

inline Answer Stopping() { return Answer::Of(Outcome::kError, "node shutting down"); }

inline bool Covers(const crdt::KeyState& state, const crdt::DotContext& need) {
  return need.Empty() || state.Context().Covers(need);
}

inline Answer Unavailable(std::uint32_t need, std::size_t n, std::size_t reachable) {
  return Answer::Of(Outcome::kUnavailable, "need " + std::to_string(need) + " of " + std::to_string(n) +
                                               " replicas, " + std::to_string(reachable) + " reachable");
}

template <class Fill>
inline std::string Build(std::uint64_t hlc, Fill&& fill) {
  return gossip::BuildPeerMessage(hlc, std::forward<Fill>(fill));
}

struct Replicator::Impl : std::enable_shared_from_this<Impl> {
  Impl(ReplicaEnv& e, Engine& en, ReplicatorOptions o, std::string s, std::uint64_t seed)
      : env(e), engine(en), opt(o), self(std::move(s)), ring(o.partitions, o.replicas),
        read_ring(o.partitions, o.replicas), next_ring(o.partitions, o.replicas), next_id(seed | 1), rng(seed) {
    view.members = {self};
    view.reachable = {self};
    ring.SetMembers(view.members);
    read_ring.SetMembers(view.members);
    next_ring.SetMembers(view.members);
    started_ms = env.NowMs();
    collector = std::make_shared<gossip::TombstoneCollector>(
        env, engine.store(),
        gossip::TombstoneCollector::Options{o.gc_batch, o.tombstone_grace_ms, o.request_timeout_ms},
        [this](const std::vector<std::string>& keys) { return Placement(keys); }, seed ^ 0x9e3779b97f4a7c15ull);
    gossip::AntiEntropy::Hooks hooks;
    hooks.replicates = [this](std::uint32_t p, const std::string& member) { return Replicates(p, member); };
    hooks.reachable = [this](const std::string& member) {
      std::lock_guard lock(mu);
      return !stopped && view.reachable.count(member) > 0;
    };
    hooks.matched = [this](std::uint32_t p, const std::string& from, const merkle::Digest& root) {
      std::lock_guard lock(mu);
      synced[{p, from}] = root;
    };
    ae = std::make_unique<gossip::AntiEntropy>(
        env, engine.store(), self,
        gossip::AntiEntropy::Options{ring.partitions(), o.ae_max_keys, o.ae_bytes_per_s, o.ae_confirm_ms},
        std::move(hooks));
  }


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
  std::uint64_t next_id;
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

  struct WritePending {
    std::uint32_t required = 1;
    std::set<std::string> acks;
    std::optional<Answer> reply;  // the minter's
    Reply done;
    std::string minter;
    Args args;
    std::set<std::string> counted;  // the read replicas: only their acks count
    crdt::DotContext need;     // the session's context of the key
    std::string base;          // gathered state the minter joins first
    bool base_partial = false; // `base` holds only the members the command names
    bool uncovered = false;    // the minter did not cover `need` (yet)
    crdt::DotContext written;  // the write's own context
    int sends = 0;                     // to the current minter
    std::set<std::string> rebuilding;  // minters that answered TRYAGAIN
  };
  std::map<std::uint64_t, WritePending> writes;

  struct ReadPending {
    const CommandSpec* spec = nullptr;
    Args args;
    Reply done;
    SessionContexts need;
    std::uint64_t deadline_ms = 0;
    // Set for a gather (session coverage): gets the joined states instead of
    // running a command; also called with what arrived when the deadline passes.
    std::function<void(std::map<std::string, crdt::KeyState, std::less<>>&&)> on_joined;
    bool strict = false;  // a gather that ends without on_joined when short of `required`
    storage::Members select = storage::Members::All();  // of each key, what replicas load
    std::vector<std::string> keys;
    std::vector<std::uint32_t> required;                              // per key
    std::map<std::string, std::vector<std::size_t>> targets;          // member -> key indices
    std::set<std::string> answered;
    std::vector<std::vector<std::pair<std::string, std::string>>> states;  // per key: (member, encoded)
  };
  std::map<std::uint64_t, ReadPending> reads;
  // Reads waiting until a gather covers their session (answered by Stop()).
  std::set<std::shared_ptr<ReadPending>> covering;

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

  // DEL/UNLINK k1 k2 ... and MSET k1 v1 k2 v2 ...: one write per key (each
  // key has its own replicas); the replies are combined as Redis would answer.
  void SplitWrite(const CommandSpec& spec, Args args, Level level, const SessionContexts& need, Reply done);

  void WriteOne(Args args, Level level, crdt::DotContext session, Reply done);

  // Sends (or resends) a write to its minting replica while it is pending.
  void SendForward(std::uint64_t id);

  // Removes a pending request whose deadline passed (nullopt: it completed).
  template <class Map>
  std::optional<typename Map::mapped_type> TakeExpired(Map& pending, std::uint64_t id) {
    std::lock_guard lock(mu);
    auto it = pending.find(id);
    if (it == pending.end()) return std::nullopt;
    auto taken = std::move(it->second);
    pending.erase(it);
    ++stats.timeouts;
    return taken;
  }

  void WriteTimeout(std::uint64_t id);
  // The TIMEOUT answer of a write acknowledged by `acks` of `required`.
  static Answer WriteTimeoutReply(std::size_t acks, std::uint32_t required);

  void OnForwardReply(const std::string& from, std::uint64_t id, Answer answer, bool replicated, bool uncovered,
                      crdt::DotContext written);

  // Gathers `key` for a write whose minter did not cover the session; resends
  // the write with the joined state when it covers, else tries again shortly.
  void GatherForWrite(std::uint64_t id, const std::string& key);

  void OnAck(const std::string& from, std::uint64_t id);

  void CompleteWriteLocked(std::map<std::uint64_t, WritePending>::iterator it, std::unique_lock<std::mutex>& lock,
                           bool now);

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

  void Read(const CommandSpec& spec, Args args, std::vector<std::string> keys, Level level, SessionContexts need,
            Reply done);

  // The reachable members of `replicas` (of `key`) that serve reads (not
  // joining; this node not while it pulls the key's partition), this node first.
  std::vector<std::string> ReachableReplicasLocked(const std::vector<std::string>& replicas,
                                                   std::string_view key) const;

  // Gathers `keys` from every reachable replica and calls `fn` with the joins
  // (with what arrived, when the deadline passes first).
  void Gather(std::vector<std::string> keys, std::function<void(StateMap&&)> fn);
  // Gathers `key` from its reachable read replicas and calls `fn` with the
  // join once `required` of them answered; never with fewer (a removal at
  // QUORUM/ALL is minted on it: DESIGN §4). At the deadline it just ends.
  // Only `select` of the key's sets and maps is gathered, and nothing is
  // read-repaired from it (a partial state).
  void GatherAtLeast(const std::string& key, std::uint32_t required, storage::Members select,
                     std::function<void(StateMap&&)> fn);

  void Launch(ReadPending rp);

  void SendReadRequest(const std::string& member, std::uint64_t id, const std::vector<std::string>& keys,
                       const storage::Members& select = storage::Members::All());

  void ReadTimeout(std::uint64_t id);

  // `from` is joining and did not answer: its keys go to replicas not yet asked
  // (if there are none, the read waits for its deadline).
  void ReadRefused(const std::string& from, std::uint64_t id);

  // `from` answered `states` (from == "": nobody is asked; complete at once).
  void OnReadReply(const std::string& from, std::uint64_t id, std::vector<std::string> states);

  void FinishRead(ReadPending& rp);

  // Takes a read out of `covering` to answer it; false when Stop() already did.
  bool TakeCovering(const std::shared_ptr<ReadPending>& rp);

  // Answers a read once the joined states cover the session's contexts;
  // until then gathers from every reachable replica, until the deadline.
  void AnswerCovered(std::shared_ptr<ReadPending> rp, StateMap overlay);

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
