#include "client/src/resp.h"

#include <algorithm>
#include <charconv>

namespace lattice::detail {

namespace {

void Bulk(std::string& out, std::string_view s) {
  out.push_back('$');
  out.append(std::to_string(s.size()));
  out.append("\r\n");
  out.append(s);
  out.append("\r\n");
}

bool ToInt(std::string_view s, std::int64_t& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

void EncodeCommand(std::string& out, std::initializer_list<std::string_view> prefix,
                   const std::vector<std::string>& args) {
  out.push_back('*');
  out.append(std::to_string(prefix.size() + args.size()));
  out.append("\r\n");
  for (auto a : prefix) Bulk(out, a);
  for (const auto& a : args) Bulk(out, a);
}

void EncodeCommand(std::string& out, const std::vector<std::string>& args) { EncodeCommand(out, {}, args); }

bool ReplyParser::Line(std::size_t& pos, std::string_view& line) const {
  std::size_t end = buf_.find("\r\n", pos);
  if (end == std::string::npos) return false;
  line = std::string_view(buf_).substr(pos, end - pos);
  pos = end + 2;
  return true;
}

ReplyParser::Status ReplyParser::Parse(std::size_t& pos, Reply& out, int depth, std::size_t& need) {
  need = pos + 3;  // the shortest reply: "+\r\n"
  if (pos >= buf_.size()) return Status::kNeedMore;
  if (depth > kMaxDepth) return Status::kBad;
  const char type = buf_[pos++];
  std::string_view line;
  if (!Line(pos, line)) {
    need = buf_.size() + 1;
    return Status::kNeedMore;
  }
  out = Reply{};
  switch (type) {
    case '+':
      out.type = Reply::Type::kStatus;
      out.str.assign(line);
      return Status::kReply;
    case '-':
      out.type = Reply::Type::kError;
      out.str.assign(line);
      return Status::kReply;
    case ':':
      out.type = Reply::Type::kInteger;
      return ToInt(line, out.integer) ? Status::kReply : Status::kBad;
    case '$': {
      std::int64_t n = 0;
      if (!ToInt(line, n) || n < -1 || n > kMaxBulk) return Status::kBad;
      if (n == -1) {
        out.type = Reply::Type::kNil;
        return Status::kReply;
      }
      if (buf_.size() - pos < static_cast<std::size_t>(n) + 2) {
        need = pos + static_cast<std::size_t>(n) + 2;
        return Status::kNeedMore;
      }
      if (buf_.compare(pos + n, 2, "\r\n") != 0) return Status::kBad;
      out.type = Reply::Type::kBulk;
      out.str.assign(buf_, pos, static_cast<std::size_t>(n));
      pos += static_cast<std::size_t>(n) + 2;
      return Status::kReply;
    }
    case '*': {
      std::int64_t n = 0;
      if (!ToInt(line, n) || n < -1 || n > kMaxElements) return Status::kBad;
      if (n == -1) {
        out.type = Reply::Type::kNil;
        return Status::kReply;
      }
      out.type = Reply::Type::kArray;
      // Reserves what the bytes at hand can hold, not what the header claims.
      out.elements.reserve(std::min<std::size_t>(static_cast<std::size_t>(n), (buf_.size() - pos) / 3 + 1));
      for (std::int64_t i = 0; i < n; ++i) {
        Reply e;
        Status s = Parse(pos, e, depth + 1, need);
        if (s == Status::kNeedMore) need += 3 * static_cast<std::size_t>(n - i - 1);  // the rest, 3 bytes at least each
        if (s != Status::kReply) return s;
        out.elements.push_back(std::move(e));
      }
      return Status::kReply;
    }
    default:
      return Status::kBad;
  }
}

ReplyParser::Status ReplyParser::Next(Reply& out) {
  if (buf_.size() < need_) return Status::kNeedMore;
  std::size_t pos = start_;
  std::size_t need = 0;
  Status s = Parse(pos, out, 0, need);
  if (s == Status::kNeedMore) need_ = need;
  if (s != Status::kReply) return s;
  need_ = 0;
  start_ = pos;
  // Drops consumed bytes once they are the larger part of the buffer.
  if (start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  } else if (start_ > 65536 && start_ * 2 > buf_.size()) {
    buf_.erase(0, start_);
    start_ = 0;
  }
  return Status::kReply;
}

}  // namespace lattice::detail
