// INFO (node/commands_conn.h): the sections, with Redis's field names where
// the meaning is the same, and the per-command counts behind commandstats.
#include <malloc.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

#include "node/commands_conn.h"
#include "node/replicator.h"
#include "node/resp.h"

namespace lattice::node {

namespace {

std::string Hex(const merkle::Digest& d) {
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(d.hi),
                static_cast<unsigned long long>(d.lo));
  return out;
}

// INFO persistence: the log, the overlay, the checkpoints and what the last open found.
std::string PersistenceInfo(ServerState& srv, const storage::Store::Stats& st) {
  const auto& rec = srv.store.recovery();
  std::string out;
  auto line = [&out](std::string_view name, const auto& value) {
    out.append(name).append(":");
    if constexpr (std::is_convertible_v<decltype(value), std::string_view>) {
      out.append(std::string_view(value));
    } else {
      out.append(std::to_string(value));
    }
    out.append("\r\n");
  };
  line("sync_mode", srv.config.sync);
  line("aof_enabled", 0);
  line("rdb_bgsave_in_progress", st.checkpoint_running ? 1 : 0);
  line("commits", st.commits);
  line("committed_writes", st.items);
  line("wal_batches", st.log.batches);
  line("wal_syncs", st.log.syncs);
  line("wal_records", st.log_records);
  line("wal_bytes_written", st.log.bytes_written);
  line("wal_segments_created", st.log.segments_created);
  line("wal_segments_recycled", st.log.segments_recycled);
  line("wal_durable_sequence", st.durable_sequence);
  line("overlay_bytes", st.overlay_bytes);
  line("overlay_limit_bytes", st.overlay_limit_bytes);
  line("overlay_records", st.overlay_records);
  line("overlay_pressured", srv.store.Pressured() ? 1 : 0);
  line("overlay_full_waits", st.overlay_full_waits);
  line("checkpoints", st.checkpoints);
  line("checkpoint_in_progress", st.checkpoint_running ? 1 : 0);
  line("checkpoint_last_ms", st.checkpoint_last_ms);
  line("checkpoint_max_ms", st.checkpoint_max_ms);
  line("checkpoint_last_records", st.checkpoint_records);
  line("checkpoint_sequence", st.checkpoint_sequence);
  line("lmdb_map_bytes", st.map_bytes);
  line("lmdb_map_resizes", st.resizes);
  line("recovery_ms", rec.open_ms);
  line("recovery_replayed_records", rec.replayed_records);
  line("recovery_stop", rec.stop);
  line("recovery_torn_tail", rec.torn_tail ? 1 : 0);
  line("merkle_rebuild_ms", st.tree_rebuild_ms);
  line("merkle_roots", Hex(srv.store.RootsDigest()));
  return out;
}

namespace {

std::string Human(std::uint64_t bytes) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.2f%s", v, units[u]);
  return buf;
}

// Lines "name:value\r\n".
struct Lines {
  std::string out;
  template <class V>
  Lines& operator()(std::string_view name, const V& value) {
    out.append(name).append(":");
    if constexpr (std::is_convertible_v<V, std::string_view>) {
      out.append(std::string_view(value));
    } else {
      out.append(std::to_string(value));
    }
    out.append("\r\n");
    return *this;
  }
};

std::string ServerInfo(ServerState& srv, std::int64_t uptime) {
  struct utsname u {};
  uname(&u);
  Lines l;
  l("redis_version", "7.0.0")("lattice_version", "0.1.0")("redis_mode", "standalone");
  l("os", std::string(u.sysname) + " " + u.release + " " + u.machine)("arch_bits", sizeof(void*) * 8);
  char run_id[17];
  std::snprintf(run_id, sizeof run_id, "%016llx", static_cast<unsigned long long>(srv.store.identity().replica));
  l("process_id", static_cast<long>(getpid()))("run_id", run_id);
  l("node_id", srv.store.identity().name)("tcp_port", srv.config.port);
  l("uptime_in_seconds", uptime)("uptime_in_days", uptime / 86400)("io_threads", srv.config.threads);
  return l.out;
}

std::string MemoryInfo(const storage::Store::Stats& st) {
  static std::atomic<std::uint64_t> peak{0};
  const struct mallinfo2 mi = mallinfo2();
  const std::uint64_t used = mi.uordblks + mi.hblkhd;
  std::uint64_t seen = peak.load();
  while (used > seen && !peak.compare_exchange_weak(seen, used)) {
  }
  std::uint64_t rss = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2) rss = resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    std::fclose(f);
  }
  Lines l;
  l("used_memory", used)("used_memory_human", Human(used))("used_memory_rss", rss)("used_memory_rss_human", Human(rss));
  l("used_memory_peak", std::max(used, peak.load()))("used_memory_peak_human", Human(std::max(used, peak.load())));
  l("maxmemory", 0)("maxmemory_human", "0B")("maxmemory_policy", "noeviction")("mem_allocator", "libc");
  l("overlay_bytes", st.overlay_bytes)("overlay_limit_bytes", st.overlay_limit_bytes)("lmdb_map_bytes", st.map_bytes);
  return l.out;
}

