// Replica: the replica side of a write (DESIGN §4). It mints a command a
// coordinator forwarded (session coverage, request ids remembered with their
// reply, a gathered base joined first), answers the coordinator (itself
// through the write coordinator, or a ForwardReply), pushes the delta to the
// key's other replicas through the peer outbox, and applies the deltas and
// whole states that arrive (acknowledging those that ask for it). A command
// id seen again is not run again: a duplicate of a finished command gets the
// same reply and its delta is pushed again. While this node rebuilds (joining,
// or within request_timeout_ms of a start that lost or may have lost its
// memory of ids) it mints nothing and answers TRYAGAIN.
//
// Owns: the memory of minted commands by (coordinator, id), at most
// dedup_entries of them in order, whether this node had an earlier life, and
// its counts, under its own mutex (no lock shared with the replicator).
// Executor: whatever thread calls it (the daemon's io_context, the
// simulation's event loop); its commits finish on the writer's completion
// handler; hooks, the environment and the outbox are called outside its
// lock. Sends: ForwardReply (to a remote coordinator), Delta (through
// gossip/outbox.h, and whole states for repairs), Ack (through the outbox).
// Receives: Forward (Mint), Delta (Apply), repairs to send (SendState).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gossip/outbox.h"
#include "node/answer.h"
#include "node/replicator.h"

namespace lattice::node {

class Replica : public std::enable_shared_from_this<Replica> {
 public:
  struct Hooks {
    // Every replica of `key` but this node, joining and leaving ones included
    // (they must not miss writes).
    std::function<std::vector<std::string>(const std::string& key)> targets;
    // True while this node joins.
    std::function<bool()> joining;
    // This node's minted reply to its own coordinator (the write coordinator).
    std::function<void(std::uint64_t id, const Answer& answer, bool replicated, bool uncovered,
                       const crdt::DotContext& written)>
        reply_here;
    // A replica's acknowledgement of a write this node coordinates.
    std::function<void(std::uint64_t id)> ack_here;
    // A key this node minted a change of (for SUBSCRIBE across nodes).
    std::function<void(const std::string& key)> minted_change;
  };
  struct Stats {
    std::uint64_t deltas_sent = 0, deltas_applied = 0, duplicates = 0, keys_repaired = 0, retired_ignored = 0;
  };

  Replica(ReplicaEnv& env, Engine& engine, std::string self, const ReplicatorOptions& options,
          std::shared_ptr<gossip::PeerOutbox> outbox, Hooks hooks);

  // Runs write `id` from `coordinator` once: joins `base` first (only the
  // members the command names when `base_partial`), and mints only if this
  // replica covers `need`.
  void Mint(const std::string& coordinator, std::uint64_t id, const Args& args, const crdt::DotContext& need,
            const std::string& base, bool base_partial);
  // Joins a delta (a whole state when d.touched is All) into the store;
  // acknowledges write `ack_id` to `ack_to` when it is not empty.
  void Apply(KeyDelta d, std::uint64_t hlc, std::string ack_to, std::uint64_t ack_id);
  // Sends a key's whole state to `to` (read repair); to itself it is applied.
  void SendState(const std::string& to, const std::string& key, const std::string& encoded);
  // This node's name had an earlier life: it mints nothing for
  // request_timeout_ms from its start.
  void EarlierLife();

  Stats stats() const;

 private:
  struct Minted {
    bool done = false;
    Answer answer;  // its outcome, reply and count (no session contexts)
    bool replicated = false;
    bool uncovered = false;    // the replica does not cover the session's context
    crdt::DotContext written;  // the write's own context
    std::string delta_message;
    std::vector<std::string> targets;
  };
  void Finish(const std::string& coordinator, std::uint64_t id, Answer answer, std::optional<KeyDelta> delta,
              const std::string& key, std::uint64_t hlc);
  // Answers the coordinator and pushes the delta to the other replicas.
  void Replay(const std::string& coordinator, std::uint64_t id, const Minted& m);

  ReplicaEnv& env_;
  Engine& engine_;
  const std::string self_;
  const ReplicatorOptions opt_;
  const std::shared_ptr<gossip::PeerOutbox> outbox_;
  const Hooks hooks_;
  const std::uint64_t started_ms_;

  mutable std::mutex mu_;  // everything below
  bool earlier_life_ = false;
  std::map<std::pair<std::string, std::uint64_t>, Minted> minted_;
  std::deque<std::pair<std::string, std::uint64_t>> minted_order_;
  Stats stats_;
};

}  // namespace lattice::node
