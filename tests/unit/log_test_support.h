// Helpers shared by the log's unit tests (log_test.cc, log_power_cut_test.cc).
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "storage/log.h"

namespace lattice::storage::test {

// A record as recovery returned it, copied out of the callback.
struct Got {
  RecordType type;
  std::uint64_t sequence;
  std::string payload;
  bool operator==(const Got&) const = default;
};

inline Result<LogRecovery> ReadAll(Env* env, const std::string& dir, std::uint64_t from, std::vector<Got>& out) {
  out.clear();
  return ReadLog(env, dir, from, [&](const LogRecord& r) {
    out.push_back(Got{r.type, r.sequence, std::string(r.payload)});
    return Status::Ok();
  });
}

// Random bytes, zeroes included (a payload of zeroes must not read as the end).
inline std::string RandomPayload(std::mt19937_64& rng, std::size_t min, std::size_t max) {
  std::string s(min + rng() % (max - min + 1), '\0');
  for (char& c : s) c = rng() % 4 == 0 ? '\0' : static_cast<char>(rng());
  return s;
}

inline RecordType RandomType(std::mt19937_64& rng) { return static_cast<RecordType>(1 + rng() % 6); }

inline std::unique_ptr<LogWriter> OpenWriter(Env* env, const LogOptions& options, std::uint64_t from,
                                             std::vector<Got>& recovered) {
  auto r = ReadAll(env, options.dir, from, recovered);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  auto w = LogWriter::Open(env, options, *r);
  REQUIRE_MESSAGE(w.ok(), w.status().ToString());
  return std::move(w).value();
}

}  // namespace lattice::storage::test
