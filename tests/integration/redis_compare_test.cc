// The request path against a real redis-server: random pipelined batches of
// SET, GET, INCR, DEL, SADD, ... go to latticed (one node, then a 3-node
// cluster through one of its nodes) and to redis-server on this machine, and
// each reply must be exactly Redis's (unordered replies compared as sets).
// This checks the per-connection order of effects of DESIGN §4 (a pipelined
// command sees every earlier command of its connection on its key, a
// multi-key command everything before it) and the reply formats.
//
// Strings count (DESIGN §2): SET, INCR, APPEND, ... share one key set, with
// values that are sometimes integers and sometimes not.
//
// Seeded: LATTICE_COMPARE_SEED replays a run, LATTICE_COMPARE_BATCHES sets
// the number of batches per target (default 150).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>

#include "tests/integration/harness.h"

namespace lattice::test {
namespace {

using Cmd = std::vector<std::string>;

std::uint64_t EnvOr(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

std::string Encode(const Cmd& cmd) {
  std::string out = "*" + std::to_string(cmd.size()) + "\r\n";
  for (const auto& a : cmd) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

// A reply as compared: replies to commands whose order Redis leaves open
// (SMEMBERS, SINTER, ...) have their elements sorted; random picks
// (SRANDMEMBER with a count) are compared by how many they are.
std::string Canonical(const Cmd& cmd, Reply r) {
  if (cmd[0] == "SRANDMEMBER" && r.type == '*') return "picks " + std::to_string(r.elems.size());
  if ((cmd[0] == "SMEMBERS" || cmd[0] == "SINTER" || cmd[0] == "SUNION" || cmd[0] == "SDIFF") && r.type == '*') {
    std::sort(r.elems.begin(), r.elems.end(), [](const Reply& a, const Reply& b) { return a.str < b.str; });
  }
  return r.Show();
}

// Random commands over three disjoint key sets: strings (SET/GET/INCR/APPEND/...),
// sets (SADD/...) and HyperLogLogs (PFADD/PFCOUNT); DEL, EXISTS and wrong-type
// commands cross them.
class Generator {
 public:
  explicit Generator(std::uint64_t seed) : rng_(seed) {}

  Cmd Next() {
    switch (Pick(31)) {
      case 28: return {"SETBIT", Key('s'), std::to_string(Pick(40)), Pick(2) == 0 ? "0" : "1"};
      case 29: return {"GETBIT", Key('s'), std::to_string(Pick(40))};
      case 30: return Pick(2) == 0 ? Cmd{"BITCOUNT", Key('s')}
                                   : Cmd{"BITCOUNT", Key('s'), std::to_string(static_cast<int>(Pick(8)) - 4),
                                         std::to_string(static_cast<int>(Pick(8)) - 2), Pick(2) == 0 ? "BIT" : "BYTE"};
      case 26: {
        Cmd cmd{"PFADD", Key('h')};
        for (std::size_t n = Pick(4); n > 0; --n) cmd.push_back("e" + std::to_string(Pick(300)));
        return cmd;
      }
      case 27: return Pick(2) == 0 ? Cmd{"PFCOUNT", Key('h')} : Cmd{"PFCOUNT", Key('h'), Key('h')};
      case 22: return {"SINTER", Key('t'), Key('t')};
      case 23: return {"SUNION", Key('t'), Key('t'), Key('t')};
      case 24: return {"SDIFF", Key('t'), Key('t')};
      case 25: return {"SRANDMEMBER", Key('t'), std::to_string(static_cast<int>(Pick(9)) - 4)};
      case 0: return {"SET", Key('s'), Value()};
      case 1: return {"GET", Key('s')};
      case 2: return {"GETSET", Key('s'), Value()};
      case 3: return {"INCR", Key('s')};
      case 4: return {"INCRBY", Key('s'), std::to_string(static_cast<int>(Pick(200)) - 100)};
      case 5: return {"DECR", Key('s')};
      case 16: return {"APPEND", Key('s'), Pick(2) == 0 ? "x" : std::to_string(Pick(10))};
      case 17: return {"STRLEN", Key('s')};
      case 18: return {"GETRANGE", Key('s'), std::to_string(static_cast<int>(Pick(6)) - 3),
                       std::to_string(static_cast<int>(Pick(6)) - 2)};
      case 19: return {"GETDEL", Key('s')};
      case 20: return {"SETRANGE", Key('s'), std::to_string(Pick(4)), Pick(2) == 0 ? "ab" : "7"};
      case 21: return {"INCRBYFLOAT", Key('s'), Pick(2) == 0 ? "1.5" : "-0.25"};
      case 6: return {"DEL", AnyKey()};
      case 7: {
        Cmd cmd{"DEL"};
        for (std::size_t n = 2 + Pick(3); n > 0; --n) cmd.push_back(AnyKey());
        return cmd;
      }
      case 8: {
        Cmd cmd{"SADD", Key('t')};
        for (std::size_t n = 1 + Pick(3); n > 0; --n) cmd.push_back(Member());
        return cmd;
      }
      case 9: return {"SREM", Key('t'), Member(), Member()};
      case 10: return {"SISMEMBER", Key('t'), Member()};
      case 11: return {"SCARD", Key('t')};
      case 12: return {"SMEMBERS", Key('t')};
      case 13: {
        Cmd cmd{"EXISTS"};
        for (std::size_t n = 1 + Pick(3); n > 0; --n) cmd.push_back(AnyKey());
        return cmd;
      }
      case 14: return {"MSET", Key('s'), Value(), Key('s'), Value()};
      default: {
        // A type mismatch when the key exists: Redis's WRONGTYPE error.
        // (Not a write that creates a key of another type than its set's:
        // types are fixed by the first write here, README "Semantics worth knowing".)
        switch (Pick(5)) {
          case 0: return {"GET", Key('t')};
          case 1: return {"SCARD", Key('s')};
          case 2: return {"PFCOUNT", Key('s')};  // a string that is not a HyperLogLog
          case 3: return {"SCARD", Key('h')};
          default: return {"SISMEMBER", Key('s'), Member()};
        }
      }
    }
  }

  std::size_t Pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }

 private:
  std::string Key(char kind) { return std::string(1, kind) + std::to_string(Pick(4)); }
  std::string AnyKey() { return Key("sth"[Pick(3)]); }
  // An integer half the time (INCR adds to it), otherwise not.
  std::string Value() {
    return Pick(2) == 0 ? std::to_string(static_cast<int>(Pick(2000)) - 1000) : "v" + std::to_string(Pick(1000));
  }
  std::string Member() { return "m" + std::to_string(Pick(6)); }

  std::mt19937_64 rng_;
};

// Sends `batches` random pipelined batches (1 to 24 commands in one write)
// to both servers and checks every reply.
// `logs` gives what the nodes logged, shown when a reply differs.
void Compare(std::uint16_t lattice_port, const std::string& lattice_host, std::uint16_t redis_port,
             std::uint64_t seed, std::uint64_t batches, const std::function<std::string()>& logs) {
  Client lattice(lattice_port, lattice_host);
  Client redis(redis_port);
  REQUIRE(lattice.connected());
  REQUIRE(redis.connected());
  Generator gen(seed);
  std::uint64_t commands = 0;
  for (std::uint64_t b = 0; b < batches; ++b) {
    std::vector<Cmd> batch(1 + gen.Pick(24));
    std::string bytes;
    for (auto& cmd : batch) {
      cmd = gen.Next();
      bytes += Encode(cmd);
    }
    REQUIRE(lattice.SendRaw(bytes));
    REQUIRE(redis.SendRaw(bytes));
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const std::string want = Canonical(batch[i], redis.Read());
      const std::string got = Canonical(batch[i], lattice.Read());
      if (got != want) {
        std::string text;
        for (const auto& cmd : batch) {
          text += " ";
          for (const auto& a : cmd) text += " " + a;
          text += "\n";
        }
        std::string log = logs();
        if (log.size() > 4000) log = log.substr(log.size() - 4000);
        FAIL_CHECK("seed " << seed << ", batch " << b << ", command " << i << " differs: latticed " << got
                           << ", redis " << want << "\nthe batch:\n" << text << "the log's end:\n" << log);
        return;
      }
      ++commands;
    }
  }
  MESSAGE("seed " << seed << ": " << commands << " commands in " << batches << " batches gave Redis's replies");
}

std::uint64_t Seed() {
  const std::uint64_t seed = EnvOr("LATTICE_COMPARE_SEED", std::random_device{}());
  MESSAGE("LATTICE_COMPARE_SEED=" << seed);
  return seed;
}

TEST_CASE("compare: pipelined batches on one node give redis-server's replies") {
  const std::uint64_t seed = Seed();
  RedisServer redis;
  REQUIRE(redis.Ready());
  Node node;
  REQUIRE(node.Start());
  Compare(node.port(), node.host(), redis.port(), seed, EnvOr("LATTICE_COMPARE_BATCHES", 150),
          [&] { return node.Log(); });
}

TEST_CASE("compare: pipelined batches through a 3-node cluster give redis-server's replies") {
  const std::uint64_t seed = Seed();
  RedisServer redis;
  REQUIRE(redis.Ready());
  auto nodes = StartCluster(3, "127.0.5.");
  Compare(nodes[0]->port(), nodes[0]->host(), redis.port(), seed, EnvOr("LATTICE_COMPARE_BATCHES", 150),
          [&] {
            std::string out;
            for (auto& n : nodes) {
              Client c(n->port(), n->host());
              out += c.Call({"INFO", "replication"}).str;
            }
            return nodes[0]->Log() + out;
          });
}

}  // namespace
}  // namespace lattice::test
