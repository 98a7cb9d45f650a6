// Set, map and flag commands.
#include <algorithm>

#include "node/engine_internal.h"

namespace lattice::node::detail {

namespace {

using crdt::CrdtType;
using crdt::ORMap;
using crdt::ORSet;
using storage::Members;

std::vector<std::string> Tail(const Args& a, std::size_t from, std::size_t step = 1) {
  std::vector<std::string> out;
  for (std::size_t i = from; i < a.size(); i += step) out.push_back(a[i]);
  return out;
}

// ---- sets ------------------------------------------------------------------------

void CmdSAdd(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::Of(Tail(a, 2)), k)) return;
  if (WrongType(ctx, k, {CrdtType::kSet})) return;
  const ORSet* before = k.state.Get<ORSet>();
  std::int64_t added = 0;
  std::vector<std::string> fresh;
  for (std::size_t i = 2; i < a.size(); ++i) {
    if ((before == nullptr || !before->Contains(a[i])) &&
        std::find(fresh.begin(), fresh.end(), a[i]) == fresh.end()) {
      fresh.push_back(a[i]);
      ++added;
    }
  }
  if (MutateAndSave<ORSet>(e, ctx, k, [&](ORSet& s) {
        ORSet d;
        for (std::size_t i = 2; i < a.size(); ++i) d.Join(s.Add(e.replica(), a[i]));
        return d;
      })) {
    AppendInt(ctx.out, added);
  }
}

void CmdSRem(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::Of(Tail(a, 2)), k)) return;
  if (WrongType(ctx, k, {CrdtType::kSet})) return;
  const ORSet* set = k.state.Get<ORSet>();
  std::int64_t removed = 0;
  for (std::size_t i = 2; set != nullptr && i < a.size(); ++i) {
    removed += set->Contains(a[i]) && std::find(a.begin() + 2, a.begin() + static_cast<long>(i), a[i]) ==
                                          a.begin() + static_cast<long>(i);
  }
  if (removed == 0) return AppendInt(ctx.out, 0);
  if (MutateAndSave<ORSet>(e, ctx, k, [&](ORSet& s) {
        ORSet d;
        for (std::size_t i = 2; i < a.size(); ++i) d.Join(s.Remove(a[i]));
        return d;
      })) {
    AppendInt(ctx.out, removed);
  }
}

void CmdSMembers(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::All(), k)) return;
  if (WrongType(ctx, k, {CrdtType::kSet})) return;
  const ORSet* set = k.state.Get<ORSet>();
  std::vector<std::string> members = set ? set->Members() : std::vector<std::string>{};
  AppendArray(ctx.out, members.size());
  for (const auto& m : members) AppendBulk(ctx.out, m);
}

void CmdSIsMember(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::Of({a[2]}), k)) return;
  if (WrongType(ctx, k, {CrdtType::kSet})) return;
  const ORSet* set = k.state.Get<ORSet>();
  AppendInt(ctx.out, set != nullptr && set->Contains(a[2]));
}

void CmdSMIsMember(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::Of(Tail(a, 2)), k)) return;
  if (WrongType(ctx, k, {CrdtType::kSet})) return;
  const ORSet* set = k.state.Get<ORSet>();
  AppendArray(ctx.out, a.size() - 2);
  for (std::size_t i = 2; i < a.size(); ++i) AppendInt(ctx.out, set != nullptr && set->Contains(a[i]));
}

void CmdSCard(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::None(), k)) return;
  if (WrongType(ctx, k, {CrdtType::kSet})) return;
  AppendInt(ctx.out, TypeOf(k) ? static_cast<std::int64_t>(k.live_set) : 0);
}

// ---- maps ------------------------------------------------------------------------

