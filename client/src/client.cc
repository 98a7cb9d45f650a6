// The client's API surface: names, errors, the command table, values and the
// typed handles. No I/O here (that is core.cc).
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <set>
#include <unordered_map>

#include "client/src/core.h"
#include "lattice/client.h"

namespace lattice {

using detail::Upper;

namespace {


// The first integer after `after` in `text` (e.g. "need " in "need 2 of 3"), or -1.
int NumberAfter(std::string_view text, std::string_view after) {
  auto at = text.find(after);
  if (at == std::string_view::npos) return -1;
  at += after.size();
  int v = -1;
  auto [p, ec] = std::from_chars(text.data() + at, text.data() + text.size(), v);
  return ec == std::errc() ? v : -1;
}

// The node's rendering of values (node/engine.cc), mirrored here because the
// client shares no code with the server (DESIGN §1); ParseList/ParseMap are
// its inverse, and the subscription test checks the two agree.
void JsonString(std::string& out, std::string_view s) {
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

// A JSON string at `pos` (which is at its opening quote); only the escapes
// the node writes, plus the other simple ones.
bool ReadJsonString(std::string_view in, std::size_t& pos, std::string& out) {
  if (pos >= in.size() || in[pos] != '"') return false;
  ++pos;
  out.clear();
  while (pos < in.size()) {
    char c = in[pos++];
    if (c == '"') return true;
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (pos >= in.size()) return false;
    char e = in[pos++];
    switch (e) {
      case '"': case '\\': case '/': out.push_back(e); break;
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'u': {
        if (pos + 4 > in.size()) return false;
        unsigned v = 0;
        auto [p, ec] = std::from_chars(in.data() + pos, in.data() + pos + 4, v, 16);
        if (ec != std::errc() || p != in.data() + pos + 4 || v > 0xff) return false;  // the node escapes bytes only
        out.push_back(static_cast<char>(v));
        pos += 4;
        break;
      }
      default: return false;
    }
  }
  return false;
}

}  // namespace

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kOne: return "ONE";
    case Level::kQuorum: return "QUORUM";
    case Level::kAll: return "ALL";
  }
  return "QUORUM";
}

std::optional<Level> ParseLevel(std::string_view text) {
  const std::string u = Upper(text);
  if (u == "ONE") return Level::kOne;
  if (u == "QUORUM") return Level::kQuorum;
  if (u == "ALL") return Level::kAll;
  return std::nullopt;
}

std::string_view ErrcName(Errc code) {
  switch (code) {
    case Errc::kUnavailable: return "Unavailable";
    case Errc::kTimeout: return "Timeout";
    case Errc::kStale: return "Stale";
    case Errc::kWrongType: return "WrongType";
    case Errc::kOutcomeUnknown: return "OutcomeUnknown";
    case Errc::kNoNode: return "NoNode";
    case Errc::kAuth: return "Auth";
    case Errc::kInvalidArgument: return "InvalidArgument";
    case Errc::kProtocol: return "Protocol";
    case Errc::kServer: return "Server";
    case Errc::kClosed: return "Closed";
  }
  return "Server";
}

std::string Error::ToString() const { return std::string(ErrcName(code)) + ": " + message; }

std::string Reply::ToString() const {
  switch (type) {
    case Type::kStatus: return str;
    case Type::kError: return "(error) " + str;
    case Type::kInteger: return "(integer) " + std::to_string(integer);
    case Type::kNil: return "(nil)";
    case Type::kBulk: {
      std::string out = "\"";
      for (unsigned char c : str) {
        if (c == '"' || c == '\\') {
          out.push_back('\\');
          out.push_back(static_cast<char>(c));
        } else if (c == '\n') {
          out += "\\n";
        } else if (c == '\r') {
          out += "\\r";
        } else if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
      }
      return out + "\"";
    }
    case Type::kArray: {
      if (elements.empty()) return "(empty array)";
      std::string out;
      const std::string width = std::to_string(elements.size());
      for (std::size_t i = 0; i < elements.size(); ++i) {
        std::string n = std::to_string(i + 1) + ") ";
        n.insert(0, width.size() + 2 - n.size(), ' ');
        std::string item = elements[i].ToString();
        // Indents nested lines under their number.
        std::string indented;
        for (char c : item) {
          indented.push_back(c);
          if (c == '\n') indented.append(n.size(), ' ');
        }
        if (i) out.push_back('\n');
        out += n + indented;
      }
      return out;
    }
  }
  return {};
}

