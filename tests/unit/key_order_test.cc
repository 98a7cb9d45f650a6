// KeyOrder (node/key_order.h): random batches of one-key and barrier
// commands, finished in random order; checks that each command starts only
// after every earlier command it conflicts with (the same key, or either is a
// barrier) has finished and starts as soon as they have, that commands on different keys do run together,
// and that every command starts exactly once. Seeded: LATTICE_KEY_ORDER_SEED.
#include <doctest/doctest.h>

#include <cstdlib>
#include <random>
#include <set>

#include "node/key_order.h"

namespace lattice::node {
namespace {

TEST_CASE("key order: a command waits for exactly the earlier ones it conflicts with") {
  const char* env = std::getenv("LATTICE_KEY_ORDER_SEED");
  const std::uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  MESSAGE("LATTICE_KEY_ORDER_SEED=" << seed);
  std::mt19937_64 rng(seed);
  KeyOrder order;
  std::size_t overlapped = 0;
  for (int round = 0; round < 300; ++round) {
    const std::size_t n = 1 + rng() % 30;
    std::vector<std::vector<std::string>> keys(n);
    std::vector<int> state(n, 0);  // 0 waiting, 1 running, 2 finished
    std::vector<std::size_t> running;
    auto conflicts = [&](std::size_t a, std::size_t b) {
      return keys[a].size() != 1 || keys[b].size() != 1 || keys[a][0] == keys[b][0];
    };
    auto start = [&](std::size_t slot) {
      REQUIRE(state[slot] == 0);
      for (std::size_t earlier = 0; earlier < slot; ++earlier) {
        if (conflicts(earlier, slot)) CHECK_MESSAGE(state[earlier] == 2, "seed " << seed << " slot " << slot);
      }
      state[slot] = 1;
      overlapped += running.empty() ? 0 : 1;
      running.push_back(slot);
    };
    // No command waits longer than it must: one still waiting has an
    // unfinished earlier command it conflicts with.
    auto check_waiting = [&](std::size_t added) {
      for (std::size_t w = 0; w < added; ++w) {
        if (state[w] != 0) continue;
        bool blocked = false;
        for (std::size_t earlier = 0; earlier < w; ++earlier) blocked |= conflicts(earlier, w) && state[earlier] != 2;
        CHECK_MESSAGE(blocked, "seed " << seed << " slot " << w << " waits for nothing");
      }
    };
    std::size_t slot = 0;
    while (slot < n || !running.empty()) {
      // Either add the next command or finish a running one.
      if (slot < n && (running.empty() || rng() % 2 == 0)) {
        const std::size_t kind = rng() % 8;
        if (kind == 0) keys[slot] = {};
        else if (kind == 1) keys[slot] = {"a", "b"};
        else keys[slot] = {std::string(1, static_cast<char>('a' + rng() % 4))};
        if (order.Add(slot, keys[slot])) start(slot);
        ++slot;
        check_waiting(slot);
        continue;
      }
      const std::size_t at = rng() % running.size();
      const std::size_t done = running[at];
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(at));
      state[done] = 2;
      std::vector<std::size_t> ready;
      order.Finished(done, ready);
      for (std::size_t r : ready) start(r);
      check_waiting(slot);
    }
    CHECK(order.Idle());
    for (std::size_t i = 0; i < n; ++i) CHECK_MESSAGE(state[i] == 2, "seed " << seed << " slot " << i << " never ran");
    order.Reset();
  }
  CHECK(overlapped > 0);  // commands on different keys did run together
}

}  // namespace
}  // namespace lattice::node
