// WriteCoordinator: the coordinator side of a write (DESIGN §4). A write of
// one key goes to one live replica of it, this node when it is one (the
// minter); it answers once `required` of the key's replicas (ONE, QUORUM,
// ALL; joining ones do not count) acknowledged, `-UNAVAILABLE` at once when
// too few are reachable, `-TIMEOUT` at the deadline. While it waits it resends
// the command to the same minter (its id de-duplicates it there); a first
// send answered TRYAGAIN (a rebuilding minter that applied nothing) goes to
// another replica. A removal at QUORUM or ALL is minted on the join of
// `required` replicas' states (gathered first); a minter that does not cover
// the session's context gets the key gathered from every reachable replica.
// DEL and MSET over several keys are one write per key, their answers
// combined as Redis's.
//
// Owns: the pending writes (by id; its own id sequence, seeded so ids stay
// unique across restarts) and their counts, under its own mutex (no lock
// shared with the replicator). Executor: whatever thread calls it (the
// daemon's io_context, the simulation's event loop); hooks, the environment
// and callbacks run outside its lock. Sends: Forward (id, command, session
// context, gathered base) to the minter, or the mint hook when that is this
// node. Receives: the minter's ForwardReply and the replicas' Acks (OnReply,
// OnAck), peers going down (PeerDown); Answers go to Write's caller.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "crdt/key_state.h"
#include "node/answer.h"
#include "node/replicator.h"

namespace lattice::node {

class WriteCoordinator : public std::enable_shared_from_this<WriteCoordinator> {
 public:
  using Reply = std::function<void(Answer)>;
  using StateMap = std::map<std::string, crdt::KeyState, std::less<>>;

  // A key's replicas as a write sees them.
  struct Placement {
    std::vector<std::string> replicas;  // the key's N, best first
    std::vector<std::string> writers;   // of those, reachable and not joining, best first
    std::set<std::string> counted;      // of those, not joining: only their acknowledgements count
  };
  struct Hooks {
    // The key's placement now; nullopt once the replicator stopped.
    std::function<std::optional<Placement>(const std::string& key)> placement;
    // Mints write `id` on this node (the replicator's replica side).
    std::function<void(std::uint64_t id, const Args& args, const crdt::DotContext& need, const std::string& base,
                       bool base_partial)>
        mint_here;
    // Gathers keys from every reachable replica (the read coordinator).
    std::function<void(std::vector<std::string> keys, std::function<void(StateMap&&)> fn)> gather;
    // Gathers `key` from `required` read replicas, only `select` of it.
    std::function<void(const std::string& key, std::uint32_t required, storage::Members select,
                       std::function<void(StateMap&&)> fn)>
        gather_at_least;
    // The members reachable now.
    std::function<std::set<std::string>()> reachable;
  };
  struct Stats {
    std::uint64_t writes = 0, forwards_sent = 0, acks = 0, timeouts = 0, unavailable = 0, stale = 0,
                  session_gathers = 0;
  };

  WriteCoordinator(ReplicaEnv& env, Engine& engine, std::string self, const ReplicatorOptions& options,
                   Hooks hooks, std::uint64_t seed);

  // A write naming one key (args[1]) for a session that has seen `session` of it.
  void Write(Args args, Level level, crdt::DotContext session, Reply done);
  // DEL/UNLINK k1 k2 ... and MSET k1 v1 k2 v2 ...: one write per key.
  void SplitWrite(const CommandSpec& spec, Args args, Level level, const SessionContexts& need, Reply done);

  void OnReply(const std::string& from, std::uint64_t id, Answer answer, bool replicated, bool uncovered,
               crdt::DotContext written);
  void OnAck(const std::string& from, std::uint64_t id);
  // Member `name`'s link closed: writes that can no longer gather their
  // acknowledgements answer TIMEOUT now.
  void PeerDown(const std::string& name);
  // Answers every pending write with the shutdown error; no more writes.
  void Stop();

  Stats stats() const;

 private:
  struct Pending {
    std::uint32_t required = 1;
    std::set<std::string> acks;
    std::optional<Answer> reply;  // the minter's
    Reply done;
    std::string minter;
    Args args;
    std::set<std::string> counted;  // only their acks count
    crdt::DotContext need;          // the session's context of the key
    std::string base;               // gathered state the minter joins first
    bool base_partial = false;      // `base` holds only the members the command names
    bool uncovered = false;         // the minter did not cover `need` (yet)
    crdt::DotContext written;       // the write's own context
    int sends = 0;                     // to the current minter
    std::set<std::string> rebuilding;  // minters that answered TRYAGAIN
  };
  using Iter = std::map<std::uint64_t, Pending>::iterator;

  void SendForward(std::uint64_t id);
  void Timeout(std::uint64_t id);
  void GatherForWrite(std::uint64_t id, const std::string& key);
  // Answers a write once it has the minter's reply and enough acknowledgements
  // (or at once, `now`); releases `lock` when it does.
  void CompleteLocked(Iter it, std::unique_lock<std::mutex>& lock, bool now);
  static Answer TimeoutReply(std::size_t acks, std::uint32_t required);

  ReplicaEnv& env_;
  Engine& engine_;
  const std::string self_;
  const ReplicatorOptions opt_;
  const Hooks hooks_;

  mutable std::mutex mu_;  // everything below
  bool stopped_ = false;
  std::uint64_t next_id_;
  std::map<std::uint64_t, Pending> writes_;
  Stats stats_;
};

}  // namespace lattice::node
