#include "node/resp.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace lattice::node {

namespace {

// Parses a decimal integer that fills `s` exactly.
bool ParseLen(std::string_view s, long long& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

ParseResult Error(std::string msg, std::size_t consumed, bool fatal) {
  ParseResult r;
  r.kind = ParseResult::Kind::kError;
  r.error = std::move(msg);
  r.consumed = consumed;
  r.fatal = fatal;
  return r;
}

bool IsHex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return (c | 0x20) - 'a' + 10;
}

// Splits an inline line like Redis's sdssplitargs: blanks separate arguments;
// "double quotes" take \n \r \t \b \a \\ \" and \xHH escapes; 'single quotes'
// take \'. False on unbalanced quotes.
bool SplitInline(std::string_view line, std::vector<std::string>& args) {
  std::size_t i = 0;
  const std::size_t n = line.size();
  while (true) {
    while (i < n && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i >= n) return true;
    std::string cur;
    bool in_dq = false, in_sq = false, done = false;
    while (!done) {
      if (in_dq) {
        if (i >= n) return false;
        char c = line[i];
        if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && IsHex(line[i + 2]) && IsHex(line[i + 3])) {
          cur.push_back(static_cast<char>(HexValue(line[i + 2]) * 16 + HexValue(line[i + 3])));
          i += 3;
        } else if (c == '\\' && i + 1 < n) {
          ++i;
          char e = line[i];
          cur.push_back(e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'a' ? '\a' : e);
        } else if (c == '"') {
          if (i + 1 < n && !std::isspace(static_cast<unsigned char>(line[i + 1]))) return false;
          done = true;
        } else {
          cur.push_back(c);
        }
      } else if (in_sq) {
        if (i >= n) return false;
        char c = line[i];
        if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
          ++i;
          cur.push_back('\'');
        } else if (c == '\'') {
          if (i + 1 < n && !std::isspace(static_cast<unsigned char>(line[i + 1]))) return false;
          done = true;
        } else {
          cur.push_back(c);
        }
      } else {
        if (i >= n) break;
        char c = line[i];
        if (std::isspace(static_cast<unsigned char>(c))) {
          done = true;
        } else if (c == '"') {
          in_dq = true;
        } else if (c == '\'') {
          in_sq = true;
        } else {
          cur.push_back(c);
        }
      }
      if (i < n) ++i;
    }
    args.push_back(std::move(cur));
  }
}

}  // namespace

namespace {

// ParseRequest's work; `args` may hold anything when it returns other than
// a command.
ParseResult ParseInto(std::string_view data, const RespLimits& limits, std::vector<std::string>& args) {
  ParseResult need_more;
  if (data.empty()) {
    args.clear();
    return need_more;
  }

  if (data[0] != '*') {
    args.clear();
    // Inline command: one line ending in \n (an optional \r before it).
    std::size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      if (data.size() > limits.max_inline) {
        return Error("Protocol error: too big inline request", data.size(), true);
      }
      return need_more;
    }
    if (nl > limits.max_inline) {
      return Error("Protocol error: too big inline request", nl + 1, false);
    }
    std::string_view line = data.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!SplitInline(line, args)) {
      args.clear();
      return Error("Protocol error: unbalanced quotes in request", nl + 1, false);
    }
    if (args.size() > limits.max_args) {
      args.clear();
      return Error("Protocol error: invalid multibulk length", nl + 1, false);
    }
    ParseResult r;
    r.kind = ParseResult::Kind::kCommand;
    r.consumed = nl + 1;
    return r;
  }

  // Multibulk: *<count>\r\n then <count> times $<len>\r\n<bytes>\r\n.
  std::size_t pos = 0;
  std::size_t eol = data.find("\r\n");
  if (eol == std::string_view::npos) {
    if (data.size() > limits.max_inline) {
      return Error("Protocol error: too big mbulk count string", data.size(), true);
    }
    return need_more;
  }
  long long count = 0;
  if (!ParseLen(data.substr(1, eol - 1), count) || count > static_cast<long long>(limits.max_args)) {
    return Error("Protocol error: invalid multibulk length", data.size(), true);
  }
  pos = eol + 2;
  if (count <= 0) {
    args.clear();
    ParseResult r;
    r.kind = ParseResult::Kind::kCommand;
    r.consumed = pos;
    return r;
  }
  // The strings `args` already holds are assigned, not made anew, so a
  // caller that parses into the same vector again reuses their buffers.
  args.reserve(static_cast<std::size_t>(std::min<long long>(count, 1024)));
  std::size_t filled = 0;
  for (long long i = 0; i < count; ++i) {
    if (pos >= data.size()) {
      args.clear();
      return need_more;
    }
    if (data[pos] != '$') {
      std::string got(1, data[pos]);
      args.clear();
      return Error("Protocol error: expected '$', got '" + got + "'", data.size(), true);
    }
    eol = data.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      args.clear();
      if (data.size() - pos > limits.max_inline) {
        return Error("Protocol error: too big bulk count string", data.size(), true);
      }
      return need_more;
    }
    long long len = 0;
    if (!ParseLen(data.substr(pos + 1, eol - pos - 1), len) || len < 0 ||
        static_cast<unsigned long long>(len) > limits.max_bulk) {
      args.clear();
      return Error("Protocol error: invalid bulk length", data.size(), true);
    }
    pos = eol + 2;
    std::size_t ulen = static_cast<std::size_t>(len);
    if (data.size() - pos < ulen + 2) {
      args.clear();
      return need_more;
    }
    if (data[pos + ulen] != '\r' || data[pos + ulen + 1] != '\n') {
      args.clear();
      return Error("Protocol error: expected CRLF after bulk data", data.size(), true);
    }
    if (filled < args.size()) {
      args[filled].assign(data.substr(pos, ulen));
    } else {
      args.emplace_back(data.substr(pos, ulen));
    }
    ++filled;
    pos += ulen + 2;
  }
  args.resize(filled);
  ParseResult r;
  r.kind = ParseResult::Kind::kCommand;
  r.consumed = pos;
  return r;
}

}  // namespace