void CmdHSet(Engine& e, CommandContext& ctx, const Args& a) {
  if (a.size() % 2 != 0) return Fail(ctx, "ERR wrong number of arguments for 'hset' command");
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::Of(Tail(a, 2, 2)), k)) return;
  if (WrongType(ctx, k, {CrdtType::kMap})) return;
  const ORMap* before = k.state.Get<ORMap>();
  std::vector<std::string> fresh;
  for (std::size_t i = 2; i < a.size(); i += 2) {
    if ((before == nullptr || !before->Get(a[i])) && std::find(fresh.begin(), fresh.end(), a[i]) == fresh.end()) {
      fresh.push_back(a[i]);
    }
  }
  auto stamp = NewStamp(e);
  if (MutateAndSave<ORMap>(e, ctx, k, [&](ORMap& m) {
        ORMap d;
        for (std::size_t i = 2; i < a.size(); i += 2) d.Join(m.Set(e.replica(), a[i], a[i + 1], stamp.hlc));
        return d;
      })) {
    if (Upper(a[0]) == "HMSET") return AppendSimple(ctx.out, "OK");
    AppendInt(ctx.out, static_cast<std::int64_t>(fresh.size()));
  }
}

const ORMap* OpenMap(Engine& e, CommandContext& ctx, std::string_view key, Members members, OpenKey& k,
                     bool& failed) {
  failed = !Open(e, ctx, key, std::move(members), k) || WrongType(ctx, k, {CrdtType::kMap});
  return failed ? nullptr : k.state.Get<ORMap>();
}

void CmdHGet(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::Of({a[2]}), k, failed);
  if (failed) return;
  auto v = m ? m->Get(a[2]) : std::nullopt;
  v ? AppendBulk(ctx.out, v->Text()) : AppendNull(ctx.out);
}

void CmdHMGet(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::Of(Tail(a, 2)), k, failed);
  if (failed) return;
  AppendArray(ctx.out, a.size() - 2);
  for (std::size_t i = 2; i < a.size(); ++i) {
    auto v = m ? m->Get(a[i]) : std::nullopt;
    v ? AppendBulk(ctx.out, v->Text()) : AppendNull(ctx.out);
  }
}

void CmdHExists(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::Of({a[2]}), k, failed);
  if (!failed) AppendInt(ctx.out, m != nullptr && m->Get(a[2]).has_value());
}

void CmdHLen(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::None(), k, failed);
  if (!failed) AppendInt(ctx.out, m ? static_cast<std::int64_t>(k.live_map) : 0);
}

// HGETALL, HKEYS, HVALS
void HAll(Engine& e, CommandContext& ctx, const Args& a, bool keys, bool values) {
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::All(), k, failed);
  if (failed) return;
  auto entries = m ? m->Entries() : std::vector<std::pair<std::string, crdt::StringValue>>{};
  AppendArray(ctx.out, entries.size() * (keys + values));
  for (const auto& [f, v] : entries) {
    if (keys) AppendBulk(ctx.out, f);
    if (values) AppendBulk(ctx.out, v.Text());
  }
}
void CmdHGetAll(Engine& e, CommandContext& ctx, const Args& a) { HAll(e, ctx, a, true, true); }
void CmdHKeys(Engine& e, CommandContext& ctx, const Args& a) { HAll(e, ctx, a, true, false); }
void CmdHVals(Engine& e, CommandContext& ctx, const Args& a) { HAll(e, ctx, a, false, true); }

void CmdHDel(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::Of(Tail(a, 2)), k, failed);
  if (failed) return;
  std::vector<std::string> live;
  for (std::size_t i = 2; m != nullptr && i < a.size(); ++i) {
    if (m->Get(a[i]) && std::find(live.begin(), live.end(), a[i]) == live.end()) live.push_back(a[i]);
  }
  if (live.empty()) return AppendInt(ctx.out, 0);
  if (MutateAndSave<ORMap>(e, ctx, k, [&](ORMap& map) {
        ORMap d;
        for (const auto& f : live) d.Join(map.Remove(f));
        return d;
      })) {
    AppendInt(ctx.out, static_cast<std::int64_t>(live.size()));
  }
}

void CmdHIncrBy(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t by = 0;
  if (!ParseInt(ctx, a[3], by)) return;
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::Of({a[2]}), k, failed);
  if (failed) return;
  auto current = m ? m->Get(a[2]) : std::nullopt;
  std::optional<std::int64_t> base = current ? current->Integer() : std::int64_t{0};
  if (!base) return Fail(ctx, "ERR hash value is not an integer");
  std::int64_t result = 0;
  if ((current && current->overflow) || __builtin_add_overflow(*base, by, &result)) {
    return Fail(ctx, "ERR increment or decrement would overflow");
  }
  auto stamp = NewStamp(e);
  if (MutateAndSave<ORMap>(e, ctx, k, [&](ORMap& map) { return map.Increment(e.replica(), a[2], by, stamp.hlc); })) {
    AppendInt(ctx.out, *k.state.Get<ORMap>()->Get(a[2])->Integer());
  }
}

