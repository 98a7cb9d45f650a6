// The store under power cuts (DESIGN §3). Each trial runs a Store whose log
// lives on a FaultEnv (LMDB on a real, fully synced file) for a few lives.
// In each life concurrent writers save states of every type (counter, LWW
// and multi-value register, set, map, flag, deletions), remembered request
// ids and node records, with a small overlay bound and small log segments so
// that checkpoints and segment recycling happen all the time; the power then
// fails at a random file operation (in a batch's sync, a segment's creation
// or recycling) or at a checkpoint step (before the LMDB commit, after it,
// before and after the log's release), and the disk keeps what the cut mode
// lets it keep. After every cut:
//   - every acknowledged write is present (the recovered state of each key
//     dominates the last acknowledged one: joining it changes nothing),
//   - every key decodes (nothing corrupt),
//   - a second recovery gives the same state and the same Merkle roots,
//   - when nothing unsynced survives the cut, the Merkle roots equal those
//     the store had before the cut.
// Two deliberately broken stores (one that never fdatasyncs, one that
// releases the log before the checkpoint commits) must be caught by the
// same checks.
//
// Replay: LATTICE_SEED=<seed> build/tests/unit/store_power_cut_test
// More or fewer trials: LATTICE_STORE_TRIALS=<n> (default 1000, 3 cuts each).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crdt/codec.h"
#include "storage/fault_env.h"
#include "storage/store.h"
#include "tests/test_seed.h"

