// Set, map and flag commands.
#include <algorithm>
#include <cmath>
#include <iterator>

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

// SINTER / SUNION / SDIFF key...: a missing key is the empty set. (Their
// STORE forms are refused: they write one key from others, node/commands_conn.cc.)
// The members of op ('i'ntersection, 'u'nion, 'd'ifference) over keys
// a[from..to), sorted; false after an error reply.
bool Algebra(Engine& e, CommandContext& ctx, const Args& a, std::size_t from, std::size_t to, char op,
             std::vector<std::string>& result) {
  for (std::size_t i = from; i < to; ++i) {
    OpenKey k;
    if (!Open(e, ctx, a[i], Members::All(), k)) return false;
    if (WrongType(ctx, k, {CrdtType::kSet})) return false;
    const ORSet* set = k.state.Get<ORSet>();
    std::vector<std::string> members = set ? set->Members() : std::vector<std::string>{};  // sorted
    if (i == from) {
      result = std::move(members);
      continue;
    }
    std::vector<std::string> next;
    if (op == 'i') {
      std::set_intersection(result.begin(), result.end(), members.begin(), members.end(), std::back_inserter(next));
    } else if (op == 'u') {
      std::set_union(result.begin(), result.end(), members.begin(), members.end(), std::back_inserter(next));
    } else {
      std::set_difference(result.begin(), result.end(), members.begin(), members.end(), std::back_inserter(next));
    }
    result = std::move(next);
  }
  return true;
}

void SetAlgebra(Engine& e, CommandContext& ctx, const Args& a, char op) {
  std::vector<std::string> result;
  if (!Algebra(e, ctx, a, 1, a.size(), op, result)) return;
  AppendArray(ctx.out, result.size());
  for (const auto& m : result) AppendBulk(ctx.out, m);
}
void CmdSInter(Engine& e, CommandContext& ctx, const Args& a) { SetAlgebra(e, ctx, a, 'i'); }
void CmdSUnion(Engine& e, CommandContext& ctx, const Args& a) { SetAlgebra(e, ctx, a, 'u'); }
void CmdSDiff(Engine& e, CommandContext& ctx, const Args& a) { SetAlgebra(e, ctx, a, 'd'); }

// SINTERCARD numkeys key... [LIMIT limit]
void CmdSInterCard(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t numkeys = 0, limit = 0;
  if (!ParseInt(ctx, a[1], numkeys)) return;
  if (numkeys <= 0) return Fail(ctx, "ERR numkeys should be greater than 0");
  if (static_cast<std::uint64_t>(numkeys) > a.size() - 2) {
    return Fail(ctx, "ERR Number of keys can't be greater than number of args");
  }
  const std::size_t end = 2 + static_cast<std::size_t>(numkeys);
  for (std::size_t i = end; i < a.size(); i += 2) {
    if (Upper(a[i]) != "LIMIT" || i + 1 >= a.size()) return Fail(ctx, "ERR syntax error");
    if (!ParseInt(ctx, a[i + 1], limit)) return;
    if (limit < 0) return Fail(ctx, "ERR LIMIT can't be negative");
  }
  std::vector<std::string> result;
  if (!Algebra(e, ctx, a, 2, end, 'i', result)) return;
  const auto n = static_cast<std::int64_t>(result.size());
  AppendInt(ctx.out, limit > 0 ? std::min(n, limit) : n);
}

// Up to `count` distinct picks of `items` (all when count >= size), or with
// `repeat` exactly `count` picks that may repeat: Redis's SRANDMEMBER and
// HRANDFIELD counts.
std::vector<std::size_t> RandomPicks(std::size_t size, std::uint64_t count, bool repeat) {
  std::vector<std::size_t> out;
  if (size == 0) return out;
  auto& rng = ThreadRng();
  if (repeat) {
    for (std::uint64_t i = 0; i < count; ++i) out.push_back(std::uniform_int_distribution<std::size_t>(0, size - 1)(rng));
    return out;
  }
  out.resize(size);
  for (std::size_t i = 0; i < size; ++i) out[i] = i;
  std::shuffle(out.begin(), out.end(), rng);
  if (count < size) out.resize(static_cast<std::size_t>(count));
  return out;
}

// The optional count of SRANDMEMBER / SPOP / HRANDFIELD: false after an error
// reply. `negative_ok`: a negative count asks for picks that may repeat.
bool ParseCount(CommandContext& ctx, const Args& a, bool negative_ok, std::optional<std::int64_t>& count) {
  if (a.size() < 3) return true;
  std::int64_t n = 0;
  if (!ParseInt(ctx, a[2], n)) return false;
  if ((!negative_ok && n < 0) || n == INT64_MIN) {
    Fail(ctx, negative_ok ? "ERR value is out of range" : "ERR value is out of range, must be positive");
    return false;
  }
  count = n;
  return true;
}

// SRANDMEMBER key [count]
void CmdSRandMember(Engine& e, CommandContext& ctx, const Args& a) {
  std::optional<std::int64_t> count;
  if (!ParseCount(ctx, a, true, count)) return;
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::All(), k) || WrongType(ctx, k, {CrdtType::kSet})) return;
  const ORSet* set = k.state.Get<ORSet>();
  std::vector<std::string> members = set ? set->Members() : std::vector<std::string>{};
  if (!count) {
    if (members.empty()) return AppendNull(ctx.out);
    return AppendBulk(ctx.out, members[RandomPicks(members.size(), 1, false)[0]]);
  }
  auto picks = RandomPicks(members.size(), static_cast<std::uint64_t>(*count < 0 ? -*count : *count), *count < 0);
  AppendArray(ctx.out, picks.size());
  for (std::size_t i : picks) AppendBulk(ctx.out, members[i]);
}