std::optional<std::vector<std::string>> SplitCommandLine(std::string_view line) {
  std::vector<std::string> out;
  std::size_t i = 0;
  const std::size_t n = line.size();
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  while (true) {
    while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) ++i;
    if (i >= n) return out;
    std::string arg;
    bool dq = false, sq = false;
    for (;;) {
      if (i >= n) {
        if (dq || sq) return std::nullopt;
        break;
      }
      char c = line[i];
      if (dq) {
        if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && hex(line[i + 2]) >= 0 && hex(line[i + 3]) >= 0) {
          arg.push_back(static_cast<char>(hex(line[i + 2]) * 16 + hex(line[i + 3])));
          i += 4;
          continue;
        }
        if (c == '\\' && i + 1 < n) {
          char e = line[i + 1];
          arg.push_back(e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'a' ? '\a' : e);
          i += 2;
          continue;
        }
        if (c == '"') {
          ++i;
          // A closing quote must end the argument.
          if (i < n && line[i] != ' ' && line[i] != '\t') return std::nullopt;
          break;
        }
        arg.push_back(c);
        ++i;
      } else if (sq) {
        if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
          arg.push_back('\'');
          i += 2;
          continue;
        }
        if (c == '\'') {
          ++i;
          if (i < n && line[i] != ' ' && line[i] != '\t') return std::nullopt;
          break;
        }
        arg.push_back(c);
        ++i;
      } else {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') break;
        if (c == '"' && arg.empty()) {
          dq = true;
        } else if (c == '\'' && arg.empty()) {
          sq = true;
        } else {
          arg.push_back(c);
        }
        ++i;
      }
    }
    out.push_back(std::move(arg));
  }
}

std::optional<std::vector<std::string>> ParseList(std::string_view v) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  if (v.empty() || v[pos++] != '[') return std::nullopt;
  if (pos < v.size() && v[pos] == ']') return pos + 1 == v.size() ? std::optional(out) : std::nullopt;
  std::string s;
  for (;;) {
    if (!ReadJsonString(v, pos, s)) return std::nullopt;
    out.push_back(s);
    if (pos >= v.size()) return std::nullopt;
    char c = v[pos++];
    if (c == ']') return pos == v.size() ? std::optional(out) : std::nullopt;
    if (c != ',') return std::nullopt;
  }
}

std::optional<std::map<std::string, std::string>> ParseMap(std::string_view v) {
  std::map<std::string, std::string> out;
  std::size_t pos = 0;
  if (v.empty() || v[pos++] != '{') return std::nullopt;
  if (pos < v.size() && v[pos] == '}') return pos + 1 == v.size() ? std::optional(out) : std::nullopt;
  std::string field, value;
  for (;;) {
    if (!ReadJsonString(v, pos, field)) return std::nullopt;
    if (pos >= v.size() || v[pos++] != ':') return std::nullopt;
    if (!ReadJsonString(v, pos, value)) return std::nullopt;
    out[field] = value;
    if (pos >= v.size()) return std::nullopt;
    char c = v[pos++];
    if (c == '}') return pos == v.size() ? std::optional(out) : std::nullopt;
    if (c != ',') return std::nullopt;
  }
}

