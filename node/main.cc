// latticed: one LatticeKV node.
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>

#include "crdt/hlc.h"
#include "node/cluster.h"
#include "node/config.h"
#include "node/engine.h"
#include "node/replicator.h"
#include "node/server.h"
#include "storage/store.h"

int main(int argc, char** argv) {
  using namespace lattice;
  int exit_code = 0;
  auto config = node::ParseConfig(argc, argv, exit_code);
  if (!config.ok()) {
    std::fprintf(exit_code == 0 ? stdout : stderr, "%s\n", config.status().message().c_str());
    return exit_code;
  }
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [" + config->node_id + "] %v");

  auto store = storage::Store::Open(config->StoreOptions());
  if (!store.ok()) {
    spdlog::critical("cannot open the data directory: {}", store.status().ToString());
    return 1;
  }
  const auto& id = (*store)->identity();
  spdlog::info("node {} incarnation {:016x}{} data in {} (Merkle trees restored in {} ms from {})",
               id.name, id.incarnation, id.fresh ? " (new data directory)" : "", config->data_dir,
               (*store)->stats().tree_rebuild_ms, (*store)->stats().trees_from_leaves ? "persisted leaves" : "a scan");

  crdt::HlcClock clock({}, config->max_clock_offset_ms);
  clock.Restore(id.hlc);  // never reissue an HLC value of our earlier life
  (*store)->SetHlcSnapshot([&clock] { return clock.Last(); });

  node::Engine engine(**store, clock);
  node::Server server(*config, **store, engine);
  node::Cluster cluster(server.io(), *config, engine);
  if (lattice::Status s = cluster.Start(); !s.ok()) {
    spdlog::critical("{}", s.ToString());
    return 1;
  }
  server.SetCluster(&cluster);
  engine.SetReplicaNamer([&cluster](crdt::ReplicaId r) { return cluster.NameOfReplica(r); });
  engine.SetPlacement([&cluster](std::string_view key) { return cluster.replicator().ReplicasOf(key); });
  if (lattice::Status s = server.Start(); !s.ok()) {
    spdlog::critical("{}", s.ToString());
    return 1;
  }
  server.Run();
  (*store)->Close();  // completes every queued commit
  spdlog::info("stopped cleanly");
  return 0;
}
