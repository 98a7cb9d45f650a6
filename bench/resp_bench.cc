// The RESP request parser (node/resp.h) on a pipeline of 64 commands, as a
// redis-benchmark -P 64 client sends them: multibulk SETs with 3-byte and
// 1 KiB values, and inline commands (what nc sends).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "node/resp.h"

namespace lattice::node {
namespace {

constexpr int kPipeline = 64;

std::string Bulk(const std::string& s) { return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n"; }

std::string Pipeline(std::size_t value_bytes, bool inline_commands) {
  std::string out;
  for (int i = 0; i < kPipeline; ++i) {
    const std::string key = "key:" + std::to_string(100000 + i);
    const std::string value(value_bytes, 'v');
    out += inline_commands ? "SET " + key + " " + value + "\r\n"
                           : "*3\r\n" + Bulk("SET") + Bulk(key) + Bulk(value);
  }
  return out;
}

void Parse(benchmark::State& state, const std::string& input) {
  const RespLimits limits;
  std::vector<std::string> args;
  for (auto _ : state) {
    std::string_view rest = input;
    int commands = 0;
    while (!rest.empty()) {
      const ParseResult r = ParseRequest(rest, limits, args);
      if (r.kind != ParseResult::Kind::kCommand) {
        state.SkipWithError("the pipeline did not parse");
        return;
      }
      rest.remove_prefix(r.consumed);
      ++commands;
    }
    benchmark::DoNotOptimize(commands);
  }
  state.SetItemsProcessed(state.iterations() * kPipeline);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(input.size()));
}

void BM_RespMultibulkSet(benchmark::State& state) {
  Parse(state, Pipeline(static_cast<std::size_t>(state.range(0)), false));
}
BENCHMARK(BM_RespMultibulkSet)->ArgName("value_bytes")->Arg(3)->Arg(1024);

void BM_RespInlineSet(benchmark::State& state) { Parse(state, Pipeline(3, true)); }
BENCHMARK(BM_RespInlineSet);

}  // namespace
}  // namespace lattice::node
