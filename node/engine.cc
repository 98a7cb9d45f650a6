// Engine: dispatch, shared helpers, and the key and MV-register commands.
// Strings are in engine_strings.cc; sets, maps and flags in engine_collections.cc.
#include "node/engine.h"

#include <algorithm>
#include <set>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "crdt/codec.h"
#include "node/engine_internal.h"

namespace lattice::node {

using crdt::CrdtType;
using crdt::KeyState;
using storage::Members;


using namespace detail;

namespace {

// ---- keys ----------------------------------------------------------------------

void CmdDel(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t removed = 0;
  for (std::size_t i = 1; i < a.size(); ++i) {
    OpenKey k;
    if (!Open(e, ctx, a[i], Members::All(), k)) return;
    if (!k.state.Live() && k.state.expiry().store.empty()) continue;
    removed += k.state.Live();
    Record(k, k.state.Clear());
    if (!Save(ctx, k)) return;
  }
  ctx.count = removed;
  AppendInt(ctx.out, removed);
}

void CmdExists(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t n = 0;
  for (std::size_t i = 1; i < a.size(); ++i) {
    OpenKey k;
    if (!Open(e, ctx, a[i], Members::None(), k)) return;
    n += k.state.Live();
  }
  AppendInt(ctx.out, n);
}

void CmdType(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::None(), k)) return;
  auto t = TypeOf(k);
  AppendSimple(ctx.out, t ? crdt::TypeName(*t) : "none");
}

// EXPIRE/PEXPIRE key ttl and EXPIREAT/PEXPIREAT key time, [NX|XX|GT|LT]
void Expire(Engine& e, CommandContext& ctx, const Args& a, std::int64_t unit_ms, bool absolute) {
  std::int64_t ttl = 0;
  if (!ParseInt(ctx, a[2], ttl)) return;
  bool nx = false, xx = false, gt = false, lt = false;
  for (std::size_t i = 3; i < a.size(); ++i) {
    std::string opt = Upper(a[i]);
    if (opt == "NX") nx = true;
    else if (opt == "XX") xx = true;
    else if (opt == "GT") gt = true;
    else if (opt == "LT") lt = true;
    else return Fail(ctx, "ERR Unsupported option " + a[i]);
  }
  if (nx && (xx || gt || lt)) {
    return Fail(ctx, "ERR NX and XX, GT or LT options at the same time are not compatible");
  }
  if (gt && lt) return Fail(ctx, "ERR GT and LT options at the same time are not compatible");
  std::int64_t delta_ms = 0;
  if (__builtin_mul_overflow(ttl, unit_ms, &delta_ms) ||
      (!absolute && __builtin_add_overflow(delta_ms, static_cast<std::int64_t>(ctx.now_ms), &delta_ms))) {
    return Fail(ctx, "ERR invalid expire time in '" + Lower(a[0]) + "' command");
  }
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::All(), k)) return;
  if (!k.state.Live()) return AppendInt(ctx.out, 0);
  auto current = k.state.ExpiresAt();
  std::uint64_t at = delta_ms <= 0 ? 0 : static_cast<std::uint64_t>(delta_ms);
  // Redis: no TTL counts as an infinite one for GT and LT.
  if ((nx && current) || (xx && !current) || (gt && (!current || at <= *current)) ||
      (lt && current && at >= *current)) {
    return AppendInt(ctx.out, 0);
  }
  if (at <= ctx.now_ms) {
    Record(k, k.state.Clear());  // a TTL in the past deletes the key, as in Redis
  } else {
    Record(k, k.state.Expire(NewStamp(e), at, k.floor));
  }
  if (Save(ctx, k)) AppendInt(ctx.out, 1);
}

void CmdExpire(Engine& e, CommandContext& ctx, const Args& a) { Expire(e, ctx, a, 1000, false); }
void CmdPExpire(Engine& e, CommandContext& ctx, const Args& a) { Expire(e, ctx, a, 1, false); }
void CmdExpireAt(Engine& e, CommandContext& ctx, const Args& a) { Expire(e, ctx, a, 1000, true); }
void CmdPExpireAt(Engine& e, CommandContext& ctx, const Args& a) { Expire(e, ctx, a, 1, true); }