// SPOP key [count]: removes what it picked, as SREM would (observed-remove:
// two replicas popping concurrently may both return one member).
void CmdSPop(Engine& e, CommandContext& ctx, const Args& a) {
  std::optional<std::int64_t> count;
  if (!ParseCount(ctx, a, false, count)) return;
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::All(), k) || WrongType(ctx, k, {CrdtType::kSet})) return;
  const ORSet* set = k.state.Get<ORSet>();
  std::vector<std::string> members = set ? set->Members() : std::vector<std::string>{};
  std::vector<std::string> popped;
  for (std::size_t i : RandomPicks(members.size(), count ? static_cast<std::uint64_t>(*count) : 1, false)) {
    popped.push_back(members[i]);
  }
  if (!popped.empty() && !MutateAndSave<ORSet>(e, ctx, k, [&](ORSet& s) {
        ORSet d;
        for (const auto& m : popped) d.Join(s.Remove(m));
        return d;
      })) {
    return;
  }
  if (!count) return popped.empty() ? AppendNull(ctx.out) : AppendBulk(ctx.out, popped[0]);
  AppendArray(ctx.out, popped.size());
  for (const auto& m : popped) AppendBulk(ctx.out, m);
}

// ---- maps ------------------------------------------------------------------------

void CmdHSet(Engine& e, CommandContext& ctx, const Args& a) {
  if (a.size() % 2 != 0) return Fail(ctx, "ERR wrong number of arguments for '" + Lower(a[0]) + "' command");
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

// HSETNX key field value: evaluated on the minting replica's view (DESIGN §2).
void CmdHSetNx(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::Of({a[2]}), k) || WrongType(ctx, k, {CrdtType::kMap})) return;
  const ORMap* m = k.state.Get<ORMap>();
  if (m != nullptr && m->Get(a[2])) return AppendInt(ctx.out, 0);
  auto stamp = NewStamp(e);
  if (MutateAndSave<ORMap>(e, ctx, k, [&](ORMap& map) { return map.Set(e.replica(), a[2], a[3], stamp.hlc); })) {
    AppendInt(ctx.out, 1);
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

void CmdHStrLen(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::Of({a[2]}), k, failed);
  if (failed) return;
  auto v = m ? m->Get(a[2]) : std::nullopt;
  AppendInt(ctx.out, v ? static_cast<std::int64_t>(v->Size()) : 0);
}

// HINCRBYFLOAT key field increment: an LWW write of the sum computed here
// (as Redis replicates it), the field's TTL kept.
void CmdHIncrByFloat(Engine& e, CommandContext& ctx, const Args& a) {
  auto by = ParseLongDouble(a[3]);
  if (!by) return Fail(ctx, "ERR value is not a valid float");
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::Of({a[2]}), k, failed);
  if (failed) return;
  auto v = m ? m->Get(a[2]) : std::nullopt;
  auto current = v ? ParseLongDouble(v->Text()) : std::optional<long double>(0);
  if (!current) return Fail(ctx, "ERR hash value is not a float");
  const long double sum = *current + *by;
  if (std::isnan(sum) || std::isinf(sum)) return Fail(ctx, "ERR increment would produce NaN or Infinity");
  const std::string text = FormatLongDouble(sum);
  auto stamp = NewStamp(e);
  if (MutateAndSave<ORMap>(e, ctx, k, [&](ORMap& map) { return map.Set(e.replica(), a[2], text, stamp.hlc, true); })) {
    AppendBulk(ctx.out, text);
  }
}

// HRANDFIELD key [count [WITHVALUES]]
void CmdHRandField(Engine& e, CommandContext& ctx, const Args& a) {
  std::optional<std::int64_t> count;
  if (!ParseCount(ctx, a, true, count)) return;
  const bool with_values = a.size() == 4 && Upper(a[3]) == "WITHVALUES";
  if (a.size() > 4 || (a.size() == 4 && !with_values)) return Fail(ctx, "ERR syntax error");
  OpenKey k;
  bool failed = false;
  const ORMap* m = OpenMap(e, ctx, a[1], Members::All(), k, failed);
  if (failed) return;
  auto entries = m ? m->Entries() : std::vector<std::pair<std::string, crdt::StringValue>>{};
  if (!count) {
    if (entries.empty()) return AppendNull(ctx.out);
    return AppendBulk(ctx.out, entries[RandomPicks(entries.size(), 1, false)[0]].first);
  }
  auto picks = RandomPicks(entries.size(), static_cast<std::uint64_t>(*count < 0 ? -*count : *count), *count < 0);
  AppendArray(ctx.out, picks.size() * (with_values ? 2 : 1));
  for (std::size_t i : picks) {
    AppendBulk(ctx.out, entries[i].first);
    if (with_values) AppendBulk(ctx.out, entries[i].second.Text());
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
      {"SINTER", -2, false, CmdSInter},      {"SUNION", -2, false, CmdSUnion},
      {"SDIFF", -2, false, CmdSDiff},        {"SRANDMEMBER", -2, false, CmdSRandMember},
      {"SINTERCARD", -3, false, CmdSInterCard},
      {"SPOP", -2, true, CmdSPop},           {"HSTRLEN", 3, false, CmdHStrLen},
      {"HINCRBYFLOAT", 4, true, CmdHIncrByFloat}, {"HRANDFIELD", -2, false, CmdHRandField},
      {"HSET", -4, true, CmdHSet},           {"HMSET", -4, true, CmdHSet},
      {"HSETNX", 4, true, CmdHSetNx},
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
