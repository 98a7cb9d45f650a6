// RESP2 on the client side: requests written as multibulk arrays, replies
// parsed incrementally from whatever bytes have arrived.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "lattice/client.h"

namespace lattice::detail {

// Appends `args` to `out` as one RESP array of bulk strings.
void EncodeCommand(std::string& out, const std::vector<std::string>& args);
// The same with `prefix` before them (e.g. CL QUORUM).
void EncodeCommand(std::string& out, std::initializer_list<std::string_view> prefix,
                   const std::vector<std::string>& args);

class ReplyParser {
 public:
  enum class Status { kReply, kNeedMore, kBad };
  // Adds received bytes.
  void Feed(const char* data, std::size_t n) { buf_.append(data, n); }
  // Takes the next complete reply out of the buffer. kBad: the stream is not
  // RESP (the connection cannot be resynchronised).
  Status Next(Reply& out);
  // Limits a bulk string or array length the parser accepts (512 MiB / 16M).
  static constexpr std::int64_t kMaxBulk = 512LL << 20;
  static constexpr std::int64_t kMaxElements = 16LL << 20;
  static constexpr int kMaxDepth = 32;

 private:
  // On kNeedMore, `need` is a lower bound of the buffer size the reply needs,
  // so a large reply arriving in pieces is not parsed again for each piece.
  Status Parse(std::size_t& pos, Reply& out, int depth, std::size_t& need);
  bool Line(std::size_t& pos, std::string_view& line) const;
  std::string buf_;
  std::size_t start_ = 0;
  std::size_t need_ = 0;
};

}  // namespace lattice::detail
