// The write-ahead log (storage/log.h) and the Envs under it: PosixEnv on a
// temporary directory, FaultEnv in memory. The power-cut test is in
// log_power_cut_test.cc.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <set>

#include "storage/env.h"
#include "storage/fault_env.h"
#include "storage/log.h"
#include "tests/unit/log_test_support.h"
#include "tests/temp_dir.h"

namespace lattice::storage {
namespace {

using test::Got;
using test::ReadAll;


using lattice::test::TempDir;

std::string ReadWhole(Env& env, const std::string& path) {
  auto size = env.FileSize(path);
  REQUIRE(size.ok());
  auto file = env.OpenReadable(path);
  REQUIRE(file.ok());
  std::string out(*size, '\0');
  auto got = (*file)->ReadAt(0, out.size(), out.data());
  REQUIRE(got.ok());
  out.resize(*got);
  return out;
}

void CheckEnvBasics(Env& env, const std::string& dir) {
  REQUIRE(env.CreateDir(dir).ok());
  REQUIRE(env.CreateDir(dir).ok());  // exists: fine
  const std::string a = dir + "/a";
  {
    auto f = env.OpenWritable(a, OpenMode::kTruncate);
    REQUIRE(f.ok());
    CHECK((*f)->Append("hello").ok());
    CHECK((*f)->WriteAt(1, "E").ok());
    CHECK((*f)->ZeroFill(16).ok());
    CHECK((*f)->ZeroFill(8).ok());  // already longer: no-op
    CHECK((*f)->Sync().ok());
    CHECK((*f)->Close().ok());
  }
  CHECK(*env.FileSize(a) == 16);
  CHECK(ReadWhole(env, a) == std::string("hEllo") + std::string(11, '\0'));
  {
    auto r = env.OpenReadable(a);
    REQUIRE(r.ok());
    char buf[8];
    CHECK(*(*r)->Read(3, buf) == 3);
    CHECK(std::string(buf, 3) == "hEl");
    CHECK(*(*r)->Read(2, buf) == 2);
    CHECK(std::string(buf, 2) == "lo");
    CHECK(*(*r)->ReadAt(14, 8, buf) == 2);  // short only at the end
  }
  {
    auto f = env.OpenWritable(a, OpenMode::kReuse);
    REQUIRE(f.ok());
    CHECK((*f)->Append("!").ok());
  }
  CHECK(*env.FileSize(a) == 17);
  CHECK(env.OpenWritable(dir + "/none", OpenMode::kReuse).status().IsNotFound());
  CHECK(env.FileSize(dir + "/none").status().IsNotFound());
  CHECK(env.Rename(a, dir + "/b").ok());
  CHECK(*env.ListDir(dir) == std::vector<std::string>{"b"});
  CHECK(env.FileSize(a).status().IsNotFound());
  CHECK(env.SyncDir(dir).ok());
  CHECK(env.Remove(dir + "/b").ok());
  CHECK(env.Remove(dir + "/b").IsNotFound());
  CHECK(env.ListDir(dir)->empty());
  CHECK(env.ListDir(dir + "/nodir").status().IsNotFound());
}

TEST_CASE("env: the POSIX and the fault env behave alike") {
  TempDir tmp;
  CheckEnvBasics(*PosixEnv(), tmp.path.string() + "/d");
  FaultEnv fault(1);
  CheckEnvBasics(fault, "d");
}

TEST_CASE("fault env: a power cut keeps synced bytes and synced directory entries, nothing else") {
  FaultEnv env(7);
  REQUIRE(env.CreateDir("d").ok());
  REQUIRE(env.SyncDir(".").ok());
  auto write = [&](const std::string& path, std::string_view data, bool sync) {
    auto f = env.OpenWritable(path, OpenMode::kTruncate);
    REQUIRE(f.ok());
    REQUIRE((*f)->Append(data).ok());
    if (sync) REQUIRE((*f)->Sync().ok());
    return std::move(f).value();
  };
  auto a = write("d/a", "synced", true);
  write("d/renamed", "r", true);
  write("d/removed", "x", true);
  REQUIRE(env.SyncDir("d").ok());
  REQUIRE(a->Append("+lost").ok());
  REQUIRE(a->WriteAt(0, "S").ok());  // an overwrite of synced bytes is unsynced too
  CHECK(*env.SyncedSize("d/a") == 6);
  CHECK(*env.UnsyncedBytes("d/a") == 6);
  write("d/new", "synced but its entry is not", true);
  REQUIRE(env.Rename("d/renamed", "d/renamed2").ok());
  REQUIRE(env.Remove("d/removed").ok());

  env.PowerCut(FaultEnv::Cut::kDropUnsynced);
  CHECK(ReadWhole(env, "d/a") == "synced");
  std::vector<std::string> names = *env.ListDir("d");
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"a", "removed", "renamed"});
  CHECK(a->Append("after").code() == Status::Code::kIOError);  // its process is gone