namespace lattice::storage {
namespace {

using crdt::Hlc;
using crdt::KeyState;
using crdt::Stamp;

constexpr crdt::ReplicaId kMe = 7;
constexpr int kKeys = 24;
constexpr int kWriters = 4;

std::uint64_t Mix(std::uint64_t x) {  // splitmix64: one trial seed per index
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::filesystem::path ScratchRoot() {
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec)) return "/dev/shm";  // LMDB's syncs are cheap there
  return std::filesystem::temp_directory_path();
}

struct Bugs {
  bool skip_sync = false;                  // --sync none: batches are acknowledged unsynced
  bool release_before_checkpoint = false;  // the log recycled before the checkpoint commits
};

struct Tally {
  int cuts = 0;
  int checkpoint_step_cuts = 0;
  int recovered_torn = 0;
  std::uint64_t checkpoints = 0;
  std::uint64_t recycled = 0;
  std::uint64_t acked = 0;
  std::uint64_t fast_writes = 0;  // string writes by the codec's fast path
};

// One mutation of key `k` (its type fixed by its index), on the loaded state.
Status Mutate(KeyState& state, int k, std::uint64_t n, std::mt19937_64& rng) {
  const Stamp stamp{Hlc{1000 + n, 0}, kMe};
  const std::string member = "m" + std::to_string(rng() % 6);
  Result<KeyState> d = Status::Ok();
  if (rng() % 12 == 0) {
    state.Clear();
    return Status::Ok();
  }
  switch (k % 6) {
    case 0:
      d = state.Mutate<crdt::PNCounter>(stamp, [&](crdt::PNCounter& c) { return c.Increment(kMe, 1 + rng() % 5, stamp.hlc); });
      break;
    case 1:
      d = state.Mutate<crdt::LWWRegister>(stamp, [&](crdt::LWWRegister& r) { return r.Write(kMe, "v" + std::to_string(n), stamp.hlc); });
      break;
    case 2:
      d = state.Mutate<crdt::MVRegister>(stamp, [&](crdt::MVRegister& r) { return r.Write(kMe, "v" + std::to_string(n), stamp.hlc); });
      break;
    case 3:
      d = state.Mutate<crdt::ORSet>(stamp, [&](crdt::ORSet& s) { return rng() % 3 == 0 ? s.Remove(member) : s.Add(kMe, member); });
      break;
    case 4:
      d = state.Mutate<crdt::ORMap>(stamp, [&](crdt::ORMap& m) -> Result<crdt::ORMap> {
        switch (rng() % 3) {
          case 0: return m.Set(kMe, member, "x" + std::to_string(n), stamp.hlc);
          case 1: return m.Remove(member);
          default: return m.Increment(kMe, "count", 1, stamp.hlc);
        }
      });
      break;
    default:
      d = state.Mutate<crdt::Flag>(stamp, [&](crdt::Flag& f) { return rng() % 2 ? f.Enable(kMe) : f.Disable(kMe); });
  }
  return d.status();
}

class Trial {
 public:
  Trial(std::uint64_t seed, Bugs bugs) : seed_(seed), rng_(seed), env_(seed), bugs_(bugs) {
    dir_ = ScratchRoot() / ("lattice-store-cut-" + std::to_string(seed) + "-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir_);
    // The log's directory lives in env_, which starts empty.
    if (Status made = env_.CreateDirs(dir_.string()); !made.ok()) {
      FAIL("cannot create " << dir_ << " in the FaultEnv: " << made.ToString());
    }
  }
  ~Trial() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Runs `lives` lives; returns the first failure ("" when every check held).
  std::string Run(int lives, Tally& tally) {
    for (int life = 0; life < lives; ++life) {
      if (std::string f = Life(tally); !f.empty()) return "life " + std::to_string(life) + ": " + f;
    }
    return Recover(tally, nullptr);
  }

 private:
  struct Dump {
    std::map<std::string, std::string> states;  // key -> canonical encoding
    merkle::Digest roots;
  };

  StoreOptions Options() {
    StoreOptions o;
    o.dir = dir_.string();
    o.node_name = "n1";
    o.incarnation = 42;
    o.sync = bugs_.skip_sync ? SyncMode::kNone : SyncMode::kAlways;
    o.env = &env_;
    o.map_bytes = std::size_t{64} << 20;
    o.overlay_bytes = bugs_.release_before_checkpoint ? std::size_t{8} << 20 : std::size_t{48} << 10;
    o.checkpoint_log_bytes = 24 << 10;
    o.segment_bytes = 16 << 10;
    o.partitions = 16;
    o.tree_leaf_bits = 4;
    o.group_commit_wait_us = seed_ % 2 == 0 ? 50 : 0;  // half the trials batch with group commit
    o.on_fatal = [this](const Status&) {
      std::lock_guard lock(mu_);
      fatal_ = true;
      cv_.notify_all();
    };
    o.test.release_before_checkpoint = bugs_.release_before_checkpoint;
    o.test.crash_at = [this](std::string_view step) {
      std::unique_lock lock(mu_);
      if (crash_step_.empty() || step != crash_step_ || crash_skip_-- > 0) return false;
      if (bugs_.release_before_checkpoint) {
        // Let the released segments be recycled by more writes first.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        recycled_wanted_ = true;
        cv_.wait_until(lock, deadline, [&] { return recycled_seen_; });
      }
      crash_step_.clear();
      env_.CutPowerAfter(0);
      ++step_cuts_;
      return true;
    };
    return o;
  }

  std::unique_ptr<Store> Open(std::string& failure) {
    auto s = Store::Open(Options());
    if (!s.ok()) {
      failure = "open failed: " + s.status().ToString();
      return nullptr;
    }
    return std::move(s).value();
  }

  static std::string Check(Store& store, Dump& out) {
    std::string failure;
    Status s = store.Read([&](Txn& t) -> Status {
      std::vector<std::string> keys;
      auto scanned = t.ScanKeys(0, 1 << 20, [&](std::string_view k) {
        keys.emplace_back(k);
        return true;
      });
      if (!scanned.ok()) return scanned.status();
      for (const std::string& k : keys) {
        auto loaded = t.Load(k, Members::All());
        if (!loaded.ok()) return loaded.status().Annotate("key " + k + ": ");
        out.states[k] = crdt::EncodeKeyState(loaded->state);
      }
      return Status::Ok();
    });
    if (!s.ok()) return "read failed: " + s.ToString();
    out.roots = store.RootsDigest();
    return failure;
  }

  // Opens, checks the acknowledged writes, and (when `again`) crashes at
  // once and opens again to compare.
  std::string Recover(Tally& tally, std::unique_ptr<Store>* keep) {
    std::string failure;
    auto store = Open(failure);
    if (store == nullptr) return failure;
    if (store->recovery().torn_tail) ++tally.recovered_torn;
    Dump first;
    if (failure = Check(*store, first); !failure.empty()) return failure;
    for (const auto& [key, encoded] : acked_) {
      auto it = first.states.find(key);
      if (it == first.states.end()) return "acknowledged key " + key + " is missing";
      auto recovered = crdt::DecodeKeyState(it->second);
      auto want = crdt::DecodeKeyState(encoded);
      if (!recovered.ok() || !want.ok()) return "key " + key + " does not decode";
      KeyState joined = *recovered;
      joined.Join(*want);
      if (crdt::EncodeKeyState(joined) != it->second) {
        return "key " + key + " lost an acknowledged write (replay with LATTICE_SEED=" + std::to_string(seed_) + ")";
      }
    }
    Status s = store->Read([&](Txn& t) -> Status {
      for (const auto& [id, reply] : acked_requests_) {
        auto got = t.GetRequest(id);
        if (!got.ok()) return got.status();
        if (!*got || **got != reply) failure = "acknowledged request id " + id + " is missing";
      }
      for (const auto& [name, n] : acked_records_) {
        auto got = t.GetNodeRecord(name);
        if (!got.ok()) return got.status();
        if (!*got || std::stoull(**got) < n) failure = "acknowledged node record " + name + " went back";
      }
      return Status::Ok();
    });
    if (!s.ok()) return "read failed: " + s.ToString();
    if (!failure.empty()) return failure;
    // Nothing unsynced survived: the trees are those of the acknowledged
    // batches, unless the batch being synced had reached the disk in part
    // (its first segment synced before a roll into the next failed).
    if (expect_roots_ && store->recovery().next_sequence - 1 < expect_sequence_) {
      return "recovery ended before the last synced record";
    }
    if (expect_roots_ && store->recovery().next_sequence - 1 == expect_sequence_ &&
        !(first.roots == *expect_roots_)) {
      return "the Merkle roots after recovery differ from those before the cut";
    }
    // A second recovery from the same disk: crash at once (a write that fails), open again.
    env_.CutPowerAfter(0);
    {
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      store->Submit([](Txn& t) { return t.PutNodeRecord("probe", "0"); }, [&](Status) {
        std::lock_guard lock(m);
        done = true;
        cv.notify_all();
      });
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done; });
    }
    store->Close();
    env_.PowerCut(FaultEnv::Cut::kDropUnsynced);
    {
      std::lock_guard lock(mu_);
      fatal_ = false;
    }
    store = Open(failure);
    if (store == nullptr) return failure;
    Dump second;
    if (failure = Check(*store, second); !failure.empty()) return failure;
    if (second.states != first.states) return "a second recovery gives another state";
    if (!(second.roots == first.roots)) return "a second recovery gives other Merkle roots";
    if (keep != nullptr) *keep = std::move(store);
    return "";
  }