// EXPIRETIME/PEXPIRETIME key: the deadline (unix s / ms), -1 none, -2 no key.
void ExpireTime(Engine& e, CommandContext& ctx, const Args& a, bool ms) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::None(), k)) return;
  if (!k.state.Live()) return AppendInt(ctx.out, -2);
  auto at = k.state.ExpiresAt();
  if (!at) return AppendInt(ctx.out, -1);
  AppendInt(ctx.out, static_cast<std::int64_t>(ms ? *at : *at / 1000));
}
void CmdExpireTime(Engine& e, CommandContext& ctx, const Args& a) { ExpireTime(e, ctx, a, false); }
void CmdPExpireTime(Engine& e, CommandContext& ctx, const Args& a) { ExpireTime(e, ctx, a, true); }

void Ttl(Engine& e, CommandContext& ctx, const Args& a, bool ms) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::None(), k)) return;
  if (!k.state.Live()) return AppendInt(ctx.out, -2);
  auto at = k.state.ExpiresAt();
  if (!at) return AppendInt(ctx.out, -1);
  std::int64_t left = *at > ctx.now_ms ? static_cast<std::int64_t>(*at - ctx.now_ms) : 0;
  AppendInt(ctx.out, ms ? left : (left + 500) / 1000);
}

void CmdTtl(Engine& e, CommandContext& ctx, const Args& a) { Ttl(e, ctx, a, false); }
void CmdPTtl(Engine& e, CommandContext& ctx, const Args& a) { Ttl(e, ctx, a, true); }

void CmdPersist(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::None(), k)) return;
  if (!k.state.Live() || !k.state.ExpiresAt()) return AppendInt(ctx.out, 0);
  Record(k, k.state.Persist());
  if (Save(ctx, k)) AppendInt(ctx.out, 1);
}

// The options of SCAN, SSCAN and HSCAN from a[from]: MATCH, COUNT, and
// TYPE (SCAN) or NOVALUES (HSCAN) where `type`/`novalues` are given. False
// after an error reply.
bool ParseScanOptions(CommandContext& ctx, const Args& a, std::size_t from, std::string& pattern,
                      std::int64_t& count, std::string* type, bool* novalues) {
  for (std::size_t i = from; i < a.size(); i += 2) {
    std::string opt = Upper(a[i]);
    if (novalues != nullptr && opt == "NOVALUES") {
      *novalues = true;
      --i;  // no argument
      continue;
    }
    if (i + 1 >= a.size()) return Fail(ctx, "ERR syntax error"), false;
    if (opt == "MATCH") {
      pattern = a[i + 1];
    } else if (opt == "COUNT") {
      if (!ParseInt(ctx, a[i + 1], count)) return false;
      if (count < 1) return Fail(ctx, "ERR syntax error"), false;
    } else if (opt == "TYPE" && type != nullptr) {
      *type = a[i + 1];
    } else {
      return Fail(ctx, "ERR syntax error"), false;
    }
  }
  return true;
}

bool ParseCursor(CommandContext& ctx, const std::string& s, std::uint64_t& cursor) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), cursor);
  if (ec != std::errc() || p != s.data() + s.size()) return Fail(ctx, "ERR invalid cursor"), false;
  return true;
}

// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]
void CmdScan(Engine& e, CommandContext& ctx, const Args& a) {
  std::uint64_t cursor = 0;
  if (!ParseCursor(ctx, a[1], cursor)) return;
  std::string pattern = "*", type;
  std::int64_t count = 10;
  if (!ParseScanOptions(ctx, a, 2, pattern, count, &type, nullptr)) return;
  std::vector<std::string> keys;
  std::vector<std::string> candidates;
  auto next = ctx.txn.ScanKeys(cursor, static_cast<std::size_t>(std::min<std::int64_t>(count, 100000)),
                               [&](std::string_view key) {
                                 if (GlobMatch(pattern, key)) candidates.emplace_back(key);
                                 return true;
                               });
  if (!next.ok()) return ReplyStatus(ctx, next.status());
  for (const std::string& key : candidates) {
    OpenKey k;
    if (!Open(e, ctx, key, Members::None(), k)) return;
    auto t = TypeOf(k);
    if (t && (type.empty() || type == crdt::TypeName(*t))) keys.push_back(key);
  }
  AppendArray(ctx.out, 2);
  AppendBulk(ctx.out, std::to_string(*next));
  AppendArray(ctx.out, keys.size());
  for (const auto& key : keys) AppendBulk(ctx.out, key);
}

