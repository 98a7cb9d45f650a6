// Pipeline (node/pipeline.h), the one request path, over a real Replicator
// and store: a node alone (N = 1) runs a batch's data commands as one group
// (one writer work item however many writes); the same random pipelined
// batches answer exactly the same alone, coordinated through a cluster of
// two (at ONE, this node minting), and when the cluster grows between the
// batch's start and its group's. Seeded: LATTICE_PIPELINE_SEED.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <random>

#include "node/command_table.h"
#include "node/pipeline.h"
#include "tests/temp_dir.h"

namespace lattice::node {
namespace {

// The replicator's world: commits on the real store's writer; what they
// answer, and what the pipeline posts, runs on the test's thread (Run).
// Peers receive nothing; timers never fire (nothing here waits for a peer).
class Env : public ReplicaEnv {
 public:
  explicit Env(storage::Store& store) : store_(store) {}
  std::uint64_t NowMs() override {
    using namespace std::chrono;
    return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
  }
  void Send(const std::string&, std::string, bool) override {}
  void Commit(storage::Store::Work work, std::function<void(Status)> done) override {
    store_.Submit(std::move(work), [this, done = std::move(done)](Status s) {
      Post([done, s] { done(s); });
    });
  }
  void After(std::uint64_t, std::function<void()>) override {}
  void Changed(const std::vector<std::string>&) override {}

  void Post(std::function<void()> fn) {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(fn));
    cv_.notify_one();
  }
  // Runs what is posted until `done()`, for at most 10 s.
  bool Run(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      std::unique_lock lock(mu_);
      if (!cv_.wait_until(lock, deadline, [this] { return !queue_.empty(); })) return false;
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
    }
    return true;
  }

 private:
  storage::Store& store_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

ReplicaView ViewOf(std::vector<std::string> members) {
  ReplicaView v;
  v.members = members;
  v.reachable.insert(members.begin(), members.end());
  return v;
}

struct Node {
  explicit Node(const std::string& tag) : dir("lattice-pipeline-" + tag) {
    storage::StoreOptions options;
    options.dir = dir.path.string();
    options.node_name = "solo";
    options.sync = storage::SyncMode::kNone;
    auto s = storage::Store::Open(options);
    REQUIRE_MESSAGE(s.ok(), s.status().ToString());
    store = std::move(s).value();
    engine = std::make_unique<Engine>(*store, clock);
    env = std::make_unique<Env>(*store);
    replicator = std::make_unique<Replicator>(*env, *engine, ReplicatorOptions{}, "solo", 42);
    replicator->SetView(ViewOf({"solo"}));
    pipeline = std::make_unique<Pipeline>(
        *replicator, conn, [e = env.get()](std::function<void()> fn) { e->Post(std::move(fn)); },
        [this](std::size_t slot, Answer& a) {
          replies.resize(std::max(replies.size(), slot + 1));
          AppendAnswer(replies[slot], a);
        });
  }
  ~Node() {
    replicator->Stop();
    store->Close();  // runs what is queued; its answers are dropped with the queue
    pipeline.reset();
    replicator.reset();
  }

  // One batch through the pipeline; `between` runs after the commands are
  // added, before they are flushed. The replies by slot.
  std::vector<std::string> Batch(const std::vector<Args>& commands, const std::function<void()>& between = {}) {
    replies.assign(commands.size(), std::string());
    for (std::size_t i = 0; i < commands.size(); ++i) {
      const CommandSpec* spec = CommandTable::Get().FindAnyCase(commands[i][0]);
      REQUIRE(spec != nullptr);
      pipeline->Add(i, *spec, commands[i], Level::kOne);
    }
    if (between) between();
    bool drained = false;
    pipeline->Drain([&] { drained = true; });
    REQUIRE(env->Run([&] { return drained; }));
    return replies;
  }

  test::TempDir dir;
  crdt::HlcClock clock;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Env> env;
  std::unique_ptr<Replicator> replicator;
  ConnState conn;
  std::unique_ptr<Pipeline> pipeline;
  std::vector<std::string> replies;
};

std::string Bulk(std::string_view s) { return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n"; }

TEST_CASE("pipeline: alone, a batch's data commands run as one group in one writer work item") {
  Node n("group");
  REQUIRE(n.replicator->Alone());
  const auto before = n.store->stats().items;
  auto replies = n.Batch({{"GET", "k"}, {"SET", "k", "v1"}, {"GET", "k"}, {"INCR", "c"}, {"INCR", "c"},
                          {"SADD", "s", "a", "b"}, {"DEL", "k", "s"}, {"GET", "k"}, {"DBSIZE"}});
  CHECK(replies == std::vector<std::string>{"$-1\r\n", "+OK\r\n", Bulk("v1"), ":1\r\n", ":2\r\n", ":2\r\n",
                                            ":2\r\n", "$-1\r\n", ":1\r\n"});
  CHECK(n.store->stats().items - before == 1);
  // Reads only: no writer work at all.
  CHECK(n.Batch({{"GET", "c"}, {"EXISTS", "c", "k"}}) == std::vector<std::string>{Bulk("2"), ":1\r\n"});
  CHECK(n.store->stats().items - before == 1);
}

TEST_CASE("pipeline: random batches answer the same alone, in a cluster, and when the cluster grows mid-batch") {
  const char* env = std::getenv("LATTICE_PIPELINE_SEED");
  const std::uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  MESSAGE("LATTICE_PIPELINE_SEED=" << seed);
  std::mt19937_64 rng(seed);
  Node alone("alone"), cluster("cluster"), grows("grows");
  // Two members: N = 3 replicas of every key are both, so at ONE this node
  // mints every write and reads its own store, one command after another
  // where KeyOrder says so.
  cluster.replicator->SetView(ViewOf({"solo", "other"}));
  REQUIRE(!cluster.replicator->Alone());
  const std::vector<std::string> counters{"c0", "c1"}, strings{"r0", "r1"}, sets{"s0", "s1"};
  auto pick = [&](const std::vector<std::string>& from) { return from[rng() % from.size()]; };
  for (int round = 0; round < 60; ++round) {
    std::vector<Args> batch;
    const std::size_t size = 1 + rng() % 12;
    for (std::size_t i = 0; i < size; ++i) {
      switch (rng() % 7) {
        case 0: batch.push_back({"SET", pick(strings), "v" + std::to_string(rng() % 100)}); break;
        case 1: batch.push_back({"GET", pick(strings)}); break;
        case 2: batch.push_back({"INCRBY", pick(counters), std::to_string(rng() % 9)}); break;
        case 3: batch.push_back({"GET", pick(counters)}); break;
        case 4: batch.push_back({"SADD", pick(sets), "m" + std::to_string(rng() % 4)}); break;
        case 5: batch.push_back({"SCARD", pick(sets)}); break;
        default:
          batch.push_back(rng() % 2 ? Args{"DEL", pick(strings)} : Args{"DEL", pick(sets), pick(counters)});
      }
    }
    INFO("seed " << seed << " round " << round);
    const auto want = alone.Batch(batch);
    CHECK(cluster.Batch(batch) == want);
    // Grouped when added (alone), run in order through the coordinators
    // once the group starts (no longer alone), then alone again.
    CHECK(grows.Batch(batch, [&] { grows.replicator->SetView(ViewOf({"solo", "other"})); }) == want);
    grows.replicator->SetView(ViewOf({"solo"}));
  }
}

}  // namespace
}  // namespace lattice::node
