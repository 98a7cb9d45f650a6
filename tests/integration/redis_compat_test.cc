// Redis compatibility, command by command: every line of
// tests/integration/redis_compat.txt runs on latticed and on a real
// redis-server on this machine, and the replies must be equal (unordered
// replies as sets, random and timed ones by type and size). A line marked '!'
// is a deliberate difference: README must name it (the phrase given), and
// latticed must answer it (an error or a value), but the reply is not compared.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "tests/integration/harness.h"

namespace lattice::test {
namespace {

std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string Sorted(Reply r) {
  auto by_show = [](const Reply& a, const Reply& b) { return a.Show() < b.Show(); };
  std::sort(r.elems.begin(), r.elems.end(), by_show);
  // SSCAN/HSCAN: [cursor, [elements]]: the inner list too.
  for (auto& e : r.elems) std::sort(e.elems.begin(), e.elems.end(), by_show);
  return r.Show();
}

std::string Shape(const Reply& r) {
  return std::string(1, r.type) + " " + std::to_string(r.elems.size()) + (r.null ? " null" : "");
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST_CASE("compat: each scripted command answers as redis-server does, or as README says it differs") {
  RedisServer redis;
  REQUIRE(redis.Ready());
  Node node;
  REQUIRE(node.Start());
  Client lattice(node.port());
  Client reference(redis.port());
  const std::string readme = ReadFile(README_PATH);
  REQUIRE(!readme.empty());
  std::ifstream script(COMPAT_SCRIPT);
  REQUIRE(script.good());
  int compared = 0, differences = 0;
  std::string line;
  for (int n = 1; std::getline(script, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    CAPTURE(n);
    CAPTURE(line);
    char mode = 0;
    if (line[0] == '~' || line[0] == '?' || line[0] == '!') {
      mode = line[0];
      line = line.substr(2);
    }
    if (mode == '!') {
      const auto bar = line.find(" | ");
      REQUIRE(bar != std::string::npos);
      const std::string phrase = line.substr(0, bar);
      CHECK_MESSAGE(readme.find(phrase) != std::string::npos, "README does not name the difference: " << phrase);
      Reply got = lattice.Call(Split(line.substr(bar + 3)));
      CHECK(got.type != 0);
      ++differences;
      continue;
    }
    const auto cmd = Split(line);
    Reply want = reference.Call(cmd);
    Reply got = lattice.Call(cmd);
    if (mode == '~') {
      CHECK(Sorted(got) == Sorted(want));
    } else if (mode == '?') {
      CHECK(Shape(got) == Shape(want));
    } else {
      CHECK(got.Show() == want.Show());
    }
    ++compared;
  }
  MESSAGE(compared << " commands compared with redis-server, " << differences << " named differences checked");
  CHECK(compared > 100);
}

}  // namespace
}  // namespace lattice::test