  std::string Life(Tally& tally) {
    std::unique_ptr<Store> store;
    expect_roots_.reset();
    if (std::string f = Recover(tally, &store); !f.empty()) return f;
    // Where the power fails this time.
    static constexpr const char* kSteps[] = {"checkpoint.before_commit", "checkpoint.after_commit",
                                             "log.before_release", "log.after_release"};
    {
      std::lock_guard lock(mu_);
      fatal_ = false;
      recycled_wanted_ = recycled_seen_ = false;
      crash_step_.clear();
      if (bugs_.release_before_checkpoint) {
        crash_step_ = kSteps[0];
        crash_skip_ = static_cast<int>(rng_() % 3);
      } else if (rng_() % 4 == 0) {
        crash_step_ = kSteps[rng_() % 4];
        crash_skip_ = static_cast<int>(rng_() % 3);
      }
    }
    if (crash_step_.empty() && !bugs_.release_before_checkpoint) env_.CutPowerAfter(rng_() % 400);
    const std::uint64_t recycled_before = store->stats().log.segments_recycled;

    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    std::vector<std::uint64_t> seeds;
    for (int w = 0; w < kWriters; ++w) seeds.push_back(rng_());
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] { Writer(*store, w, seeds[w], stop); });
    }
    {
      std::unique_lock lock(mu_);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (!fatal_) {
        if (recycled_wanted_ && store->stats().log.segments_recycled > recycled_before) {
          recycled_seen_ = true;
          cv_.notify_all();
        }
        if (cv_.wait_for(lock, std::chrono::milliseconds(2)) == std::cv_status::timeout &&
            std::chrono::steady_clock::now() > deadline) {
          // No cut came (a step that was never reached): cut now.
          env_.CutPowerAfter(0);
          crash_step_.clear();
        }
      }
    }
    stop = true;
    for (auto& t : writers) t.join();
    const Store::Stats st = store->stats();
    tally.checkpoints += st.checkpoints;
    tally.recycled += st.log.segments_recycled;
    const FaultEnv::Cut cut = static_cast<FaultEnv::Cut>(rng_() % 4);
    if (cut == FaultEnv::Cut::kDropUnsynced && !bugs_.skip_sync) {
      expect_roots_ = store->RootsDigest();
      expect_sequence_ = st.durable_sequence;
    }
    store->Close();
    env_.PowerCut(cut);
    {
      std::lock_guard lock(mu_);
      tally.checkpoint_step_cuts += step_cuts_;
      step_cuts_ = 0;
    }
    ++tally.cuts;
    tally.acked = acked_count_;
    tally.fast_writes += fast_writes_.exchange(0);
    return "";
  }

  void Writer(Store& store, int w, std::uint64_t seed, std::atomic<bool>& stop) {
    std::mt19937_64 rng(seed);
    while (!stop) {
      const int k = static_cast<int>(rng() % kKeys);
      const std::string key = "key" + std::to_string(k);
      const std::uint64_t n = ++counter_;
      const bool with_request = k % 6 == 0;  // counters remember their request ids, as INCR does
      const bool with_record = rng() % 16 == 0;
      const std::string request = "n1:" + std::to_string(w) + ":" + std::to_string(n);
      const std::string record = "w" + std::to_string(w);
      auto saved = std::make_shared<std::string>();
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      Status result;
      std::uint64_t mutate_seed = rng();
      store.Submit(
          [&, saved, mutate_seed](Txn& t) -> Status {
            std::mt19937_64 r(mutate_seed);
            // Half the string and counter writes go the way a plain SET or INCRBY
            // does (crdt/codec.h's fast paths: LoadEncoded, OverwriteRegister or
            // IncrementCounter, SaveEncoded) where they apply.
            bool fast = false;
            if ((k % 6 == 0 || k % 6 == 1) && r() % 2 == 0) {
              auto enc = t.LoadEncoded(key);
              if (!enc.ok()) return enc.status();
              std::string next;
              std::int64_t value = 0;
              const Hlc hlc{1000 + n, 0};
              const bool shape = *enc && (*enc)->live && (*enc)->next_expiry == 0;
              if (shape && (k % 6 == 1 ? crdt::OverwriteRegister((*enc)->state, kMe, hlc, 0, "v" + std::to_string(n), next)
                                       : crdt::IncrementCounter((*enc)->state, kMe, hlc, 0,
                                                                static_cast<std::int64_t>(1 + r() % 5), next, value))) {
                if (Status s = t.SaveEncoded(key, next, true, false, 0); !s.ok()) return s;
                *saved = std::move(next);
                ++fast_writes_;
                fast = true;
              }
            }
            KeyState state;
            if (!fast) {
              auto loaded = t.Load(key, Members::All());
              if (!loaded.ok() && !loaded.status().IsNotFound()) return loaded.status();
              if (loaded.ok()) state = std::move(loaded->state);
              if (Status s = Mutate(state, k, n, r); !s.ok()) return s;
              if (Status s = t.Save(key, state, Members::All()); !s.ok()) return s;
            }
            if (with_request) {
              if (Status s = t.PutRequest(request, n, ":" + std::to_string(n)); !s.ok()) return s;
            }
            if (with_record) {
              if (Status s = t.PutNodeRecord(record, std::to_string(n)); !s.ok()) return s;
            }
            if (!fast) *saved = crdt::EncodeKeyState(state);
            return Status::Ok();
          },
          [&](Status s) {
            if (s.ok()) {  // acknowledged: remembered in done order (the order of the batches)
              std::lock_guard lock(mu_);
              acked_[key] = *saved;
              if (with_request) acked_requests_[request] = ":" + std::to_string(n);
              if (with_record) acked_records_[record] = std::max(acked_records_[record], n);
              ++acked_count_;
            }
            std::lock_guard lock(m);
            result = s;
            done = true;
            cv.notify_all();
          });
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done; });
    }
  }

  std::uint64_t seed_;
  std::mt19937_64 rng_;
  FaultEnv env_;
  Bugs bugs_;
  std::filesystem::path dir_;
  std::atomic<std::uint64_t> counter_{0};
  std::atomic<std::uint64_t> fast_writes_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  bool fatal_ = false;
  std::string crash_step_;
  int crash_skip_ = 0;
  int step_cuts_ = 0;
  bool recycled_wanted_ = false, recycled_seen_ = false;
  std::map<std::string, std::string> acked_;
  std::map<std::string, std::string> acked_requests_;
  std::map<std::string, std::uint64_t> acked_records_;
  std::uint64_t acked_count_ = 0;
  std::optional<merkle::Digest> expect_roots_;
  std::uint64_t expect_sequence_ = 0;
};

