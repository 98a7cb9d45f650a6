// Ring: which members replicate which partition (DESIGN §4).
//
// The 64-bit key-hash space is cut into P equal partitions (P a power of two;
// a key's partition is the top bits of xxh3_64(key), so a partition is one
// contiguous range of the storage layout). The replicas of a partition are the
// top-N members by rendezvous hash xxh3(partition, member) over every member
// that has not left: a suspect or dead member stays a replica and counts as
// unreachable, so quorums are strict, never sloppy.
//
// Pure: no I/O, no clocks. Thread-safety: a plain value. SetMembers ranks
// the members of every partition once (P x members hashes), so Replicas is a
// lookup on the request path.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lattice::node {

class Ring {
 public:
  // `partitions` must be a power of two (1..65536); `replicas` >= 1.
  Ring(std::uint32_t partitions, std::uint32_t replicas);

  // Replaces the members (names of every member that has not left).
  void SetMembers(std::vector<std::string> members);

  std::uint32_t partitions() const { return partitions_; }
  // N capped at the number of members.
  std::uint32_t replication() const;
  std::uint32_t PartitionOf(std::string_view key) const;
  std::uint32_t PartitionOfHash(std::uint64_t key_hash) const;
  // First key hash of a partition (its range is [first, next partition's first)).
  std::uint64_t FirstHash(std::uint32_t partition) const;
  // Replicas of a partition, best first (deterministic on every node);
  // computed once per SetMembers (valid until the next).
  // A partition out of range has none.
  const std::vector<std::string>& Replicas(std::uint32_t partition) const;
  const std::vector<std::string>& ReplicasOf(std::string_view key) const;
  // QUORUM = floor(N/2)+1 of the partition's replication.
  std::uint32_t Quorum() const { return replication() / 2 + 1; }

 private:
  std::uint32_t partitions_;
  std::uint32_t replicas_;
  int shift_;
  std::vector<std::string> members_;
  std::vector<std::vector<std::string>> table_;  // partition -> replicas, best first
};

}  // namespace lattice::node
