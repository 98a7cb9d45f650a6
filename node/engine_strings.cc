// The string commands (DESIGN §2 and §5): one type for SET and INCR, a key's
// LWW base plus the increments made since it (crdt/string_value.h). Commands
// that compute a new value from the old one (APPEND, SETRANGE, INCRBYFLOAT)
// are LWW writes of the value computed on the minting replica, as Redis
// itself replicates them; INCR/DECR/INCRBY/DECRBY add to the increments.
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "node/engine_internal.h"

namespace lattice::node::detail {

std::optional<long double> ParseLongDouble(std::string_view s) {
  if (s.empty() || s.size() > 5000 || std::isspace(static_cast<unsigned char>(s[0]))) return std::nullopt;
  std::string copy(s);
  char* end = nullptr;
  errno = 0;
  long double v = std::strtold(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || errno == ERANGE || std::isnan(v)) return std::nullopt;
  return v;
}

std::string FormatLongDouble(long double v) {
  char buf[5 * 1024];
  int n = std::snprintf(buf, sizeof buf, "%.17Lf", v);
  if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf) return "0";
  std::string out(buf, static_cast<std::size_t>(n));
  if (out.find('.') != std::string::npos) {
    while (!out.empty() && out.back() == '0') out.pop_back();
    if (!out.empty() && out.back() == '.') out.pop_back();
  }
  if (out == "-0") out = "0";
  return out;
}

