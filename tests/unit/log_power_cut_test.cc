// The log under power cuts. Each trial runs a writer on a FaultEnv for a few
// lives: it appends random batches, syncs them, checkpoints a prefix of what
// was acknowledged now and then (and releases up to it), while the power
// fails at a random call (in the middle of a Sync, a segment's creation or
// recycling, or between batches); the disk then keeps what the cut mode lets
// it keep. After every cut, recovery from the checkpoint must return
//   - every record of every batch whose Sync returned Ok,
//   - in order, with consecutive sequence numbers (nothing after a gap),
//   - each exactly as appended last under its sequence (no corrupt record,
//     no old record of a recycled segment),
//   - the same a second time,
// and report no lost synced data. Two deliberately broken writers (one that
// skips fdatasync, one that releases segments past the checkpoint) must be
// caught by the same checks.
//
// Replay: LATTICE_SEED=<seed> build/tests/unit/log_unit_test
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "storage/fault_env.h"
#include "storage/log.h"
#include "tests/test_seed.h"
#include "tests/unit/log_test_support.h"

namespace lattice::storage {
namespace {

using test::Got;

constexpr int kTrials = 1500;  // LATTICE_LOG_TRIALS=<n> runs n instead
constexpr int kLives = 3;  // each ends in a power cut: kTrials * kLives cut points

// Mistakes a trial makes on purpose, to show that the checks notice them.
struct Bugs {
  bool skip_sync = false;      // Sync returns Ok without fdatasync
  bool early_release = false;  // Release up to what was acknowledged, not checkpointed
};

struct Tally {
  int cuts = 0;
  int cuts_in_sync = 0;  // the power went during a Sync
  int torn_stops = 0;    // recovery stopped at a torn tail, not at zeroes
  int recycled = 0;      // lives that recycled a segment
};

std::uint64_t Mix(std::uint64_t x) {  // splitmix64: one trial seed per index
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Trial {
 public:
  Trial(std::uint64_t seed, Bugs bugs, Tally& tally)
      : rng_(seed), env_(rng_(), std::uint64_t{8} << (rng_() % 7)), bugs_(bugs), tally_(tally) {
    options_.dir = "wal";
    options_.segment_bytes = std::uint64_t{512} << (rng_() % 3);
    options_.max_free_segments = rng_() % 3;
    options_.sync_batches = !bugs.skip_sync;
    // A third of the trials write payloads of one size, so that records of
    // different lives line up at the same offsets: the case in which an old
    // record left past a torn tail could pass for a new one.
    if (rng_() % 3 == 0) payload_size_ = rng_() % 120;
  }

  // Empty when every check held, else the first that failed.
  std::string Run() {
    for (int life = 0; life < kLives; ++life) {
      std::string failure = Recover();
      if (failure.empty()) failure = Live();
      if (!failure.empty()) return "life " + std::to_string(life) + ": " + failure;
      env_.PowerCut(static_cast<FaultEnv::Cut>(rng_() % 4));
      ++tally_.cuts;
    }
    return Recover();
  }

 private:
  std::string Recover() {
    std::vector<Got> got, again;
    auto r = test::ReadAll(&env_, options_.dir, checkpoint_ + 1, got);
    if (!r.ok()) return "recovery failed: " + r.status().ToString();
    const std::string where = " (" + r->detail + ")";
    if (r->stop == LogStop::kStartsAfter || r->stop == LogStop::kMissingSegment) return "records lost" + where;
    if (r->later_batch_found) return "synced records lost" + where;
    for (std::size_t i = 0; i < got.size(); ++i) {
      const std::uint64_t due = checkpoint_ + 1 + i;
      if (got[i].sequence != due) return "record " + std::to_string(got[i].sequence) + " where " + std::to_string(due) + " was due";
      auto it = ledger_.find(due);
      if (it == ledger_.end() || !(it->second == got[i])) return "record " + std::to_string(due) + " is not what was appended" + where;
    }
    if (r->next_sequence <= acked_) {
      return "acknowledged records lost: the log ends at " + std::to_string(r->next_sequence - 1) +
             ", acknowledged up to " + std::to_string(acked_) + where;
    }
    auto r2 = test::ReadAll(&env_, options_.dir, checkpoint_ + 1, again);
    if (!r2.ok() || again != got || !(r2->end == r->end) || r2->stop != r->stop) return "a second recovery differs";
    if (!r->clean()) ++tally_.torn_stops;
    acked_ = r->next_sequence - 1;  // what recovery found is on disk now, acknowledged or not
    recovery_ = std::move(r).value();
    return {};
  }

  std::string Live() {
    // Often within the first batch or two (where a life meets what the last
    // one left), else anywhere; maybe already while opening.
    env_.CutPowerAfter(rng_() % 3 == 0 ? rng_() % 10 : rng_() % 150);
    auto opened = LogWriter::Open(&env_, options_, recovery_);
    if (!opened.ok()) return opened.status().IsCorruption() ? "open refused: " + opened.status().ToString() : "";
    LogWriter& w = **opened;
    if (!w.Release(checkpoint_).ok()) return "release failed";
    const int batches = 1 + static_cast<int>(rng_() % 30);
    for (int b = 0; b < batches; ++b) {
      const int n = 1 + static_cast<int>(rng_() % 8);
      for (int i = 0; i < n; ++i) {
        const RecordType type = test::RandomType(rng_);
        std::string payload = payload_size_ ? test::RandomPayload(rng_, *payload_size_, *payload_size_)
                                            : test::RandomPayload(rng_, 0, 120);
        auto seq = w.Append(type, payload);
        if (!seq.ok()) return {};  // failed by an earlier Sync
        ledger_[*seq] = Got{type, *seq, std::move(payload)};
        // A checkpoint may complete while a batch is being built.
        if (rng_() % 8 == 0 && !Checkpoint(w)) return "release failed";
      }
      if (rng_() % 16 == 0) break;  // the power goes with a batch appended, not synced
      if (!w.Sync().ok()) {
        ++tally_.cuts_in_sync;
        break;  // nothing of this batch was acknowledged
      }
      acked_ = w.durable_sequence();
      if (rng_() % 3 == 0 && !Checkpoint(w)) return "release failed";
    }
    if (w.stats().segments_recycled > 0) ++tally_.recycled;
    return {};
  }

  // "LMDB" commits a checkpoint of an acknowledged prefix; the log may then
  // recycle what it covers.
  bool Checkpoint(LogWriter& w) {
    checkpoint_ += rng_() % (acked_ - checkpoint_ + 1);
    return w.Release(bugs_.early_release ? acked_ : checkpoint_).ok();
  }

  std::mt19937_64 rng_;
  FaultEnv env_;
  Bugs bugs_;
  Tally& tally_;
  LogOptions options_;
  LogRecovery recovery_;
  std::optional<std::size_t> payload_size_;
  std::map<std::uint64_t, Got> ledger_;  // what was last appended under each sequence
  std::uint64_t acked_ = 0;               // every record up to it was in a batch whose Sync returned Ok
  std::uint64_t checkpoint_ = 0;          // what "LMDB" holds: recovery starts after it
};

// Runs `trials` trials; returns how many failed, and the first failure.
int RunTrials(std::uint64_t seed, int trials, Bugs bugs, Tally& tally, std::string& first) {
  int failed = 0;
  for (int i = 0; i < trials; ++i) {
    std::string failure = Trial(Mix(Mix(seed) + static_cast<std::uint64_t>(i)), bugs, tally).Run();
    if (failure.empty()) continue;
    if (failed++ == 0) first = "trial " + std::to_string(i) + ": " + failure;
  }
  return failed;
}

TEST_CASE("log power cut: acknowledged batches survive every cut, in order, and nothing else is returned") {
  const std::uint64_t seed = lattice::test::TestSeed("log power cut");
  INFO("replay: LATTICE_SEED=" << seed << " build/tests/unit/log_unit_test");
  const char* env = std::getenv("LATTICE_LOG_TRIALS");
  const int trials = env != nullptr ? std::atoi(env) : kTrials;
  Tally tally;
  std::string first;
  const int failed = RunTrials(seed, trials, Bugs{}, tally, first);
  CHECK_MESSAGE(failed == 0, first);
  MESSAGE(tally.cuts << " power cuts, " << tally.cuts_in_sync << " during a Sync, " << tally.torn_stops
                     << " recoveries at a torn tail, " << tally.recycled << " lives recycled segments");
  CHECK(tally.cuts_in_sync > trials / 4);  // the cuts do land inside the interesting part
  CHECK(tally.torn_stops > trials / 10);
  CHECK(tally.recycled > trials / 10);
}

constexpr int kBuggyTrials = 1000;

// Runs trials of a writer with `bugs`; returns how many the checks failed.
int Caught(const char* what, Bugs bugs) {
  const std::uint64_t seed = lattice::test::TestSeed(what);
  Tally tally;
  std::string first;
  const int failed = RunTrials(seed, kBuggyTrials, bugs, tally, first);
  MESSAGE(std::string(what) << ": the checks failed " << failed << " of " << kBuggyTrials << " trials; first: " << first);
  return failed;
}

TEST_CASE("log power cut: the checks catch a writer that skips fdatasync") {
  CHECK(Caught("log power cut without fdatasync", Bugs{.skip_sync = true}) > kBuggyTrials / 20);
}

TEST_CASE("log power cut: the checks catch segments recycled while still needed") {
  CHECK(Caught("log power cut, released past the checkpoint", Bugs{.early_release = true}) > kBuggyTrials / 20);
}

}  // namespace
}  // namespace lattice::storage
