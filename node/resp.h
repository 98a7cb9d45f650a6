// RESP2 on the server side: parsing requests (multibulk and inline, so `nc`
// works) and writing replies.
//
// The parser is incremental and never throws: feed it the unconsumed bytes,
// it reports a whole command, "need more", or a protocol error. Errors follow
// Redis's wording ("Protocol error: invalid bulk length", ...). An error is
// fatal when the stream cannot be resynchronised (a bad multibulk or bulk
// header); the connection must then be closed after the reply. A bad inline
// line is not fatal: the line is skipped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lattice::node {

struct RespLimits {
  std::size_t max_inline = 64 * 1024;             // inline line / multibulk header
  std::size_t max_bulk = std::size_t{512} << 20;  // one argument
  std::size_t max_args = 1024 * 1024;             // arguments in one command
};

struct ParseResult {
  enum class Kind { kNeedMore, kCommand, kError };
  Kind kind = Kind::kNeedMore;
  std::size_t consumed = 0;  // bytes to drop from the front (also for errors)
  std::string error;         // kError: the message, without "-ERR "
  bool fatal = false;        // kError: close the connection after replying
};

// Parses one request from the front of `data` into `args`: its arguments
// on a command, empty otherwise. The strings `args` holds are reused
// (assigned), so parsing into the same vector again allocates nothing for
// arguments that fit them. An empty line or an empty multibulk consumes
// bytes and yields a command with no arguments, which callers skip.
ParseResult ParseRequest(std::string_view data, const RespLimits& limits,
                         std::vector<std::string>& args);

// Reply writers: append one RESP2 value to `out`.
void AppendSimple(std::string& out, std::string_view s);  // +s
void AppendError(std::string& out, std::string_view s);   // -s (s starts with a code: "ERR ...")
void AppendInt(std::string& out, std::int64_t n);         // :n
void AppendBulk(std::string& out, std::string_view s);    // $len s
void AppendNull(std::string& out);                        // $-1
void AppendNullArray(std::string& out);                   // *-1
void AppendArray(std::string& out, std::size_t n);        // *n (elements follow)

// Redis's glob matching (stringmatchlen): * ? [abc] [^a] [a-z] and \ escapes.
bool GlobMatch(std::string_view pattern, std::string_view text, bool nocase = false);

// ASCII case of a command name or option (the protocol's case-insensitive words).
std::string Upper(std::string_view s);
std::string Lower(std::string_view s);

// A RESP2 reply (or several, back to back) as RESP3 sends it (HELLO 3): null
// bulks and null arrays become `_`, at any depth; the outermost array of each
// reply becomes `top` when given: '%' a map (of its element pairs), '~' a set,
// '>' a push message. Bytes that do not parse are returned as they are.
std::string ToResp3(std::string_view resp2, char top = 0);

}  // namespace lattice::node