  // A directory whose creation was never synced is gone with its files.
  REQUIRE(env.CreateDir("e").ok());
  write("e/f", "data", true);
  REQUIRE(env.SyncDir("e").ok());
  env.PowerCut(FaultEnv::Cut::kDropUnsynced);
  CHECK(env.ListDir("e").status().IsNotFound());
}

TEST_CASE("fault env: torn cuts keep a prefix of the unsynced writes, garbled or scattered on request") {
  bool garbled = false;
  bool scattered_hole = false;
  for (std::uint64_t seed = 0; seed < 300; ++seed) {
    for (auto cut : {FaultEnv::Cut::kTornPrefix, FaultEnv::Cut::kTornGarbled, FaultEnv::Cut::kScattered}) {
      FaultEnv env(seed);
      auto f = env.OpenWritable("f", OpenMode::kTruncate);
      REQUIRE(f.ok());
      REQUIRE((*f)->Append(std::string(1024, 'A')).ok());
      REQUIRE((*f)->Sync().ok());
      REQUIRE(env.SyncDir(".").ok());
      REQUIRE((*f)->Append(std::string(1024, 'B')).ok());
      REQUIRE((*f)->Append(std::string(1024, 'C')).ok());
      env.PowerCut(cut);
      const std::string s = ReadWhole(env, "f");
      REQUIRE(s.size() >= 1024);
      CHECK(s.substr(0, 1024) == std::string(1024, 'A'));  // synced bytes always survive
      const std::string tail = s.substr(1024);
      const std::string full = std::string(1024, 'B') + std::string(1024, 'C');
      if (cut == FaultEnv::Cut::kTornPrefix) {
        CHECK(full.substr(0, tail.size()) == tail);
      } else if (cut == FaultEnv::Cut::kTornGarbled) {
        garbled = garbled || full.substr(0, tail.size()) != tail;
      } else {
        for (std::size_t i = 0; i < tail.size(); ++i) CHECK((tail[i] == full[i] || tail[i] == '\0'));
        scattered_hole = scattered_hole || tail.find('\0') != std::string::npos;
      }
    }
  }
  CHECK(garbled);
  CHECK(scattered_hole);
}

TEST_CASE("fault env: the power fails at the chosen call, and syncs can be made to fail") {
  FaultEnv env(3);
  auto f = env.OpenWritable("f", OpenMode::kTruncate);
  REQUIRE(f.ok());
  env.CutPowerAfter(1);
  CHECK((*f)->Append("a").ok());
  CHECK((*f)->Append("b").code() == Status::Code::kIOError);
  CHECK((*f)->Sync().code() == Status::Code::kIOError);  // and everything after
  CHECK(ReadWhole(env, "f") == "a");
  env.PowerCut(FaultEnv::Cut::kDropUnsynced);
  CHECK(env.ListDir(".")->empty());  // the file's entry was never synced

  f = env.OpenWritable("g", OpenMode::kTruncate);
  REQUIRE(f.ok());
  REQUIRE((*f)->Append("data").ok());
  env.FailSyncs(true);
  CHECK((*f)->Sync().code() == Status::Code::kIOError);
  CHECK(env.SyncDir(".").code() == Status::Code::kIOError);
  CHECK(*env.SyncedSize("g") == 0);
}

LogOptions SmallLog(std::uint64_t segment_bytes) {
  LogOptions o;
  o.dir = "wal";
  o.segment_bytes = segment_bytes;
  return o;
}

// Appends `n` random records in batches of `batch`, remembering them.
void AppendRandom(LogWriter& w, std::mt19937_64& rng, int n, int batch, std::vector<Got>& written,
                  std::size_t max_payload = 200) {
  for (int i = 0; i < n; ++i) {
    const RecordType type = test::RandomType(rng);
    std::string payload = test::RandomPayload(rng, 0, max_payload);
    auto seq = w.Append(type, payload);
    REQUIRE(seq.ok());
    CHECK(*seq == (written.empty() ? *seq : written.back().sequence + 1));
    written.push_back(Got{type, *seq, std::move(payload)});
    if ((i + 1) % batch == 0) REQUIRE(w.Sync().ok());
  }
  REQUIRE(w.Sync().ok());
}

