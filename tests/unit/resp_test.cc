// The RESP2 request parser and reply writers.
#include <doctest/doctest.h>

#include "node/resp.h"

namespace lattice::node {
namespace {

TEST_CASE("resp: multibulk, partial input and pipelining") {
  RespLimits limits;
  std::vector<std::string> args;
  std::string two = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n";
  for (std::size_t cut = 0; cut < 20; ++cut) {  // every truncation of the first command
    auto r = ParseRequest(std::string_view(two).substr(0, cut), limits, args);
    CHECK(r.kind == ParseResult::Kind::kNeedMore);
  }
  auto r = ParseRequest(two, limits, args);
  REQUIRE(r.kind == ParseResult::Kind::kCommand);
  CHECK(args == std::vector<std::string>{"GET", "k"});
  r = ParseRequest(std::string_view(two).substr(r.consumed), limits, args);
  CHECK(args == std::vector<std::string>{"PING"});
}

TEST_CASE("resp: inline commands with quotes") {
  RespLimits limits;
  std::vector<std::string> args;
  auto r = ParseRequest("SET \"a b\" 'c d' \"\\x41\\n\"\r\n", limits, args);
  REQUIRE(r.kind == ParseResult::Kind::kCommand);
  CHECK(args == std::vector<std::string>{"SET", "a b", "c d", "A\n"});
  r = ParseRequest("SET \"unbalanced\r\n", limits, args);
  CHECK(r.kind == ParseResult::Kind::kError);
  CHECK_FALSE(r.fatal);
}

TEST_CASE("resp: limits") {
  RespLimits limits;
  limits.max_bulk = 10;
  limits.max_args = 3;
  std::vector<std::string> args;
  auto r = ParseRequest("*4\r\n", limits, args);
  CHECK(r.error == "Protocol error: invalid multibulk length");
  CHECK(r.fatal);
  r = ParseRequest("*1\r\n$11\r\n", limits, args);
  CHECK(r.error == "Protocol error: invalid bulk length");
}

TEST_CASE("resp: replies and glob") {
  std::string out;
  AppendSimple(out, "OK");
  AppendError(out, "ERR a\r\nb");
  AppendInt(out, -5);
  AppendBulk(out, "xy");
  AppendNull(out);
  AppendArray(out, 2);
  CHECK(out == "+OK\r\n-ERR a  b\r\n:-5\r\n$2\r\nxy\r\n$-1\r\n*2\r\n");
  CHECK(GlobMatch("user:*", "user:42"));
  CHECK(GlobMatch("h?llo", "hello"));
  CHECK(GlobMatch("h[ae]llo", "hallo"));
  CHECK_FALSE(GlobMatch("h[^e]llo", "hello"));
  CHECK(GlobMatch("a[b-d]", "ac"));
  CHECK_FALSE(GlobMatch("a*b", "aaac"));
}

}  // namespace
}  // namespace lattice::node

namespace lattice::node {
namespace {

TEST_CASE("resp: glob matching is linear-ish on hostile patterns") {
  std::string text(5000, 'a');
  std::string pattern;
  for (int i = 0; i < 200; ++i) pattern += "a*";
  pattern += "b";
  CHECK_FALSE(GlobMatch(pattern, text));  // returns at once instead of exploring 2^200 paths
  CHECK(GlobMatch("*a*a*", text));
  CHECK(GlobMatch("h\\*llo", "h*llo"));
  CHECK_FALSE(GlobMatch("h\\*llo", "hello"));
  CHECK(GlobMatch("USER:*", "user:1", true));
  CHECK(GlobMatch("[abc", "b"));
  CHECK(GlobMatch("", ""));
  CHECK_FALSE(GlobMatch("", "x"));
  CHECK(GlobMatch("*", ""));
}

}  // namespace
}  // namespace lattice::node
