// The client's pieces that need no server: its RESP reply parser, command
// lines, the values subscriptions carry, server errors as typed errors, and
// the command table (keys, idempotence).
#include <doctest/doctest.h>

#include <cstdlib>
#include <limits>
#include <random>

#include "client/src/core.h"
#include "client/src/resp.h"
#include "client/src/session.h"
#include "lattice/client.h"

namespace lattice::detail {
namespace {

TEST_CASE("client resp: replies parse whole or byte by byte, nested, with binary bulk strings") {
  std::string bulk("a\r\nb\0c", 6);
  std::string stream = "+OK\r\n-ERR bad\r\n:-42\r\n$6\r\n" + bulk + "\r\n$-1\r\n*2\r\n*1\r\n:1\r\n$0\r\n\r\n*0\r\n";
  for (std::size_t step : {stream.size(), std::size_t{1}, std::size_t{3}}) {
    ReplyParser p;
    std::vector<Reply> got;
    for (std::size_t i = 0; i < stream.size(); i += step) {
      p.Feed(stream.data() + i, std::min(step, stream.size() - i));
      Reply r;
      ReplyParser::Status s;
      while ((s = p.Next(r)) == ReplyParser::Status::kReply) got.push_back(r);
      REQUIRE(s == ReplyParser::Status::kNeedMore);
    }
    REQUIRE(got.size() == 7);
    CHECK(got[0].type == Reply::Type::kStatus);
    CHECK(got[0].str == "OK");
    CHECK(got[1].type == Reply::Type::kError);
    CHECK(got[2].integer == -42);
    CHECK(got[3].str == bulk);
    CHECK(got[4].type == Reply::Type::kNil);
    REQUIRE(got[5].elements.size() == 2);
    CHECK(got[5].elements[0].elements[0].integer == 1);
    CHECK(got[5].elements[1].str.empty());
    CHECK(got[6].type == Reply::Type::kArray);
    CHECK(got[6].elements.empty());
  }
}

TEST_CASE("client resp: a large reply arriving in pieces parses once complete, and an array header alone allocates little") {
  std::string stream = "*20000\r\n";
  for (int i = 0; i < 20000; ++i) stream += (i % 2 ? ":" + std::to_string(i) + "\r\n" : "$3\r\nabc\r\n");
  stream += "+next\r\n";
  ReplyParser p;
  std::vector<Reply> got;
  for (std::size_t i = 0; i < stream.size(); i += 100) {
    p.Feed(stream.data() + i, std::min<std::size_t>(100, stream.size() - i));
    Reply r;
    while (p.Next(r) == ReplyParser::Status::kReply) got.push_back(r);
  }
  REQUIRE(got.size() == 2);
  CHECK(got[0].elements.size() == 20000);
  CHECK(got[0].elements[19999].integer == 19999);
  CHECK(got[1].str == "next");
  ReplyParser q;
  std::string header = "*16000000\r\n";
  q.Feed(header.data(), header.size());
  Reply r;
  CHECK(q.Next(r) == ReplyParser::Status::kNeedMore);
}

TEST_CASE("client resp: what is not RESP is refused, not guessed") {
  for (std::string bad : {"?x\r\n", ":12a\r\n", "$5\r\nabc\r\nxx", "$-2\r\n", "*-5\r\n"}) {
    ReplyParser p;
    p.Feed(bad.data(), bad.size());
    Reply r;
    CHECK_MESSAGE(p.Next(r) == ReplyParser::Status::kBad, bad);
  }
  std::string out;
  EncodeCommand(out, {"CL", "ONE"}, {"SET", "k", ""});
  CHECK(out == "*5\r\n$2\r\nCL\r\n$3\r\nONE\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
}

TEST_CASE("client session tokens: a connection resumes what it lacks; concurrent calls keep both tokens") {
  SessionTokens tokens;
  SessionTokens::Held a, b;  // two connections
  std::vector<std::uint64_t> sent;
  CHECK(tokens.ToResume({"k"}, a, sent).empty());
  tokens.Store({"k"}, sent, "t1", a);                 // a call on a: a holds t1
  CHECK(tokens.ToResume({"k"}, a, sent).empty());
  CHECK(tokens.ToResume({"k"}, b, sent) == std::vector<std::string>{"t1"});
  CHECK(tokens.ToResume({"k"}, b, sent).empty());      // b holds it now
  // Two calls at once: on a (sent before t2 existed) and on b.
  std::vector<std::uint64_t> sent_a, sent_b;
  CHECK(tokens.ToResume({"k"}, a, sent_a).empty());
  CHECK(tokens.ToResume({"k"}, b, sent_b).empty());
  tokens.Store({"k"}, sent_b, "t2", b);                // b's answer first: replaces t1
  tokens.Store({"k"}, sent_a, "t3", a);                // a's did not see t2: both kept
  SessionTokens::Held c;
  CHECK(tokens.ToResume({"k"}, c, sent) == std::vector<std::string>{"t2", "t3"});
  // A call whose context was not resumed (sent = max) only adds its token.
  std::vector<std::uint64_t> none{std::numeric_limits<std::uint64_t>::max()};
  tokens.Store({"k"}, none, "t4", a);
  SessionTokens::Held d;
  CHECK(tokens.ToResume({"k"}, d, sent) == std::vector<std::string>{"t2", "t3", "t4"});
}

TEST_CASE("client: command lines split as redis-cli splits them") {
  CHECK(SplitCommandLine("SET k v") == std::vector<std::string>{"SET", "k", "v"});
  CHECK(SplitCommandLine("  SET \"a b\" 'c d'  ") == std::vector<std::string>{"SET", "a b", "c d"});
  CHECK(SplitCommandLine("SET k \"x\\ny\\x41\\\"\"") == std::vector<std::string>{"SET", "k", "x\nyA\""});
  CHECK(SplitCommandLine("SET k ''") == std::vector<std::string>{"SET", "k", ""});
  CHECK(SplitCommandLine("") == std::vector<std::string>{});
  CHECK_FALSE(SplitCommandLine("SET \"open").has_value());
  CHECK_FALSE(SplitCommandLine("SET \"a\"b").has_value());
}

TEST_CASE("client: subscription values decode what the node renders (random strings round-trip)") {
  const char* env = std::getenv("LATTICE_SEED");
  const std::uint64_t seed = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  INFO("replay: LATTICE_SEED=" << seed << " build/tests/unit/client_unit_test");
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string> items;
    Reply list{Reply::Type::kArray};
    Reply map{Reply::Type::kArray};
    std::map<std::string, std::string> want;
    for (int i = 0, n = static_cast<int>(rng() % 5); i < n; ++i) {
      std::string s;
      for (int j = 0, len = static_cast<int>(rng() % 6); j < len; ++j) s.push_back(static_cast<char>(rng() % 256));
      items.push_back(s);
      list.elements.push_back(Reply{Reply::Type::kBulk, s});
      map.elements.push_back(Reply{Reply::Type::kBulk, "f" + s});
      map.elements.push_back(Reply{Reply::Type::kBulk, s});
      want["f" + s] = s;
    }
    const std::string rendered_list = RenderValue("set", list);
    INFO(rendered_list);
    CHECK(ParseList(rendered_list) == items);
    CHECK(ParseMap(RenderValue("hash", map)) == want);
  }
  CHECK(ParseMap("{\"a\":\"1\",\"b\":\"x\\\"y\"}") == std::map<std::string, std::string>{{"a", "1"}, {"b", "x\"y"}});
  CHECK(ParseList("[]") == std::vector<std::string>{});
  CHECK_FALSE(ParseList("[\"a\",]").has_value());
  CHECK_FALSE(ParseMap("{\"a\"}").has_value());
  CHECK_FALSE(ParseMap("").has_value());
  CHECK(RenderValue("flag", Reply{Reply::Type::kInteger, "", 1}) == "1");
  CHECK(RenderValue("counter", Reply{Reply::Type::kBulk, "12"}) == "12");
}

TEST_CASE("client: error replies become typed errors with their counts") {
  auto e = ErrorFromReply(Reply{Reply::Type::kError, "UNAVAILABLE need 3 of 3 replicas, 2 reachable"});
  CHECK(e.code == Errc::kUnavailable);
  CHECK(e.required == 3);
  CHECK(e.reachable == 2);
  e = ErrorFromReply(Reply{Reply::Type::kError, "TIMEOUT acknowledged by 1 of 2 required replicas; the write may still apply"});
  CHECK(e.code == Errc::kTimeout);
  CHECK(e.acknowledged == 1);
  CHECK(e.required == 2);
  e = ErrorFromReply(Reply{Reply::Type::kError, "TIMEOUT answered by 0 of 2 required replicas"});
  CHECK(e.acknowledged == 0);
  CHECK(ErrorFromReply(Reply{Reply::Type::kError, "STALE no reachable replica covers ..."}).code == Errc::kStale);
  CHECK(ErrorFromReply(Reply{Reply::Type::kError, "WRONGTYPE Operation"}).code == Errc::kWrongType);
  CHECK(ErrorFromReply(Reply{Reply::Type::kError, "NOAUTH Authentication required."}).code == Errc::kAuth);
  CHECK(ErrorFromReply(Reply{Reply::Type::kError, "ERR value is not an integer or out of range"}).code ==
        Errc::kInvalidArgument);
  CHECK(ErrorFromReply(Reply{Reply::Type::kError, "ERR something else"}).code == Errc::kServer);
}

TEST_CASE("client: the command table knows keys and which calls must not be resent") {
  Call c = MakeCall({"MSET", "a", "1", "b", "2"});
  CHECK(c.keys == std::vector<std::string>{"a", "b"});
  CHECK(c.idempotent);
  CHECK(c.data);
  c = MakeCall({"incrby", "n", "2"});
  CHECK(c.keys == std::vector<std::string>{"n"});
  CHECK_FALSE(c.idempotent);
  CHECK_FALSE(MakeCall({"HINCRBY", "h", "f", "1"}).idempotent);
  CHECK(MakeCall({"DEL", "a", "b"}).keys.size() == 2);
  c = MakeCall({"CLUSTER", "NODES"});
  CHECK_FALSE(c.data);
  CHECK(c.idempotent);
  CHECK_FALSE(MakeCall({"CLUSTER", "FORGET", "n3"}).idempotent);
  CHECK_FALSE(MakeCall({"SHUTDOWN"}).idempotent);
  // Commands that would change a pooled connection's state are refused, unsent.
  CHECK_FALSE(MakeCall({"SUBSCRIBE", "k"}).refused.empty());
  CHECK_FALSE(MakeCall({"quit"}).refused.empty());
  CHECK_FALSE(MakeCall({"CLIENT", "REPLY", "OFF"}).refused.empty());
  CHECK(MakeCall({"CLIENT", "LIST"}).refused.empty());
  {
    // CL <level> becomes the call's level (nothing is sent: no node listens there).
    Client client({.nodes = {"127.0.0.1:1"}});
    auto op = client.Command({"CL", "all", "GET", "k"});
    CHECK(op.call().args == std::vector<std::string>{"GET", "k"});
    CHECK(op.call().level == Level::kAll);
    CHECK(op.call().keys == std::vector<std::string>{"k"});
    auto bad = client.CommandLine("GET \"k").Within(std::chrono::milliseconds(100)).Wait();
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().code == Errc::kInvalidArgument);
    auto bad_level = client.Command({"CL", "two", "GET", "k"}).Wait();
    REQUIRE_FALSE(bad_level.ok());
    CHECK(bad_level.error().code == Errc::kInvalidArgument);
    auto refused = client.Command({"SUBSCRIBE", "k"}).Wait();
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == Errc::kInvalidArgument);
    auto nobody = client.Command({"GET", "k"}).Within(std::chrono::milliseconds(300)).Wait();
    REQUIRE_FALSE(nobody.ok());
    CHECK(nobody.error().code == Errc::kNoNode);
  }
  CHECK(ParseLevel("quorum") == Level::kQuorum);
  CHECK_FALSE(ParseLevel("two").has_value());
}

}  // namespace
}  // namespace lattice::detail
