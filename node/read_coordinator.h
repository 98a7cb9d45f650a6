// ReadCoordinator: the coordinator side of a read (DESIGN §4). A read asks
// `required` of each key's replicas (ONE, QUORUM, ALL) that serve reads
// (reachable, not joining; this node first when it is one and is not still
// pulling the key's partition), joins what they answer, sends the joined
// state to every replica that answered with less (read repair) and runs the
// command on the join. `-UNAVAILABLE` at once when too few serve,
// `-TIMEOUT` at the deadline. When the join does not cover the session's
// contexts it gathers from every reachable replica until it does, or
// answers `-STALE` at the deadline. A replica that refuses (joining) has
// its keys asked of another. Gathers (for the write coordinator: a
// removal's base, an uncovered minter's) get the join instead of a reply.
//
// Owns: the pending reads and gathers (by id; its own id sequence), the
// reads waiting to cover their session, and their counts, under its own
// mutex (no lock shared with the replicator). Executor: whatever thread
// calls it (the daemon's io_context, the simulation's event loop); hooks, the
// environment and callbacks run outside its lock. Sends: Read (id, keys,
// selected members) to replicas; whole states for read repair (the repair
// hook). Receives: ReadReply and refusals (OnReply, OnRefused); Answers go to
// Read's caller.
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

class ReadCoordinator : public std::enable_shared_from_this<ReadCoordinator> {
 public:
  using Reply = std::function<void(Answer)>;
  using StateMap = std::map<std::string, crdt::KeyState, std::less<>>;

  struct Hooks {
    // A key's replica count N and, best first, those that serve its reads
    // now; nullopt once the replicator stopped.
    std::function<std::optional<std::pair<std::size_t, std::vector<std::string>>>(const std::string& key)> serving;
    // This node's encoded states of `keys` ("" for an absent key).
    std::function<std::vector<std::string>(const std::vector<std::string>& keys, const storage::Members& select)>
        load_here;
    // Runs a read command on the joined states.
    std::function<Answer(const CommandSpec& spec, const Args& args, const StateMap& overlay)> run;
    // Sends `member` the whole state `encoded` of `key` (read repair).
    std::function<void(const std::string& member, const std::string& key, const std::string& encoded)> repair;
  };
  struct Stats {
    std::uint64_t reads = 0, read_repairs = 0, timeouts = 0, unavailable = 0, stale = 0, session_gathers = 0;
  };

  ReadCoordinator(ReplicaEnv& env, std::string self, const ReplicatorOptions& options, Hooks hooks,
                  std::uint64_t seed);

  void Read(const CommandSpec& spec, Args args, std::vector<std::string> keys, Level level, SessionContexts need,
            Reply done);
  // Gathers `keys` from every replica that serves them and calls `fn` with
  // the joins (with what arrived, when the deadline passes first).
  void Gather(std::vector<std::string> keys, std::function<void(StateMap&&)> fn);
  // Gathers `key` from its serving replicas and calls `fn` with the join once
  // `required` of them answered; never with fewer (a removal at QUORUM/ALL is
  // minted on it). At the deadline it just ends. Only `select` of the key's
  // sets and maps is gathered, and nothing is read-repaired from it.
  void GatherAtLeast(const std::string& key, std::uint32_t required, storage::Members select,
                     std::function<void(StateMap&&)> fn);

  // `from` answered `states` of read `id`.
  void OnReply(const std::string& from, std::uint64_t id, std::vector<std::string> states);
  // `from` is joining and did not answer: its keys go to replicas not yet
  // asked (if there are none, the read waits for its deadline).
  void OnRefused(const std::string& from, std::uint64_t id);
  // Answers every pending read with the shutdown error; no more reads.
  void Stop();

  Stats stats() const;

 private:
  struct Pending {
    const CommandSpec* spec = nullptr;
    Args args;
    Reply done;
    SessionContexts need;
    std::uint64_t deadline_ms = 0;
    // Set for a gather: gets the joined states instead of running a command;
    // also called with what arrived when the deadline passes.
    std::function<void(StateMap&&)> on_joined;
    bool strict = false;  // a gather that ends without on_joined when short of `required`
    storage::Members select = storage::Members::All();  // of each key, what replicas load
    std::vector<std::string> keys;
    std::vector<std::uint32_t> required;                      // per key
    std::map<std::string, std::vector<std::size_t>> targets;  // member -> key indices
    std::set<std::string> answered;
    std::vector<std::vector<std::pair<std::string, std::string>>> states;  // per key: (member, encoded)
  };

  void Launch(Pending rp);
  void Ask(const std::string& member, std::uint64_t id, const std::vector<std::string>& keys,
           const storage::Members& select);
  void SendRequest(const std::string& member, std::uint64_t id, const std::vector<std::string>& keys,
                   const storage::Members& select);
  void Timeout(std::uint64_t id);
  void Finish(Pending& rp);
  // Takes a read out of `covering_` to answer it; false when Stop() did.
  bool TakeCovering(const std::shared_ptr<Pending>& rp);
  // Answers a read once the joined states cover the session's contexts;
  // until then gathers from every serving replica, until the deadline.
  void AnswerCovered(std::shared_ptr<Pending> rp, StateMap overlay);
  void Count(std::uint64_t Stats::*field);

  ReplicaEnv& env_;
  const std::string self_;
  const ReplicatorOptions opt_;
  const Hooks hooks_;

  mutable std::mutex mu_;  // everything below
  bool stopped_ = false;
  std::uint64_t next_id_;
  std::map<std::uint64_t, Pending> reads_;
  std::set<std::shared_ptr<Pending>> covering_;  // reads waiting until a gather covers their session
  Stats stats_;
};

}  // namespace lattice::node
