// DotContext: the set of dots a state has seen, kept as a compact version vector
// (replica -> highest contiguous counter) plus a cloud of dots beyond it.
//
// Invariant: the representation is always compacted, so two contexts holding the
// same set of dots are equal member-wise and encode to the same bytes.
// Thread-safety: a plain value; no internal synchronisation.
#pragma once

#include <cstdint>
#include <map>
#include <set>

#include "crdt/dot.h"

namespace lattice::crdt {

class DotContext {
 public:
  using VersionVector = std::map<ReplicaId, std::uint64_t>;

  bool Contains(const Dot& dot) const;

  // True when every dot of `other` is contained here.
  bool Covers(const DotContext& other) const;

  // Highest counter known for `replica`, in the vector or the cloud.
  std::uint64_t MaxCounter(ReplicaId replica) const;

  // Mints the next dot of `replica` (one above anything seen) and records it.
  Dot NextDot(ReplicaId replica);

  // Records one dot.
  void Insert(const Dot& dot);

  // Builds a context from a compacted representation (from a decoder). False,
  // leaving this unchanged, when the parts are not compacted: a vector entry of
  // zero, or a cloud dot the vector covers or that extends it contiguously.
  bool AssignCompacted(VersionVector vv, std::set<Dot> cloud);

  // Adds every dot of `other`.
  void Join(const DotContext& other);

  bool Empty() const { return vv_.empty() && cloud_.empty(); }
  std::size_t DotCount() const;

  const VersionVector& vv() const { return vv_; }
  const std::set<Dot>& cloud() const { return cloud_; }

  bool operator==(const DotContext&) const = default;

  // Folds cloud dots that extend the vector contiguously into it and drops cloud
  // dots the vector already covers. Every mutator calls it, so callers never need
  // to; it is public for code that wants to assert the invariant.
  void Compact();

 private:

  VersionVector vv_;
  std::set<Dot> cloud_;
};

}  // namespace lattice::crdt
