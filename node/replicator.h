// Replicator: the request coordinator and the replica side of DESIGN §4.
//
// Write (one key; DEL and MSET over several keys are split per key): the
// coordinator (the node the client reached) sends the command to one live
// replica of the key, itself when it is one. That replica mints the dot:
// it runs the command, commits, answers the coordinator (its own
// acknowledgement) and pushes the delta to the other replicas, which join it,
// commit and acknowledge to the coordinator. The coordinator answers once
// L replicas have acknowledged (ONE = 1, QUORUM = floor(N/2)+1, ALL = N), or
// `-UNAVAILABLE need L of N replicas, R reachable` at once when too few are
// alive, or `-TIMEOUT acknowledged by A of L required replicas; the write may
// still apply` at the deadline. While it waits it resends the command to the
// same replica (never to another): the command's id de-duplicates it there,
// so a retried INCR is counted once, and a duplicate of a finished command
// re-pushes its delta, so a lost delta is sent again.
//
// Read: the coordinator gathers the key's state from L live replicas (itself
// first when it is one), joins them, runs the command on the joined state and
// sends the joined state to every replica that answered with less (read
// repair).
//
// Anti-entropy (DESIGN §4, issue of repair): every round a node sends a peer
// the Merkle roots of the partitions both replicate; the peer answers the leaf
// digests of partitions whose roots differ; the first node then sends its
// states of the keys in differing leaves and asks for the peer's. Join makes
// both directions safe. It repairs what no request waits for: dropped deltas,
// crashes, partitions.
//
// Everything outside (the network, the writer thread, timers, the clock) comes
// through ReplicaEnv, so the daemon drives it with Asio and tests/sim with one
// seeded event queue.
//
// Owns: the rings and the view; and the components it feeds, each with its
// own state and lock: the write coordinator (node/write_coordinator.h), the
// read coordinator (node/read_coordinator.h), the replica side that mints
// commands and pushes and applies deltas (node/replica.h), the watch relay
// (node/watch_relay.h), anti-entropy (gossip/anti_entropy.h), joins and
// hand-offs (gossip/partition_sync.h), the tombstone collector
// (gossip/collector.h) and the peer outbox that coalesces acknowledgements
// and deltas per peer per turn (gossip/outbox.h). It routes peer messages
// to them and answers what they ask of the ring and the view. Executor:
// whatever thread calls it (the daemon's io_context; the simulation's event
// loop); one mutex guards the rings and the view. It is never held while it
// calls a component or a callback, except for PartitionSync, which it hands
// the rings under it and which calls nothing back; so every public method
// may be called from any thread.
// Sends (PeerMessage, gossip/peer.capnp): Forward, ForwardReply, Delta(s),
// Ack(s), Read, ReadReply, the anti-entropy and GC messages, Watch, Changed.
// Receives: the same from peers (OnMessage); Answers go to Execute's caller.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/dot_context.h"
#include "gossip/env.h"
#include "node/answer.h"
#include "node/engine.h"
#include "node/ring.h"