int Trials() {
  const char* env = std::getenv("LATTICE_STORE_TRIALS");
  return env != nullptr && *env != '\0' ? std::atoi(env) : 1000;
}

TEST_CASE("store: every acknowledged write survives power cuts at random points and checkpoint steps") {
  const std::uint64_t seed = test::TestSeed("store power cuts");
  Tally tally;
  const int trials = Trials();
  for (int i = 0; i < trials; ++i) {
    const std::uint64_t trial_seed = Mix(seed + static_cast<std::uint64_t>(i));
    Trial trial(trial_seed, Bugs{});
    const std::string failure = trial.Run(3, tally);
    INFO("trial " << i << ", trial seed " << trial_seed << " (replay with LATTICE_SEED=" << seed << ")");
    REQUIRE_MESSAGE(failure.empty(), failure);
  }
  MESSAGE("power cuts: " << tally.cuts << " (" << tally.checkpoint_step_cuts << " at checkpoint steps), "
          << tally.recovered_torn << " recoveries dropped a torn tail, " << tally.checkpoints << " checkpoints, "
          << tally.recycled << " segments recycled, " << tally.fast_writes << " fast-path string and counter writes");
  CHECK(tally.cuts == 3 * trials);
  CHECK(tally.fast_writes > 0);
  if (trials >= 100) {
    CHECK(tally.checkpoint_step_cuts > trials / 10);
    CHECK(tally.recycled > 0);
    CHECK(tally.recovered_torn > 0);
  }
}

