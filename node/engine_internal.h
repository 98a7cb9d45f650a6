// Helpers shared by the command files of the engine (not a public header).
#pragma once

#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "node/engine.h"
#include "node/resp.h"

namespace lattice::node::detail {

// A key opened for a command: its loaded state and which members a save
// rewrites. Absent keys open as an empty state.
struct OpenKey {
  // The key's name as the command gave it (its argument, or the caller's key),
  // which outlives the OpenKey: a command's keys live as long as the command.
  std::string_view name;
  crdt::KeyState state;
  std::uint64_t live_set = 0;
  std::uint64_t live_map = 0;
  bool existed = false;
  std::uint64_t floor = 0;  // mint floor of this node for the key (KeyState::Mutate)
  storage::Members touched;  // members to write back
  // A key with no record that this node retired (storage/store.h, retired
  // keys), as Open found it: writes start from its kept tombstone.
  std::optional<storage::Txn::RetiredKey> retired;
  // Every change made to `state` since it was loaded, as one delta (what a
  // replica ships to its peers). Save hands it on and starts a new one.
  // Kept only when someone takes it (CommandContext::deltas, or the delta
  // check): a single node's writes skip the joins.
  crdt::KeyState delta;
  bool keep_delta = true;
  // With LATTICE_CHECK_DELTAS set: the state as of the last save, to check
  // that it joined with `delta` gives `state` (tests run with it).
  std::optional<crdt::KeyState> base;
};

// Records a change made to the key.
inline void Record(OpenKey& k, const crdt::KeyState& delta) {
  if (k.keep_delta) k.delta.Join(delta);
}

// Loads `key` with `members`. A key whose expiry is due is loaded whole and the
// expiry applied (and, in a write transaction, saved and reported as changed),
// so every command sees it as expired. False after writing an error reply.
bool Open(Engine& e, CommandContext& ctx, std::string_view key, storage::Members members,
          OpenKey& out);

// True when LATTICE_CHECK_DELTAS is set: every save checks its delta.
bool CheckDeltas();

// Writes the key back; false after writing an error reply.
bool Save(CommandContext& ctx, OpenKey& key);

// The stamp of a mutation made now by this node (writer thread).
crdt::Stamp NewStamp(Engine& e);

// Replies with `s` mapped to a Redis error ("WRONGTYPE ...", "ERR ...").
void ReplyStatus(CommandContext& ctx, const Status& s);
// GET, a plain SET of a live string and INCR/DECR/INCRBY/DECRBY of a live
// counter, without expiry (or, for the writes, of a new key), go by the
// codec's fast paths (crdt/codec.h; node/engine_fast.cc), without a
// KeyState. Each answers and returns true, or returns false having done
// nothing (the caller takes the general path).
bool FastGet(CommandContext& ctx, std::string_view key);
bool FastSet(Engine& e, CommandContext& ctx, std::string_view key, std::string_view value);
bool FastIncrBy(Engine& e, CommandContext& ctx, std::string_view key, std::int64_t by);

// Answers the command's error `text` ("ERR ...", "WRONGTYPE ...") and marks it refused.
void Fail(CommandContext& ctx, std::string_view text);
void ReplyWrongType(CommandContext& ctx);

// The key's live type, or nullopt when absent.
inline std::optional<crdt::CrdtType> TypeOf(const OpenKey& k) { return k.state.LiveType(); }

// True (after replying WRONGTYPE) when the key is live with a type not in `ok`.
bool WrongType(CommandContext& ctx, const OpenKey& k, std::initializer_list<crdt::CrdtType> ok);

// Parses a whole decimal int64; false after replying "value is not an integer".
bool ParseInt(CommandContext& ctx, std::string_view s, std::int64_t& out);


// A long double as Redis's string2ld reads one (no spaces, no NaN), and
// written as its ld2string does (LD_STR_HUMAN: %.17Lf without trailing zeros):
// INCRBYFLOAT and HINCRBYFLOAT (engine_strings.cc).
std::optional<long double> ParseLongDouble(std::string_view s);
std::string FormatLongDouble(long double v);

// The calling thread's random source (engine_internal.cc): SPOP, SRANDMEMBER,
// HRANDFIELD and RANDOMKEY choose with it.
std::mt19937_64& ThreadRng();

// Applies a mutation of type T to the key and saves it; false after an error
// reply. `mutate(T&)` returns a T or Result<T> delta.
template <class T, class F>
bool MutateAndSave(Engine& e, CommandContext& ctx, OpenKey& key, F&& mutate) {
  auto delta = key.state.template Mutate<T>(NewStamp(e), std::forward<F>(mutate), key.floor);
  if (!delta.ok()) {
    ReplyStatus(ctx, delta.status());
    return false;
  }
  Record(key, *delta);
  return Save(ctx, key);
}

// Handlers defined in engine_strings.cc and engine_collections.cc.
void RegisterStringCommands(std::vector<CommandSpec>& table);
void RegisterHllCommands(std::vector<CommandSpec>& table);  // engine_hll.cc
void RegisterCollectionCommands(std::vector<CommandSpec>& table);

}  // namespace lattice::node::detail
