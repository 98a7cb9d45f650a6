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

  storage::StoreOptions store_options = config->StoreOptions();
  store_options.on_fatal = [](const lattice::Status& s) {
    // After a failed fdatasync nobody knows what reached the disk: stop, and
    // let the restart replay the log (DESIGN §3).
    spdlog::critical("{}", s.message());
    spdlog::shutdown();
    std::_Exit(70);
  };
  auto store = storage::Store::Open(store_options);
  if (!store.ok()) {
    spdlog::critical("cannot open the data directory: {}", store.status().ToString());
    return 1;
  }
  const auto& id = (*store)->identity();
  const auto& rec = (*store)->recovery();
  spdlog::info("node {} incarnation {:016x}{} data in {}: opened in {} ms (checkpoint at log sequence {}, {} log "
               "records replayed, replay stopped at {}; Merkle trees scanned in {} ms)",
               id.name, id.incarnation, id.fresh ? " (new data directory)" : "", config->data_dir, rec.open_ms,
               rec.checkpoint_sequence, rec.replayed_records, rec.stop, (*store)->stats().tree_rebuild_ms);
  if (rec.torn_tail) spdlog::warn("the log ended in a torn batch, never acknowledged, dropped: {}", rec.stop);
  if (!rec.new_incarnation_reason.empty()) {
    spdlog::warn("new incarnation {:016x}: {}; this node rejoins like a wiped node for its own dots",
                 id.incarnation, rec.new_incarnation_reason);
  }

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
