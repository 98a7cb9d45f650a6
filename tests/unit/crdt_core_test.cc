// DotContext, VectorClock and HLC.
#include <doctest/doctest.h>

#include "crdt/dot_context.h"
#include "crdt/hlc.h"
#include "crdt/vector_clock.h"

namespace lattice::crdt {
namespace {

TEST_CASE("dot context: inserts compact into the version vector") {
  DotContext ctx;
  ctx.Insert(Dot{7, 2});
  CHECK(ctx.vv().empty());
  CHECK(ctx.cloud().size() == 1);
  CHECK_FALSE(ctx.Contains(Dot{7, 1}));
  ctx.Insert(Dot{7, 1});
  CHECK(ctx.cloud().empty());
  CHECK(ctx.vv().at(7) == 2);
  CHECK(ctx.Contains(Dot{7, 1}));
  CHECK(ctx.Contains(Dot{7, 2}));
  CHECK_FALSE(ctx.Contains(Dot{7, 3}));
  CHECK(ctx.NextDot(7) == Dot{7, 3});
  CHECK(ctx.MaxCounter(7) == 3);
  CHECK(ctx.DotCount() == 3);
}

TEST_CASE("dot context: covers, join and the compacted form") {
  DotContext a;
  DotContext b;
  for (std::uint64_t c : {1, 2, 4}) a.Insert(Dot{1, c});
  for (std::uint64_t c : {3, 5}) b.Insert(Dot{1, c});
  CHECK_FALSE(a.Covers(b));
  DotContext j = a;
  j.Join(b);
  CHECK(j.Covers(a));
  CHECK(j.Covers(b));
  CHECK(j.vv().at(1) == 5);
  CHECK(j.cloud().empty());
  // The same dots in another order give the same representation.
  DotContext k;
  for (std::uint64_t c : {5, 3, 4, 2, 1}) k.Insert(Dot{1, c});
  CHECK(k == j);
  CHECK(a.MaxCounter(1) == 4);
  CHECK(a.MaxCounter(2) == 0);
}

TEST_CASE("dot context: AssignCompacted refuses a representation that is not compacted") {
  DotContext ctx;
  CHECK(ctx.AssignCompacted({{1, 3}}, {Dot{1, 5}}));
  CHECK(ctx.Contains(Dot{1, 5}));
  CHECK_FALSE(ctx.AssignCompacted({{1, 3}}, {Dot{1, 4}}));  // extends the vector
  CHECK_FALSE(ctx.AssignCompacted({{1, 3}}, {Dot{1, 2}}));  // covered
  CHECK_FALSE(ctx.AssignCompacted({{1, 0}}, {}));           // zero entry
  CHECK_FALSE(ctx.AssignCompacted({}, {Dot{2, 1}}));         // belongs in the vector
  CHECK(ctx.Contains(Dot{1, 5}));                            // unchanged by refusals
}

TEST_CASE("vector clock: before, after, equal, concurrent and merge") {
  VectorClock a;
  VectorClock b;
  CHECK(a.Compare(b) == Causality::kEqual);
  a.Increment(1);
  CHECK(a.Compare(b) == Causality::kAfter);
  CHECK(b.Compare(a) == Causality::kBefore);
  b.Increment(2);
  CHECK(a.Compare(b) == Causality::kConcurrent);
  CHECK(b.Compare(a) == Causality::kConcurrent);
  VectorClock m = a;
  m.Merge(b);
  CHECK(m.Get(1) == 1);
  CHECK(m.Get(2) == 1);
  CHECK(a.Compare(m) == Causality::kBefore);
  CHECK(m.Compare(b) == Causality::kAfter);
  CHECK(VectorClock({{1, 1}, {2, 0}}) == a);  // zero entries are not kept
}

TEST_CASE("hlc: monotonic with a stalled or backwards physical clock") {
  std::uint64_t wall = 1000;
  HlcClock clock([&] { return wall; });
  Hlc t1 = clock.Now();
  Hlc t2 = clock.Now();
  CHECK(t1 < t2);
  CHECK(t2.wall_ms == 1000);
  CHECK(t2.logical == 1);
  wall = 900;  // the wall clock jumps back
  Hlc t3 = clock.Now();
  CHECK(t2 < t3);
  wall = 2000;
  Hlc t4 = clock.Now();
  CHECK(t4 == Hlc{2000, 0});
}

TEST_CASE("hlc: observing a peer moves the clock past it, within the offset limit") {
  std::uint64_t wall = 10'000;
  HlcClock clock([&] { return wall; }, 500);
  CHECK(clock.Observe(Hlc{10'400, 3}).ok());
  CHECK(Hlc{10'400, 3} < clock.Now());
  Status refused = clock.Observe(Hlc{11'000, 0});
  CHECK(refused.code() == Status::Code::kRefused);
  CHECK(refused.message().find("1000 ms ahead") != std::string::npos);
  CHECK(clock.Last() < Hlc{11'000, 0});
  clock.Restore(Hlc{50'000, 0});  // our own persisted value is trusted
  CHECK(Hlc{50'000, 0} < clock.Now());
}

}  // namespace
}  // namespace lattice::crdt