void CheckRoundTrip(Env& env, const LogOptions& options) {
  std::mt19937_64 rng(42);
  std::vector<Got> written, got;
  auto w = test::OpenWriter(&env, options, 1, got);
  CHECK(got.empty());
  AppendRandom(*w, rng, 100, 7, written);
  CHECK(w->durable_sequence() == 100);
  w.reset();
  auto r = ReadAll(&env, options.dir, 1, got);
  REQUIRE(r.ok());
  CHECK(got == written);
  CHECK(r->clean());
  CHECK(r->next_sequence == 101);
  r = ReadAll(&env, options.dir, 51, got);
  CHECK(got == std::vector<Got>(written.begin() + 50, written.end()));

  // A second life goes on from where the first stopped, in a new segment.
  w = test::OpenWriter(&env, options, 1, got);
  AppendRandom(*w, rng, 50, 5, written);
  CHECK(written.back().sequence == 150);
  w.reset();
  r = ReadAll(&env, options.dir, 1, got);
  CHECK(got == written);
  CHECK(r->clean());
  CHECK(r->segments.size() >= 2);
}

TEST_CASE("log: records round-trip in order across restarts, in memory and on disk") {
  FaultEnv fault(1);
  CheckRoundTrip(fault, SmallLog(64 << 10));
  TempDir tmp;
  LogOptions on_disk = SmallLog(64 << 10);
  on_disk.dir = tmp.path.string() + "/wal";  // created by the writer
  CheckRoundTrip(*PosixEnv(), on_disk);
}

TEST_CASE("log: segments roll when full and are recycled once released") {
  FaultEnv env(2);
  LogOptions options = SmallLog(1024);
  options.max_free_segments = 12;
  std::mt19937_64 rng(5);
  std::vector<Got> written, got;
  auto w = test::OpenWriter(&env, options, 1, got);
  AppendRandom(*w, rng, 300, 10, written, 100);
  CHECK(w->stats().segments_created > 10);
  CHECK(w->stats().segments_recycled == 0);
  auto r = ReadAll(&env, options.dir, 1, got);
  CHECK(got == written);

  // Checkpoint at 250: the segments below it are recycled, not created anew.
  REQUIRE(w->Release(250).ok());
  CHECK(w->free_segments() > options.max_free_segments);
  const auto created = w->stats().segments_created;
  AppendRandom(*w, rng, 100, 10, written, 100);
  CHECK(w->stats().segments_created == created);
  CHECK(w->stats().segments_recycled >= 2);
  CHECK(w->stats().segments_removed > 0);  // the pool keeps max_free_segments
  CHECK(env.ListDir("wal")->size() == w->live_segments() + w->free_segments());
  r = ReadAll(&env, options.dir, 251, got);
  REQUIRE(r.ok());
  CHECK(got == std::vector<Got>(written.begin() + 250, written.end()));
  CHECK(r->clean());
  // What was recycled is gone, and recovery says so instead of starting late.
  r = ReadAll(&env, options.dir, 1, got);
  CHECK(r->stop == LogStop::kStartsAfter);
  CHECK(got.empty());
}

TEST_CASE("log: a recycled segment ends cleanly, and its old records are never replayed") {
  FaultEnv env(3);
  LogOptions options = SmallLog(512);
  options.max_free_segments = 8;
  std::mt19937_64 rng(9);
  std::vector<Got> written, got;
  auto w = test::OpenWriter(&env, options, 1, got);
  AppendRandom(*w, rng, 60, 1, written, 60);
  REQUIRE(w->Release(w->durable_sequence()).ok());
  const std::uint64_t checkpoint = w->durable_sequence();
  // Write until a recycled segment is written into but not full.
  while (w->stats().segments_recycled < 2) AppendRandom(*w, rng, 1, 1, written, 60);
  w.reset();
  const std::vector<Got> after(written.begin() + static_cast<std::ptrdiff_t>(checkpoint), written.end());
  auto r = ReadAll(&env, options.dir, checkpoint + 1, got);
  REQUIRE(r.ok());
  CHECK(got == after);
  CHECK(r->stop == LogStop::kZeroes);  // the last Sync's zeroes, not the old records behind them

  // Where a torn batch left an old record of the segment's past in place of
  // the next one, recovery stops there.
  const LogPosition end = r->end;
  const std::vector<std::string> names = *env.ListDir("wal");
  const std::string oldest = "wal/" + *std::min_element(names.begin(), names.end());
  auto old = env.OpenReadable(oldest);
  std::string record(32 + 8, '\0');
  REQUIRE((*old)->ReadAt(0, record.size(), record.data()).ok());
  const std::size_t length = static_cast<unsigned char>(record[24]);  // < 256 here
  record.resize(32 + length);
  REQUIRE((*old)->ReadAt(0, record.size(), record.data()).ok());
  char name[40];
  std::snprintf(name, sizeof name, "wal/wal-%016llx", static_cast<unsigned long long>(end.generation));
  auto f = env.OpenWritable(name, OpenMode::kReuse);
  REQUIRE(f.ok());
  REQUIRE((*f)->WriteAt(end.offset, record).ok());
  r = ReadAll(&env, options.dir, checkpoint + 1, got);
  CHECK(r->stop == LogStop::kStaleRecord);
  CHECK(r->end == end);
  CHECK(got == after);
}

