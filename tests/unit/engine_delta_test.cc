// The deltas the engine records, applied by another store, give that store the
// same states (what replication relies on): random commands on store A, their
// deltas shuffled and duplicated into store B, every key compared whole.
#include <doctest/doctest.h>

#include <filesystem>
#include <future>
#include <cstdlib>
#include <random>

#include "node/engine.h"
#include "tests/test_seed.h"

namespace lattice::node {
namespace {

struct TempStore {
  explicit TempStore(const std::string& name_) : name(name_) {
    dir = std::filesystem::temp_directory_path() / ("lattice-engine-" + name + std::to_string(std::random_device{}()));
    Reopen();
  }
  void Reopen() {
    engine.reset();
    store.reset();
    storage::StoreOptions o;
    o.dir = dir.string();
    o.node_name = name;
    o.sync = storage::SyncMode::kNone;
    o.map_bytes = std::size_t{1} << 30;
    auto s = storage::Store::Open(o);
    REQUIRE_MESSAGE(s.ok(), s.status().ToString());
    store = std::move(s).value();
    engine = std::make_unique<Engine>(*store, clock);
  }
  std::string name;
  ~TempStore() {
    engine.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  Status Write(storage::Store::Work work) {
    std::promise<Status> done;
    store->Submit(std::move(work), [&](Status s) { done.set_value(std::move(s)); });
    return done.get_future().get();
  }
  std::filesystem::path dir;
  crdt::HlcClock clock;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<Engine> engine;
};

Args RandomCommand(std::mt19937_64& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  std::string k = std::to_string(pick(3));
  std::string m = "m" + std::to_string(pick(6));
  std::string n = std::to_string(pick(11) - 5);
  switch (pick(13)) {
    case 0: return {"SADD", "s" + k, m, "m" + std::to_string(pick(6))};
    case 1: return {"SREM", "s" + k, m};
    case 2: return {"HSET", "h" + k, m, "v" + n};
    case 3: return {"HDEL", "h" + k, m};
    case 4: return {"HINCRBY", "h" + k, "c" + m, n};
    case 5: return {"INCRBY", "c" + k, n};
    case 6: return {"SET", "r" + k, "v" + n};
    case 7: return {"MV.SET", "v" + k, n};
    case 8: return {"FLAG.ENABLE", "f" + k};
    case 9: return {"FLAG.DISABLE", "f" + k};
    case 10: return {"EXPIRE", std::string("shcrvf").substr(static_cast<std::size_t>(pick(6)), 1) + k, "100000"};
    case 11: return {"HEXPIRE", "h" + k, "100000", "FIELDS", "1", m};
    default: return {"DEL", std::string("shcrvf").substr(static_cast<std::size_t>(pick(6)), 1) + k};
  }
}

TEST_CASE("engine: recorded deltas replayed in any order on another store give equal states") {
  ::setenv("LATTICE_CHECK_DELTAS", "1", 1);  // every save also checks its own delta
  const std::uint64_t seed = test::TestSeed("engine deltas");
  INFO("seed " << seed << " (replay: LATTICE_SEED=" << seed << " build/tests/unit/engine_unit_test)");
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 20; ++round) {
    TempStore a("a");
    TempStore b("b");
    std::vector<KeyDelta> deltas;
    std::vector<std::string> keys;
    for (int i = 0; i < 150; ++i) {
      Args cmd = RandomCommand(rng);
      keys.push_back(cmd[1]);
      std::string reply;
      REQUIRE(a.Write([&](storage::Txn& t) -> Status {
                std::vector<std::string> changed;
                CommandContext ctx{t, true, 1'000'000, reply, &changed, &deltas};
                const CommandSpec* spec = a.engine->Find(cmd[0]);
                a.engine->Run(*spec, ctx, cmd);
                return Status::Ok();
              }).ok());
      REQUIRE(reply.rfind("-ERR", 0) != 0);
    }
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < deltas.size(); ++i) {
      order.push_back(i);
      if (rng() % 5 == 0) order.push_back(i);  // duplicates
    }
    std::shuffle(order.begin(), order.end(), rng);
    for (std::size_t i : order) {
      REQUIRE(b.Write([&](storage::Txn& t) {
                std::vector<std::string> changed;
                return b.engine->ApplyDelta(t, deltas[i], 1'000'000, changed);
              }).ok());
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const auto& key : keys) {
      INFO("round " << round << " key " << key);
      storage::LoadedKey la, lb;
      REQUIRE(a.store->Read([&](storage::Txn& t) {
                auto r = t.Load(key, storage::Members::All());
                if (r.ok()) la = std::move(r).value();
                return r.status().IsNotFound() ? Status::Ok() : r.status();
              }).ok());
      REQUIRE(b.store->Read([&](storage::Txn& t) {
                auto r = t.Load(key, storage::Members::All());
                if (r.ok()) lb = std::move(r).value();
                return r.status().IsNotFound() ? Status::Ok() : r.status();
              }).ok());
      CHECK(la.state == lb.state);
      CHECK(la.live_set_members == lb.live_set_members);
      CHECK(la.live_map_fields == lb.live_map_fields);
    }
    std::uint64_t live_a = 0, live_b = 0;
    (void)a.store->Read([&](storage::Txn& t) { live_a = t.LiveKeys(); return Status::Ok(); });
    (void)b.store->Read([&](storage::Txn& t) { live_b = t.LiveKeys(); return Status::Ok(); });
    CHECK(live_a == live_b);
    // Equal states give equal Merkle roots, incrementally and after a rebuild.
    std::vector<merkle::Digest> roots_a;
    for (std::uint32_t p = 0; p < 256; ++p) {
      roots_a.push_back(a.store->PartitionRoot(p));
      CHECK(roots_a.back() == b.store->PartitionRoot(p));
    }
    a.Reopen();
    for (std::uint32_t p = 0; p < 256; ++p) CHECK(a.store->PartitionRoot(p) == roots_a[p]);
    if (round == 0) MESSAGE(deltas.size() << " deltas, " << live_a << " live keys");
  }
}

}  // namespace
}  // namespace lattice::node
