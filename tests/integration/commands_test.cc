// Every command's reply format against a real latticed, over a raw socket and
// through redis-cli.
#include <doctest/doctest.h>

#include <filesystem>
#include <thread>

#include "tests/integration/harness.h"

namespace lattice::test {
namespace {

using Cmd = std::vector<std::string>;

// Runs commands in order and checks each reply's rendering.
void Expect(Client& c, const std::vector<std::pair<Cmd, std::string>>& script) {
  for (const auto& [cmd, want] : script) {
    std::string shown = c.Call(cmd).Show();
    std::string text;
    for (const auto& a : cmd) text += a + " ";
    INFO("command: " << text);
    CHECK(shown == want);
  }
}

TEST_CASE("commands: strings, counters, keys") {
  Node node;
  REQUIRE(node.Start());
  Client c(node.port());
  Expect(c, {
      {{"PING"}, "+PONG"},
      {{"PING", "hi"}, "\"hi\""},
      {{"ECHO", "x y"}, "\"x y\""},
      {{"SET", "s", "hello"}, "+OK"},
      {{"GET", "s"}, "\"hello\""},
      {{"GET", "missing"}, "(nil)"},
      {{"SET", "s", "bin\r\n\0x"}, "+OK"},
      {{"STRLEN", "s"}, ":5"},
      {{"SET", "s", "v2", "GET"}, "\"bin\r\n\"" },
      {{"MSET", "a", "1", "b", "2"}, "+OK"},
      {{"MGET", "a", "b", "nope"}, "[\"1\", \"2\", (nil)]"},
      {{"INCR", "n"}, ":1"},
      {{"INCRBY", "n", "41"}, ":42"},
      {{"DECR", "n"}, ":41"},
      {{"DECRBY", "n", "40"}, ":1"},
      {{"GET", "n"}, "\"1\""},
      {{"INCRBY", "n", "x"}, "-ERR value is not an integer or out of range"},
      {{"INCRBY", "n", "9223372036854775807"}, "-ERR increment or decrement would overflow"},
      {{"INCR", "s"}, "-ERR value is not an integer or out of range"},
      // One string type (DESIGN §2): SET and INCR both work on it.
      {{"SET", "n", "x"}, "+OK"},
      {{"GET", "n"}, "\"x\""},
      {{"INCR", "n"}, "-ERR value is not an integer or out of range"},
      {{"SET", "n", "41"}, "+OK"},
      {{"INCR", "n"}, ":42"},
      {{"GET", "n"}, "\"42\""},
      {{"TYPE", "n"}, "+string"},
      {{"TYPE", "s"}, "+string"},
      {{"TYPE", "zz"}, "+none"},
      {{"EXISTS", "a", "b", "zz"}, ":2"},
      {{"DEL", "a", "zz"}, ":1"},
      {{"EXISTS", "a"}, ":0"},
      {{"DBSIZE"}, ":3"},
      {{"TTL", "b"}, ":-1"},
      {{"TTL", "zz"}, ":-2"},
      {{"EXPIRE", "b", "100"}, ":1"},
      {{"TTL", "b"}, ":100"},
      {{"EXPIRE", "b", "50", "GT"}, ":0"},
      {{"PEXPIRE", "b", "50000", "LT"}, ":1"},
  });
  Reply pttl = c.Call({"PTTL", "b"});
  CHECK(pttl.num > 49000);
  CHECK(pttl.num <= 50000);
  Expect(c, {
      {{"PERSIST", "b"}, ":1"},
      {{"PERSIST", "b"}, ":0"},
      {{"TTL", "b"}, ":-1"},
      {{"SET", "t", "v", "PX", "100000"}, "+OK"},
      {{"SET", "t", "v2", "KEEPTTL"}, "+OK"},
      {{"SET", "t", "v", "NX"}, "-ERR SET NX is not offered: a conditional write needs consensus or a single owner of the key, and LatticeKV replicas accept writes independently"},
      {{"SETNX", "t", "v"}, "-ERR SETNX is not offered by LatticeKV: a conditional write needs consensus or a single owner of the key (see README)"},
      {{"MULTI"}, "-ERR MULTI is not offered by LatticeKV: transactions need a single owner of every key they touch (see README)"},
      {{"EXPIRE", "t", "0"}, ":1"},
      {{"GET", "t"}, "(nil)"},
      {{"GET"}, "-ERR wrong number of arguments for 'get' command"},
      {{"SELECT", "0"}, "+OK"},
      {{"SELECT", "1"}, "-ERR DB index is out of range"},
      {{"CONSISTENCY"}, "+QUORUM"},
      {{"CONSISTENCY", "one"}, "+OK"},
      {{"CONSISTENCY"}, "+ONE"},
      {{"CL", "ALL", "GET", "b"}, "\"2\""},
      {{"CL", "SOME", "GET", "b"}, "-ERR consistency level must be ONE, QUORUM or ALL"},
      {{"MV.SET", "mv", "x"}, "+OK"},
      {{"MV.GET", "mv"}, "[\"x\"]"},
      {{"MV.GET", "none"}, "[]"},
      {{"FLAG.GET", "f"}, ":0"},
      {{"FLAG.ENABLE", "f"}, "+OK"},
      {{"FLAG.GET", "f"}, ":1"},
      {{"FLAG.DISABLE", "f"}, "+OK"},
      {{"FLAG.GET", "f"}, ":0"},
      {{"CONFIG", "GET", "appendonly"}, "[\"appendonly\", \"no\"]"},
      {{"CLIENT", "SETNAME", "me"}, "+OK"},
      {{"CLIENT", "GETNAME"}, "\"me\""},
      {{"AUTH", "x"}, "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
      {{"HELLO", "4"}, "-NOPROTO unsupported protocol version"},
  });
  Reply scan = c.Call({"SCAN", "0", "COUNT", "1000"});
  REQUIRE(scan.elems.size() == 2);
  CHECK(scan.elems[0].str == "0");
  CHECK(scan.elems[1].elems.size() == 5);  // s b n mv f
  Reply info = c.Call({"INFO", "keyspace"});
  CHECK(info.str.find("db0:keys=5") != std::string::npos);
  Reply explain = c.Call({"EXPLAIN", "n"});
  REQUIRE(explain.type == '*');
  CHECK(explain.elems[0].str == "type: string");
  // n was SET to 41, then INCRed: EXPLAIN shows the base and the increments.
  bool shown = false;
  for (const Reply& line : explain.elems) shown = shown || line.str == "string: base '41', increments since it 1";
  CHECK(shown);
}

// tests/fixtures/strings_0_data.tar.gz: a data directory the release before
// strings counted wrote (node fx1: counters and registers, a map with a
// counter field, a set, a key with a TTL; the last writes only in its log,
// the process killed). Its counters and registers read as strings.
TEST_CASE("commands: a data directory written before strings counted reads its counters and registers as strings") {
  Node node({}, "fx1");
  std::filesystem::create_directories(node.data_dir());
  REQUIRE(ShellRun("tar -xzf " FIXTURES_DIR "/strings_0_data.tar.gz --strip-components=1 -C " + node.data_dir())
              .status == 0);
  REQUIRE(node.Start());
  Client c(node.port());
  const std::vector<std::pair<Cmd, std::string>> steps = {
      {{"DBSIZE"}, ":10"},
      {{"GET", "reg"}, "\"hello\""},
      {{"GET", "num"}, "\"100\""},
      {{"INCR", "num"}, ":101"},  // a register of the old release: the base
      {{"GET", "cnt"}, "\"5\""},
      {{"TYPE", "cnt"}, "+string"},
      {{"INCR", "cnt"}, ":6"},  // a counter of the old release: the increments
      {{"SET", "cnt", "7"}, "+OK"},
      {{"INCR", "cnt"}, ":8"},
      {{"DECR", "neg"}, ":-2"},
      {{"APPEND", "reg", "!"}, ":6"},
      {{"GET", "walcnt"}, "\"7\""},  // replayed from the log
      {{"INCRBY", "walcnt", "3"}, ":10"},
      {{"GET", "walreg"}, "\"world\""},
      {{"HGET", "h", "name"}, "\"alice\""},
      {{"HGET", "h", "visits"}, "\"3\""},
      {{"HINCRBY", "h", "visits", "1"}, ":4"},
      {{"HSET", "h", "visits", "10"}, ":0"},
      {{"HINCRBY", "h", "visits", "1"}, ":11"},
      {{"HINCRBY", "h", "name", "1"}, "-ERR hash value is not an integer"},
      {{"HGET", "h2", "n"}, "\"4\""},
      {{"SMEMBERS", "s"}, "[\"a\", \"b\"]"},
      {{"GET", "ttlkey"}, "\"v\""},
  };
  for (const auto& [cmd, want] : steps) {
    CAPTURE(cmd[0]);
    CHECK(c.Call(cmd).Show() == want);
  }
  CHECK(c.Call({"TTL", "ttlkey"}).num > 0);
}

// Redis's INCR page, the rate limiter: INCR; EXPIRE; INCR. The second INCR
// keeps the TTL, so the key (both increments) is gone once it passes.
TEST_CASE("commands: INCR after EXPIRE goes with the key; HINCRBY after HEXPIRE with the field") {
  Node node;
  REQUIRE(node.Start());
  Client c(node.port());
  REQUIRE(c.Call({"INCR", "rl"}).num == 1);
  REQUIRE(c.Call({"PEXPIRE", "rl", "400"}).num == 1);
  REQUIRE(c.Call({"INCR", "rl"}).num == 2);
  CHECK(c.Call({"PTTL", "rl"}).num > 0);
  REQUIRE(c.Call({"HINCRBY", "h", "f", "1"}).num == 1);
  REQUIRE(c.Call({"HPEXPIRE", "h", "400", "FIELDS", "1", "f"}).Show() == "[:1]");
  REQUIRE(c.Call({"HINCRBY", "h", "f", "1"}).num == 2);
  CHECK(WaitFor([&] { return c.Call({"EXISTS", "rl"}).num == 0 && c.Call({"HEXISTS", "h", "f"}).num == 0; },
                std::chrono::seconds(5)));
  // And the next INCR starts again from nothing.
  CHECK(c.Call({"INCR", "rl"}).num == 1);
  CHECK(c.Call({"TTL", "rl"}).num == -1);
}

TEST_CASE("commands: INFO sections with Redis's field names; commandstats counts calls and failures") {
  Node node;
  REQUIRE(node.Start());
  Client c(node.port());
  REQUIRE(c.Call({"SET", "a", "1"}).Show() == "+OK");
  REQUIRE(c.Call({"GET", "a"}).Show() == "\"1\"");
  REQUIRE(c.Call({"SADD", "a", "x"}).type == '-');
  const std::string all = c.Call({"INFO", "everything"}).str;
  for (const char* field : {"# Server", "redis_version:", "process_id:", "uptime_in_seconds:", "# Clients",
                            "connected_clients:1", "# Memory", "used_memory:", "used_memory_rss:", "# Persistence",
                            "loading:0", "# Stats", "total_commands_processed:", "total_net_input_bytes:",
                            "# Replication", "role:master", "# CPU", "used_cpu_sys:", "used_cpu_user:",
                            "# Commandstats", "cmdstat_set:calls=1,", "cmdstat_get:calls=1,",
                            "# Keyspace", "db0:keys=1"}) {
    CAPTURE(field);
    CHECK(all.find(field) != std::string::npos);
  }
  const std::string stats = c.Call({"INFO", "commandstats"}).str;
  CHECK(stats.find("cmdstat_sadd:calls=1,") != std::string::npos);
  CHECK(stats.find("cmdstat_sadd:calls=1,usec=") != std::string::npos);
  CHECK(stats.find("failed_calls=1\r\n") != std::string::npos);  // SADD's WRONGTYPE
  CHECK(c.Call({"INFO"}).str.find("cmdstat_") == std::string::npos);  // not a default section
}

// RESP3 (HELLO 3): maps, sets, nulls and push messages as Redis 7 sends them
// (the bytes compared with redis-server's for the same commands).
TEST_CASE("commands: HELLO 3 switches the connection to RESP3") {
  Node node;
  REQUIRE(node.Start());
  Client c(node.port());
  REQUIRE(c.Call({"HSET", "h", "f", "v"}).num == 1);
  REQUIRE(c.Call({"SADD", "s", "x"}).num == 1);
  const std::string out = Shell("printf 'HELLO 3\\r\\nHGETALL h\\r\\nSMEMBERS s\\r\\nMGET h nokey\\r\\n"
                                "GET nokey\\r\\nHELLO 2\\r\\nGET nokey\\r\\nSUBSCRIBE k\\r\\n' | "
                                "timeout 5 nc -q1 127.0.0.1 " +
                                std::to_string(node.port()));
  CHECK(out.rfind("%7\r\n$6\r\nserver\r\n", 0) == 0);
  CHECK(out.find("$5\r\nproto\r\n:3\r\n") != std::string::npos);
  CHECK(out.find("%1\r\n$1\r\nf\r\n$1\r\nv\r\n") != std::string::npos);  // HGETALL: a map
  CHECK(out.find("~1\r\n$1\r\nx\r\n") != std::string::npos);                // SMEMBERS: a set
  CHECK(out.find("*2\r\n_\r\n_\r\n") != std::string::npos);  // MGET of a hash and a missing key: nulls
  CHECK(out.find("$-1\r\n") != std::string::npos);               // after HELLO 2: RESP2's null
}

TEST_CASE("commands: sets and maps, with field expiry") {
  Node node;
  REQUIRE(node.Start());
  Client c(node.port());
  Expect(c, {
      {{"SADD", "s", "a", "b", "a"}, ":2"},
      {{"SADD", "s", "b", "c"}, ":1"},
      {{"SCARD", "s"}, ":3"},
      {{"SISMEMBER", "s", "a"}, ":1"},
      {{"SISMEMBER", "s", "z"}, ":0"},
      {{"SMISMEMBER", "s", "a", "z"}, "[:1, :0]"},
      {{"SREM", "s", "a", "z"}, ":1"},
      {{"SMEMBERS", "s"}, "[\"b\", \"c\"]"},
      {{"SMEMBERS", "none"}, "[]"},
      {{"SCARD", "none"}, ":0"},
      {{"TYPE", "s"}, "+set"},
      {{"HSET", "h", "f1", "v1", "f2", "v2"}, ":2"},
      {{"HSET", "h", "f1", "v1b"}, ":0"},
      {{"HGET", "h", "f1"}, "\"v1b\""},
      {{"HGET", "h", "nope"}, "(nil)"},
      {{"HMGET", "h", "f1", "nope"}, "[\"v1b\", (nil)]"},
      {{"HINCRBY", "h", "n", "5"}, ":5"},
      {{"HINCRBY", "h", "n", "-7"}, ":-2"},
      {{"HINCRBY", "h", "f1", "1"}, "-ERR hash value is not an integer"},
      {{"HSET", "h", "n", "10"}, ":0"},
      {{"HINCRBY", "h", "n", "-12"}, ":-2"},
      {{"HLEN", "h"}, ":3"},
      {{"HEXISTS", "h", "n"}, ":1"},
      {{"HKEYS", "h"}, "[\"f1\", \"f2\", \"n\"]"},
      {{"HVALS", "h"}, "[\"v1b\", \"v2\", \"-2\"]"},
      {{"HGETALL", "h"}, "[\"f1\", \"v1b\", \"f2\", \"v2\", \"n\", \"-2\"]"},
      {{"HDEL", "h", "f2", "zz"}, ":1"},
      {{"HLEN", "h"}, ":2"},
      {{"HEXPIRE", "h", "100", "FIELDS", "2", "f1", "zz"}, "[:1, :-2]"},
      {{"HTTL", "h", "FIELDS", "2", "f1", "n"}, "[:100, :-1]"},
      {{"HEXPIRE", "h", "100", "NX", "FIELDS", "1", "f1"}, "[:0]"},
      {{"HPERSIST", "h", "FIELDS", "1", "f1"}, "[:1]"},
      {{"HTTL", "h", "FIELDS", "1", "f1"}, "[:-1]"},
      {{"HPEXPIRE", "h", "50", "FIELDS", "1", "f1"}, "[:1]"},
      {{"HEXPIRE", "h", "1", "FIELDS", "3", "f1"}, "-ERR The `numfields` parameter must match the number of arguments"},
      {{"SADD", "h", "x"}, "-WRONGTYPE Operation against a key holding the wrong kind of value"},
      {{"HGET", "s", "x"}, "-WRONGTYPE Operation against a key holding the wrong kind of value"},
  });
  // The field expires within its deadline (wait with a deadline, no sleep-and-hope).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::string got;
  while (std::chrono::steady_clock::now() < deadline && (got = c.Call({"HGET", "h", "f1"}).Show()) != "(nil)") {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(got == "(nil)");
  Expect(c, {{{"HGETALL", "h"}, "[\"n\", \"-2\"]"}, {{"HLEN", "h"}, ":1"}});
}

TEST_CASE("commands: pipelining keeps order, also reads behind writes") {
  Node node;
  REQUIRE(node.Start());
  Client c(node.port());
  std::string batch;
  for (int i = 0; i < 100; ++i) {
    batch += "*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
  }
  REQUIRE(c.SendRaw(batch));
  for (int i = 1; i <= 100; ++i) {
    CHECK(c.Read().num == i);
    CHECK(c.Read().str == std::to_string(i));
  }
}

TEST_CASE("commands: redis-cli one-shot and inline commands through nc") {
  Node node;
  REQUIRE(node.Start());
  std::string p = std::to_string(node.port());
  CHECK(Shell("redis-cli -p " + p + " SET greeting hello") == "OK\n");
  CHECK(Shell("redis-cli -p " + p + " GET greeting") == "hello\n");
  CHECK(Shell("redis-cli -p " + p + " SADD s a b") == "2\n");
  CHECK(Shell("redis-cli -p " + p + " SMEMBERS s") == "a\nb\n");
  CHECK(Shell("redis-cli -p " + p + " HSET h f v") == "1\n");
  CHECK(Shell("redis-cli -p " + p + " GET nothing") == "\n");
  CHECK(Shell("redis-cli -p " + p + " INCR s").find("WRONGTYPE") != std::string::npos);
  CHECK(Shell("printf 'INCR hits\\r\\n' | nc -q1 127.0.0.1 " + p) == ":1\r\n");
  CHECK(Shell("printf 'PING\\r\\nGET greeting\\r\\n' | nc -q1 127.0.0.1 " + p) == "+PONG\r\n$5\r\nhello\r\n");
  // Interactive redis-cli (reads commands from a pipe, as a terminal user types them).
  CHECK(Shell("printf 'SET k v\\nGET k\\n' | redis-cli -p " + p) == "OK\nv\n");
}

}  // namespace
}  // namespace lattice::test