namespace {

using crdt::CrdtType;
using storage::Members;

// Redis's proto-max-bulk-len: the longest string SETRANGE and APPEND build.
constexpr std::size_t kMaxString = std::size_t{512} << 20;

// Opens `key` as a string (absent is fine); false after an error reply.
bool OpenString(Engine& e, CommandContext& ctx, std::string_view key, OpenKey& k) {
  return Open(e, ctx, key, Members::None(), k) && !WrongType(ctx, k, {CrdtType::kRegister, CrdtType::kCounter});
}

void ReplyStringValue(CommandContext& ctx, const OpenKey& k) {
  if (auto v = k.state.String()) return AppendBulk(ctx.out, v->Text());
  AppendNull(ctx.out);
}

std::string TextOf(const OpenKey& k) {
  auto v = k.state.String();
  return v ? v->Text() : std::string();
}

// An expiry option of SET or GETEX (EX s, PX ms, EXAT s, PXAT ms) with its
// argument: the deadline in ms, or false after Redis's error reply.
bool ParseExpiry(CommandContext& ctx, const std::string& opt, std::string_view arg, const char* command,
                 std::uint64_t& at) {
  std::int64_t v = 0;
  if (!ParseInt(ctx, arg, v)) return false;
  const bool seconds = opt == "EX" || opt == "EXAT";
  const bool relative = opt == "EX" || opt == "PX";
  std::int64_t ms = 0;
  if (v <= 0 || __builtin_mul_overflow(v, seconds ? 1000 : 1, &ms) ||
      (relative && __builtin_add_overflow(ms, static_cast<std::int64_t>(ctx.now_ms), &ms))) {
    Fail(ctx, std::string("ERR invalid expire time in '") + command + "' command");
    return false;
  }
  at = static_cast<std::uint64_t>(ms);
  return true;
}

bool IsExpiryOption(const std::string& opt) { return opt == "EX" || opt == "PX" || opt == "EXAT" || opt == "PXAT"; }

// Sets the key's expiry to `at` (a deadline already past deletes it, as in Redis).
void SetExpiry(Engine& e, CommandContext& ctx, OpenKey& k, std::uint64_t at) {
  if (at <= ctx.now_ms) {
    Record(k, k.state.Clear());
  } else {
    Record(k, k.state.Expire(NewStamp(e), at, k.floor));
  }
}

// Writes `value` as the string's new base (removing the increments this
// replica observed); the TTL is kept with `keepttl`, else removed, then set
// to `at` when given. False after an error reply.
bool WriteString(Engine& e, CommandContext& ctx, OpenKey& k, std::string_view value, bool keepttl,
                 std::optional<std::uint64_t> at = std::nullopt) {
  if (!keepttl) Record(k, k.state.Persist());
  auto stamp = NewStamp(e);
  auto delta = k.state.Mutate<crdt::LWWRegister>(
      stamp, [&](crdt::LWWRegister& r) { return r.Write(e.replica(), std::string(value), stamp.hlc); }, k.floor);
  if (!delta.ok()) {
    ReplyStatus(ctx, delta.status());
    return false;
  }
  Record(k, *delta);
  if (at) SetExpiry(e, ctx, k, *at);
  return Save(ctx, k);
}

void CmdGet(Engine& e, CommandContext& ctx, const Args& a) {
  if (FastGet(ctx, a[1])) return;
  OpenKey k;
  if (OpenString(e, ctx, a[1], k)) ReplyStringValue(ctx, k);
}

void CmdMGet(Engine& e, CommandContext& ctx, const Args& a) {
  AppendArray(ctx.out, a.size() - 1);
  for (std::size_t i = 1; i < a.size(); ++i) {
    OpenKey k;
    std::string reply;
    CommandContext sub{ctx.txn, ctx.writable, ctx.now_ms, reply, ctx.changed, ctx.deltas, ctx.overlay};
    if (!Open(e, sub, a[i], Members::None(), k)) {
      AppendNull(ctx.out);  // MGET answers nil for what it cannot read
      continue;
    }
    ReplyStringValue(ctx, k);
  }
}

// SET key value [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL] [GET]
void CmdSet(Engine& e, CommandContext& ctx, const Args& a) {
  if (a.size() == 3 && FastSet(e, ctx, a[1], a[2])) return;
  std::optional<std::uint64_t> at;
  bool keepttl = false, get = false;
  for (std::size_t i = 3; i < a.size(); ++i) {
    std::string opt = Upper(a[i]);
    if (opt == "NX" || opt == "XX") {
      return Fail(ctx, "ERR SET " + opt +
                           " is not offered: a conditional write needs consensus or a "
                           "single owner of the key, and LatticeKV replicas accept writes "
                           "independently");
    }
    if (opt == "KEEPTTL" && !keepttl && !at) {
      keepttl = true;
    } else if (opt == "GET") {
      get = true;
    } else if (IsExpiryOption(opt) && i + 1 < a.size() && !at && !keepttl) {
      std::uint64_t deadline = 0;
      if (!ParseExpiry(ctx, opt, a[++i], "set", deadline)) return;
      at = deadline;
    } else {
      return Fail(ctx, "ERR syntax error");
    }
  }
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  std::string old_reply;
  if (get) {
    CommandContext sub{ctx.txn, ctx.writable, ctx.now_ms, old_reply, nullptr};
    ReplyStringValue(sub, k);
  }
  if (!WriteString(e, ctx, k, a[2], keepttl, at)) return;
  if (get) {
    ctx.out.append(old_reply);
  } else {
    AppendSimple(ctx.out, "OK");
  }
}

// GETSET key value: SET key value GET.
void CmdGetSet(Engine& e, CommandContext& ctx, const Args& a) { CmdSet(e, ctx, {a[0], a[1], a[2], "GET"}); }

// SETEX key seconds value / PSETEX key milliseconds value
void SetEx(Engine& e, CommandContext& ctx, const Args& a, const char* unit, const char* command) {
  std::uint64_t at = 0;
  if (!ParseExpiry(ctx, unit, a[2], command, at)) return;
  OpenKey k;
  if (OpenString(e, ctx, a[1], k) && WriteString(e, ctx, k, a[3], false, at)) AppendSimple(ctx.out, "OK");
}
void CmdSetEx(Engine& e, CommandContext& ctx, const Args& a) { SetEx(e, ctx, a, "EX", "setex"); }
void CmdPSetEx(Engine& e, CommandContext& ctx, const Args& a) { SetEx(e, ctx, a, "PX", "psetex"); }

void CmdMSet(Engine& e, CommandContext& ctx, const Args& a) {
  if (a.size() % 2 != 1) return Fail(ctx, "ERR wrong number of arguments for 'mset' command");
  std::vector<OpenKey> keys(a.size() / 2);
  for (std::size_t i = 0; i < keys.size(); ++i) {  // check every type before writing any
    if (!OpenString(e, ctx, a[1 + 2 * i], keys[i])) return;
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (!WriteString(e, ctx, keys[i], a[2 + 2 * i], false)) return;
  }
  AppendSimple(ctx.out, "OK");
}

void IncrBy(Engine& e, CommandContext& ctx, std::string_view key, std::int64_t by) {
  if (FastIncrBy(e, ctx, key, by)) return;
  OpenKey k;
  if (!OpenString(e, ctx, key, k)) return;
  // A string's value: its base (SET) plus the increments since it (DESIGN §2).
  std::optional<crdt::StringValue> value = k.state.String();
  std::optional<std::int64_t> current = value ? value->Integer() : std::int64_t{0};
  if (!current) return Fail(ctx, "ERR value is not an integer or out of range");
  std::int64_t result = 0;
  if ((value && value->overflow) || __builtin_add_overflow(*current, by, &result)) {
    return Fail(ctx, "ERR increment or decrement would overflow");
  }
  auto stamp = NewStamp(e);
  if (!MutateAndSave<crdt::PNCounter>(e, ctx, k, [&](crdt::PNCounter& v) {
        return v.Increment(e.replica(), by, stamp.hlc);
      })) {
    return;
  }
  AppendInt(ctx.out, *k.state.String()->Integer());
}

void CmdIncr(Engine& e, CommandContext& ctx, const Args& a) { IncrBy(e, ctx, a[1], 1); }
void CmdDecr(Engine& e, CommandContext& ctx, const Args& a) { IncrBy(e, ctx, a[1], -1); }
void CmdIncrBy(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t by = 0;
  if (ParseInt(ctx, a[2], by)) IncrBy(e, ctx, a[1], by);
}
void CmdDecrBy(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t by = 0;
  if (!ParseInt(ctx, a[2], by)) return;
  if (by == INT64_MIN) return Fail(ctx, "ERR decrement would overflow");
  IncrBy(e, ctx, a[1], -by);
}

void CmdStrLen(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  auto v = k.state.String();
  AppendInt(ctx.out, v ? static_cast<std::int64_t>(v->Size()) : 0);
}

// GETRANGE key start end (and SUBSTR), Redis's index rules.
void CmdGetRange(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t start = 0, end = 0;
  if (!ParseInt(ctx, a[2], start) || !ParseInt(ctx, a[3], end)) return;
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  const std::string s = TextOf(k);
  const auto len = static_cast<std::int64_t>(s.size());
  if (start < 0 && end < 0 && start > end) return AppendBulk(ctx.out, "");
  if (start < 0) start += len;
  if (end < 0) end += len;
  start = std::max<std::int64_t>(start, 0);
  end = std::max<std::int64_t>(end, 0);
  if (end >= len) end = len - 1;
  if (len == 0 || start > end) return AppendBulk(ctx.out, "");
  AppendBulk(ctx.out, std::string_view(s).substr(static_cast<std::size_t>(start), static_cast<std::size_t>(end - start + 1)));
}

// APPEND key value: an LWW write of the joined value (the TTL kept).
void CmdAppend(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  std::string value = TextOf(k);
  if (value.size() + a[2].size() > kMaxString) {
    return Fail(ctx, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  }
  value += a[2];
  if (WriteString(e, ctx, k, value, true)) AppendInt(ctx.out, static_cast<std::int64_t>(value.size()));
}

// SETRANGE key offset value: an LWW write of the patched value (the TTL kept).
void CmdSetRange(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t offset = 0;
  if (!ParseInt(ctx, a[2], offset)) return;
  if (offset < 0) return Fail(ctx, "ERR offset is out of range");
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  std::string value = TextOf(k);
  if (a[3].empty()) return AppendInt(ctx.out, static_cast<std::int64_t>(value.size()));  // nothing to write
  if (static_cast<std::uint64_t>(offset) + a[3].size() > kMaxString) {
    return Fail(ctx, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
  }
  const auto at = static_cast<std::size_t>(offset);
  if (value.size() < at + a[3].size()) value.resize(at + a[3].size(), '\0');
  value.replace(at, a[3].size(), a[3]);
  if (WriteString(e, ctx, k, value, true)) AppendInt(ctx.out, static_cast<std::int64_t>(value.size()));
}

// INCRBYFLOAT key increment: an LWW write of the sum computed here, as Redis
// replicates it (SET ... KEEPTTL).
void CmdIncrByFloat(Engine& e, CommandContext& ctx, const Args& a) {
  auto by = ParseLongDouble(a[2]);
  if (!by) return Fail(ctx, "ERR value is not a valid float");
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  auto v = k.state.String();
  auto current = v ? ParseLongDouble(v->Text()) : std::optional<long double>(0);
  if (!current) return Fail(ctx, "ERR value is not a valid float");
  const long double sum = *current + *by;
  if (std::isnan(sum) || std::isinf(sum)) return Fail(ctx, "ERR increment would produce NaN or Infinity");
  const std::string text = FormatLongDouble(sum);
  if (WriteString(e, ctx, k, text, true)) AppendBulk(ctx.out, text);
}

// GETDEL key
void CmdGetDel(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!Open(e, ctx, a[1], Members::All(), k) || WrongType(ctx, k, {CrdtType::kRegister, CrdtType::kCounter})) return;
  std::string reply;
  CommandContext sub{ctx.txn, ctx.writable, ctx.now_ms, reply, nullptr};
  ReplyStringValue(sub, k);
  if (k.state.Live()) {
    Record(k, k.state.Clear());
    if (!Save(ctx, k)) return;
  }
  ctx.out.append(reply);
}

// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
void CmdGetEx(Engine& e, CommandContext& ctx, const Args& a) {
  std::optional<std::uint64_t> at;
  bool persist = false;
  for (std::size_t i = 2; i < a.size(); ++i) {
    std::string opt = Upper(a[i]);
    if (opt == "PERSIST" && !at && !persist) {
      persist = true;
    } else if (IsExpiryOption(opt) && i + 1 < a.size() && !at && !persist) {
      std::uint64_t deadline = 0;
      if (!ParseExpiry(ctx, opt, a[++i], "getex", deadline)) return;
      at = deadline;
    } else {
      return Fail(ctx, "ERR syntax error");
    }
  }
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  std::string reply;
  CommandContext sub{ctx.txn, ctx.writable, ctx.now_ms, reply, nullptr};
  ReplyStringValue(sub, k);
  if (k.state.Live() && (at || (persist && k.state.ExpiresAt()))) {
    if (at) {
      SetExpiry(e, ctx, k, *at);
    } else {
      Record(k, k.state.Persist());
    }
    if (!Save(ctx, k)) return;
  }
  ctx.out.append(reply);
}

// A bit offset within a string of at most kMaxString bytes; false after Redis's error.
bool ParseBitOffset(CommandContext& ctx, const std::string& arg, std::int64_t& offset) {
  auto [p, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), offset);
  if (arg.empty() || ec != std::errc() || p != arg.data() + arg.size() || offset < 0 ||
      offset >= static_cast<std::int64_t>(kMaxString) * 8) {
    Fail(ctx, "ERR bit offset is not an integer or out of range");
    return false;
  }
  return true;
}

// GETBIT key offset (bits counted from each byte's most significant bit).
void CmdGetBit(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t offset = 0;
  if (!ParseBitOffset(ctx, a[2], offset)) return;
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  const std::string s = TextOf(k);
  const auto byte = static_cast<std::size_t>(offset / 8);
  AppendInt(ctx.out, byte < s.size() ? (static_cast<unsigned char>(s[byte]) >> (7 - offset % 8)) & 1 : 0);
}

// SETBIT key offset 0|1: an LWW write of the patched value (the TTL kept), as SETRANGE.
void CmdSetBit(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t offset = 0;
  if (!ParseBitOffset(ctx, a[2], offset)) return;
  if (a[3] != "0" && a[3] != "1") return Fail(ctx, "ERR bit is not an integer or out of range");
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  std::string s = TextOf(k);
  const auto byte = static_cast<std::size_t>(offset / 8);
  if (s.size() <= byte) s.resize(byte + 1, '\0');
  const int shift = 7 - static_cast<int>(offset % 8);
  const int old = (static_cast<unsigned char>(s[byte]) >> shift) & 1;
  const auto mask = static_cast<unsigned char>(1u << shift);
  s[byte] = static_cast<char>(a[3] == "1" ? (static_cast<unsigned char>(s[byte]) | mask)
                                          : (static_cast<unsigned char>(s[byte]) & ~mask));
  if (WriteString(e, ctx, k, s, true)) AppendInt(ctx.out, old);
}

// BITCOUNT key [start end [BYTE|BIT]], Redis's index rules.
void CmdBitCount(Engine& e, CommandContext& ctx, const Args& a) {
  std::int64_t start = 0, end = -1;
  bool bits = false;
  if (a.size() == 3 || a.size() > 5) return Fail(ctx, "ERR syntax error");
  if (a.size() >= 4 && (!ParseInt(ctx, a[2], start) || !ParseInt(ctx, a[3], end))) return;
  if (a.size() == 5) {
    const std::string unit = Upper(a[4]);
    if (unit != "BYTE" && unit != "BIT") return Fail(ctx, "ERR syntax error");
    bits = unit == "BIT";
  }
  OpenKey k;
  if (!OpenString(e, ctx, a[1], k)) return;
  const std::string s = TextOf(k);
  const std::int64_t total = static_cast<std::int64_t>(s.size()) * (bits ? 8 : 1);
  if (start < 0) start += total;
  if (end < 0) end += total;
  start = std::max<std::int64_t>(start, 0);
  end = std::max<std::int64_t>(end, 0);
  if (end >= total) end = total - 1;
  std::int64_t n = 0;
  for (std::int64_t i = start; total > 0 && i <= end; ++i) {
    if (bits) {
      n += (static_cast<unsigned char>(s[static_cast<std::size_t>(i / 8)]) >> (7 - i % 8)) & 1;
    } else {
      n += __builtin_popcount(static_cast<unsigned char>(s[static_cast<std::size_t>(i)]));
    }
  }
  AppendInt(ctx.out, n);
}

}  // namespace