namespace lattice::node {

enum class Level { kOne, kQuorum, kAll };
struct CommandGroup;  // node/command_group.h
// "one" / "quorum" / "all" in any case.
std::optional<Level> ParseLevel(std::string_view name);

// The outside world of the replicator: gossip::PeerEnv (clock, network,
// writer, timers, end-of-turn) and what only the node hears of.
class ReplicaEnv : public gossip::PeerEnv {
 public:
  // Commit for work that sends nothing to peers (a node alone): `done` may
  // run on any thread as soon as the work is durable (the daemon skips the
  // end-of-turn handler that Commit's completions share).
  virtual void CommitAlone(storage::Store::Work work, std::function<void(Status)> done) {
    Commit(std::move(work), std::move(done));
  }
  // Keys whose value changed by a replicated write (for SUBSCRIBE).
  virtual void Changed(const std::vector<std::string>& keys) = 0;
  // This joining node has pulled every partition it replicates.
  virtual void Joined() {}
  // This leaving node has handed every partition it replicates to the
  // replicas that follow it: it may now leave.
  virtual void HandedOff() {}
  // A key this node does not replicate changed on a replica to `value` (as
  // SUBSCRIBE renders it); see Replicator::Watch.
  virtual void Notify(const std::string& key, const std::string& value) {}
};

// The membership as the replicator sees it.
struct ReplicaView {
  std::vector<std::string> members;  // every member that has not left, self included
  std::set<std::string> reachable;   // alive members, self included
  // Members still pulling their partitions (membership epochs, DESIGN §4):
  // writes go to the replicas with and without them, reads and quorums count
  // only the replicas without them.
  std::set<std::string> joining;
  // Members handing their partitions off (CLUSTER LEAVE): still replicas for
  // reads, writes and quorums; the replicas that take their place already
  // receive every write, and each leaving member pushes them its data.
  std::set<std::string> leaving;
  // Not empty while this node waits to found or join a cluster (node/cluster.h
  // formation): why. It then refuses every keyed command with CLUSTERDOWN.
  std::string forming;
};

struct ReplicatorOptions {
  std::uint32_t partitions = 256;
  std::uint32_t replicas = 3;
  std::uint64_t request_timeout_ms = 2000;
  std::uint64_t resend_ms = 500;
  std::uint64_t max_clock_offset_ms = 500;
  std::size_t dedup_entries = 100000;       // commands remembered in memory
  std::uint64_t request_memory_ms = 600000; // how long counter request ids are persisted
  std::size_t ae_max_keys = 2000;  // keys (digests or states) per anti-entropy message
  // Anti-entropy's share of I/O: bytes of whole states it reads and sends per
  // second, at most (0: unlimited). What is over the budget waits for a later
  // round.
  std::uint64_t ae_bytes_per_s = 64ull << 20;
  // A partition whose roots differed in a round is compared again this much
  // later (a delta in flight has landed by then) and repaired if it still differs.
  std::uint64_t ae_confirm_ms = 500;
  // Compare roots with a peer as soon as it is reachable again (with
  // anti-entropy off, not either).
  bool ae_on_reconnect = true;
  // A tombstone is collected once it is this old (as seen by this node) and
  // every replica of its partition, joining ones included, is reachable and
  // holds it (causally stable, DESIGN §2). The wait lets deltas in flight land.
  std::uint64_t tombstone_grace_ms = 10000;
  std::size_t gc_batch = 512;  // tombstones examined per round
  // Started on an empty data directory to join (or rejoin) a cluster: for
  // request_timeout_ms this node mints nothing (a resend of a command its
  // earlier life applied would be applied again: its de-duplication memory is
  // gone), nor while joining. It answers TRYAGAIN, and a coordinator that had
  // sent the command only once sends it to another replica.
  bool fresh_start = false;
};

// Session guarantees (DESIGN §2): a connection keeps, per key it touched, the
// causal context of what it wrote or read. A request carries the contexts of
// its keys; a read answers only from a join of replicas that covers them
// (gathering from every reachable replica when the first ones do not), and a
// write is minted only by a replica that covers them (the coordinator gathers
// and sends it the joined state first). When nothing reachable covers them
// before the deadline the request answers `-STALE ...`.
// (SessionContexts: node/answer.h.)

// SESSION / SESSION RESUME: the contexts as an opaque (hex) token and back.
std::string EncodeSessionToken(const SessionContexts& contexts);
Result<SessionContexts> DecodeSessionToken(std::string_view token);

// The keys a data command names. Commands without keys (SCAN, DBSIZE) answer
// from the receiving node's own store.
std::vector<std::string> CommandKeys(const CommandSpec& spec, const Args& args);


class Replicator {
 public:
  using Reply = std::function<void(Answer)>;

  // `self` is this member's name; `seed` starts the request ids (random in the
  // daemon, from the simulation's RNG in tests) so that ids stay unique across
  // restarts.
  Replicator(ReplicaEnv& env, Engine& engine, ReplicatorOptions options, std::string self, std::uint64_t seed);
  ~Replicator();

