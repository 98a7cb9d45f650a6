// Merkle tree over one partition's key digests (DESIGN §3, §4).
//
// A partition is a contiguous range of 64-bit key hashes. Its tree has
// 2^leaf_bits leaves, each a bucket of equal hash sub-ranges holding the XOR of
// the digests of the keys in it (digest = xxh3-128 of key and encoded state), so
// an update takes the old digest out and puts the new one in without reading
// other keys; inner nodes hash their two children; an update recomputes only
// the path to the root: O(leaf_bits).
//
// Two replicas compare roots, then descend level by level only into children
// whose hashes differ; the result is exactly the set of leaves whose contents
// differ (up to hash collisions of 128-bit digests).
//
// Pure: no I/O, no locks. Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace lattice::merkle {

struct Digest {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  Digest& operator^=(const Digest& o) {
    hi ^= o.hi;
    lo ^= o.lo;
    return *this;
  }
  bool operator==(const Digest&) const = default;
};

// The digest of one key's state: xxh3-128 over the key and its canonical encoding.
Digest KeyDigest(std::string_view key, std::string_view encoded_state);

class Tree {
 public:
  // A tree for key hashes in [first, first + span); span 0 means 2^64 (the whole
  // space). leaf_bits in 0..20.
  Tree(std::uint64_t first, std::uint64_t span, int leaf_bits);

  int leaf_bits() const { return leaf_bits_; }
  std::uint32_t leaves() const { return 1u << leaf_bits_; }

  // The leaf holding `key_hash` (which must lie in the tree's range).
  std::uint32_t LeafOf(std::uint64_t key_hash) const;
  // The key hashes of a leaf: [first, last] inclusive.
  std::pair<std::uint64_t, std::uint64_t> LeafRange(std::uint32_t leaf) const;

  // A key's digest changed from `old_digest` to `new_digest` (a zero Digest
  // for "absent"). O(leaf_bits).
  void Update(std::uint64_t key_hash, const Digest& old_digest, const Digest& new_digest);
  // Many changes at once: each leaf takes its changes, then every node above
  // a changed leaf is recomputed once (not once per change).
  struct Change {
    std::uint64_t key_hash;
    Digest old_digest;
    Digest new_digest;
  };
  void UpdateMany(const Change* changes, std::size_t n);
  // The same with the caller's buffer for the changed nodes' indices (its
  // contents are replaced), so that a caller applying batch after batch
  // reuses its capacity.
  void UpdateMany(const Change* changes, std::size_t n, std::vector<std::uint32_t>& scratch);

  Digest Root() const { return levels_[0][0]; }
  // The hash of node `index` at `level` (0 = root, leaf_bits = leaves).
  const Digest& Node(int level, std::uint32_t index) const { return levels_[level][index]; }

  // Of the nodes `indices` at `level` (whose parents differ), those whose hash
  // differs from `remote` (the other side's hashes of the same nodes, in order).
  std::vector<std::uint32_t> DifferingNodes(int level, const std::vector<std::uint32_t>& indices,
                                            const std::vector<Digest>& remote) const;
  // The leaves whose contents differ from `other` (same range and shape),
  // found by descending from the root into differing children only.
  std::vector<std::uint32_t> Diff(const Tree& other) const;

  bool operator==(const Tree& other) const { return levels_ == other.levels_; }

 private:
  void Recompute(int level, std::uint32_t index);

  std::uint64_t first_;
  std::uint64_t span_;
  int leaf_bits_;
  std::vector<std::vector<Digest>> levels_;  // levels_[l] has 2^l nodes
};

}  // namespace lattice::merkle
