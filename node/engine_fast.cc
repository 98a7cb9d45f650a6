// The engine's fast paths (node/engine_internal.h): GET, SET and the counter
// writes over the encoded state, without a KeyState.
#include "crdt/codec.h"
#include "node/engine.h"
#include "node/engine_internal.h"
#include "node/resp.h"

namespace lattice::node::detail {

// GET, a plain SET of a live string and INCR/DECR/INCRBY/DECRBY of a live
// counter, without expiry (or, for the writes, of a new key), go by the
// codec's fast paths (crdt/codec.h), without a KeyState, where nothing
// needs more than the encoded state: not for a coordinator's gathered states, nor when a
// write's delta is kept (replication, LATTICE_CHECK_DELTAS). Anything else,
// and any state they do not handle, takes the general path below them.
namespace {

bool FastPathOk(const CommandContext& ctx) {
  return ctx.overlay == nullptr && ctx.deltas == nullptr && !CheckDeltas();
}

// A write by a fast path: loads the key's encoded state; for a new key
// (unless this node retired it or holds a mint floor for its partition,
// which Open and Mutate start from) create(stamp, state) builds its state,
// for a live one without expiry update(encoded, stamp, floor, state) does
// or declines; the state is saved. False (nothing done) when declined.
template <class Create, class Update>
bool FastWrite(Engine& e, CommandContext& ctx, std::string_view key, Create&& create, Update&& update) {
  if (!FastPathOk(ctx) || !ctx.writable) return false;
  auto loaded = ctx.txn.LoadEncoded(key);
  if (!loaded.ok()) return false;
  thread_local std::string state;  // keeps its capacity from write to write
  state.clear();
  const std::uint64_t floor = ctx.txn.MintFloor(key);
  if (!*loaded) {
    auto retired = ctx.txn.HasRetiredKey(key);
    if (floor != 0 || !retired.ok() || *retired) return false;
    create(NewStamp(e), state);
  } else {
    if ((*loaded)->next_expiry != 0 || !(*loaded)->live) return false;
    if (!update((*loaded)->state, NewStamp(e), floor, state)) return false;
  }
  if (Status s = ctx.txn.SaveEncoded(key, state, true, false, 0); !s.ok()) {
    ReplyStatus(ctx, s);
    return true;
  }
  if (ctx.changed != nullptr) ctx.changed->emplace_back(key);
  return true;
}

}  // namespace

bool FastGet(CommandContext& ctx, std::string_view key) {
  if (!FastPathOk(ctx)) return false;
  auto loaded = ctx.txn.LoadEncoded(key);
  if (!loaded.ok() || !*loaded || (*loaded)->next_expiry != 0) return false;
  auto value = crdt::PeekRegister((*loaded)->state);
  if (!value) return false;
  AppendBulk(ctx.out, *value);
  return true;
}

bool FastSet(Engine& e, CommandContext& ctx, std::string_view key, std::string_view value) {
  const bool done = FastWrite(
      e, ctx, key, [&](crdt::Stamp st, std::string& out) { crdt::CreateRegister(st.replica, st.hlc, value, out); },
      [&](std::string_view old, crdt::Stamp st, std::uint64_t floor, std::string& out) {
        return crdt::OverwriteRegister(old, st.replica, st.hlc, floor, value, out);
      });
  if (done && !ctx.failed) AppendSimple(ctx.out, "OK");
  return done;
}

bool FastIncrBy(Engine& e, CommandContext& ctx, std::string_view key, std::int64_t by) {
  std::int64_t value = by;
  const bool done = FastWrite(
      e, ctx, key, [&](crdt::Stamp st, std::string& out) { crdt::CreateCounter(st.replica, st.hlc, by, out); },
      [&](std::string_view old, crdt::Stamp st, std::uint64_t floor, std::string& out) {
        return crdt::IncrementCounter(old, st.replica, st.hlc, floor, by, out, value);
      });
  if (done && !ctx.failed) AppendInt(ctx.out, value);
  return done;
}

}  // namespace lattice::node::detail
