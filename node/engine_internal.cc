// The helpers every command file of the engine shares (engine_internal.h):
// opening a key (with what this node retired of it), saving it, replies for
// errors and bad arguments.
#include "node/engine_internal.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "crdt/codec.h"

namespace lattice::node {

using crdt::CrdtType;
using crdt::KeyState;
using storage::Members;

namespace detail {

bool Open(Engine& e, CommandContext& ctx, std::string_view key, Members selection, OpenKey& out) {
  out.name = key;
  out.keep_delta = ctx.deltas != nullptr || CheckDeltas();
  // The selection is kept once, as what a save rewrites; `members` names it
  // (the two are changed together below).
  out.touched = std::move(selection);
  Members& members = out.touched;
  out.floor = ctx.writable ? ctx.txn.MintFloor(key) : 0;
  Result<storage::LoadedKey> loaded = Status::NotFound("");
  if (ctx.overlay != nullptr) {
    if (auto it = ctx.overlay->find(key); it != ctx.overlay->end()) {
      // A gathered state is whole: every member is loaded.
      storage::LoadedKey whole;
      whole.state = it->second;
      if (const auto* set = whole.state.Get<crdt::ORSet>()) whole.live_set_members = set->Size();
      if (const auto* map = whole.state.Get<crdt::ORMap>()) whole.live_map_fields = map->Size();
      whole.next_expiry_ms = whole.state.NextExpiry().value_or(0);
      members = Members::All();
      if (whole.state.Empty()) {
        loaded = Status::NotFound("");
      } else {
        loaded = std::move(whole);
      }
    } else {
      loaded = ctx.txn.Load(key, members);
    }
  } else {
    loaded = ctx.txn.Load(key, members);
  }
  if (loaded.status().IsNotFound()) {
    out.state = KeyState{};
    out.existed = false;
    // A write to a key whose tombstone this node collected starts from that
    // tombstone (storage/store.h, retired keys): a counter continues its
    // totals above the floors other replicas may still hold, and a state
    // that arrives late is joined onto what the deletion removed.
    if (ctx.writable && ctx.overlay == nullptr) {
      auto retired = ctx.txn.GetRetiredKey(key);
      if (!retired.ok()) {
        ReplyStatus(ctx, retired.status());
        return false;
      }
      out.retired = std::move(*retired);
      if (out.retired && out.retired->tombstone) {
        out.state = *out.retired->tombstone;
        out.touched = Members::All();
      }
    }
    if (CheckDeltas()) out.base = out.state;
    return true;
  }
  if (!loaded.ok()) {
    ReplyStatus(ctx, loaded.status());
    return false;
  }
  bool due = loaded->next_expiry_ms != 0 && loaded->next_expiry_ms <= ctx.now_ms;
  // A key holding more than one type (a resolved type conflict) is loaded whole,
  // so the next write removes all it observed of the dropped type.
  bool several = loaded->state.variants().size() > 1;
  if ((due || several) && !members.all) {
    members = Members::All();
    loaded = ctx.txn.Load(key, members);
    if (!loaded.ok()) {
      ReplyStatus(ctx, loaded.status());
      return false;
    }
  }
  out.existed = true;
  out.state = std::move(loaded->state);
  if (CheckDeltas()) out.base = out.state;
  out.live_set = loaded->live_set_members;
  out.live_map = loaded->live_map_fields;
  if (due) {
    auto delta = out.state.ExpireDue(ctx.now_ms);
    if (!delta.ok()) {
      ReplyStatus(ctx, delta.status());
      return false;
    }
    Record(out, *delta);
    if (ctx.writable && !delta->Empty()) {
      if (!Save(ctx, out)) return false;
    }
    // Counts were of the stored (unexpired) state; recount what is loaded.
    if (const auto* set = out.state.Get<crdt::ORSet>()) {
      out.live_set = set->Size();
    } else {
      out.live_set = 0;
    }
    if (const auto* map = out.state.Get<crdt::ORMap>()) {
      out.live_map = map->Size();
    } else {
      out.live_map = 0;
    }
  }
  return true;
}

bool CheckDeltas() {
  static const bool on = std::getenv("LATTICE_CHECK_DELTAS") != nullptr;
  return on;
}

bool Save(CommandContext& ctx, OpenKey& key) {
  if (key.base) {
    KeyState expect = *key.base;
    expect.Join(key.delta);
    if (!(expect == key.state)) {
      Fail(ctx, "ERR internal: the delta of this write does not reproduce its state");
      return false;
    }
  }
  Status s = ctx.txn.Save(key.name, key.state, key.touched);
  if (!s.ok()) {
    ReplyStatus(ctx, s);
    return false;
  }
  key.existed = true;
  if (ctx.changed != nullptr) ctx.changed->emplace_back(key.name);
  if (ctx.deltas != nullptr) ctx.deltas->push_back(KeyDelta{std::string(key.name), std::move(key.delta), key.touched});
  key.delta = KeyState{};
  if (key.base) key.base = key.state;
  return true;
}

crdt::Stamp NewStamp(Engine& e) { return crdt::Stamp{e.clock().Now(), e.replica()}; }

void ReplyStatus(CommandContext& ctx, const Status& s) {
  switch (s.code()) {
    case Status::Code::kWrongType:
      Fail(ctx, "WRONGTYPE " + s.message());
      return;
    case Status::Code::kCorruption:
      Fail(ctx, "ERR corruption: " + s.message());
      return;
    case Status::Code::kResourceExhausted:
      Fail(ctx, "ERR " + s.message());
      return;
    default:
      Fail(ctx, "ERR " + s.message());
  }
}

void Fail(CommandContext& ctx, std::string_view text) {
  ctx.failed = true;
  AppendError(ctx.out, text);
}

void ReplyWrongType(CommandContext& ctx) {
  Fail(ctx, "WRONGTYPE Operation against a key holding the wrong kind of value");
}

bool WrongType(CommandContext& ctx, const OpenKey& k, std::initializer_list<CrdtType> ok) {
  auto t = TypeOf(k);
  if (!t || std::find(ok.begin(), ok.end(), *t) != ok.end()) return false;
  ReplyWrongType(ctx);
  return true;
}

bool ParseInt(CommandContext& ctx, std::string_view s, std::int64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) {
    Fail(ctx, "ERR value is not an integer or out of range");
    return false;
  }
  return true;
}


std::mt19937_64& ThreadRng() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

}  // namespace detail

}  // namespace lattice::node
