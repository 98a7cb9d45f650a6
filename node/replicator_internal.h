// Internal to the replicator: the state of a Replicator (Replicator::Impl)
// and the helpers its source files share: node/replicator.cc (coordinating
// writes, ticks), node/replicator_replica.cc (minting, pushing and applying
// deltas), node/replicator_reads.cc (reads), node/peer_messages.cc (decoding
// peer messages), node/anti_entropy.cc (anti-entropy, joining pulls, leaving
// hand-offs), node/tombstones.cc (tombstone collection). SUBSCRIBE across
// nodes is its own component, node/watch_relay.h. Not a public header:
// nothing else includes it.
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
#include "gossip/wire.h"
#include "merkle/tree.h"
#include "node/answer_wire.h"
#include "node/replicator.h"
#include "node/watch_relay.h"
#include "node/resp.h"

namespace lattice::node {

using gossip::Bytes;
using gossip::View;

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

inline void PutContext(gossip::wire::KeyContext::Builder b, std::string_view key, const crdt::DotContext& c) {
  b.setKey(Bytes(key));
  auto vv = b.initVv(static_cast<unsigned>(c.vv().size()));
  unsigned i = 0;
  for (const auto& [replica, counter] : c.vv()) {
    vv[i].setReplica(replica);
    vv[i++].setCounter(counter);
  }
  auto cloud = b.initCloud(static_cast<unsigned>(c.cloud().size()));
  i = 0;
  for (const auto& dot : c.cloud()) {
    cloud[i].setReplica(dot.replica);
    cloud[i++].setCounter(dot.counter);
  }
}

// False when the parts are not a compacted context (untrusted input).
inline bool GetContext(gossip::wire::KeyContext::Reader r, crdt::DotContext& out) {
  crdt::DotContext::VersionVector vv;
  std::set<crdt::Dot> cloud;
  for (auto e : r.getVv()) {
    if (!vv.emplace(e.getReplica(), e.getCounter()).second) return false;
  }
  for (auto e : r.getCloud()) cloud.insert(crdt::Dot{e.getReplica(), e.getCounter()});
  if (cloud.size() != r.getCloud().size()) return false;
  return out.AssignCompacted(std::move(vv), std::move(cloud));
}

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
  std::map<std::string, std::set<std::uint32_t>> ae_differing;  // peer -> partitions that differed last round
  // peer -> when to send it our roots of partitions that differed once (confirm)
  std::map<std::string, std::pair<std::uint64_t, std::vector<std::uint32_t>>> ae_recheck;
  double ae_tokens = 0;             // the anti-entropy budget (AeBudget), bytes
  std::uint64_t ae_refilled_ms = 0;
  int ticks = 0;
  // (partition, peer) whose root equalled ours (a joining node's pulls, a
  // leaving node's hand-off), with our root then: a hand-off counts it only
  // while our root is still that (a write that reached us since, minted by a
  // node that did not know of the leave yet, must reach the heir too).
  std::map<std::pair<std::uint32_t, std::string>, merkle::Digest> synced;
  std::map<std::pair<std::uint32_t, std::string>, std::uint64_t> sync_asked;  // when asked for its roots (ms)
  std::set<std::string> reconnected;  // peers reachable again: an exchange at the next Tick
  static constexpr std::uint64_t kSyncRetryMs = 200;

  // Tombstone collection: where the scan of the tombstone index goes on, when
  // this node first saw each tombstone (ms) and in which pass, and the one
  // stability query in flight.
  std::string gc_cursor;
  std::uint64_t gc_pass = 0;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>, std::less<>> gc_seen;
  struct GcPending {
    std::uint64_t id = 0;
    std::uint64_t deadline_ms = 0;
    std::vector<std::string> keys;
    std::vector<crdt::DotContext> contexts;
    std::vector<std::set<std::string>> waiting;  // per key: replicas yet to confirm
    std::vector<bool> failed;                    // per key: a replica does not hold it
    std::map<std::string, std::vector<std::size_t>> asked;  // member -> key indices, in query order
  };
  std::optional<GcPending> gc;

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
  // Acknowledgements and deltas to send at the end of this turn, by member
  // (QueueAck, QueueDelta).
  std::map<std::string, std::vector<std::uint64_t>> ack_queue;
  std::map<std::string, std::vector<std::string>> delta_queue;

  // SUBSCRIBE across nodes: a component with its own state and lock
  // (declared after env, engine, self and ring, which it is built from). It
  // reads the ring through this, under mu, never while it holds its own lock.
  WatchRelay watch{env, engine, self, [this](std::string_view key) {
                     std::lock_guard lock(mu);
                     return ring.ReplicasOf(key);
                   }};
  std::deque<std::pair<std::string, std::uint64_t>> minted_order;

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

  // Acknowledges (key, dot) `id` to coordinator `to`: with the others of this
  // turn of the event loop in one message when `to` reads them (peer
  // batching, DESIGN §4), else alone.
  void QueueAck(const std::string& to, std::uint64_t id);
  void FlushAcks(const std::string& to);
  // The same for a delta message (a PeerMessage holding one Delta): those of
  // one turn to one replica go in Deltas messages of at most kDeltaBatchBytes.
  void QueueDelta(const std::string& to, const std::string& message);
  void FlushDeltas(const std::string& to);