// SSCAN key cursor [MATCH p] [COUNT n] / HSCAN key cursor [MATCH p] [COUNT n]
// [NOVALUES]: every matching member (field and value) at once, cursor 0 (as
// Redis answers small sets and hashes); a cursor this node never gave: none.
void MemberScan(Engine& e, CommandContext& ctx, const Args& a, bool hash) {
  std::uint64_t cursor = 0;
  if (!ParseCursor(ctx, a[2], cursor)) return;
  std::string pattern = "*";
  std::int64_t count = 10;
  bool novalues = false;
  if (!ParseScanOptions(ctx, a, 3, pattern, count, nullptr, hash ? &novalues : nullptr)) return;
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::All(), k)) return;
  if (WrongType(ctx, k, {hash ? CrdtType::kMap : CrdtType::kSet})) return;
  std::vector<std::string> out;
  if (cursor == 0) {
    if (const auto* set = hash ? nullptr : k.state.Get<crdt::ORSet>()) {
      for (const auto& m : set->Members()) {
        if (GlobMatch(pattern, m)) out.push_back(m);
      }
    }
    if (const auto* map = hash ? k.state.Get<crdt::ORMap>() : nullptr) {
      for (const auto& [f, v] : map->Entries()) {
        if (!GlobMatch(pattern, f)) continue;
        out.push_back(f);
        if (!novalues) out.push_back(v.Text());
      }
    }
  }
  AppendArray(ctx.out, 2);
  AppendBulk(ctx.out, "0");
  AppendArray(ctx.out, out.size());
  for (const auto& x : out) AppendBulk(ctx.out, x);
}
void CmdSScan(Engine& e, CommandContext& ctx, const Args& a) { MemberScan(e, ctx, a, false); }
void CmdHScan(Engine& e, CommandContext& ctx, const Args& a) { MemberScan(e, ctx, a, true); }

// TOUCH key...: how many exist (there is no access time to update).
void CmdTouch(Engine& e, CommandContext& ctx, const Args& a) { CmdExists(e, ctx, a); }

void CmdDbSize(Engine&, CommandContext& ctx, const Args&) {
  AppendInt(ctx.out, static_cast<std::int64_t>(ctx.txn.LiveKeys()));
}

// KEYS pattern: every live key this node holds that matches (as SCAN, whole).
void CmdKeys(Engine& e, CommandContext& ctx, const Args& a) {
  std::vector<std::string> candidates, keys;
  std::uint64_t cursor = 0;
  do {
    auto next = ctx.txn.ScanKeys(cursor, 4096, [&](std::string_view key) {
      if (GlobMatch(a[1], key)) candidates.emplace_back(key);
      return true;
    });
    if (!next.ok()) return ReplyStatus(ctx, next.status());
    cursor = *next;
  } while (cursor != 0);
  for (const std::string& key : candidates) {
    OpenKey k;
    if (!Open(e, ctx, key, Members::None(), k)) return;
    if (k.state.Live()) keys.push_back(key);
  }
  AppendArray(ctx.out, keys.size());
  for (const auto& key : keys) AppendBulk(ctx.out, key);
}

// RANDOMKEY: a live key this node holds, from a random place in the key-hash
// order (SCAN's), or nil.
void CmdRandomKey(Engine& e, CommandContext& ctx, const Args&) {
  std::uint64_t cursor = std::uniform_int_distribution<std::uint64_t>()(ThreadRng());
  for (int pass = 0; pass < 2; ++pass) {
    for (;;) {
      std::vector<std::string> candidates;
      auto next = ctx.txn.ScanKeys(cursor, 64, [&](std::string_view key) {
        candidates.emplace_back(key);
        return true;
      });
      if (!next.ok()) return ReplyStatus(ctx, next.status());
      for (const std::string& key : candidates) {
        OpenKey k;
        if (!Open(e, ctx, key, Members::None(), k)) return;
        if (k.state.Live()) return AppendBulk(ctx.out, key);
      }
      cursor = *next;
      if (cursor == 0) break;  // the end: once more from the start
    }
  }
  AppendNull(ctx.out);
}

// ---- multi-value registers ------------------------------------------------------

void CmdMvSet(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::None(), k)) return;
  auto stamp = NewStamp(e);
  if (MutateAndSave<crdt::MVRegister>(e, ctx, k, [&](crdt::MVRegister& r) {
        return r.Write(e.replica(), a[2], stamp.hlc);
      })) {
    AppendSimple(ctx.out, "OK");
  }
}

void CmdMvGet(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::None(), k)) return;
  if (WrongType(ctx, k, {CrdtType::kMultiValue})) return;
  const auto* r = k.state.Get<crdt::MVRegister>();
  std::vector<std::string> values = r ? r->Values() : std::vector<std::string>{};
  AppendArray(ctx.out, values.size());
  for (const auto& v : values) AppendBulk(ctx.out, v);
}

