// Engine: the data commands of the text protocol (DESIGN §5) executed against
// the store. Connection-level commands (PING, AUTH, SUBSCRIBE, ...) live in the
// server; everything that reads or writes keys lives here.
//
// A command runs inside a storage transaction: read commands in a read
// transaction on an I/O thread, write commands (and reads pipelined behind a
// write on the same connection) on the store's writer thread inside the group
// commit. The reply is appended to the context's output; keys whose value
// changed are collected so the server can notify subscribers after the commit.
//
// Thread-safety: Find/Run may be called concurrently for reads; writes are
// serialised by the store's writer thread, which alone touches the HLC.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/hlc.h"
#include "crdt/key_state.h"
#include "node/command_table.h"
#include "storage/store.h"

namespace lattice::node {


// The change one command made to one key, as a replica ships it: the delta, and
// the set elements / map fields it touched (a removal delta names none of them
// in its store, so the receiver needs the names to load them).
struct KeyDelta {
  std::string key;
  crdt::KeyState delta;
  storage::Members touched;
};

struct CommandContext {
  storage::Txn& txn;
  bool writable;
  std::uint64_t now_ms;
  std::string& out;
  std::vector<std::string>* changed = nullptr;  // write commands: keys that changed
  // Write commands: the delta of each saved change, in order (for replication).
  std::vector<KeyDelta>* deltas = nullptr;
  // Read commands run by a coordinator: whole states gathered from replicas
  // and joined, read instead of the local store for the keys they hold.
  const std::map<std::string, crdt::KeyState, std::less<>>* overlay = nullptr;
  // Set by the command: it refused (its reply is an error; Fail), and what
  // it counted (DEL, UNLINK: keys removed), which a coordinator that split a
  // command over its keys adds up. Neither is read from the reply's text.
  bool failed = false;
  std::int64_t count = 0;
};

class Engine {
 public:
  Engine(storage::Store& store, crdt::HlcClock& clock);

  // The data command called `upper_name` (node/command_table.h), or nullptr.
  const CommandSpec* Find(std::string_view upper_name) const;

  // Runs `spec` with `args` (args[0] is the command name, arity already checked).
  void Run(const CommandSpec& spec, CommandContext& ctx, const Args& args);

  // The value of a key as one bulk string, for SUBSCRIBE messages: a string's
  // bytes, a counter in decimal, a flag as 1/0, sets and MV registers as JSON
  // arrays, maps as JSON objects, "" for an absent key.
  static std::string RenderValue(const crdt::KeyState& state);

  // The value of `key` as RenderValue renders it (an expired key reads absent).
  std::string Render(storage::Txn& txn, std::string_view key, std::uint64_t now_ms);

  // Applies whatever expiry of `key` is due and recomputes its next deadline
  // (write transactions); appends the key to `changed` if its value changed.
  Status Sweep(storage::Txn& txn, std::string_view key, std::uint64_t now_ms,
               std::vector<std::string>& changed);

  // Joins a delta made by another replica into `key` (write transactions) and
  // saves it when that changed the state; appends the key to `changed`. A
  // tombstone for a key this node does not hold whose context it has wholly
  // retired (a collected tombstone, DESIGN §2) is ignored.
  enum class Applied { kChanged, kUnchanged, kIgnored };
  Status ApplyDelta(storage::Txn& txn, const KeyDelta& delta, std::uint64_t now_ms,
                    std::vector<std::string>& changed, Applied* applied = nullptr);

  // Names replica ids in EXPLAIN (set by the cluster; empty string: unknown).
  void SetReplicaNamer(std::function<std::string(crdt::ReplicaId)> namer) { namer_ = std::move(namer); }
  std::string ReplicaName(crdt::ReplicaId id) const { return namer_ ? namer_(id) : std::string(); }
  // The replicas of a key, best first, for EXPLAIN (set by the cluster).
  void SetPlacement(std::function<std::vector<std::string>(std::string_view key)> placement) {
    placement_ = std::move(placement);
  }
  std::vector<std::string> ReplicasOf(std::string_view key) const {
    return placement_ ? placement_(key) : std::vector<std::string>{store_.identity().name};
  }

  storage::Store& store() { return store_; }
  crdt::HlcClock& clock() { return clock_; }  // writer thread only
  crdt::ReplicaId replica() const { return replica_; }

 private:
  storage::Store& store_;
  crdt::HlcClock& clock_;
  crdt::ReplicaId replica_;
  std::function<std::string(crdt::ReplicaId)> namer_;
  std::function<std::vector<std::string>(std::string_view)> placement_;
};

}  // namespace lattice::node