namespace detail {

const CommandInfo* FindCommand(std::string_view name) {
  using K = CommandInfo::Keys;
  static const std::unordered_map<std::string, CommandInfo> table = {
      {"DEL", {K::kAll}},        {"UNLINK", {K::kAll}},     {"EXISTS", {K::kAll}},
      {"TYPE", {K::kFirst}},     {"EXPIRE", {K::kFirst}},   {"PEXPIRE", {K::kFirst}},
      {"TTL", {K::kFirst}},      {"PTTL", {K::kFirst}},     {"PERSIST", {K::kFirst}},
      {"SCAN", {K::kNone}},      {"DBSIZE", {K::kNone}},    {"GET", {K::kFirst}},
      {"MGET", {K::kAll}},       {"SET", {K::kFirst}},      {"MSET", {K::kPairs}},
      {"INCR", {K::kFirst, false}}, {"DECR", {K::kFirst, false}}, {"INCRBY", {K::kFirst, false}},
      {"DECRBY", {K::kFirst, false}}, {"MV.SET", {K::kFirst}}, {"MV.GET", {K::kFirst}},
      {"EXPLAIN", {K::kFirst}},  {"SADD", {K::kFirst}},     {"SREM", {K::kFirst}},
      {"SMEMBERS", {K::kFirst}}, {"SISMEMBER", {K::kFirst}}, {"SMISMEMBER", {K::kFirst}},
      {"SCARD", {K::kFirst}},    {"HSET", {K::kFirst}},     {"HMSET", {K::kFirst}},
      {"HGET", {K::kFirst}},     {"HMGET", {K::kFirst}},    {"HEXISTS", {K::kFirst}},
      {"HLEN", {K::kFirst}},     {"HGETALL", {K::kFirst}},  {"HKEYS", {K::kFirst}},
      {"HVALS", {K::kFirst}},    {"HDEL", {K::kFirst}},     {"HINCRBY", {K::kFirst, false}},
      {"HEXPIRE", {K::kFirst}},  {"HPEXPIRE", {K::kFirst}}, {"HTTL", {K::kFirst}},
      {"HPTTL", {K::kFirst}},    {"HPERSIST", {K::kFirst}}, {"FLAG.ENABLE", {K::kFirst}},
      {"FLAG.DISABLE", {K::kFirst}}, {"FLAG.GET", {K::kFirst}},
  };
  auto it = table.find(Upper(name));
  return it == table.end() ? nullptr : &it->second;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  return out;
}

void ReadIdempotence(const Reply& command_info, std::unordered_map<std::string, bool>& out) {
  if (command_info.type != Reply::Type::kArray) return;  // an older node: the client's table serves
  for (const auto& entry : command_info.elements) {
    if (entry.type != Reply::Type::kArray || entry.elements.size() < 3) continue;
    for (const auto& flag : entry.elements[2].elements) {
      if (flag.str == "idempotent") out[Upper(entry.elements[0].str)] = true;
      if (flag.str == "non_idempotent") out[Upper(entry.elements[0].str)] = false;
    }
  }
}

Call MakeCall(std::vector<std::string> args) {
  Call c;
  const CommandInfo* info = args.empty() ? nullptr : FindCommand(args[0]);
  if (info == nullptr) {
    // Not a data command: sent as it is, never resent once written.
    c.data = false;
    c.idempotent = false;
  } else {
    c.idempotent = info->idempotent;
    switch (info->keys) {
      case CommandInfo::Keys::kNone: break;
      case CommandInfo::Keys::kFirst:
        if (args.size() > 1) c.keys.push_back(args[1]);
        break;
      case CommandInfo::Keys::kAll: c.keys.assign(args.begin() + 1, args.end()); break;
      case CommandInfo::Keys::kPairs:
        for (std::size_t i = 1; i < args.size(); i += 2) c.keys.push_back(args[i]);
        break;
    }
  }
  // Reads and PING-like commands are safe to resend whatever the table says.
  const std::string u = args.empty() ? "" : Upper(args[0]);
  static const std::set<std::string> kConnectionState = {
      "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SSUBSCRIBE", "QUIT", "RESET", "AUTH", "HELLO",
      "SESSION", "MONITOR", "SELECT", "SYNC", "PSYNC", "CONSISTENCY", "CL"};
  if (kConnectionState.count(u) || (u == "CLIENT" && args.size() > 1 && Upper(args[1]) == "REPLY")) {
    c.refused = "'" + u + "' changes the state of a pooled connection; the client manages that itself (Subscribe(), "
                "Options::password, per-call levels with At())";
  }
  if (u == "PING" || u == "ECHO" || u == "INFO" || u == "TIME" || u == "COMMAND" ||
      (u == "CLUSTER" && args.size() > 1 && Upper(args[1]) != "JOIN" && Upper(args[1]) != "LEAVE" &&
       Upper(args[1]) != "FORGET")) {
    c.idempotent = true;
  }
  c.args = std::move(args);
  return c;
}

Error ErrorFromReply(const Reply& reply) {
  const std::string& s = reply.str;
  auto starts = [&](std::string_view p) { return s.rfind(p, 0) == 0; };
  Error e{Errc::kServer, s};
  if (starts("UNAVAILABLE")) {
    e.code = Errc::kUnavailable;
    e.required = NumberAfter(s, "need ");
    e.reachable = NumberAfter(s, "replicas, ");
  } else if (starts("TIMEOUT")) {
    e.code = Errc::kTimeout;
    e.acknowledged = NumberAfter(s, " by ");
    e.required = NumberAfter(s, " of ");
  } else if (starts("STALE")) {
    e.code = Errc::kStale;
  } else if (starts("WRONGTYPE")) {
    e.code = Errc::kWrongType;
  } else if (starts("NOAUTH") || starts("WRONGPASS")) {
    e.code = Errc::kAuth;
  } else if (starts("ERR wrong number") || starts("ERR syntax") || s.find("not an integer") != std::string::npos ||
             s.find("out of range") != std::string::npos || starts("ERR unknown command")) {
    e.code = Errc::kInvalidArgument;
  }
  return e;
}

std::string RenderValue(std::string_view type, const Reply& value) {
  std::string out;
  if (type == "flag") return value.integer != 0 ? "1" : "0";
  if (type == "set" || type == "mvregister") {
    out.push_back('[');
    for (std::size_t i = 0; i < value.elements.size(); ++i) {
      if (i) out.push_back(',');
      JsonString(out, value.elements[i].str);
    }
    out.push_back(']');
    return out;
  }
  if (type == "hash") {
    out.push_back('{');
    for (std::size_t i = 0; i + 1 < value.elements.size(); i += 2) {
      if (i) out.push_back(',');
      JsonString(out, value.elements[i].str);
      out.push_back(':');
      JsonString(out, value.elements[i + 1].str);
    }
    out.push_back('}');
    return out;
  }
  return value.type == Reply::Type::kInteger ? std::to_string(value.integer) : value.str;
}

}  // namespace detail