ParseResult ParseRequest(std::string_view data, const RespLimits& limits,
                         std::vector<std::string>& args) {
  ParseResult r = ParseInto(data, limits, args);
  if (r.kind != ParseResult::Kind::kCommand) args.clear();
  return r;
}

void AppendSimple(std::string& out, std::string_view s) {
  out.push_back('+');
  out.append(s);
  out.append("\r\n");
}

void AppendError(std::string& out, std::string_view s) {
  out.push_back('-');
  // An error line must not contain newlines.
  for (char c : s) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
  out.append("\r\n");
}

void AppendInt(std::string& out, std::int64_t n) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.push_back(':');
  out.append(buf, p);
  out.append("\r\n");
}

void AppendBulk(std::string& out, std::string_view s) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, s.size());
  out.push_back('$');
  out.append(buf, p);
  out.append("\r\n");
  out.append(s);
  out.append("\r\n");
}

void AppendNull(std::string& out) { out.append("$-1\r\n"); }
void AppendNullArray(std::string& out) { out.append("*-1\r\n"); }

void AppendArray(std::string& out, std::size_t n) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.push_back('*');
  out.append(buf, p);
  out.append("\r\n");
}

namespace {

// Matches one pattern element at `p` (not '*') against `c`; sets `next` to the
// index after the element. False when it does not match.
bool MatchOne(std::string_view pattern, std::size_t p, char c, bool nocase, std::size_t& next) {
  auto lower = [&](char x) {
    return nocase ? static_cast<char>(std::tolower(static_cast<unsigned char>(x))) : x;
  };
  c = lower(c);
  if (pattern[p] == '?') {
    next = p + 1;
    return true;
  }
  if (pattern[p] == '[') {
    std::size_t q = p + 1;
    bool negate = q < pattern.size() && pattern[q] == '^';
    if (negate) ++q;
    bool match = false;
    while (q < pattern.size() && pattern[q] != ']') {
      if (pattern[q] == '\\' && q + 1 < pattern.size()) {
        ++q;
        match = match || lower(pattern[q]) == c;
      } else if (q + 2 < pattern.size() && pattern[q + 1] == '-' && pattern[q + 2] != ']') {
        char lo = lower(pattern[q]), hi = lower(pattern[q + 2]);
        if (lo > hi) std::swap(lo, hi);
        match = match || (c >= lo && c <= hi);
        q += 2;
      } else {
        match = match || lower(pattern[q]) == c;
      }
      ++q;
    }
    next = q < pattern.size() ? q + 1 : q;  // past ']' (an unclosed class ends the pattern)
    return match != negate;
  }
  if (pattern[p] == '\\' && p + 1 < pattern.size()) ++p;
  next = p + 1;
  return lower(pattern[p]) == c;
}

}  // namespace

// Iterative, with one backtracking point per '*': O(pattern x text) at worst,
// so a hostile SCAN MATCH pattern cannot stall the I/O thread.
bool GlobMatch(std::string_view pattern, std::string_view text, bool nocase) {
  std::size_t p = 0, t = 0;
  std::size_t star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    std::size_t next = 0;
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (p < pattern.size() && MatchOne(pattern, p, text[t], nocase, next)) {
      p = next;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

namespace {

// One RESP2 value at `pos` into `out`; false when the bytes do not parse.
bool Resp3Value(std::string_view in, std::size_t& pos, std::string& out, char top) {
  const std::size_t eol = in.find("\r\n", pos);
  if (eol == std::string_view::npos || eol == pos) return false;
  const char type = in[pos];
  const std::string_view line = in.substr(pos + 1, eol - pos - 1);
  if (type == '+' || type == '-' || type == ':') {
    out.append(in.substr(pos, eol + 2 - pos));
    pos = eol + 2;
    return true;
  }
  long long n = 0;
  auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), n);
  if (ec != std::errc() || p != line.data() + line.size()) return false;
  pos = eol + 2;
  if (n < 0) {  // a null bulk or a null array
    out.append("_\r\n");
    return true;
  }
  if (type == '$') {
    if (in.size() < pos + static_cast<std::size_t>(n) + 2) return false;
    out.append("$").append(line).append("\r\n").append(in.substr(pos, static_cast<std::size_t>(n) + 2));
    pos += static_cast<std::size_t>(n) + 2;
    return true;
  }
  if (type != '*') return false;
  if (top == '%' && n % 2 == 0) {
    out.append("%").append(std::to_string(n / 2)).append("\r\n");
  } else if (top == '~' || top == '>') {
    out.push_back(top);
    out.append(line).append("\r\n");
  } else {
    out.append("*").append(line).append("\r\n");
  }
  for (long long i = 0; i < n; ++i) {
    if (!Resp3Value(in, pos, out, 0)) return false;
  }
  return true;
}

}  // namespace

std::string ToResp3(std::string_view resp2, char top) {
  std::string out;
  out.reserve(resp2.size());
  std::size_t pos = 0;
  while (pos < resp2.size()) {
    if (!Resp3Value(resp2, pos, out, top)) return std::string(resp2);
  }
  return out;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace lattice::node