// ---- introspection ---------------------------------------------------------------

std::string Hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

void CmdExplain(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::All(), k)) return;
  if (!k.existed) return AppendNull(ctx.out);
  auto name = [&](crdt::ReplicaId r) {
    if (r == e.replica()) return e.store().identity().name + " (" + Hex(r) + ")";
    std::string known = e.ReplicaName(r);
    return known.empty() ? Hex(r) : known + " (" + Hex(r) + ")";
  };
  std::vector<std::string> lines;
  auto live = k.state.LiveType();
  lines.push_back("type: " + std::string(live ? crdt::TypeName(*live) : "none (tombstone)"));
  const crdt::Variant* visible = k.state.Visible();
  // A string's two halves (crdt/key_state.h) are one visible value.
  const bool string_visible = visible != nullptr && crdt::StringHalf(crdt::TypeOfValue(visible->value));
  for (const auto& [type, v] : k.state.variants()) {
    const bool shown = &v == visible || (string_visible && crdt::StringHalf(type));
    std::string name_of = type == CrdtType::kRegister  ? "string base (SET)"
                          : type == CrdtType::kCounter ? "string increments (INCR)"
                                                       : std::string(crdt::TypeName(type));
    std::string head = name_of + (shown && crdt::IsLive(v.value) ? " (visible)" : crdt::IsLive(v.value) ? " (dropped: a concurrent creation of another type won)" : " (tombstone)");
    lines.push_back("variant: " + head);
    lines.push_back("  created: hlc " + std::to_string(v.created.hlc.wall_ms) + "." +
                    std::to_string(v.created.hlc.logical) + " by " + name(v.created.replica));
    const crdt::DotContext& c = crdt::ContextOf(v.value);
    std::string ctxs = "  context:";
    for (const auto& [r, n] : c.vv()) ctxs += " " + name(r) + "=" + std::to_string(n);
    if (!c.cloud().empty()) ctxs += " cloud=" + std::to_string(c.cloud().size()) + " dots";
    lines.push_back(ctxs);
    crdt::DotContext held;
    std::visit([&](const auto& x) { crdt::CollectDots(x.state().store, held); }, v.value);
    lines.push_back("  dots held: " + std::to_string(held.DotCount()));
  }
  if (auto str = k.state.String(); str && str->counted) {
    std::string line = "string: base " + (str->base ? "'" + *str->base + "'" : std::string("none")) +
                       ", increments since it " + std::to_string(str->increments);
    if (str->base && !crdt::ParseStringInteger(*str->base)) line += " (kept: the base is not an integer)";
    if (str->overflow) line += " (the sum overflows: saturated)";
    lines.push_back(line);
  }
  if (auto at = k.state.ExpiresAt()) lines.push_back("expires at ms: " + std::to_string(*at));
  if (auto next = k.state.NextExpiry()) lines.push_back("next expiry ms: " + std::to_string(*next));
  // Metadata vs payload: the encoding with and without the user's bytes.
  std::string encoded = crdt::EncodeKeyState(k.state);
  std::size_t payload = 0;
  if (auto v = k.state.String()) payload = v->Size();
  if (const auto* s = k.state.Get<crdt::ORSet>()) for (const auto& m : s->Members()) payload += m.size();
  if (const auto* m = k.state.Get<crdt::ORMap>()) for (const auto& [f, v] : m->Entries()) payload += f.size() + v.Text().size();
  if (const auto* mv = k.state.Get<crdt::MVRegister>()) for (const auto& v : mv->Values()) payload += v.size();
  lines.push_back("bytes: " + std::to_string(encoded.size()) + " encoded, " + std::to_string(payload) +
                  " payload, " + std::to_string(encoded.size() > payload ? encoded.size() - payload : 0) + " metadata");
  std::string replicas;
  for (const auto& r : e.ReplicasOf(a[1])) replicas += (replicas.empty() ? "" : " ") + r;
  lines.push_back("replicas: " + replicas);
  AppendArray(ctx.out, lines.size());
  for (const auto& l : lines) AppendBulk(ctx.out, l);
}

}  // namespace

