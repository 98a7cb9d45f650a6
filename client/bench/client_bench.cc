// Load from lattice::Client, for scripts/bench/client.sh: `--inflight` calls
// kept in flight, spread over one Client per node (each prefers its own node,
// as redis-benchmark spreads its connections), until `--ops` calls completed.
// Prints one line: ops/s, p50 and p99 latency in microseconds, errors.
//
//   lattice-client-bench --nodes a,b,c --cmd set|incr|get --ops N --inflight K
//                        --keys R --pool P --sessions on|off --level one|quorum|all
#include <asio/bind_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lattice/client.h"
#include "lattice/client_async.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  std::vector<std::string> nodes;
  std::string cmd = "set";
  long ops = 100000;
  int inflight = 48;
  long keys = 100000;
  int pool = 16;
  bool sessions = true;
  lattice::Level level = lattice::Level::kQuorum;
};

struct Run {
  Config cfg;
  asio::io_context io;
  std::vector<std::unique_ptr<lattice::Client>> clients;
  std::atomic<long> started{0}, done{0}, errors{0};
  std::vector<std::vector<std::uint32_t>> latencies;  // per worker, microseconds
  std::string first_error;
  std::mt19937_64 rng{42};

  void Issue(int worker) {
    if (started.fetch_add(1) >= cfg.ops) return;
    lattice::Client& c = *clients[static_cast<std::size_t>(worker) % clients.size()];
    const std::string key = "bench:" + std::to_string(rng() % static_cast<std::uint64_t>(cfg.keys));
    const auto t0 = Clock::now();
    auto finish = asio::bind_executor(io, [this, worker, t0](lattice::Result<lattice::Reply> r) {
      latencies[static_cast<std::size_t>(worker)].push_back(static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
      if (!r.ok() || r->type == lattice::Reply::Type::kError) {
        if (errors.fetch_add(1) == 0) first_error = r.ok() ? r->str : r.error().ToString();
      }
      done.fetch_add(1);
      Issue(worker);
    });
    std::vector<std::string> args;
    if (cfg.cmd == "set") args = {"SET", key, "xxx"};
    else if (cfg.cmd == "incr") args = {"INCR", key};
    else args = {"GET", key};
    c.Command(std::move(args)).At(cfg.level).Async(std::move(finish));
  }
};

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--nodes") {
      std::stringstream in(v);
      for (std::string n; std::getline(in, n, ',');) cfg.nodes.push_back(n);
    } else if (k == "--cmd") {
      cfg.cmd = v;
    } else if (k == "--ops") {
      cfg.ops = std::stol(v);
    } else if (k == "--inflight") {
      cfg.inflight = std::stoi(v);
    } else if (k == "--keys") {
      cfg.keys = std::stol(v);
    } else if (k == "--pool") {
      cfg.pool = std::stoi(v);
    } else if (k == "--sessions") {
      cfg.sessions = v == "on";
    } else if (k == "--level") {
      cfg.level = lattice::ParseLevel(v).value_or(lattice::Level::kQuorum);
    } else {
      std::cerr << "lattice-client-bench: unknown option " << k << "\n";
      return 2;
    }
  }
  if (cfg.nodes.empty() || (cfg.cmd != "set" && cfg.cmd != "incr" && cfg.cmd != "get")) {
    std::cerr << "usage: lattice-client-bench --nodes a,b,c [--cmd set|incr|get] [--ops N] [--inflight K] [--keys R]"
                 " [--pool P] [--sessions on|off] [--level one|quorum|all]\n";
    return 2;
  }
  Run run;
  run.cfg = cfg;
  for (std::size_t i = 0; i < cfg.nodes.size(); ++i) {
    lattice::Options o;
    o.nodes = cfg.nodes;
    std::rotate(o.nodes.begin(), o.nodes.begin() + static_cast<long>(i), o.nodes.end());
    o.pool_size = cfg.pool;
    o.sessions = cfg.sessions;
    o.timeout = std::chrono::seconds(30);
    run.clients.push_back(std::make_unique<lattice::Client>(o));
  }
  run.latencies.resize(static_cast<std::size_t>(cfg.inflight));
  auto work = asio::make_work_guard(run.io);
  const auto t0 = Clock::now();
  asio::post(run.io, [&] {
    for (int w = 0; w < cfg.inflight; ++w) run.Issue(w);
  });
  std::thread waiter([&] {
    while (run.done.load() < cfg.ops) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    work.reset();
  });
  run.io.run();
  waiter.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<std::uint32_t> all;
  for (auto& l : run.latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0u : all[std::min(all.size() - 1, static_cast<std::size_t>(p * all.size()))]; };
  std::printf("ops_per_s=%.0f p50_us=%u p99_us=%u errors=%ld%s%s\n", cfg.ops / secs, pct(0.50), pct(0.99),
              run.errors.load(), run.errors.load() ? " first_error=" : "", run.first_error.c_str());
  return run.errors.load() == 0 ? 0 : 1;
}