// Parses "FIELDS numfields field..." starting at a[i]; false after an error reply.
bool ParseFields(CommandContext& ctx, const Args& a, std::size_t i, std::vector<std::string>& fields) {
  if (i + 1 >= a.size() || Upper(a[i]) != "FIELDS") {
    Fail(ctx, "ERR Mandatory argument FIELDS is missing or not at the right position");
    return false;
  }
  std::int64_t n = 0;
  if (!ParseInt(ctx, a[i + 1], n)) return false;
  if (n <= 0 || static_cast<std::size_t>(n) != a.size() - i - 2) {
    Fail(ctx, "ERR The `numfields` parameter must match the number of arguments");
    return false;
  }
  fields.assign(a.begin() + static_cast<long>(i + 2), a.end());
  return true;
}

// HEXPIRE/HPEXPIRE key ttl [NX|XX|GT|LT] FIELDS n field...
void HExpire(Engine& e, CommandContext& ctx, const Args& a, std::int64_t unit) {
  std::int64_t ttl = 0;
  if (!ParseInt(ctx, a[2], ttl)) return;
  std::size_t i = 3;
  std::string cond;
  if (i < a.size() && Upper(a[i]) != "FIELDS") cond = Upper(a[i++]);
  if (!cond.empty() && cond != "NX" && cond != "XX" && cond != "GT" && cond != "LT") {
    return Fail(ctx, "ERR Unsupported option " + a[3]);
  }
  std::vector<std::string> fields;
  if (!ParseFields(ctx, a, i, fields)) return;
  std::int64_t at_signed = 0;
  if (ttl < 0 || __builtin_mul_overflow(ttl, unit, &at_signed) ||
      __builtin_add_overflow(at_signed, static_cast<std::int64_t>(ctx.now_ms), &at_signed)) {
    return Fail(ctx, "ERR invalid expire time, must be >= 0 and <= 2^46");
  }
  const auto at = static_cast<std::uint64_t>(at_signed);
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::Of(fields), k, failed);
  if (failed) return;
  std::vector<std::int64_t> codes;
  bool changed = false;
  auto per_field = [&](ORMap& map) {
    ORMap delta;
    auto stamp = NewStamp(e);
    for (const auto& f : fields) {
      if (!map.Get(f)) {
        codes.push_back(-2);
        continue;
      }
      auto current = map.FieldExpiresAt(f);
      if ((cond == "NX" && current) || (cond == "XX" && !current) ||
          (cond == "GT" && (!current || at <= *current)) || (cond == "LT" && current && at >= *current)) {
        codes.push_back(0);
        continue;
      }
      changed = true;
      if (at <= ctx.now_ms) {
        delta.Join(map.Remove(f));
        codes.push_back(2);
      } else {
        delta.Join(*map.ExpireField(e.replica(), f, at, stamp.hlc));
        codes.push_back(1);
      }
    }
    return delta;
  };
  if (m == nullptr) {
    codes.assign(fields.size(), -2);
  } else {
    auto delta = k.state.Mutate<ORMap>(NewStamp(e), per_field, k.floor);
    if (!delta.ok()) return ReplyStatus(ctx, delta.status());
    Record(k, *delta);
  }
  if (changed && !Save(ctx, k)) return;
  AppendArray(ctx.out, codes.size());
  for (auto c : codes) AppendInt(ctx.out, c);
}
void CmdHExpire(Engine& e, CommandContext& ctx, const Args& a) { HExpire(e, ctx, a, 1000); }
void CmdHPExpire(Engine& e, CommandContext& ctx, const Args& a) { HExpire(e, ctx, a, 1); }

