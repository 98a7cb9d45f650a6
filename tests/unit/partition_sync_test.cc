// Joins and hand-offs (gossip/partition_sync.h) on a fixed layout: a joining
// node asks one replica at a time per partition and is done once each serving
// replica's root matched; a node that gained partitions pulls only those, and
// refuses their reads until then; a leaving node is done once every heir
// matched its current root, and compares again after its root changed.
#include <doctest/doctest.h>

#include <filesystem>
#include <future>
#include <random>

#include "crdt/or_set.h"
#include "gossip/partition_sync.h"
#include "tests/temp_dir.h"

namespace lattice::gossip {
namespace {


using lattice::test::TempDir;

std::unique_ptr<storage::Store> OpenStore(const TempDir& dir) {
  storage::StoreOptions o;
  o.dir = dir.path.string();
  o.node_name = "a";
  o.sync = storage::SyncMode::kNone;
  o.map_bytes = std::size_t{1} << 28;
  o.partitions = 4;
  auto s = storage::Store::Open(o);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return std::move(s).value();
}

// Four partitions; the test sets who replicates what.
struct FakeLayout : PartitionSync::Layout {
  std::uint32_t partitions() const override { return 4; }
  const std::vector<std::string>& Now(std::uint32_t p) const override { return now[p]; }
  const std::vector<std::string>& Before(std::uint32_t p) const override { return before[p]; }
  const std::vector<std::string>& After(std::uint32_t p) const override { return after[p]; }
  const std::vector<std::string>& Members() const override { return members; }
  bool Joining(const std::string& m) const override { return joining.count(m) > 0; }
  bool Leaving(const std::string& m) const override { return leaving.count(m) > 0; }
  bool Reachable(const std::string& m) const override { return reachable.count(m) > 0; }
  std::vector<std::vector<std::string>> now{4}, before{4}, after{4};
  std::vector<std::string> members;
  std::set<std::string> joining, leaving, reachable;
};

TEST_CASE("partition sync: a joining node pulls every partition it replicates, one replica at a time") {
  TempDir dir;
  auto store = OpenStore(dir);
  PartitionSync sync(*store, "a");
  FakeLayout l;
  l.members = {"a", "b", "c"};
  l.joining = {"a"};
  l.reachable = {"a", "b", "c"};
  for (std::uint32_t p = 0; p < 4; ++p) {
    l.now[p] = p < 3 ? std::vector<std::string>{"a", "b", "c"} : std::vector<std::string>{"b", "c"};
    l.before[p] = {"b", "c"};
    l.after[p] = l.now[p];
  }
  auto step = sync.Pull(l, 1000);
  CHECK_FALSE(step.done);
  // Partitions 0-2 are ours: one replica asked for each; 3 is not ours.
  std::size_t asked = 0;
  for (const auto& [peer, parts] : step.asks) {
    CHECK(peer != "a");
    for (auto p : parts) CHECK(p < 3);
    asked += parts.size();
  }
  CHECK(asked == 3);
  // Asked again only after kRetryMs.
  CHECK(sync.Pull(l, 1000 + PartitionSync::kRetryMs - 1).asks.empty());
  CHECK_FALSE(sync.Pull(l, 1000 + PartitionSync::kRetryMs).asks.empty());
  const merkle::Digest root = store->PartitionRoot(0);
  for (std::uint32_t p = 0; p < 3; ++p) sync.Matched(p, "b", root);
  step = sync.Pull(l, 5000);
  CHECK_FALSE(step.done);  // c not matched yet: it is asked now
  for (const auto& [peer, parts] : step.asks) CHECK(peer == "c");
  for (std::uint32_t p = 0; p < 3; ++p) sync.Matched(p, "c", root);
  step = sync.Pull(l, 9000);
  CHECK(step.done);
  CHECK(step.asks.empty());
}

TEST_CASE("partition sync: partitions gained by a membership change are pulled before their reads") {
  TempDir dir;
  auto store = OpenStore(dir);
  PartitionSync sync(*store, "a");
  FakeLayout l;
  l.members = {"a", "b", "c"};
  l.reachable = {"a", "b", "c"};
  for (std::uint32_t p = 0; p < 4; ++p) {
    l.now[p] = {"a", "b"};
    l.before[p] = l.now[p];
    l.after[p] = l.now[p];
  }
  l.now[2] = l.before[2] = l.after[2] = {"b", "c"};
  // Before the change this node replicated 0 and 1; now also 3 (2 is not ours).
  sync.Changed(l, {true, true, false, false}, false, false);
  CHECK_FALSE(sync.Pulling(0));
  CHECK_FALSE(sync.Pulling(2));
  CHECK(sync.Pulling(3));
  auto step = sync.Pull(l, 1000);
  CHECK_FALSE(step.done);  // only a joining node reports done
  REQUIRE(step.asks.size() == 1);
  CHECK(step.asks.begin()->first == "b");
  CHECK(step.asks.begin()->second == std::vector<std::uint32_t>{3});
  sync.Matched(3, "b", store->PartitionRoot(3));
  (void)sync.Pull(l, 2000);
  CHECK_FALSE(sync.Pulling(3));
  // The first view and a joining node gain nothing to pull.
  PartitionSync fresh(*store, "a");
  fresh.Changed(l, {false, false, false, false}, true, false);
  CHECK_FALSE(fresh.Pulling(0));
}

TEST_CASE("partition sync: a leaving node hands off once every heir matched its current root") {
  TempDir dir;
  auto store = OpenStore(dir);
  PartitionSync sync(*store, "a");
  FakeLayout l;
  l.members = {"a", "b", "c", "d"};
  l.leaving = {"a"};
  l.reachable = {"a", "b", "c", "d"};
  for (std::uint32_t p = 0; p < 4; ++p) {
    l.now[p] = {"a", "b", "c"};
    l.before[p] = l.now[p];
    l.after[p] = {"b", "c", "d"};  // d takes a's place everywhere
  }
  sync.Changed(l, {true, true, true, true}, false, true);
  auto step = sync.HandOff(l, 1000);
  CHECK_FALSE(step.done);
  REQUIRE(step.asks.size() == 1);
  CHECK(step.asks.begin()->first == "d");
  CHECK(step.asks.begin()->second.size() == 4);
  for (std::uint32_t p = 0; p < 4; ++p) sync.Matched(p, "d", store->PartitionRoot(p));
  // A write reached this node since the matches: the root of key k's
  // partition changed, so that partition is compared again.
  std::promise<Status> written;
  store->Submit(
      [](storage::Txn& t) {
        crdt::KeyState state;
        auto d = state.Mutate<crdt::ORSet>(crdt::Stamp{crdt::Hlc{1, 0}, 7},
                                           [](crdt::ORSet& s) { return s.Add(7, "m"); });
        if (!d.ok()) return d.status();
        return t.Save("k", state, storage::Members::Of({"m"}));
      },
      [&](Status s) { written.set_value(s); });
  REQUIRE(written.get_future().get().ok());
  const std::uint32_t changed = store->PartitionOfHash(storage::KeyHash("k"));
  REQUIRE(changed < 4);
  step = sync.HandOff(l, 5000);
  CHECK_FALSE(step.done);
  REQUIRE(step.asks.count("d") == 1);
  CHECK(step.asks["d"] == std::vector<std::uint32_t>{changed});
  sync.Matched(changed, "d", store->PartitionRoot(changed));
  step = sync.HandOff(l, 9000);
  CHECK(step.done);
  CHECK_FALSE(sync.HandOff(l, 9500).done);  // reported once
}

}  // namespace
}  // namespace lattice::gossip