TEST_CASE("store: a failed fdatasync fails the batch and stops the store; the restart replays what was synced") {
  const std::filesystem::path dir = ScratchRoot() / ("lattice-store-failsync-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  FaultEnv env(1);
  REQUIRE(env.CreateDirs(dir.string()).ok());
  std::atomic<int> fatal{0};
  StoreOptions o;
  o.dir = dir.string();
  o.node_name = "n1";
  o.env = &env;
  o.on_fatal = [&](const Status&) { ++fatal; };
  auto put = [](Store& store, std::string name) {
    std::promise<Status> done;
    store.Submit([name](Txn& t) { return t.PutNodeRecord(name, "1"); }, [&](Status s) { done.set_value(s); });
    return done.get_future().get();
  };
  {
    auto store = Store::Open(o);
    REQUIRE(store.ok());
    REQUIRE(put(**store, "before").ok());
    env.FailSyncs(true);
    const Status failed = put(**store, "during");
    CHECK_FALSE(failed.ok());
    CHECK(fatal == 1);
    CHECK_FALSE(put(**store, "after").ok());  // stopped: nothing more is taken
    (*store)->Close();
  }
  env.FailSyncs(false);
  env.PowerCut(FaultEnv::Cut::kDropUnsynced);
  auto store = Store::Open(o);
  REQUIRE(store.ok());
  CHECK((*store)->Read([](Txn& t) -> Status {
    CHECK(t.GetNodeRecord("before")->has_value());
    CHECK_FALSE(t.GetNodeRecord("during")->has_value());
    CHECK_FALSE(t.GetNodeRecord("after")->has_value());
    return Status::Ok();
  }).ok());
  std::move(store).value().reset();  // closed before its directory goes
  std::filesystem::remove_all(dir);
}

TEST_CASE("store: the overlay stays within its bound: at 90% the store reports pressure, at the bound writes wait "
          "for the checkpoint") {
  const std::filesystem::path dir = ScratchRoot() / ("lattice-store-bound-" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  std::mutex mu;
  std::condition_variable cv;
  bool hold = true;  // the first checkpoint is held back until the test lets it go
  bool held = false;
  StoreOptions o;
  o.dir = dir.string();
  o.node_name = "n1";
  o.sync = SyncMode::kNone;
  o.overlay_bytes = 256 << 10;
  o.test.crash_at = [&](std::string_view step) {
    if (step != "checkpoint.before_commit") return false;
    std::unique_lock lock(mu);
    held = true;
    cv.notify_all();
    cv.wait(lock, [&] { return !hold; });
    return false;
  };
  auto opened = Store::Open(o);
  REQUIRE(opened.ok());
  Store& store = **opened;
  std::atomic<int> acked{0};
  const std::string value(900, 'v');
  constexpr int kWrites = 2000;  // ~2 MB of records: eight times the bound
  for (int i = 0; i < kWrites; ++i) {
    store.Submit(
        [i, &value](Txn& t) {
          KeyState state;
          (void)state.Mutate<crdt::LWWRegister>(Stamp{Hlc{1, 0}, kMe},
                                                [&](crdt::LWWRegister& r) { return r.Write(kMe, value, Hlc{1, 0}); });
          return t.Save("k" + std::to_string(i), state, Members::None());
        },
        [&](Status s) {
          if (s.ok()) ++acked;
        });
  }
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return held; }));
  }
  // The checkpoint is held: the writer fills the overlay to its bound and waits there.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (store.stats().overlay_full_waits == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  CHECK(store.stats().overlay_full_waits > 0);
  CHECK(store.Pressured());
  const int stalled = acked.load();
  CHECK(stalled < kWrites);
  CHECK(store.stats().overlay_bytes <= o.overlay_bytes + (64 << 10));  // the bound, plus the batch that reached it
  {
    std::lock_guard lock(mu);
    hold = false;
  }
  cv.notify_all();
  const auto done_by = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (acked.load() < kWrites && std::chrono::steady_clock::now() < done_by) std::this_thread::yield();
  CHECK(acked.load() == kWrites);
  CHECK(store.stats().checkpoints > 1);
  store.Close();
  std::filesystem::remove_all(dir);
}

// Runs up to `trials` trials of a deliberately broken store; true when the
// checks caught one losing an acknowledged write.
bool Caught(const char* what, Bugs bugs, int trials) {
  const std::uint64_t seed = test::TestSeed(what);
  for (int i = 0; i < trials; ++i) {
    Tally tally;
    Trial trial(Mix(seed + static_cast<std::uint64_t>(i)), bugs);
    if (std::string f = trial.Run(2, tally); !f.empty()) {
      MESSAGE(std::string(what) << ": caught in trial " << i << ": " << f);
      return true;
    }
  }
  return false;
}

// The checks must notice a store that acknowledges before its data is durable ...
TEST_CASE("store: the power-cut checks catch a store that skips fdatasync") {
  CHECK_MESSAGE(Caught("store skipping fdatasync", Bugs{true, false}, 60),
                "no trial of a store without fdatasync lost an acknowledged write");
}

// ... and one that recycles its log before the checkpoint holds what it held.
TEST_CASE("store: the power-cut checks catch a log recycled before the checkpoint commits") {
  CHECK_MESSAGE(Caught("store releasing early", Bugs{false, true}, 20),
                "no trial of a store releasing its log early lost an acknowledged write");
}

}  // namespace
}  // namespace lattice::storage