void RegisterStringCommands(std::vector<CommandSpec>& t) {
  const CommandSpec more[] = {
      {"GET", 2, false, CmdGet},             {"MGET", -2, false, CmdMGet},
      {"SET", -3, true, CmdSet},             {"MSET", -3, true, CmdMSet},
      {"GETSET", 3, true, CmdGetSet},        {"SETEX", 4, true, CmdSetEx},
      {"PSETEX", 4, true, CmdPSetEx},        {"INCR", 2, true, CmdIncr},
      {"DECR", 2, true, CmdDecr},            {"INCRBY", 3, true, CmdIncrBy},
      {"DECRBY", 3, true, CmdDecrBy},        {"INCRBYFLOAT", 3, true, CmdIncrByFloat},
      {"STRLEN", 2, false, CmdStrLen},       {"GETRANGE", 4, false, CmdGetRange},
      {"SUBSTR", 4, false, CmdGetRange},     {"APPEND", 3, true, CmdAppend},
      {"SETRANGE", 4, true, CmdSetRange},    {"GETDEL", 2, true, CmdGetDel},
      {"GETEX", -2, true, CmdGetEx},         {"GETBIT", 3, false, CmdGetBit},
      {"SETBIT", 4, true, CmdSetBit},        {"BITCOUNT", -2, false, CmdBitCount},
  };
  t.insert(t.end(), std::begin(more), std::end(more));
}

}  // namespace lattice::node::detail
