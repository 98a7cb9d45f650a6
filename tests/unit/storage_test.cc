// storage::Store against a real LMDB environment in a temporary directory.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <random>
#include <set>

#include "storage/store.h"
#include "tests/temp_dir.h"

namespace lattice::storage {
namespace {

using crdt::Hlc;
using crdt::KeyState;
using crdt::ORMap;
using crdt::ORSet;
using crdt::Stamp;


using lattice::test::TempDir;

std::unique_ptr<Store> OpenStore(const TempDir& dir, std::size_t map_bytes = std::size_t{1} << 30) {
  StoreOptions o;
  o.dir = dir.path.string();
  o.node_name = "n1";
  o.sync = SyncMode::kNone;
  o.map_bytes = map_bytes;
  auto s = Store::Open(o);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return std::move(s).value();
}

// Runs `work` through the writer and waits for its commit.
Status Write(Store& store, Store::Work work) {
  std::promise<Status> done;
  store.Submit(std::move(work), [&](Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

Status AddMember(Store& store, const std::string& key, const std::string& member) {
  return Write(store, [=](Txn& t) -> Status {
    auto loaded = t.Load(key, Members::Of({member}));
    KeyState state = loaded.ok() ? std::move(loaded->state) : KeyState{};
    auto d = state.Mutate<ORSet>(Stamp{Hlc{1, 0}, 7}, [&](ORSet& s) { return s.Add(7, member); });
    if (!d.ok()) return d.status();
    return t.Save(key, state, Members::Of({member}));
  });
}

TEST_CASE("storage: set members are separate records; partial loads see liveness and counts") {
  TempDir dir;
  auto store = OpenStore(dir);
  for (int i = 0; i < 50; ++i) REQUIRE(AddMember(*store, "s", "m" + std::to_string(i)).ok());
  REQUIRE(Write(*store, [](Txn& t) -> Status {
            auto loaded = t.Load("s", Members::Of({"m3"}));
            if (!loaded.ok()) return loaded.status();
            KeyState state = std::move(loaded->state);
            auto d = state.Mutate<ORSet>(Stamp{Hlc{2, 0}, 7}, [](ORSet& s) { return s.Remove("m3"); });
            return t.Save("s", state, Members::Of({"m3"}));
          }).ok());
  CHECK(store->Read([](Txn& t) -> Status {
    auto partial = t.Load("s", Members::Of({"m7"}));
    REQUIRE(partial.ok());
    CHECK(partial->live_set_members == 49);
    const ORSet* set = partial->state.Get<ORSet>();
    REQUIRE(set != nullptr);  // live although only one member was asked for
    CHECK(set->Contains("m7"));
    CHECK(set->Size() <= 2);
    auto full = t.Load("s", Members::All());
    REQUIRE(full.ok());
    CHECK(full->state.Get<ORSet>()->Size() == 49);
    CHECK_FALSE(full->state.Get<ORSet>()->Contains("m3"));
    CHECK(t.LiveKeys() == 1);
    CHECK(t.Load("absent", Members::None()).status().IsNotFound());
    return Status::Ok();
  }).ok());
}

TEST_CASE("storage: data and identity survive reopening; another node name is refused") {
  TempDir dir;
  std::uint64_t incarnation = 0;
  {
    auto store = OpenStore(dir);
    CHECK(store->identity().fresh);
    incarnation = store->identity().incarnation;
    store->SetHlcSnapshot([] { return Hlc{12345, 6}; });
    REQUIRE(AddMember(*store, "k", "x").ok());
  }
  {
    auto store = OpenStore(dir);
    CHECK_FALSE(store->identity().fresh);
    CHECK(store->identity().incarnation == incarnation);
    CHECK(store->identity().hlc == Hlc{12345, 6});
    CHECK(store->Read([](Txn& t) -> Status {
      auto k = t.Load("k", Members::All());
      REQUIRE(k.ok());
      CHECK(k->state.Get<ORSet>()->Contains("x"));
      return Status::Ok();
    }).ok());
  }
  StoreOptions other;
  other.dir = dir.path.string();
  other.node_name = "n2";
  auto refused = Store::Open(other);
  CHECK(refused.status().code() == Status::Code::kInvalidArgument);
  CHECK(refused.status().message().find("belongs to node 'n1'") != std::string::npos);
}

TEST_CASE("storage: a full map grows and the checkpoint is retried") {
  TempDir dir;
  auto store = OpenStore(dir, std::size_t{1} << 20);  // 1 MiB
  std::string big(4000, 'v');
  for (int i = 0; i < 600; ++i) {
    Status s = Write(*store, [&, i](Txn& t) -> Status {
      KeyState state;
      std::string key = "key" + std::to_string(i);
      (void)state.Mutate<crdt::LWWRegister>(Stamp{Hlc{1, 0}, 1},
                                            [&](crdt::LWWRegister& r) { return r.Write(1, big, Hlc{1, 0}); });
      return t.Save(key, state, Members::None());
    });
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
  store->Close();  // the last checkpoint writes 2.4 MB into the 1 MiB map
  CHECK(store->stats().resizes > 0);
  CHECK(store->stats().checkpoints > 0);
  store = OpenStore(dir, std::size_t{1} << 20);
  CHECK(store->recovery().replayed_records == 0);
  CHECK(store->Read([](Txn& t) -> Status {
    CHECK(t.LiveKeys() == 600);
    return Status::Ok();
  }).ok());
}

TEST_CASE("storage: expiry index and scans") {
  TempDir dir;
  auto store = OpenStore(dir);
  for (const char* key : {"a", "b", "c"}) REQUIRE(AddMember(*store, key, "x").ok());
  REQUIRE(Write(*store, [](Txn& t) -> Status {
            auto loaded = t.Load("b", Members::None());
            KeyState state = std::move(loaded->state);
            state.Expire(Stamp{Hlc{5, 0}, 7}, 1000);
            return t.Save("b", state, Members::None());
          }).ok());
  CHECK(store->Read([](Txn& t) -> Status {
    CHECK(t.DueKeys(999, 10)->empty());
    CHECK(*t.DueKeys(1000, 10) == std::vector<std::string>{"b"});
    std::vector<std::string> seen;
    std::uint64_t cursor = 0;
    do {
      cursor = *t.ScanKeys(cursor, 1, [&](std::string_view k) {
        seen.emplace_back(k);
        return true;
      });
    } while (cursor != 0);
    std::sort(seen.begin(), seen.end());
    CHECK(seen == std::vector<std::string>{"a", "b", "c"});
    return Status::Ok();
  }).ok());
}

}  // namespace
}  // namespace lattice::storage

namespace lattice::storage {
namespace {

TEST_CASE("storage: a damaged record is reported as corruption, never served") {
  TempDir dir;
  const std::string marker = "MARKER-0123456789-MARKER";
  {
    auto store = OpenStore(dir);
    REQUIRE(Write(*store, [&](Txn& t) -> Status {
              KeyState state;
              (void)state.Mutate<crdt::LWWRegister>(Stamp{Hlc{1, 0}, 1}, [&](crdt::LWWRegister& r) {
                return r.Write(1, marker, Hlc{1, 0});
              });
              return t.Save("victim", state, Members::None());
            }).ok());
  }
  // Flip one byte of the stored value inside the LMDB file.
  std::string path = (dir.path / "data.mdb").string();
  std::FILE* f = std::fopen(path.c_str(), "r+b");
  REQUIRE(f != nullptr);
  std::string bytes;
  char chunk[65536];
  std::size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) bytes.append(chunk, n);
  std::size_t at = bytes.find(marker);
  REQUIRE(at != std::string::npos);
  std::fseek(f, static_cast<long>(at + 3), SEEK_SET);
  std::fputc('#', f);
  std::fclose(f);
  auto store = OpenStore(dir);
  CHECK(store->Read([](Txn& t) -> Status {
    auto loaded = t.Load("victim", Members::None());
    CHECK(loaded.status().IsCorruption());
    CHECK(loaded.status().message().find("checksum") != std::string::npos);
    return Status::Ok();
  }).ok());
}

}  // namespace
}  // namespace lattice::storage

namespace lattice::storage {
namespace {

TEST_CASE("storage: saving one key several times in one transaction keeps the Merkle trees exact") {
  // Regression: the old record's digest was taken after the write had reused
  // the transaction's dirty page in place.
  TempDir dir;
  std::vector<merkle::Digest> roots;
  {
    auto store = OpenStore(dir);
    REQUIRE(AddMember(*store, "k", "a").ok());
    REQUIRE(Write(*store, [](Txn& t) -> Status {
              for (int i = 0; i < 5; ++i) {
                auto loaded = t.Load("k", Members::All());
                if (!loaded.ok()) return loaded.status();
                KeyState state = std::move(loaded->state);
                auto d = state.Mutate<ORSet>(Stamp{Hlc{2, static_cast<std::uint32_t>(i)}, 7},
                                             [&](ORSet& s) { return s.Add(7, "m" + std::to_string(i)); });
                if (!d.ok()) return d.status();
                if (Status s = t.Save("k", state, Members::Of({"m" + std::to_string(i)})); !s.ok()) return s;
              }
              return Status::Ok();
            }).ok());
    for (std::uint32_t p = 0; p < 256; ++p) roots.push_back(store->PartitionRoot(p));
  }
  auto reopened = OpenStore(dir);  // rebuilds the trees by one scan
  for (std::uint32_t p = 0; p < 256; ++p) {
    INFO("partition " << p);
    CHECK(reopened->PartitionRoot(p) == roots[p]);
  }
}

TEST_CASE("storage: the key digests of a hash range add up to its Merkle leaves") {
  TempDir dir;
  auto store = OpenStore(dir);
  std::set<std::string> keys;
  for (int i = 0; i < 300; ++i) {
    const std::string key = "k" + std::to_string(i);
    keys.insert(key);
    for (int m = 0; m <= i % 3; ++m) REQUIRE(AddMember(*store, key, "m" + std::to_string(m)).ok());
  }
  std::set<std::string> seen;
  for (std::uint32_t p = 0; p < 256; ++p) {
    const merkle::Tree tree = store->PartitionTree(p);
    std::vector<merkle::Digest> leaves(tree.leaves());
    REQUIRE(store->Read([&](Txn& t) {
      return t.KeyDigests(tree.LeafRange(0).first, tree.LeafRange(tree.leaves() - 1).second,
                          [&](std::string_view key, const merkle::Digest& d) {
                            CHECK(seen.insert(std::string(key)).second);
                            CHECK(store->PartitionOfHash(KeyHash(key)) == p);
                            leaves[tree.LeafOf(KeyHash(key))] ^= d;
                          });
    }).ok());
    for (std::uint32_t l = 0; l < tree.leaves(); ++l) {
      INFO("partition " << p << " leaf " << l);
      CHECK(leaves[l] == tree.Node(tree.leaf_bits(), l));
    }
  }
  CHECK(seen == keys);
}

TEST_CASE("storage: an unclean stop under --sync none takes a new incarnation that rejoins; a clean one does not") {
  TempDir dir;
  std::uint64_t first = 0;
  {
    auto store = OpenStore(dir);  // SyncMode::kNone
    first = store->identity().incarnation;
    REQUIRE(AddMember(*store, "k", "a").ok());
  }  // a clean close
  {
    auto store = OpenStore(dir);
    CHECK(store->identity().incarnation == first);
    CHECK_FALSE(store->identity().rejoin);
    CHECK(store->recovery().new_incarnation_reason.empty());
    REQUIRE(AddMember(*store, "k", "b").ok());
    store->Kill();  // as kill -9: no last checkpoint, the log unsynced
  }
  auto store = OpenStore(dir);
  CHECK(store->identity().incarnation > first);  // a later life supersedes the earlier in membership
  CHECK(store->identity().rejoin);
  CHECK(store->recovery().new_incarnation_reason.find("--sync none") != std::string::npos);
  CHECK(store->recovery().replayed_records > 0);  // what the kernel had is kept
  CHECK(store->Read([](Txn& t) -> Status {
    auto k = t.Load("k", Members::All());
    REQUIRE(k.ok());
    CHECK(k->state.Get<ORSet>()->Contains("b"));
    return Status::Ok();
  }).ok());
}

TEST_CASE("storage: the Merkle trees after a reopen equal those before it") {
  TempDir dir;
  auto open = [&] {
    StoreOptions o;
    o.dir = dir.path.string();
    o.node_name = "n1";
    o.sync = SyncMode::kNone;
    o.map_bytes = std::size_t{1} << 30;
    auto s = Store::Open(o);
    REQUIRE_MESSAGE(s.ok(), s.status().ToString());
    return std::move(s).value();
  };
  auto roots = [](Store& store) {
    std::vector<merkle::Digest> out;
    for (std::uint32_t p = 0; p < 256; ++p) out.push_back(store.PartitionRoot(p));
    return out;
  };
  auto add = [](Store& store, int from, int to) {
    for (int i = from; i < to; ++i) REQUIRE(AddMember(store, "k" + std::to_string(i % 50), "m" + std::to_string(i)).ok());
  };
  std::vector<merkle::Digest> expect;
  {
    auto store = open();
    add(*store, 0, 200);
    expect = roots(*store);
  }
  for (int round = 0; round < 3; ++round) {
    // A clean close checkpointed everything and removed the log's segments.
    CHECK(std::filesystem::is_empty(dir.path / "wal"));
    auto store = open();
    CHECK(store->recovery().replayed_records == 0);
    CHECK(roots(*store) == expect);
    add(*store, 200 + 50 * round, 250 + 50 * round);
    expect = roots(*store);
  }
}

}  // namespace
TEST_CASE("storage: tombstones are indexed, retired whole, and raise the partition's retired context") {
  TempDir dir;
  const std::string key = "gone";
  const crdt::ReplicaId me = 7;
  crdt::DotContext ctx;
  std::uint32_t p = 0;
  {
    auto store = OpenStore(dir);
    p = store->PartitionOfHash(KeyHash(key));
    const merkle::Digest empty_root = store->PartitionRoot(p);
    REQUIRE(AddMember(*store, key, "a").ok());
    REQUIRE(AddMember(*store, key, "b").ok());
    auto tombstones = [&] {
      std::vector<std::string> keys;
      REQUIRE(store->Read([&](Txn& t) {
        auto r = t.Tombstones("", 100, [&](std::string_view k) { keys.emplace_back(k); });
        return r.status();
      }).ok());
      return keys;
    };
    CHECK(tombstones().empty());
    // A live key is not retired.
    REQUIRE(Write(*store, [&](Txn& t) -> Status {
      auto r = t.Retire(key, crdt::DotContext{});
      if (!r.ok()) return r.status();
      CHECK_FALSE(*r);
      return Status::Ok();
    }).ok());
    REQUIRE(Write(*store, [&](Txn& t) -> Status {
      auto loaded = t.Load(key, Members::All());
      if (!loaded.ok()) return loaded.status();
      KeyState state = std::move(loaded->state);
      (void)state.Clear();
      ctx = state.AllContext();
      CHECK(state.Tombstone());
      return t.Save(key, state, Members::All());
    }).ok());
    CHECK(tombstones() == std::vector<std::string>{key});
    CHECK_FALSE(store->PartitionRoot(p) == empty_root);
    // Retire checks the context it is given.
    crdt::DotContext other = ctx;
    other.Insert(crdt::Dot{99, 1});
    REQUIRE(Write(*store, [&](Txn& t) -> Status {
      auto r = t.Retire(key, other);
      if (!r.ok()) return r.status();
      CHECK_FALSE(*r);
      r = t.Retire(key, ctx);
      if (!r.ok()) return r.status();
      CHECK(*r);
      return Status::Ok();
    }).ok());
    CHECK(tombstones().empty());
    CHECK(store->PartitionRoot(p) == empty_root);  // every record's digest left the tree
    CHECK(store->Read([&](Txn& t) { return t.Load(key, Members::All()).status(); }).IsNotFound());
    CHECK(store->MintFloor(p, me) == 2);
    CHECK(store->Retired(p, ctx));
    CHECK_FALSE(store->Retired(p, other));
    CHECK_FALSE(store->Retired(p + 1, ctx));
  }
  // The retired context survives a restart, and a new write of the key mints
  // above it.
  auto store = OpenStore(dir);
  CHECK(store->MintFloor(p, me) == 2);
  CHECK(store->Retired(p, ctx));
  REQUIRE(Write(*store, [&](Txn& t) -> Status {
    KeyState state;
    auto d = state.Mutate<ORSet>(Stamp{Hlc{2, 0}, me}, [&](ORSet& s) { return s.Add(me, "c"); }, store->MintFloor(p, me));
    if (!d.ok()) return d.status();
    CHECK(state.Context().Contains(crdt::Dot{me, 3}));
    CHECK_FALSE(store->Retired(p, d->AllContext()));
    return t.Save(key, state, Members::All());
  }).ok());
}

}  // namespace lattice::storage
