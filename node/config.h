// latticed's configuration: command-line flags (CLI11) or the same keys in a
// TOML/INI file given with --config (DESIGN §6).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "crdt/status.h"
#include "node/resp.h"
#include "storage/store.h"

namespace lattice::node {

struct Config {
  std::string node_id = "n1";
  std::string bind = "127.0.0.1";
  std::uint16_t port = 7379;
  std::uint16_t peer_port = 17379;
  std::string data_dir = "./data";
  std::vector<std::string> seeds;
  // Fresh nodes that found a cluster together (DESIGN §4); 0: the number of
  // seeds (1 without seeds).
  int bootstrap_expect = 0;
  int replicas = 3;
  std::string consistency = "quorum";
  std::string requirepass;
  std::string cluster_name = "lattice";
  std::string sync = "always";  // always | none
  std::string log_level = "info";
  int threads = 1;                  // I/O threads (the writer thread is extra)
  std::size_t max_clients = 10000;
  int idle_timeout_s = 0;           // 0 = never close idle clients
  RespLimits limits;
  std::size_t max_state_bytes = std::size_t{64} << 20;
  std::size_t map_size_mb = 16 * 1024;
  std::uint64_t max_clock_offset_ms = 500;
  std::uint64_t request_timeout_ms = 2000;  // deadline of a coordinated request
  std::uint64_t ae_interval_ms = 2000;      // anti-entropy round period (0: off)
  std::size_t overlay_mb = 1024;    // StoreOptions::overlay_bytes
  std::uint32_t group_commit_us = 0;  // StoreOptions::group_commit_wait_us
  std::uint64_t ae_rate_mb = 64;  // anti-entropy state bytes per second, MiB (0: unlimited)
  std::uint64_t tombstone_grace_ms = 10000; // a tombstone's minimum age before it is collected

  storage::StoreOptions StoreOptions() const;
};

// Parses argv. On --help / --version, or on bad input, returns a Status whose
// message is what to print; `exit_code` says how to exit (0 for help).
Result<Config> ParseConfig(int argc, char** argv, int& exit_code);

}  // namespace lattice::node
