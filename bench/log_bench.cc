// The log's append path on the POSIX env: append N records, then one Sync
// (write + fdatasync), as the store's writer will per batch. After each Sync
// everything is released, as if a checkpoint kept up, so the writer recycles
// segments instead of creating them (the first is created before timing, one
// more at the first roll).
//
// Where: LATTICE_BENCH_TMPFS (default /dev/shm/lattice-log-bench) and
// LATTICE_BENCH_DISK (default /tmp/lattice-log-bench); scripts/bench/micro.sh
// points the second at .bench/ in the repository.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "storage/env.h"
#include "storage/log.h"

namespace lattice::storage {
namespace {

std::string BenchDir(const char* variable, const char* fallback) {
  const char* v = std::getenv(variable);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// range(0): records per batch; range(1): payload bytes, 0 = uniform in 40..1024.
void BM_LogAppendSync(benchmark::State& state, const std::string& dir) {
  const auto per_batch = static_cast<int>(state.range(0));
  const auto size = static_cast<std::size_t>(state.range(1));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  LogOptions options;
  options.dir = dir + "/wal";
  auto recovered = ReadLog(PosixEnv(), options.dir, 1, [](const LogRecord&) { return Status::Ok(); });
  auto writer = LogWriter::Open(PosixEnv(), options, *recovered);
  if (!writer.ok()) {
    state.SkipWithError(writer.status().ToString().c_str());
    return;
  }
  LogWriter& w = **writer;
  std::mt19937_64 rng(1);
  std::vector<std::string> payloads(64);
  for (auto& p : payloads) p.assign(size != 0 ? size : 40 + rng() % (1024 - 40 + 1), 'x');
  // The first segment is created (64 MiB zero-filled and synced) outside the
  // timed loop; the one created at the first roll inside it is amortized.
  if (!w.Append(RecordType::kDelta, "warm-up").ok() || !w.Sync().ok()) {
    state.SkipWithError("warm-up failed");
    return;
  }
  std::size_t next = 0;
  std::int64_t bytes = 0;
  for (auto _ : state) {
    for (int i = 0; i < per_batch; ++i) {
      const std::string& p = payloads[next++ % payloads.size()];
      bytes += static_cast<std::int64_t>(p.size());
      benchmark::DoNotOptimize(w.Append(RecordType::kDelta, p));
    }
    if (Status s = w.Sync(); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    (void)w.Release(w.durable_sequence());
  }
  state.SetItemsProcessed(state.iterations() * per_batch);
  state.SetBytesProcessed(bytes);
  state.counters["batches/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["created"] = static_cast<double>(w.stats().segments_created);
  state.counters["recycled"] = static_cast<double>(w.stats().segments_recycled);
  writer->reset();
  std::filesystem::remove_all(dir);
}

void Register() {
  const std::vector<std::pair<std::string, std::string>> dirs = {
      {"tmpfs", BenchDir("LATTICE_BENCH_TMPFS", "/dev/shm/lattice-log-bench")},
      {"disk", BenchDir("LATTICE_BENCH_DISK", "/tmp/lattice-log-bench")},
  };
  for (const auto& [name, dir] : dirs) {
    benchmark::RegisterBenchmark(("BM_LogAppendSync/" + name).c_str(), BM_LogAppendSync, dir)
        ->ArgNames({"records", "bytes"})
        ->ArgsProduct({{1, 16, 256}, {40, 1024, 0}})
        ->UseRealTime()  // the time is spent waiting for fdatasync, not on the CPU
        ->Unit(benchmark::kMicrosecond);
  }
}

const bool kRegistered = (Register(), true);

}  // namespace
}  // namespace lattice::storage