// ---- Client and Subscription --------------------------------------------------------

Client::Client(Options options) : core_(std::make_shared<detail::Core>(std::move(options))) {}

Client::~Client() { core_->Close(); }

Op<Reply> Client::Command(std::vector<std::string> args) {
  // CL <level> command...: the level of this call.
  std::optional<Level> level;
  const bool cl = !args.empty() && Upper(args[0]) == "CL";
  if (cl && args.size() > 2 && (level = ParseLevel(args[1]))) args.erase(args.begin(), args.begin() + 2);
  detail::Call call = detail::MakeCall(std::move(args));
  if (level) call.level = level;
  if (cl && !level) call.refused = "usage: CL <ONE|QUORUM|ALL> <command> [args...]";
  return Op<Reply>(core_, std::move(call), [](Reply&& r) -> Result<Reply> { return std::move(r); });
}

Op<Reply> Client::CommandLine(std::string_view line) {
  auto args = SplitCommandLine(line);
  detail::Call call;
  if (!args) {
    call.args = {"?"};
    call.refused = "unbalanced quotes";
    return Op<Reply>(core_, std::move(call), [](Reply&& r) -> Result<Reply> { return std::move(r); });
  }
  return Command(std::move(*args));
}

Subscription Client::Subscribe(std::string key, std::function<void(const Message&)> on_message) {
  Subscription s;
  s.core_ = core_;
  s.id_ = core_->Subscribe(std::move(key), std::move(on_message));
  return s;
}

Level Client::level() const { return core_->level(); }
void Client::SetLevel(Level level) { core_->SetLevel(level); }
std::string Client::CurrentNode() const { return core_->CurrentNode(); }
std::optional<bool> Client::Idempotent(std::string_view command) const { return core_->ServerIdempotent(Upper(command)); }

Subscription::Subscription(Subscription&& o) noexcept : core_(std::move(o.core_)), id_(o.id_) { o.id_ = 0; }

Subscription& Subscription::operator=(Subscription&& o) noexcept {
  if (this != &o) {
    Unsubscribe();
    core_ = std::move(o.core_);
    id_ = o.id_;
    o.id_ = 0;
  }
  return *this;
}

Subscription::~Subscription() { Unsubscribe(); }

void Subscription::Unsubscribe() {
  if (core_ && id_ != 0) core_->Unsubscribe(id_);
  core_.reset();
  id_ = 0;
}

bool Subscription::WaitActive(std::chrono::milliseconds timeout) {
  return core_ && id_ != 0 && core_->WaitActive(id_, timeout);
}

// ---- typed handles ------------------------------------------------------------------

