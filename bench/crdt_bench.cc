// CRDT values: join, encode and decode of a key holding an OR-set of 10 and
// of 1000 members (crdt/key_state.h, crdt/codec.h). Join copies the left
// state first (a join in place would be idempotent after the first run), so
// its figure includes one copy.
#include <benchmark/benchmark.h>

#include <string>

#include "crdt/codec.h"
#include "crdt/key_state.h"

namespace lattice::crdt {
namespace {

// A set of `n` members added by `replica`, members "m<offset>".."m<offset+n-1>".
KeyState MakeSet(ReplicaId replica, int n, int offset) {
  KeyState state;
  for (int i = 0; i < n; ++i) {
    const std::string member = "member:" + std::to_string(offset + i);
    auto delta = state.Mutate<ORSet>(Stamp{Hlc{1000 + static_cast<std::uint64_t>(i), 0}, replica},
                                     [&](ORSet& s) { return s.Add(replica, member); });
    benchmark::DoNotOptimize(delta);
  }
  return state;
}

void BM_SetJoin(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const KeyState a = MakeSet(1, n, 0);
  const KeyState b = MakeSet(2, n, n / 2);  // half the members in common, added concurrently
  for (auto _ : state) {
    KeyState joined = a;
    joined.Join(b);
    benchmark::DoNotOptimize(joined);
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_SetJoin)->ArgName("members")->Arg(10)->Arg(1000);

// The common case on the write path: one member's delta into a large state.
void BM_SetJoinDelta(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const KeyState base = MakeSet(1, n, 0);
  KeyState other = base;
  auto delta = other.Mutate<ORSet>(Stamp{Hlc{5000, 0}, 2}, [](ORSet& s) { return s.Add(2, "new member"); });
  const KeyState d = *delta;
  KeyState target = base;
  for (auto _ : state) {
    target.Join(d);  // first time adds, then re-delivery: what a repeated delta costs
    benchmark::DoNotOptimize(target);
  }
}
BENCHMARK(BM_SetJoinDelta)->ArgName("members")->Arg(10)->Arg(1000);

void BM_SetEncode(benchmark::State& state) {
  const KeyState s = MakeSet(1, static_cast<int>(state.range(0)), 0);
  std::int64_t bytes = 0;
  for (auto _ : state) {
    std::string encoded = EncodeKeyState(s);
    bytes += static_cast<std::int64_t>(encoded.size());
    benchmark::DoNotOptimize(encoded);
  }
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_SetEncode)->ArgName("members")->Arg(10)->Arg(1000);

void BM_SetDecode(benchmark::State& state) {
  const std::string encoded = EncodeKeyState(MakeSet(1, static_cast<int>(state.range(0)), 0));
  for (auto _ : state) {
    auto decoded = DecodeKeyState(encoded);
    if (!decoded.ok()) {
      state.SkipWithError(decoded.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(decoded);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(encoded.size()));
}
BENCHMARK(BM_SetDecode)->ArgName("members")->Arg(10)->Arg(1000);

}  // namespace
}  // namespace lattice::crdt
