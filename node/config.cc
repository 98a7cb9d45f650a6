#include "node/config.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>

namespace lattice::node {

storage::StoreOptions Config::StoreOptions() const {
  storage::StoreOptions o;
  o.dir = data_dir;
  o.node_name = node_id;
  o.sync = sync == "none" ? storage::SyncMode::kNone : storage::SyncMode::kAlways;
  o.map_bytes = map_size_mb << 20;
  o.max_state_bytes = max_state_bytes;
  o.overlay_bytes = std::size_t{overlay_mb} << 20;
  o.group_commit_wait_us = group_commit_us;
  return o;
}

Result<Config> ParseConfig(int argc, char** argv, int& exit_code) {
  Config c;
  CLI::App app{"latticed: a LatticeKV node (replicated CRDT key-value store, Redis protocol)"};
  app.set_config("--config", "", "read these options from a TOML or INI file");
  app.set_version_flag("--version", "latticed 0.1.0");
  app.add_option("--node-id", c.node_id, "this node's name (stable across restarts)")->capture_default_str();
  app.add_option("--bind", c.bind, "address for clients and peers")->capture_default_str();
  app.add_option("--port", c.port, "client (RESP) port")->capture_default_str();
  app.add_option("--peer-port", c.peer_port, "peer (gossip) port")->capture_default_str();
  app.add_option("--data-dir", c.data_dir, "LMDB data directory")->capture_default_str();
  app.add_option("--seeds", c.seeds, "peer addresses to join, host:port,... (the same list on every node is fine)")
      ->delimiter(',');
  app.add_option("--bootstrap-expect", c.bootstrap_expect,
                 "fresh nodes that found a new cluster together (default: the number of seeds; 1: found alone)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--replicas", c.replicas, "replicas per partition (cluster mode)")
      ->capture_default_str()->check(CLI::Range(1, 15));
  app.add_option("--consistency", c.consistency, "default level: one, quorum, all")
      ->capture_default_str()->check(CLI::IsMember({"one", "quorum", "all"}, CLI::ignore_case));
  app.add_option("--requirepass", c.requirepass, "password clients must AUTH with");
  app.add_option("--cluster-name", c.cluster_name, "peers of another cluster name are refused")->capture_default_str();
  app.add_option("--sync", c.sync, "always: fdatasync every write-ahead log batch before any reply; none: never fdatasync the log (benchmarks only; a power loss loses what the last checkpoint does not hold)")
      ->capture_default_str()->check(CLI::IsMember({"always", "none"}));
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error, off")
      ->capture_default_str()->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--threads", c.threads, "I/O threads")->capture_default_str()->check(CLI::Range(1, 64));
  app.add_option("--max-clients", c.max_clients, "maximum client connections")->capture_default_str();
  app.add_option("--idle-timeout", c.idle_timeout_s, "close clients idle this many seconds (0: never)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--max-inline", c.limits.max_inline, "longest inline command line, bytes")->capture_default_str();
  app.add_option("--max-bulk", c.limits.max_bulk, "largest argument, bytes")->capture_default_str();
  app.add_option("--max-args", c.limits.max_args, "most arguments in one command")->capture_default_str();
  app.add_option("--max-state-bytes", c.max_state_bytes, "largest stored state of one key or member")
      ->capture_default_str();
  app.add_option("--map-size-mb", c.map_size_mb, "initial LMDB map size; it grows when full")->capture_default_str();
  app.add_option("--max-clock-offset", c.max_clock_offset_ms, "refuse peers whose clock runs this far ahead, ms")
      ->capture_default_str();
  app.add_option("--request-timeout-ms", c.request_timeout_ms,
                 "deadline of a request that waits for other replicas, ms")
      ->capture_default_str()->check(CLI::Range(1, 600000));
  app.add_option("--ae-interval-ms", c.ae_interval_ms,
                 "period of anti-entropy and tombstone-collection rounds, ms (0: both off)")
      ->capture_default_str();
  app.add_option("--group-commit-us", c.group_commit_us,
                 "a write batch smaller than the last one waits up to this long for more before its fdatasync, "
                 "microseconds (0: never)")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  app.add_option("--overlay-mb", c.overlay_mb,
                 "bound of the memory overlay above LMDB, MiB: a checkpoint starts at half of it, clients wait "
                 "at 90%")
      ->capture_default_str()->check(CLI::Range(8, 1 << 20));
  app.add_option("--ae-rate-mb", c.ae_rate_mb,
                 "anti-entropy's share of I/O: MiB of key states it may read and send per second (0: unlimited)")
      ->capture_default_str()->check(CLI::Range(0, 1 << 20));
  app.add_option("--tombstone-grace-ms", c.tombstone_grace_ms,
                 "collect a tombstone once it is this old and every replica of its partition holds it, ms")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    exit_code = e.get_exit_code() == 0 ? 0 : 2;
    std::string text = e.get_exit_code() == 0 ? app.help() : std::string(e.what()) + "\nRun with --help for usage.";
    if (e.get_name() == "CallForVersion") text = e.what();
    return Status::InvalidArgument(text);
  }
  std::transform(c.consistency.begin(), c.consistency.end(), c.consistency.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  if (c.node_id.empty()) {
    exit_code = 2;
    return Status::InvalidArgument("--node-id must not be empty");
  }
  return c;
}

}  // namespace lattice::node