namespace {

using std::chrono::milliseconds;

Result<Reply> Unexpected(const Reply& r) {
  return Error{Errc::kProtocol, "unexpected reply: " + r.ToString()};
}

Result<void> ToOk(Reply&& r) {
  if (r.type == Reply::Type::kStatus) return {};
  return Unexpected(r).error();
}

Result<std::int64_t> ToInt(Reply&& r) {
  if (r.type == Reply::Type::kInteger) return r.integer;
  if (r.type == Reply::Type::kBulk) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(r.str.data(), r.str.data() + r.str.size(), v);
    if (ec == std::errc() && p == r.str.data() + r.str.size()) return v;
  }
  if (r.type == Reply::Type::kNil) return std::int64_t{0};
  return Unexpected(r).error();
}

Result<bool> ToBool(Reply&& r) {
  if (r.type == Reply::Type::kInteger) return r.integer != 0;
  return Unexpected(r).error();
}

Result<std::optional<std::string>> ToOptString(Reply&& r) {
  if (r.type == Reply::Type::kNil) return std::optional<std::string>();
  if (r.type == Reply::Type::kBulk || r.type == Reply::Type::kStatus) return std::optional<std::string>(std::move(r.str));
  return Unexpected(r).error();
}

Result<std::string> ToString(Reply&& r) {
  if (r.type == Reply::Type::kBulk || r.type == Reply::Type::kStatus) return std::move(r.str);
  if (r.type == Reply::Type::kArray) {
    // EXPLAIN answers one line per element.
    std::string out;
    for (auto& e : r.elements) out += e.str + "\n";
    return out;
  }
  return Unexpected(r).error();
}

Result<std::vector<std::string>> ToList(Reply&& r) {
  if (r.type != Reply::Type::kArray) return Unexpected(r).error();
  std::vector<std::string> out;
  for (auto& e : r.elements) out.push_back(std::move(e.str));
  return out;
}

Result<std::map<std::string, std::string>> ToMap(Reply&& r) {
  if (r.type != Reply::Type::kArray || r.elements.size() % 2 != 0) return Unexpected(r).error();
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) out[r.elements[i].str] = std::move(r.elements[i + 1].str);
  return out;
}

// PTTL: -2 no key, -1 no TTL.
Result<std::optional<milliseconds>> ToTtl(Reply&& r) {
  if (r.type != Reply::Type::kInteger) return Unexpected(r).error();
  if (r.integer < 0) return std::optional<milliseconds>();
  return std::optional<milliseconds>(milliseconds(r.integer));
}

// Per-field replies (HPEXPIRE, HPTTL, HPERSIST) are one-element arrays.
Reply First(Reply&& r) {
  if (r.type == Reply::Type::kArray && r.elements.size() == 1) return std::move(r.elements[0]);
  return std::move(r);
}

}  // namespace

Key::Key(Client& client, std::string key) : core_(client.core()), key_(std::move(key)) {}

template <class T>
Op<T> Key::Make(std::vector<std::string> args, typename Op<T>::Convert convert, bool idempotent) const {
  detail::Call call;
  call.keys = {key_};
  call.idempotent = idempotent;
  call.args = std::move(args);
  return Op<T>(core_, std::move(call), convert);
}

Op<bool> Key::Delete() { return Make<bool>({"DEL", key_}, ToBool); }
Op<bool> Key::Exists() { return Make<bool>({"EXISTS", key_}, ToBool); }
Op<bool> Key::Expire(milliseconds ttl) { return Make<bool>({"PEXPIRE", key_, std::to_string(ttl.count())}, ToBool); }
Op<std::optional<milliseconds>> Key::Ttl() { return Make<std::optional<milliseconds>>({"PTTL", key_}, ToTtl); }
Op<bool> Key::Persist() { return Make<bool>({"PERSIST", key_}, ToBool); }
Op<std::string> Key::Type() { return Make<std::string>({"TYPE", key_}, ToString); }
Op<std::string> Key::Explain() { return Make<std::string>({"EXPLAIN", key_}, ToString); }

Op<std::int64_t> Counter::Increment(std::int64_t by) {
  return Make<std::int64_t>({"INCRBY", key_, std::to_string(by)}, ToInt, false);
}
Op<std::int64_t> Counter::Decrement(std::int64_t by) {
  return Make<std::int64_t>({"DECRBY", key_, std::to_string(by)}, ToInt, false);
}
Op<std::int64_t> Counter::Get() { return Make<std::int64_t>({"GET", key_}, ToInt); }

