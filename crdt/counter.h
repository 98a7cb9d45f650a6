// Causal PN-counter with observed-remove reset.
//
// Each replica's contribution is one entry (dot counter, cumulative total): the
// total only ever grows in dot order, so entries join by taking the higher dot.
// A delete does not drop entries; it records, per replica, the entry it observed
// as a floor. The value is the sum over replicas of (entry - floor). So a delete
// removes exactly what it observed: an HDEL racing an HINCRBY 2 from a replica
// that had contributed 5 leaves 2, not 7 and not 0 (DESIGN §2). Metadata is
// O(replicas) per counter, whatever the number of increments.
//
// A CounterStore joins as a plain state lattice (pointwise max), so it needs no
// context to join; increments still mint dots in the enclosing context so that
// session causality and EXPLAIN see them.
#pragma once

#include <cstdint>
#include <map>

#include "crdt/dot_store.h"
#include "crdt/hlc.h"

namespace lattice::crdt {

struct CounterEntry {
  std::uint64_t counter = 0;  // dot counter of the replica's latest increment
  std::int64_t total = 0;     // the replica's cumulative sum up to that dot
  Hlc hlc;                    // when that increment was made
  auto operator<=>(const CounterEntry&) const = default;
};

struct CounterStore {
  std::map<ReplicaId, CounterEntry> entries;
  std::map<ReplicaId, CounterEntry> floors;  // observed by deletes
  bool operator==(const CounterStore&) const = default;
};

bool IsBottom(const CounterStore& s);
void CollectDots(const CounterStore& s, DotContext& out);
CounterStore JoinStore(const CounterStore& a, const DotContext& ca, const CounterStore& b,
                       const DotContext& cb);

// Value of the live contributions (wrapping on overflow; callers check ranges).
std::int64_t CounterValue(const CounterStore& s);
// The exact sum of the live contributions (each the replica's total above its
// floor, read as int64): a merge can take it outside int64.
__int128 CounterSum(const CounterStore& s);
// True when some contribution is newer than its floor.
bool CounterLive(const CounterStore& s);
// The (hlc, replica) of the newest live contribution.
std::pair<Hlc, ReplicaId> CounterNewest(const CounterStore& s);

// Adds `amount` on behalf of `replica`; applies the change and returns the delta.
Causal<CounterStore> CounterAdd(Causal<CounterStore>& state, ReplicaId replica,
                                std::int64_t amount, Hlc hlc);
// Removes every observed contribution; applies the change and returns the delta.
Causal<CounterStore> CounterReset(Causal<CounterStore>& state);

class PNCounter : public CausalValue<PNCounter, CounterStore> {
 public:
  PNCounter Increment(ReplicaId replica, std::int64_t amount, Hlc hlc);
  PNCounter Clear();
  std::int64_t Value() const { return CounterValue(state_.store); }
  bool Live() const { return CounterLive(state_.store); }
};

}  // namespace lattice::crdt