void AddDataCommands(std::vector<CommandSpec>& table) {
  std::vector<CommandSpec> t = {
      {"DEL", -2, true, CmdDel},          {"UNLINK", -2, true, CmdDel},
      {"EXISTS", -2, false, CmdExists},   {"TYPE", 2, false, CmdType},
      {"EXPIRE", -3, true, CmdExpire},    {"PEXPIRE", -3, true, CmdPExpire},
      {"TTL", 2, false, CmdTtl},          {"PTTL", 2, false, CmdPTtl},
      {"PERSIST", 2, true, CmdPersist},   {"SCAN", -2, false, CmdScan},
      {"DBSIZE", 1, false, CmdDbSize},    {"MV.SET", 3, true, CmdMvSet},
      {"EXPIREAT", -3, true, CmdExpireAt}, {"PEXPIREAT", -3, true, CmdPExpireAt},
      {"EXPIRETIME", 2, false, CmdExpireTime}, {"PEXPIRETIME", 2, false, CmdPExpireTime},
      {"KEYS", 2, false, CmdKeys},        {"RANDOMKEY", 1, false, CmdRandomKey},
      {"SSCAN", -3, false, CmdSScan},     {"HSCAN", -3, false, CmdHScan},
      {"TOUCH", -2, false, CmdTouch},
      {"MV.GET", 2, false, CmdMvGet},     {"EXPLAIN", 2, false, CmdExplain},
  };
  RegisterStringCommands(t);
  RegisterHllCommands(t);
  RegisterCollectionCommands(t);
  // Writes that remove observed state, and writes that are not idempotent.
  static const std::set<std::string_view> kRemoves = {
      "DEL",     "UNLINK",   "SET",  "MSET",  "MV.SET",   "SREM",         "HDEL",     "EXPIRE",
      "PEXPIRE", "PERSIST",  "HSET", "HMSET", "HEXPIRE",  "HPEXPIRE",     "HPERSIST", "FLAG.DISABLE",
      // LWW writes of a string replace what they observed (its increments too).
      "GETSET",  "SETEX",    "PSETEX", "INCRBYFLOAT", "APPEND", "SETRANGE", "GETDEL", "GETEX",
      "EXPIREAT", "PEXPIREAT", "SPOP", "HINCRBYFLOAT", "SETBIT"};
  // Applied twice they would add, append or answer twice (INCR, APPEND,
  // GETDEL's value, ...): each carries a request id its minter remembers.
  static const std::set<std::string_view> kNotIdempotent = {"INCR",   "DECR",        "INCRBY", "DECRBY",
                                                            "HINCRBY", "INCRBYFLOAT", "APPEND", "GETDEL",
                                                            "GETSET", "SPOP", "HINCRBYFLOAT"};
  for (auto& spec : t) {
    spec.removes = spec.write && kRemoves.count(spec.name) > 0;
    spec.idempotent = !kNotIdempotent.count(spec.name);
    const std::string_view n = spec.name;
    if (n == "SCAN" || n == "DBSIZE" || n == "KEYS" || n == "RANDOMKEY") spec.first_key = spec.last_key = spec.key_step = 0;
    if (n == "DEL" || n == "UNLINK" || n == "EXISTS" || n == "TOUCH" || n == "MGET" || n == "SINTER" || n == "SUNION" ||
        n == "SDIFF" || n == "PFCOUNT") {
      spec.last_key = -1;
    }
    if (n == "SINTERCARD") spec.first_key = 2, spec.last_key = -1, spec.numkeys_at = 1;
    if (n == "MSET") spec.last_key = -1, spec.key_step = 2;
    if (n == "SREM" || n == "HDEL") spec.first_member = 2;
    if (n == "HSET" || n == "HMSET") spec.first_member = 2, spec.member_step = 2;
  }
  table.insert(table.end(), t.begin(), t.end());
}

