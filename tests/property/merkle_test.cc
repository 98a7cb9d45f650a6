// Merkle trees: random key sets and random divergence; the diff finds exactly
// the differing buckets and never misses one. LATTICE_SEED replays a run.
#include <doctest/doctest.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "merkle/tree.h"

namespace lattice::merkle {
namespace {

std::uint64_t Seed() {
  const char* env = std::getenv("LATTICE_SEED");
  std::uint64_t s = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  std::cout << "merkle: seed " << s << " (replay with LATTICE_SEED=" << s << ")\n";
  return s;
}

TEST_CASE("merkle: leaf ranges tile the partition") {
  for (auto [first, span, bits] : {std::tuple<std::uint64_t, std::uint64_t, int>{0, 0, 10},
                                   {5ULL << 56, 1ULL << 56, 10},
                                   {1000, 12345, 7},
                                   {0, 3, 4}}) {
    Tree t(first, span, bits);
    std::uint64_t expect = first;
    for (std::uint32_t leaf = 0; leaf < t.leaves(); ++leaf) {
      auto [lo, hi] = t.LeafRange(leaf);
      if (hi + 1 == lo) continue;  // an empty leaf (span smaller than the leaf count)
      CHECK(lo == expect);
      CHECK(t.LeafOf(lo) == leaf);
      CHECK(t.LeafOf(hi) == leaf);
      expect = hi + 1;
    }
    CHECK(expect == first + span);  // wraps to first when span is 2^64
  }
}

TEST_CASE("merkle: changes applied in batches (UpdateMany) give the tree one Update each gives") {
  const std::uint64_t seed = Seed();
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; ++round) {
    INFO("seed " << seed << " round " << round);
    const int bits = static_cast<int>(rng() % 11);
    const std::uint64_t first = (rng() % 256) << 56;
    const std::uint64_t span = 1ULL << 56;
    Tree one(first, span, bits), many(first, span, bits);
    std::map<std::uint64_t, Digest> now;
    std::vector<Tree::Change> batch;
    const int n = static_cast<int>(rng() % 600);
    for (int i = 0; i < n; ++i) {
      const std::uint64_t h = first + rng() % (rng() % 2 ? 64 : span);  // repeats of one key too
      const Digest old = now[h];
      const Digest d = rng() % 5 == 0 ? Digest{} : KeyDigest(std::to_string(h), std::to_string(rng()));
      now[h] = d;
      one.Update(h, old, d);
      batch.push_back({h, old, d});
      if (rng() % 50 == 0 || i == n - 1) {
        many.UpdateMany(batch.data(), batch.size());
        batch.clear();
      }
    }
    REQUIRE(one == many);
  }
}

TEST_CASE("merkle: diff finds exactly the differing buckets; updates equal a rebuild") {
  const std::uint64_t seed = Seed();
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 300; ++round) {
    INFO("seed " << seed << " round " << round);
    const int bits = static_cast<int>(rng() % 9);
    const std::uint64_t first = (rng() % 256) << 56;
    const std::uint64_t span = 1ULL << 56;
    std::map<std::uint64_t, Digest> a, b;  // key hash -> digest
    const int n = static_cast<int>(rng() % 400);
    for (int i = 0; i < n; ++i) {
      std::uint64_t h = first + rng() % span;
      a[h] = b[h] = KeyDigest(std::to_string(h), std::to_string(rng() % 3));
    }
    Tree ta(first, span, bits), tb(first, span, bits);
    for (auto& [h, d] : a) ta.Update(h, Digest{}, d);
    for (auto& [h, d] : b) tb.Update(h, Digest{}, d);
    REQUIRE(ta.Diff(tb).empty());
    // Diverge: change, add and delete a few keys on b, incrementally.
    const int changes = static_cast<int>(rng() % 6);
    for (int i = 0; i < changes; ++i) {
      switch (rng() % 3) {
        case 0: {  // add or overwrite
          std::uint64_t h = first + rng() % span;
          Digest d = KeyDigest(std::to_string(h), "x" + std::to_string(rng()));
          Digest old = b.count(h) ? b[h] : Digest{};
          b[h] = d;
          tb.Update(h, old, d);
          break;
        }
        case 1:  // delete
          if (!b.empty()) {
            auto it = b.begin();
            std::advance(it, static_cast<long>(rng() % b.size()));
            tb.Update(it->first, it->second, Digest{});
            b.erase(it);
          }
          break;
        default:  // change a state
          if (!b.empty()) {
            auto it = b.begin();
            std::advance(it, static_cast<long>(rng() % b.size()));
            Digest d = KeyDigest(std::to_string(it->first), "y" + std::to_string(rng()));
            tb.Update(it->first, it->second, d);
            it->second = d;
          }
      }
    }
    // Ground truth: XOR per bucket on each side.
    std::map<std::uint32_t, Digest> xa, xb;
    for (auto& [h, d] : a) xa[ta.LeafOf(h)] ^= d;
    for (auto& [h, d] : b) xb[tb.LeafOf(h)] ^= d;
    std::set<std::uint32_t> truth;
    for (std::uint32_t leaf = 0; leaf < ta.leaves(); ++leaf) {
      if (!(xa[leaf] == xb[leaf])) truth.insert(leaf);
    }
    auto diff = ta.Diff(tb);
    CHECK(std::set<std::uint32_t>(diff.begin(), diff.end()) == truth);
    // The incrementally updated tree equals one built from scratch.
    Tree rebuilt(first, span, bits);
    for (auto& [h, d] : b) rebuilt.Update(h, Digest{}, d);
    CHECK(rebuilt == tb);
    CHECK((ta.Root() == tb.Root()) == truth.empty());
  }
}

}  // namespace
}  // namespace lattice::merkle
