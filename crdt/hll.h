// HyperLogLog (DESIGN §2): one register array per replica, each tagged by a
// dot; a read merges the arrays by max. A replica's PFADD replaces only its
// own array (its new dot's context holds the old one), so concurrent adds on
// different replicas all count, and DEL removes exactly the arrays it
// observed. Redis's own algorithm (MurmurHash64A with Redis's seed, 16384
// registers, its estimator), so that PFCOUNT answers what Redis answers for
// the same elements: the merge of registers by max equals one HyperLogLog of
// every element added anywhere. (MurmurHash64A is written out here: no
// dependency provides it, and PFCOUNT's agreement with Redis needs it.)
//
// Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/dot_store.h"

namespace lattice::crdt {

struct HllArray {
  std::string registers;  // kRegisters bytes, one register (0..63) each
  auto operator<=>(const HllArray&) const = default;
};

class HyperLogLog : public CausalValue<HyperLogLog, DotFun<HllArray>> {
 public:
  static constexpr std::size_t kRegisters = 16384;  // Redis's HLL_REGISTERS (p = 14)

  // PFADD by `replica`: raises its registers with `elements`. `changed`
  // says whether a register rose or the array is new (Redis's reply 1);
  // nothing changed: an empty delta.
  HyperLogLog Add(ReplicaId replica, const std::vector<std::string>& elements, bool& changed);
  HyperLogLog Clear() { return FromDelta(RemoveAll(state_)); }
  bool Live() const { return !state_.store.empty(); }

  // Every array merged by max.
  std::string Merged() const;
  // Redis's estimate of the merged registers.
  std::uint64_t Count() const { return CountOf(Merged()); }
  static std::uint64_t CountOf(std::string_view registers);
  // Raises `registers` (kRegisters bytes) with one element; true when one rose.
  static bool AddTo(std::string& registers, std::string_view element);
  // Registers as the canonical encoding stores them (nonzero ones as index,
  // value triples) and back (false when not canonical).
  static std::string Sparse(std::string_view registers);
  static bool FromSparse(std::string_view sparse, std::string& registers);
};

}  // namespace lattice::crdt
