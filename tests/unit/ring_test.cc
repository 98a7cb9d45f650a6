// Partitioning by rendezvous hashing.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "node/ring.h"

namespace lattice::node {
namespace {

TEST_CASE("ring: partitions are contiguous hash ranges") {
  Ring ring(256, 3);
  CHECK(ring.PartitionOfHash(0) == 0);
  CHECK(ring.PartitionOfHash(~0ULL) == 255);
  CHECK(ring.FirstHash(1) == (1ULL << 56));
  CHECK(ring.PartitionOfHash(ring.FirstHash(77)) == 77);
  CHECK(ring.PartitionOfHash(ring.FirstHash(78) - 1) == 77);
}

TEST_CASE("ring: N distinct replicas, capped, deterministic, balanced") {
  Ring ring(256, 3);
  ring.SetMembers({"n1"});
  CHECK(ring.Replicas(5) == std::vector<std::string>{"n1"});
  CHECK(ring.Quorum() == 1);
  ring.SetMembers({"n3", "n1", "n2", "n4", "n5"});
  CHECK(ring.replication() == 3);
  CHECK(ring.Quorum() == 2);
  std::map<std::string, int> load;
  for (std::uint32_t p = 0; p < 256; ++p) {
    auto r = ring.Replicas(p);
    REQUIRE(r.size() == 3);
    CHECK(r[0] != r[1]);
    CHECK(r[1] != r[2]);
    CHECK(r[0] != r[2]);
    for (const auto& m : r) ++load[m];
  }
  for (const auto& [m, n] : load) {
    CHECK(n > 256 * 3 / 5 / 2);  // each member holds a fair share
  }
  Ring other(256, 3);
  other.SetMembers({"n5", "n4", "n3", "n2", "n1"});
  CHECK(other.Replicas(42) == ring.Replicas(42));
}

TEST_CASE("ring: removing a member moves only the partitions it held") {
  Ring before(256, 3);
  before.SetMembers({"a", "b", "c", "d", "e"});
  Ring after(256, 3);
  after.SetMembers({"a", "b", "c", "d"});
  for (std::uint32_t p = 0; p < 256; ++p) {
    auto rb = before.Replicas(p);
    auto ra = after.Replicas(p);
    for (const auto& m : rb) {
      if (m != "e") CHECK(std::find(ra.begin(), ra.end(), m) != ra.end());
    }
  }
}

TEST_CASE("ring: the ranked table follows every membership change; out of range has none") {
  Ring ring(64, 3);
  CHECK(ring.Replicas(0).empty());  // no members yet
  ring.SetMembers({"a", "b", "c", "d"});
  const auto before = ring.Replicas(7);
  REQUIRE(before.size() == 3);
  CHECK(ring.Replicas(64).empty());
  CHECK(ring.Replicas(~0u).empty());
  // Removing a replica of partition 7 puts the fourth member in its place,
  // and the others keep their rank.
  std::vector<std::string> rest;
  for (const std::string m : {"a", "b", "c", "d"}) {
    if (m != before[1]) rest.push_back(m);
  }
  ring.SetMembers(rest);
  const auto after = ring.Replicas(7);
  REQUIRE(after.size() == 3);
  CHECK(after[0] == before[0]);
  CHECK(after[1] == before[2]);
  CHECK(std::find(before.begin(), before.end(), after[2]) == before.end());
  CHECK(ring.ReplicasOf("some key") == ring.Replicas(ring.PartitionOf("some key")));
}

}  // namespace
}  // namespace lattice::node
