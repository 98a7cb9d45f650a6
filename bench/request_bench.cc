// One client request on the single-node path, without sockets, and the heap
// allocations it makes. What node/server.cc's Session does for a request,
// call for call: the RESP parse (node/resp.h), DispatchRequest, then the
// batch's data commands as one CommandGroup (node/command_group.h: reads in
// one read view, writes in one job inside Store::Submit's work on the
// store's writer), waited for until its done callback (the batch is durable:
// SyncMode::kNone, so no fdatasync).
//
// This binary replaces the global operator new/delete (every variant:
// nothrow, aligned, sized, arrays) with versions that count each call in one
// atomic counter, so allocations on the store's writer and syncer threads
// count too; allocs_per_op is the count over the timed loop divided by the
// iterations (nothing else runs meanwhile: the store has no checkpoint due).
// malloc() called directly (LMDB) is not counted; heaptrack sees it.
//
// BM_Get / BM_Set: GET and SET of a 16-byte key (redis-benchmark's
// key:000000000042 form) with a 3-byte value (BM_Set also 1024 bytes, as
// -d 1024); BM_Get's where:0 reads the key from the memory overlay, where:1
// from LMDB (the store closed, which checkpoints, and reopened). A SET of
// the same key finds its header in the overlay from its second run on,
// wherever it started. Both take the codec's fast paths (crdt/codec.h: no
// KeyState). BM_SetNewKey: a SET of a key not stored yet, another each
// iteration, whose new overlay record (key, tree node, index node, value)
// is what it must allocate. BM_GetPipelined: 64 GETs parsed from one buffer and answered as
// one batch (redis-benchmark -P 64); allocs_per_op is per GET.
// BM_GetParts: HGET of one field and SISMEMBER of one member of a hash / set
// of 1,000, which load that member's record only, not the collection; and
// HGETALL of the hash, which reads it whole, beside them.
#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "crdt/hlc.h"
#include "node/command_group.h"
#include "node/commands_conn.h"
#include "node/engine.h"
#include "node/resp.h"
#include "storage/store.h"

// ---- the counting allocator ------------------------------------------------------