Op<void> Register::Set(std::string value, std::optional<milliseconds> ttl) {
  std::vector<std::string> args{"SET", key_, std::move(value)};
  if (ttl) {
    args.push_back("PX");
    args.push_back(std::to_string(ttl->count()));
  }
  return Make<void>(std::move(args), ToOk);
}
Op<std::optional<std::string>> Register::Get() { return Make<std::optional<std::string>>({"GET", key_}, ToOptString); }

Op<void> MultiValue::Set(std::string value) { return Make<void>({"MV.SET", key_, std::move(value)}, ToOk); }
Op<std::vector<std::string>> MultiValue::Get() { return Make<std::vector<std::string>>({"MV.GET", key_}, ToList); }

Op<std::int64_t> Set::Add(std::vector<std::string> members) {
  members.insert(members.begin(), {"SADD", key_});
  return Make<std::int64_t>(std::move(members), ToInt);
}
Op<std::int64_t> Set::Remove(std::vector<std::string> members) {
  members.insert(members.begin(), {"SREM", key_});
  return Make<std::int64_t>(std::move(members), ToInt);
}
Op<std::vector<std::string>> Set::Members() { return Make<std::vector<std::string>>({"SMEMBERS", key_}, ToList); }
Op<bool> Set::Contains(std::string member) { return Make<bool>({"SISMEMBER", key_, std::move(member)}, ToBool); }
Op<std::int64_t> Set::Size() { return Make<std::int64_t>({"SCARD", key_}, ToInt); }

Op<std::int64_t> Map::Set(std::string field, std::string value) {
  return Make<std::int64_t>({"HSET", key_, std::move(field), std::move(value)}, ToInt);
}
Op<std::int64_t> Map::Set(std::vector<std::pair<std::string, std::string>> fields) {
  std::vector<std::string> args{"HSET", key_};
  for (auto& [f, v] : fields) {
    args.push_back(std::move(f));
    args.push_back(std::move(v));
  }
  return Make<std::int64_t>(std::move(args), ToInt);
}
Op<std::optional<std::string>> Map::Get(std::string field) {
  return Make<std::optional<std::string>>({"HGET", key_, std::move(field)}, ToOptString);
}
Op<std::int64_t> Map::Remove(std::vector<std::string> fields) {
  fields.insert(fields.begin(), {"HDEL", key_});
  return Make<std::int64_t>(std::move(fields), ToInt);
}
Op<std::map<std::string, std::string>> Map::All() {
  return Make<std::map<std::string, std::string>>({"HGETALL", key_}, ToMap);
}
Op<std::vector<std::string>> Map::Fields() { return Make<std::vector<std::string>>({"HKEYS", key_}, ToList); }
Op<std::int64_t> Map::Size() { return Make<std::int64_t>({"HLEN", key_}, ToInt); }
Op<std::int64_t> Map::Increment(std::string field, std::int64_t by) {
  return Make<std::int64_t>({"HINCRBY", key_, std::move(field), std::to_string(by)}, ToInt, false);
}
Op<bool> Map::ExpireField(std::string field, milliseconds ttl) {
  return Make<bool>({"HPEXPIRE", key_, std::to_string(ttl.count()), "FIELDS", "1", std::move(field)},
                    [](Reply&& r) -> Result<bool> {
                      Reply f = First(std::move(r));
                      if (f.type != Reply::Type::kInteger) return Unexpected(f).error();
                      return f.integer == 1 || f.integer == 2;
                    });
}
Op<std::optional<milliseconds>> Map::FieldTtl(std::string field) {
  return Make<std::optional<milliseconds>>({"HPTTL", key_, "FIELDS", "1", std::move(field)},
                                           [](Reply&& r) { return ToTtl(First(std::move(r))); });
}
Op<bool> Map::PersistField(std::string field) {
  return Make<bool>({"HPERSIST", key_, "FIELDS", "1", std::move(field)}, [](Reply&& r) -> Result<bool> {
    Reply f = First(std::move(r));
    if (f.type != Reply::Type::kInteger) return Unexpected(f).error();
    return f.integer == 1;
  });
}

Op<void> Flag::Enable() { return Make<void>({"FLAG.ENABLE", key_}, ToOk); }
Op<void> Flag::Disable() { return Make<void>({"FLAG.DISABLE", key_}, ToOk); }
Op<bool> Flag::Get() { return Make<bool>({"FLAG.GET", key_}, ToBool); }

}  // namespace lattice