std::string CpuInfo() {
  struct rusage self {}, children {};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  auto secs = [](const timeval& t) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld.%06ld", static_cast<long>(t.tv_sec), static_cast<long>(t.tv_usec));
    return std::string(buf);
  };
  Lines l;
  l("used_cpu_sys", secs(self.ru_stime))("used_cpu_user", secs(self.ru_utime));
  l("used_cpu_sys_children", secs(children.ru_stime))("used_cpu_user_children", secs(children.ru_utime));
  return l.out;
}

std::string CommandStatsInfo(ServerState& srv) {
  std::string out;
  const auto& all = CommandTable::Get().All();
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto& c = srv.command_counts[i];
    const std::uint64_t calls = c.calls.load(std::memory_order_relaxed);
    if (calls == 0) continue;
    const std::uint64_t usec = c.usec.load(std::memory_order_relaxed);
    char per[32];
    std::snprintf(per, sizeof per, "%.2f", static_cast<double>(usec) / static_cast<double>(calls));
    out += "cmdstat_" + Lower(all[i].name) + ":calls=" + std::to_string(calls) + ",usec=" + std::to_string(usec) +
           ",usec_per_call=" + per + ",rejected_calls=0,failed_calls=" +
           std::to_string(c.failed.load(std::memory_order_relaxed)) + "\r\n";
  }
  return out;
}

}  // namespace

}  // namespace

std::string Info(ServerState& srv, const std::string& section) {
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - srv.started).count();
  auto st = srv.store.stats();
  std::uint64_t keys = 0;
  (void)srv.store.Read([&](storage::Txn& t) {
    keys = t.LiveKeys();
    return Status::Ok();
  });
  struct Section {
    const char* name;
    std::string body;
  };
  Lines clients, stats;
  clients("connected_clients", srv.clients.load())("blocked_clients", 0)("maxclients", srv.config.max_clients);
  stats("total_connections_received", srv.total_connections.load())(
      "total_commands_processed", srv.total_commands.load())("total_net_input_bytes", srv.net_input_bytes.load())(
      "total_net_output_bytes", srv.net_output_bytes.load())("rejected_connections", srv.rejected_connections.load());
  std::vector<Section> sections = {
      {"server", ServerInfo(srv, uptime)},
      {"clients", clients.out},
      {"memory", MemoryInfo(st)},
      {"persistence", "loading:0\r\n" + PersistenceInfo(srv, st)},
      {"stats", stats.out},
      {"replication", "role:master\r\nconnected_slaves:0\r\n" +
                          (srv.replicator != nullptr ? srv.replicator->InfoLines() : std::string())},
      {"cpu", CpuInfo()},
      {"commandstats", CommandStatsInfo(srv)},
      // expires and avg_ttl are not tracked per node (0), unlike Redis.
      {"keyspace", "db0:keys=" + std::to_string(keys) + ",expires=0,avg_ttl=0\r\n"},
  };
  std::string out;
  std::string want = Lower(section);
  for (const auto& s : sections) {
    // As Redis: the default sections leave commandstats out; "all" and "everything" include it.
    const bool by_default = std::string_view(s.name) != "commandstats";
    if ((want.empty() && by_default) || want == "all" || want == "everything" || (want == "default" && by_default) ||
        want == s.name) {
      std::string title = std::string_view(s.name) == "cpu" ? "CPU" : s.name;  // Redis's titles
      title[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(title[0])));
      if (!out.empty()) out += "\r\n";
      out += "# " + title + "\r\n" + s.body;
    }
  }
  return out;
}

ServerState::ServerState(Config c, storage::Store& s, Engine& e)
    : config(std::move(c)), store(s), engine(e),
      command_counts(std::make_unique<CommandCounts[]>(CommandTable::Get().All().size())) {}

void ServerState::CountCommand(const CommandSpec* spec, std::uint64_t usec, bool failed) {
  const auto& all = CommandTable::Get().All();
  if (spec == nullptr || spec < all.data() || spec >= all.data() + all.size()) return;
  CommandCounts& c = command_counts[static_cast<std::size_t>(spec - all.data())];
  c.calls.fetch_add(1, std::memory_order_relaxed);
  c.usec.fetch_add(usec, std::memory_order_relaxed);
  if (failed) c.failed.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace lattice::node