TEST_CASE("log: recovery tells a torn last batch from lost synced data") {
  FaultEnv env(4);
  LogOptions options = SmallLog(64 << 10);
  std::mt19937_64 rng(11);
  std::vector<Got> written, got;
  auto w = test::OpenWriter(&env, options, 1, got);
  AppendRandom(*w, rng, 30, 10, written, 50);  // three batches
  w.reset();
  const std::string segment = "wal/" + env.ListDir("wal")->front();
  auto r = ReadAll(&env, "wal", 1, got);
  REQUIRE(r->stop == LogStop::kZeroes);
  const std::uint64_t last = r->end.offset - ((32 + written.back().payload.size() + 7) / 8 * 8);

  SUBCASE("damage in the last batch: a torn tail") {
    REQUIRE(env.Corrupt(segment, last + 12).ok());  // in its sequence number
    r = ReadAll(&env, "wal", 1, got);
    CHECK(r->stop == LogStop::kBadChecksum);
    CHECK_FALSE(r->clean());
    CHECK_FALSE(r->later_batch_found);
    CHECK(got == std::vector<Got>(written.begin(), written.end() - 1));
    CHECK(r->next_sequence == 30);
  }
  SUBCASE("damage in the first batch: later batches prove synced data was lost") {
    REQUIRE(env.Corrupt(segment, 12).ok());
    r = ReadAll(&env, "wal", 1, got);
    CHECK(r->stop == LogStop::kBadChecksum);
    CHECK(r->end == LogPosition{r->segments.front().generation, 0});
    CHECK(r->later_batch_found);
    CHECK(got.empty());
  }
  SUBCASE("a torn tail is sealed off: the next life never reads past it") {
    REQUIRE(env.Corrupt(segment, last + 12).ok());  // in its sequence number
    w = test::OpenWriter(&env, options, 1, got);
    written.resize(29);
    AppendRandom(*w, rng, 5, 5, written, 50);
    w.reset();
    r = ReadAll(&env, "wal", 1, got);
    CHECK(r->clean());
    CHECK(got == written);  // 1..29, then 30..34 anew
    CHECK(r->segments.front().ended);  // ended where the torn record was
    CHECK(r->segments.front().end_sequence == 30);
  }
}

TEST_CASE("log: a failed fdatasync fails the writer for good; oversized records are refused") {
  FaultEnv env(5);
  std::vector<Got> got;
  auto w = test::OpenWriter(&env, SmallLog(4096), 1, got);
  CHECK(w->Append(RecordType::kDelta, std::string(4096, 'x')).status().code() == Status::Code::kInvalidArgument);
  CHECK(w->Append(RecordType::kSegmentEnd, "").status().code() == Status::Code::kInvalidArgument);
  REQUIRE(w->Append(RecordType::kDelta, "a").ok());
  REQUIRE(w->Sync().ok());
  REQUIRE(w->Append(RecordType::kDelta, "b").ok());
  env.FailSyncs(true);
  const Status failed = w->Sync();
  CHECK(failed.code() == Status::Code::kIOError);
  env.FailSyncs(false);
  CHECK(w->Append(RecordType::kDelta, "c").status().code() == Status::Code::kIOError);
  CHECK(w->Sync().code() == Status::Code::kIOError);
  CHECK(w->durable_sequence() == 1);
}

}  // namespace
}  // namespace lattice::storage
