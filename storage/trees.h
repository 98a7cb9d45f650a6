// What the store derives from its records and keeps in memory (DESIGN §2,
// §3): the Merkle tree of every partition and the retired contexts of the
// partitions. Internal to storage/.
//
// Trees: a key's digest is the XOR of its records' digests (records.h),
// folded into its leaf. Built by one scan of the merged view on open (after
// the log is replayed); then every batch's updates are applied when the
// batch becomes durable (the syncer), never rebuilt while the node runs.
//
// Retired contexts: per partition, the highest counter per replica of every
// tombstone this node collected; loaded from the merged view's meta records
// on open and raised by Retire on the writer.
//
// Threads: each guarded by its own mutex; any thread reads.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "crdt/dot_context.h"
#include "crdt/status.h"
#include "merkle/tree.h"

namespace lattice::storage {

class View;

struct TreeUpdate {
  std::uint64_t key_hash;
  merkle::Digest old_digest;
  merkle::Digest new_digest;
};

class Trees {
 public:
  Trees(std::uint32_t partitions, int leaf_bits);
  Status Rebuild(View& view);  // by a scan of the keys and members records
  void Apply(const std::vector<TreeUpdate>& updates);  // the syncer
  std::uint32_t PartitionOfHash(std::uint64_t h) const { return static_cast<std::uint32_t>(h >> shift_); }
  merkle::Tree Partition(std::uint32_t p) const;
  merkle::Digest Root(std::uint32_t p) const;
  merkle::Digest RootsDigest() const;

 private:
  std::vector<merkle::Tree> Empty() const;
  std::uint32_t partitions_;
  int leaf_bits_;
  mutable std::mutex mu_;
  int shift_ = 56;
  std::vector<merkle::Tree> trees_;
  // Apply's buffers, kept from batch to batch (their capacity); taken before mu_.
  std::mutex apply_mu_;
  std::vector<merkle::Tree::Change> changes_;
  std::vector<std::uint32_t> dirty_;
};

class RetiredContexts {
 public:
  Status Load(View& view);
  std::uint64_t MintFloor(std::uint32_t partition, crdt::ReplicaId replica) const;
  bool Retired(std::uint32_t partition, const crdt::DotContext& ctx) const;
  // Raises the partition's context by `ctx`; returns the partition's record.
  std::string Raise(std::uint32_t partition, const crdt::DotContext& ctx);

 private:
  mutable std::mutex mu_;
  std::map<std::uint32_t, crdt::DotContext::VersionVector> retired_;
};

}  // namespace lattice::storage
