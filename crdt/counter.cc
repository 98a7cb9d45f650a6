#include "crdt/counter.h"

namespace lattice::crdt {

namespace {

void JoinMax(std::map<ReplicaId, CounterEntry>& into, const std::map<ReplicaId, CounterEntry>& from) {
  for (const auto& [replica, entry] : from) {
    auto [it, inserted] = into.emplace(replica, entry);
    if (!inserted && it->second < entry) it->second = entry;
  }
}

const CounterEntry* FloorOf(const CounterStore& s, ReplicaId replica) {
  auto it = s.floors.find(replica);
  return it == s.floors.end() ? nullptr : &it->second;
}

}  // namespace

bool IsBottom(const CounterStore& s) { return s.entries.empty() && s.floors.empty(); }

void CollectDots(const CounterStore& s, DotContext& out) {
  for (const auto& [replica, entry] : s.entries) out.Insert(Dot{replica, entry.counter});
}

CounterStore JoinStore(const CounterStore& a, const DotContext&, const CounterStore& b,
                       const DotContext&) {
  CounterStore out = a;
  JoinMax(out.entries, b.entries);
  JoinMax(out.floors, b.floors);
  return out;
}

std::int64_t CounterValue(const CounterStore& s) {
  std::uint64_t sum = 0;  // unsigned: wraps instead of undefined behaviour
  for (const auto& [replica, entry] : s.entries) {
    const CounterEntry* floor = FloorOf(s, replica);
    if (floor == nullptr) {
      sum += static_cast<std::uint64_t>(entry.total);
    } else if (entry.counter > floor->counter) {
      sum += static_cast<std::uint64_t>(entry.total) - static_cast<std::uint64_t>(floor->total);
    }
  }
  return static_cast<std::int64_t>(sum);
}

__int128 CounterSum(const CounterStore& s) {
  __int128 sum = 0;
  for (const auto& [replica, entry] : s.entries) {
    const CounterEntry* floor = FloorOf(s, replica);
    if (floor == nullptr) {
      sum += entry.total;
    } else if (entry.counter > floor->counter) {
      sum += static_cast<std::int64_t>(static_cast<std::uint64_t>(entry.total) - static_cast<std::uint64_t>(floor->total));
    }
  }
  return sum;
}

bool CounterLive(const CounterStore& s) {
  for (const auto& [replica, entry] : s.entries) {
    const CounterEntry* floor = FloorOf(s, replica);
    if (floor == nullptr || entry.counter > floor->counter) return true;
  }
  return false;
}

std::pair<Hlc, ReplicaId> CounterNewest(const CounterStore& s) {
  std::pair<Hlc, ReplicaId> newest{};
  for (const auto& [replica, entry] : s.entries) {
    const CounterEntry* floor = FloorOf(s, replica);
    if (floor != nullptr && entry.counter <= floor->counter) continue;
    newest = std::max(newest, std::pair<Hlc, ReplicaId>{entry.hlc, replica});
  }
  return newest;
}

Causal<CounterStore> CounterAdd(Causal<CounterStore>& state, ReplicaId replica,
                                std::int64_t amount, Hlc hlc) {
  Dot dot = state.ctx.NextDot(replica);
  CounterEntry& entry = state.store.entries[replica];
  entry.counter = dot.counter;
  entry.total = static_cast<std::int64_t>(static_cast<std::uint64_t>(entry.total) +
                                          static_cast<std::uint64_t>(amount));
  entry.hlc = hlc;
  Causal<CounterStore> delta;
  delta.store.entries.emplace(replica, entry);
  delta.ctx.Insert(dot);
  return delta;
}

Causal<CounterStore> CounterReset(Causal<CounterStore>& state) {
  Causal<CounterStore> delta;
  for (const auto& [replica, entry] : state.store.entries) {
    const CounterEntry* floor = FloorOf(state.store, replica);
    if (floor != nullptr && entry.counter <= floor->counter) continue;
    delta.store.floors.emplace(replica, entry);
    delta.ctx.Insert(Dot{replica, entry.counter});
  }
  JoinMax(state.store.floors, delta.store.floors);
  return delta;
}

PNCounter PNCounter::Increment(ReplicaId replica, std::int64_t amount, Hlc hlc) {
  return FromDelta(CounterAdd(state_, replica, amount, hlc));
}

PNCounter PNCounter::Clear() { return FromDelta(CounterReset(state_)); }

}  // namespace lattice::crdt
