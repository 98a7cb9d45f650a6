// Connection-level commands (PING, AUTH, HELLO, CLIENT, COMMAND, CONFIG, INFO,
// CONSISTENCY, CL, SUBSCRIBE, ...) and the dispatch that routes everything else
// to the engine. No I/O here: the session owns the socket.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "node/config.h"
#include "node/engine.h"
#include "node/replicator.h"

namespace lattice::node {

class Cluster;
class Replicator;
std::uint64_t WallMs();

// What the server shares with every connection.
struct ServerState {
  Config config;
  storage::Store& store;
  Engine& engine;
  Cluster* cluster = nullptr;        // set when the node gossips with peers
  Replicator* replicator = nullptr;  // the cluster's request coordinator
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> next_client_id{0};
  std::atomic<std::size_t> clients{0};
  std::atomic<std::uint64_t> total_commands{0};
  std::atomic<std::uint64_t> total_connections{0};
  std::atomic<std::uint64_t> rejected_connections{0};
  // Keys some connection subscribes to (SUBSCRIBE key). While there are
  // none, write jobs do not collect the keys they changed: nobody would be
  // told (CommandGroup::watched).
  std::atomic<std::size_t> watched_keys{0};
  std::atomic<std::uint64_t> net_input_bytes{0}, net_output_bytes{0};
  // INFO commandstats: per command of the table (by its index in
  // CommandTable::All()), the calls, the microseconds from dispatch to answer,
  // and the calls answered with an error.
  struct CommandCounts {
    std::atomic<std::uint64_t> calls{0}, usec{0}, failed{0};
  };
  std::unique_ptr<CommandCounts[]> command_counts;
  void CountCommand(const CommandSpec* spec, std::uint64_t usec, bool failed);

  ServerState(Config c, storage::Store& s, Engine& e);
  virtual ~ServerState() = default;
  // Sends SUBSCRIBE messages for keys that changed.
  virtual void Publish(const std::vector<std::string>& changed) = 0;
  // SHUTDOWN: stops the node as SIGTERM does.
  virtual void RequestStop() = 0;
};

// INFO [section]: the sections asked for ("" the default ones, "all",
// "everything" or one by name), node/info.cc.
std::string Info(ServerState& srv, const std::string& section);

// One connection's settings.
struct ConnState {
  std::uint64_t id = 0;
  bool authed = false;
  int protocol = 2;  // RESP2, or 3 after HELLO 3 (replies through ToResp3, node/resp.h)
  std::string consistency = "quorum";
  std::string peer;
  std::string name;
  std::set<std::string> subscriptions;
  // Session guarantees in a cluster: the causal context this connection has
  // seen of each key it touched (at most kSessionKeys; the oldest go first).
  SessionContexts session;
  std::deque<std::string> session_order;
  static constexpr std::size_t kSessionKeys = 10000;

  // Adds what a request observed to the session.
  void Observe(SessionContexts observed);
};

struct Request {
  Args args;
  std::string protocol_error;  // set: answer this error instead
};

struct Dispatch {
  enum class Kind { kDone, kData };
  Kind kind = Kind::kDone;
  const CommandSpec* spec = nullptr;  // kData
  Args args;                          // kData: the command (CL prefix removed)
  std::string level;                  // kData: one, quorum or all
  bool quit = false;
  std::vector<std::pair<std::string, bool>> subscription_changes;  // key, subscribe?
  bool redispatch = false;  // set by a prefix (CL): dispatch what remains of the arguments
};

// Looks the command up in the command table (node/command_table.h) and
// checks it against the connection (AUTH, subscribed mode) and its arity;
// answers a connection command, a refused or unknown one into `reply`, or
// says which data command to run (kData). `args` may be moved from.
Dispatch DispatchRequest(ServerState& srv, ConnState& conn, Args& args, std::string& reply);
// The same, for a caller that looked args[0] up already (CommandTable::FindAnyCase).
Dispatch DispatchRequest(ServerState& srv, ConnState& conn, Args& args, std::string& reply, const CommandSpec* spec);

}  // namespace lattice::node