  void SetView(ReplicaView view);
  // True while this node alone replicates every key (a cluster of one, N = 1):
  // ExecuteGroup then runs a connection's commands together on this node.
  bool Alone() const;

  // Runs one data command at `level` for a session that has seen `session`
  // (the contexts of the command's keys; empty without a session); `done`
  // receives the reply and what the session saw.
  void Execute(const CommandSpec& spec, Args args, Level level, SessionContexts session, Reply done);
  // Runs a connection's data commands in their order of effects, each answer
  // into its item (no session contexts: a node alone covers what it served).
  // Alone, they run together on this node (node/command_group.h: one read
  // view, one writer job); otherwise (the cluster grew since the caller asked
  // Alone) one after another through Execute. True when every item answered
  // before it returned (reads only, alone): `done` is then not called;
  // otherwise `done` runs once all have answered, on any thread.
  bool ExecuteGroup(std::shared_ptr<CommandGroup> group, std::function<void()> done);

  // A peer message from member `from`. False when it is not a replication
  // message (the caller handles membership gossip).
  bool OnMessage(const std::string& from, std::string_view bytes);

  // Member `name`'s link closed (the view, already updated, counts it
  // unreachable): pending writes that can no longer gather their required
  // acknowledgements answer TIMEOUT now rather than at their deadline.
  void PeerDown(const std::string& name);

  // One anti-entropy exchange with a random reachable peer.
  void AntiEntropyRound();

  // SUBSCRIBE on keys this node does not replicate: while a key is watched
  // (on/off calls counted), its replicas are asked, every second, to report
  // changes; the replica that makes a change (or, for an expiry, the key's
  // first replica) sends the new value, which arrives through Notify.
  void Watch(const std::string& key, bool on);
  // Called every 200 ms: renews the watch leases every second, and while this
  // node is joining asks its partitions' replicas for their roots (a peer
  // answers at once with the leaves of differing partitions; a partition is
  // pulled once its root equals each read replica's); when all are, Joined().
  // A partition this node gained from a membership change (a member forgotten
  // or gone) is pulled the same way, and until it is, this node refuses reads
  // of it (the coordinator asks another replica). While this node is leaving,
  // it sends its roots to each replica that takes its place in a partition;
  // once each such root equals its own, HandedOff().
  void Tick();
  // Keys whose due expiry this node applied (reported to watchers).
  void Swept(const std::vector<std::string>& keys);

  // This node learned that its name had an earlier life (another incarnation)
  // in the cluster: it mints nothing for request_timeout_ms from its start, as
  // with ReplicatorOptions::fresh_start.
  void EarlierLife();

  // Stops timers and pending requests (they answer an error).
  void Stop();

  // CLUSTER REPLICAS and EXPLAIN: a key's replicas, best first.
  std::vector<std::string> ReplicasOf(std::string_view key) const;
  std::uint32_t PartitionOf(std::string_view key) const;

  struct Stats {
    std::uint64_t writes = 0, reads = 0, forwards_sent = 0, deltas_sent = 0, deltas_applied = 0, acks = 0,
                  duplicates = 0, read_repairs = 0, timeouts = 0, unavailable = 0, clock_refused = 0,
                  malformed = 0, stale = 0, session_gathers = 0, ae_rounds = 0, ae_partitions_differing = 0, ae_keys_sent = 0,
                  ae_bytes_sent = 0, ae_tree_bytes_sent = 0, keys_repaired = 0, tombstones_collected = 0,
                  retired_ignored = 0, ae_throttled = 0, ae_queue_full = 0,
                  acks_sent = 0, ack_messages = 0,  // acknowledgements sent, and the messages carrying them
                  delta_messages = 0;               // messages carrying the deltas_sent
  };
  Stats stats() const;
  std::string InfoLines() const;  // INFO "replication" section

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace lattice::node