namespace {

// JSON string escaping for RenderValue.
void Json(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out.append(buf);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

}  // namespace

Engine::Engine(storage::Store& store, crdt::HlcClock& clock)
    : store_(store), clock_(clock), replica_(store.identity().replica) {}

const CommandSpec* Engine::Find(std::string_view upper_name) const {
  const CommandSpec* spec = CommandTable::Get().Find(upper_name);
  return spec != nullptr && spec->kind == CommandKind::kData ? spec : nullptr;
}

void Engine::Run(const CommandSpec& spec, CommandContext& ctx, const Args& args) {
  spec.run(*this, ctx, args);
}

std::string Engine::Render(storage::Txn& txn, std::string_view key, std::uint64_t now_ms) {
  std::string ignored;
  CommandContext ctx{txn, false, now_ms, ignored, nullptr};
  OpenKey k;
  if (!Open(*this, ctx, key, Members::All(), k)) return {};
  return RenderValue(k.state);
}

Status Engine::Sweep(storage::Txn& txn, std::string_view key, std::uint64_t now_ms,
                     std::vector<std::string>& changed) {
  std::string reply;
  CommandContext ctx{txn, true, now_ms, reply, &changed};
  OpenKey k;
  if (!Open(*this, ctx, key, Members::All(), k)) return Status::IOError(reply);
  if (!k.existed) return Status::Ok();
  // Rewrites the header so its next deadline is exact again.
  return txn.Save(k.name, k.state, Members::All());
}

Status Engine::ApplyDelta(storage::Txn& txn, const KeyDelta& d, std::uint64_t now_ms,
                          std::vector<std::string>& changed, Applied* applied) {
  Applied ignore;
  Applied& outcome = applied != nullptr ? *applied : ignore;
  // Load what the delta can touch: the members it names in its store and the
  // ones its command named (removals carry only dots).
  Members members = d.touched;
  if (!members.all) {
    for (const auto& [type, v] : d.delta.variants()) {
      if (const auto* set = std::get_if<crdt::ORSet>(&v.value)) {
        for (const auto& entry : set->state().store) members.names.push_back(entry.first);
      } else if (const auto* map = std::get_if<crdt::ORMap>(&v.value)) {
        for (const auto& entry : map->state().store) members.names.push_back(entry.first);
      }
    }
  }
  std::string reply;
  CommandContext ctx{txn, true, now_ms, reply, &changed};
  OpenKey k;
  if (!Open(*this, ctx, d.key, members, k)) return Status::IOError(reply);
  if (!k.existed && d.delta.Tombstone() &&
      store_.Retired(store_.PartitionOfHash(storage::KeyHash(d.key)), d.delta.AllContext())) {
    outcome = Applied::kIgnored;
    return Status::Ok();
  }
  const KeyState* arriving = &d.delta;
  KeyState dead;
  if (!k.existed) {
    // A state of a key this node collected (or answered "no record" for)
    // that carries nothing newer than what was retired: a delta delayed past
    // the collection, or a replica's leftover of the deleted key. It brings
    // nothing back (DESIGN §2): anything live is kept as the tombstone it
    // joins to (Open loaded the kept tombstone, if any; a bare retired context
    // makes one of the leftover), so the replica holding the leftover learns
    // by anti-entropy and the tombstones are collected everywhere, instead of
    // differing forever.
    const auto& retired = k.retired;
    const crdt::DotContext all = d.delta.AllContext();
    if (retired && !all.Empty() && retired->context.Covers(all)) {
      // A tombstone this node collected itself is ignored (every replica held
      // it then, and collects its own). One it only answered "no record" for
      // is stored: it holds no data, and the collection that asked may not
      // have completed, so the replicas that hold it keep it and the roots
      // must agree.
      if (d.delta.Tombstone() && retired->tombstone) {
        outcome = Applied::kIgnored;
        return Status::Ok();
      }
      if (!d.delta.Tombstone() && !retired->tombstone) {
        dead = d.delta;
        (void)dead.Clear();
        arriving = &dead;
      }
    }
  }
  const KeyState before = k.state;
  k.state.Join(*arriving);
  if (k.existed && k.state == before) {
    outcome = Applied::kUnchanged;
    return Status::Ok();
  }
  Record(k, *arriving);
  if (!Save(ctx, k)) return Status::IOError(reply);
  outcome = Applied::kChanged;
  return Status::Ok();
}

std::string Engine::RenderValue(const KeyState& state) {
  std::string out;
  if (auto v = state.String()) return v->Text();
  if (const auto* f = state.Get<crdt::Flag>()) return f->Enabled() ? "1" : "0";
  auto array = [&](const std::vector<std::string>& items) {
    out.push_back('[');
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (i) out.push_back(',');
      Json(out, items[i]);
    }
    out.push_back(']');
  };
  if (const auto* s = state.Get<crdt::ORSet>()) array(s->Members());
  if (const auto* mv = state.Get<crdt::MVRegister>()) array(mv->Values());
  if (const auto* m = state.Get<crdt::ORMap>()) {
    out.push_back('{');
    bool first = true;
    for (const auto& [field, value] : m->Entries()) {
      if (!first) out.push_back(',');
      first = false;
      Json(out, field);
      out.push_back(':');
      Json(out, value.Text());
    }
    out.push_back('}');
  }
  return out;
}

}  // namespace lattice::node