  // Peer batching: appends `item` to what waits for `to` in `queue`; the
  // first of a turn has (this->*flush)(to) run at the turn's end
  // (ReplicaEnv::Defer).
  template <class T>
  void Coalesce(std::map<std::string, std::vector<T>>& queue, const std::string& to, T item,
                void (Impl::*flush)(const std::string&)) {
    bool first = false;
    {
      std::lock_guard lock(mu);
      auto& waiting = queue[to];
      first = waiting.empty();
      waiting.push_back(std::move(item));
    }
    if (!first) return;
    env.Defer([wk = weak(), to, flush] {
      if (auto im = wk.lock()) ((*im).*flush)(to);
    });
  }
  // Takes what waits for `to` in `queue` (caller holds mu).
  template <class T>
  static std::vector<T> TakeLocked(std::map<std::string, std::vector<T>>& queue, const std::string& to) {
    std::vector<T> out;
    if (auto it = queue.find(to); it != queue.end()) {
      out.swap(it->second);
      queue.erase(it);
    }
    return out;
  }
  static constexpr std::size_t kDeltaBatchBytes = 256 << 10;

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

  // ---- tombstone collection (DESIGN §2) ------------------------------------------

  // One round: examines the next gc_batch tombstones; those older than the
  // grace whose partition's replicas are all reachable are offered to those
  // replicas (GcQuery: a joining node asks and answers too); a tombstone that
  // every one of them holds, or has no record of, is collected here (each
  // replica decides for itself, by its own rounds).
  void CollectRound();

  // A peer asks whether we hold these tombstones.
  void OnGcQuery(const std::string& from, std::uint64_t id,
                 const std::vector<std::pair<std::string, crdt::DotContext>>& tombstones);

  void OnGcReply(const std::string& from, std::uint64_t id, const std::vector<bool>& held);

  // Collects the tombstones of `q` every replica confirmed.
  void RetireStable(GcPending q);

  // An AeRoots message with this node's roots of `parts`.
  enum class Roots { kRound, kSync, kAnswer, kConfirm };
  std::string RootsMessage(const std::vector<std::uint32_t>& parts, Roots kind);

  // True when `member` replicates partition `p` for writes or for reads (while
  // a node joins, an old replica stays a read replica and must answer it).
  bool Replicates(std::uint32_t p, const std::string& member);

  void OnAeRoots(const std::string& from, std::vector<std::pair<std::uint32_t, merkle::Digest>> roots, Roots kind);

  // ---- anti-entropy: descent, key digests, states ----------------------------------

  static constexpr int kAeStep = 5;  // tree levels descended per exchange

  // Sends `to` this node's hashes of the nodes `indices` at `level` of partition p.
  void SendNodes(const std::string& to, std::uint32_t p, const merkle::Tree& tree, int level,
                 const std::vector<std::uint32_t>& indices);

  // Opens the descent into a partition whose roots differ: every node kAeStep
  // levels below the root (or the leaves, in a shallower tree).
  void StartDescent(const std::string& to, std::uint32_t p);

  // The other side's hashes of some nodes: descends into those that differ
  // (answering the hashes of their children kAeStep levels down), and at the
  // leaves sends the states of leaves the other side has nothing in and the
  // key digests of the rest.
  void OnAeNodes(const std::string& from, std::uint32_t p, int level, const std::vector<std::uint32_t>& indices,
                 const std::vector<merkle::Digest>& digests);

  // This node's keys (with their digests) in `leaves`, at most about
  // ae_max_keys of them (whole leaves; `leaves` is cut to those listed).
  std::vector<std::pair<std::string, merkle::Digest>> KeyDigestsIn(const merkle::Tree& tree,
                                                                  std::vector<std::uint32_t>& leaves);

  void SendKeyDigests(const std::string& to, std::uint32_t p, const merkle::Tree& tree,
                      std::vector<std::uint32_t> leaves);

  // The other side's keys in leaves it found differing: sends the states it
  // lacks or holds otherwise, and asks for the ones this node lacks or holds
  // otherwise (join makes both directions safe).
  void OnAeKeys(const std::string& from, std::uint32_t p, std::vector<std::uint32_t> leaves,
                const std::vector<std::pair<std::string, merkle::Digest>>& theirs);

  void OnAeWant(const std::string& from, std::uint32_t p, std::vector<std::string> keys);

  // The keys stored in `leaves` of `tree`, at most about ae_max_keys.
  std::vector<std::string> LeafKeys(const merkle::Tree& tree, const std::vector<std::uint32_t>& leaves);

  // Takes `bytes` from the anti-entropy budget (ae_bytes_per_s, a token
  // bucket holding at most one second's worth); false once it is spent.
  bool AeBudget(std::size_t bytes);

  // Sends the whole state of each of `keys` this node holds, while the
  // anti-entropy budget lasts (the rest is found again by a later round).
  void SendStates(const std::string& to, const std::vector<std::string>& keys);

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