// HTTL/HPTTL/HPERSIST key FIELDS n field...
void HTtl(Engine& e, CommandContext& ctx, const Args& a, bool ms, bool persist) {
  std::vector<std::string> fields;
  if (!ParseFields(ctx, a, 2, fields)) return;
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::Of(fields), k, failed);
  if (failed) return;
  std::vector<std::int64_t> codes;
  bool changed = false;
  auto per_field = [&](ORMap& map) {
    ORMap delta;
    for (const auto& f : fields) {
      if (!map.Get(f)) {
        codes.push_back(-2);
        continue;
      }
      auto at = map.FieldExpiresAt(f);
      if (!at) {
        codes.push_back(-1);
      } else if (persist) {
        delta.Join(map.PersistField(f));
        changed = true;
        codes.push_back(1);
      } else {
        std::int64_t left = *at > ctx.now_ms ? static_cast<std::int64_t>(*at - ctx.now_ms) : 0;
        codes.push_back(ms ? left : (left + 500) / 1000);
      }
    }
    return delta;
  };
  if (m == nullptr) {
    codes.assign(fields.size(), -2);
  } else if (persist) {
    auto delta = k.state.Mutate<ORMap>(NewStamp(e), per_field, k.floor);
    if (!delta.ok()) return ReplyStatus(ctx, delta.status());
    Record(k, *delta);
  } else {
    ORMap copy = *m;  // a read: work on a copy of the (loaded) map
    per_field(copy);
  }
  if (changed && !Save(ctx, k)) return;
  AppendArray(ctx.out, codes.size());
  for (auto c : codes) AppendInt(ctx.out, c);
}
void CmdHTtl(Engine& e, CommandContext& ctx, const Args& a) { HTtl(e, ctx, a, false, false); }
void CmdHPTtl(Engine& e, CommandContext& ctx, const Args& a) { HTtl(e, ctx, a, true, false); }
void CmdHPersist(Engine& e, CommandContext& ctx, const Args& a) { HTtl(e, ctx, a, false, true); }

// ---- flags -----------------------------------------------------------------------

void FlagWrite(Engine& e, CommandContext& ctx, const Args& a, bool enable) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::None(), k)) return;
  if (MutateAndSave<crdt::Flag>(e, ctx, k, [&](crdt::Flag& f) {
        return enable ? f.Enable(e.replica()) : f.Disable(e.replica());
      })) {
    AppendSimple(ctx.out, "OK");
  }
}
void CmdFlagEnable(Engine& e, CommandContext& ctx, const Args& a) { FlagWrite(e, ctx, a, true); }
void CmdFlagDisable(Engine& e, CommandContext& ctx, const Args& a) { FlagWrite(e, ctx, a, false); }

void CmdFlagGet(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::None(), k)) return;
  if (WrongType(ctx, k, {CrdtType::kFlag})) return;
  const auto* f = k.state.Get<crdt::Flag>();
  AppendInt(ctx.out, f != nullptr && f->Enabled());
}

}  // namespace

void RegisterCollectionCommands(std::vector<CommandSpec>& t) {
  const CommandSpec more[] = {
      {"SADD", -3, true, CmdSAdd},           {"SREM", -3, true, CmdSRem},
      {"SMEMBERS", 2, false, CmdSMembers},   {"SISMEMBER", 3, false, CmdSIsMember},
      {"SMISMEMBER", -3, false, CmdSMIsMember}, {"SCARD", 2, false, CmdSCard},
      {"HSET", -4, true, CmdHSet},           {"HMSET", -4, true, CmdHSet},
      {"HGET", 3, false, CmdHGet},           {"HMGET", -3, false, CmdHMGet},
      {"HEXISTS", 3, false, CmdHExists},     {"HLEN", 2, false, CmdHLen},
      {"HGETALL", 2, false, CmdHGetAll},     {"HKEYS", 2, false, CmdHKeys},
      {"HVALS", 2, false, CmdHVals},         {"HDEL", -3, true, CmdHDel},
      {"HINCRBY", 4, true, CmdHIncrBy},      {"HEXPIRE", -6, true, CmdHExpire},
      {"HPEXPIRE", -6, true, CmdHPExpire},   {"HTTL", -5, false, CmdHTtl},
      {"HPTTL", -5, false, CmdHPTtl},        {"HPERSIST", -5, true, CmdHPersist},
      {"FLAG.ENABLE", 2, true, CmdFlagEnable}, {"FLAG.DISABLE", 2, true, CmdFlagDisable},
      {"FLAG.GET", 2, false, CmdFlagGet},
  };
  t.insert(t.end(), std::begin(more), std::end(more));
}

}  // namespace lattice::node::detail