namespace {
std::atomic<std::uint64_t> g_allocs{0};

void* Allocate(std::size_t n) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n != 0 ? n : 1);
}
void* AllocateAligned(std::size_t n, std::align_val_t a) {
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  const auto align = static_cast<std::size_t>(a);
  void* p = nullptr;
  return posix_memalign(&p, align < sizeof(void*) ? sizeof(void*) : align, n != 0 ? n : 1) == 0 ? p : nullptr;
}
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = Allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = Allocate(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return Allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return Allocate(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = AllocateAligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  if (void* p = AllocateAligned(n, a)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateAligned(n, a);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateAligned(n, a);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace lattice::node {
namespace {

// ---- a single node without sockets ----------------------------------------------------

std::string BenchDir() {
  const char* v = std::getenv("LATTICE_BENCH_TMPFS");
  return std::string(v != nullptr && *v != '\0' ? v : "/dev/shm/lattice-micro-log") + "/request";
}

struct BenchServer : ServerState {
  using ServerState::ServerState;
  void Publish(const std::vector<std::string>&) override {}
  void RequestStop() override {}
};

class Node {
 public:
  Node() {
    std::filesystem::remove_all(BenchDir());
    Open();
  }
  ~Node() {
    Close();
    std::filesystem::remove_all(BenchDir());
  }
  bool ok() const { return store_ != nullptr; }
  const std::string& error() const { return error_; }

  // Close (a last checkpoint: every record goes to LMDB) and open again.
  void Reopen() {
    Close();
    Open();
  }

  // One batch of requests parsed from `input`, answered into `out`, as the
  // session's Reader and Process do with what one read brought.
  void Serve(std::string_view input, std::string& out) {
    std::size_t n = 0;  // batch_[0, n), kept from batch to batch as Session::Reader keeps them
    while (!input.empty()) {
      if (n == batch_.size()) batch_.emplace_back();
      Request& req = batch_[n];
      ParseResult r = ParseRequest(input, srv_->config.limits, req.args);
      if (r.kind != ParseResult::Kind::kCommand) {
        error_ = "the request did not parse";
        return;
      }
      input.remove_prefix(r.consumed);
      if (!req.args.empty()) ++n;
    }
    Process(std::span<Request>(batch_.data(), n), out);
  }

 private:
  void Open() {
    storage::StoreOptions options;
    options.dir = BenchDir();
    options.node_name = "bench";
    options.sync = storage::SyncMode::kNone;
    options.map_bytes = std::size_t{64} << 20;
    auto store = storage::Store::Open(options);
    if (!store.ok()) {
      error_ = store.status().ToString();
      return;
    }
    store_ = std::move(store).value();
    clock_ = std::make_unique<crdt::HlcClock>();
    clock_->Restore(store_->identity().hlc);
    store_->SetHlcSnapshot([c = clock_.get()] { return c->Last(); });
    engine_ = std::make_unique<Engine>(*store_, *clock_);
    Config config;
    config.sync = "none";
    srv_ = std::make_unique<BenchServer>(config, *store_, *engine_);
    conn_.authed = true;
    conn_.consistency = config.consistency;
  }
  void Close() {
    srv_.reset();
    engine_.reset();
    if (store_ != nullptr) store_->Close();
    store_.reset();
  }

  // Session::Process of a single node (N = 1: the batch's data commands as
  // one CommandGroup, node/command_group.h), call for call, without the
  // Pipeline's post back to the connection's strand.
  void Process(std::span<Request> batch, std::string& out) {
    if (replies_.size() < batch.size()) replies_.resize(batch.size());
    std::span<std::string> replies(replies_.data(), batch.size());
    for (std::string& r : replies) r.clear();
    CommandGroup& group = group_;
    group.items.clear();
    group.watched = &srv_->watched_keys;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Request& req = batch[i];
      ++srv_->total_commands;
      Dispatch d = DispatchRequest(*srv_, conn_, req.args, replies[i]);
      if (d.kind == Dispatch::Kind::kDone) continue;
      group.items.push_back(CommandGroup::Item{i, d.spec, std::move(d.args), Level::kQuorum, {}});
    }
    if (!group.items.empty()) {
      if (!RunGroupReads(*engine_, group)) {
        RunGroupWrites(
            *engine_, group,
            [this](storage::Store::Work work, std::function<void(Status)> done) { Commit(std::move(work), std::move(done)); },
            [&](const Status& s) {
              if (s.ok() && !group.changed.empty()) srv_->Publish(group.changed);
            });
        Wait();
      }
      for (CommandGroup::Item& item : group.items) {
        AppendAnswer(replies[item.slot], item.answer);
        if (batch[item.slot].args.empty()) batch[item.slot].args = std::move(item.args);
      }
    }
    for (auto& r : replies) out.append(r);
  }

  // The session's Commit: Submit; Wait() waits for its done (on the syncer
  // thread) to have run. The server resumes its connection's strand there
  // instead; its own costs (the post, the coroutine) are not in this figure.
  void Commit(storage::Store::Work work, std::function<void(Status)> done) {
    {
      std::lock_guard lock(mu_);
      pending_ = true;
    }
    srv_->store.Submit(std::move(work), [this, done = std::move(done)](Status s) {
      done(std::move(s));
      std::lock_guard lock(mu_);
      pending_ = false;
      cv_.notify_one();
    });
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !pending_; });
  }

  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<crdt::HlcClock> clock_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<BenchServer> srv_;
  ConnState conn_;
  std::vector<Request> batch_;
  std::vector<std::string> replies_;
  CommandGroup group_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;
  std::string error_;
};

std::string Bulk(std::string_view s) { return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n"; }
std::string Command(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += Bulk(a);
  return out;
}

constexpr const char* kKey = "key:000000000042";  // redis-benchmark's key form: 16 bytes

// Runs `input` as one batch per iteration; `items`: requests in it. Checks
// that the first reply is `expect` (then only that it is not empty).
void Measure(benchmark::State& state, Node& node, const std::string& input, int items, const std::string& expect) {
  std::string out;
  node.Serve(input, out);  // warm-up: first-use allocations (capacities, pools) are not counted
  if (!node.error().empty() || out.compare(0, expect.size(), expect) != 0) {
    state.SkipWithError(("unexpected reply: " + out.substr(0, 80) + node.error()).c_str());
    return;
  }
  const std::uint64_t before = g_allocs.load();
  for (auto _ : state) {
    out.clear();
    node.Serve(input, out);
    benchmark::DoNotOptimize(out.data());
  }
  const std::uint64_t allocs = g_allocs.load() - before;
  if (out.empty()) state.SkipWithError("no reply");
  state.SetItemsProcessed(state.iterations() * items);
  state.counters["allocs_per_op"] =
      static_cast<double>(allocs) / static_cast<double>(state.iterations() * static_cast<std::uint64_t>(items));
}

// A fresh node that ran `fill` (and, with `checkpointed`, was closed and
// reopened, so it reads from LMDB), then Measure.
void Run(benchmark::State& state, const std::string& fill, bool checkpointed, const std::string& input, int items,
         const std::string& expect) {
  Node node;
  if (!node.ok()) return state.SkipWithError(node.error().c_str());
  std::string out;
  node.Serve(fill, out);
  if (checkpointed) node.Reopen();
  Measure(state, node, input, items, expect);
}

void BM_Get(benchmark::State& state) {
  Run(state, Command({"SET", kKey, "xxx"}), state.range(0) == 1, Command({"GET", kKey}), 1, "$3\r\nxxx\r\n");
}
BENCHMARK(BM_Get)->ArgName("where")->Arg(0)->Arg(1);

void BM_GetPipelined(benchmark::State& state) {
  std::string input;
  for (int i = 0; i < 64; ++i) input += Command({"GET", kKey});
  Run(state, Command({"SET", kKey, "xxx"}), false, input, 64, "$3\r\nxxx\r\n");
}
BENCHMARK(BM_GetPipelined);

// Real time: most of a SET's time is the writer and syncer threads waking.
// range(0): the value's bytes (3, or 1024 as redis-benchmark -d 1024).
void BM_Set(benchmark::State& state) {
  const std::string value(static_cast<std::size_t>(state.range(0)), 'x');
  Run(state, Command({"SET", kKey, value}), false, Command({"SET", kKey, value}), 1, "+OK\r\n");
}
BENCHMARK(BM_Set)->ArgName("bytes")->Arg(3)->Arg(1024)->UseRealTime();

// INCR of a counter (redis-benchmark -t incr's one key): the counter's
// fast path.
void BM_Incr(benchmark::State& state) {
  Run(state, Command({"INCR", "counter:__rand_int__"}), false, Command({"INCR", "counter:__rand_int__"}), 1, ":");
}
BENCHMARK(BM_Incr)->UseRealTime();

// SET of a key that does not exist yet (redis-benchmark -r's first writes),
// each iteration another key: the general write path (no fast path applies
// to a new key) and the overlay's new record. Fixed iterations, so that the
// keys, built before the timed loop, are enough.
void BM_SetNewKey(benchmark::State& state) {
  constexpr int kKeys = 20000;
  Node node;
  if (!node.ok()) return state.SkipWithError(node.error().c_str());
  std::vector<std::string> inputs;
  inputs.reserve(kKeys + 1);
  for (int i = 0; i <= kKeys; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "key:%012d", i);
    inputs.push_back(Command({"SET", key, "xxx"}));
  }
  std::string out;
  node.Serve(inputs[kKeys], out);  // warm-up
  const std::uint64_t before = g_allocs.load();
  std::size_t i = 0;
  for (auto _ : state) {
    out.clear();
    node.Serve(inputs[i++ % kKeys], out);
    benchmark::DoNotOptimize(out.data());
  }
  const std::uint64_t allocs = g_allocs.load() - before;
  if (out != "+OK\r\n") state.SkipWithError(("unexpected reply: " + out.substr(0, 80) + node.error()).c_str());
  state.SetItemsProcessed(state.iterations());
  state.counters["allocs_per_op"] = static_cast<double>(allocs) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_SetNewKey)->UseRealTime()->Iterations(20000);

// range(0): 0 = HGET of one field of a hash of 1,000; 1 = SISMEMBER of one
// member of a set of 1,000; 2 = HGETALL of that hash, which loads every field
// (the whole state), for comparison. range(1): where, as for BM_Get.
void BM_GetParts(benchmark::State& state) {
  const bool set = state.range(0) == 1;
  std::vector<std::string> fill = {set ? "SADD" : "HSET", "big"};
  for (int i = 0; i < 1000; ++i) {
    fill.push_back("field:" + std::to_string(1000 + i));
    if (!set) fill.push_back("value:" + std::to_string(i));
  }
  const bool checkpointed = state.range(1) == 1;
  if (set) {
    Run(state, Command(fill), checkpointed, Command({"SISMEMBER", "big", "field:1500"}), 1, ":1\r\n");
  } else if (state.range(0) == 2) {
    Run(state, Command(fill), checkpointed, Command({"HGETALL", "big"}), 1, "*2000\r\n");
  } else {
    Run(state, Command(fill), checkpointed, Command({"HGET", "big", "field:1500"}), 1, "$9\r\nvalue:500\r\n");
  }
}
BENCHMARK(BM_GetParts)->ArgNames({"what", "where"})->ArgsProduct({{0, 1, 2}, {0, 1}});

}  // namespace
}  // namespace lattice::node
