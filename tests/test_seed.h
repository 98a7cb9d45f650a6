// The seed of a randomized test case: LATTICE_SEED when set (a replay), else a
// fresh one from std::random_device. Printed either way, so that any run can be
// replayed with LATTICE_SEED=<seed>.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>

namespace lattice::test {

inline std::uint64_t TestSeed(const char* what) {
  const char* env = std::getenv("LATTICE_SEED");
  const std::uint64_t seed = env != nullptr && *env != '\0' ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  std::cout << what << ": seed " << seed << (env != nullptr ? " (from LATTICE_SEED)" : "")
            << " (replay with LATTICE_SEED=" << seed << ")" << std::endl;
  return seed;
}

}  // namespace lattice::test
