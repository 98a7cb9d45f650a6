// Server: the RESP text protocol on Asio (DESIGN §5).
//
// Each client connection is a Session: a reader coroutine parses requests
// (pipelined ones in one go) and a writer coroutine drains the session's
// outbound queue, both on the session's strand. Reads run at once in a read
// transaction on the I/O thread; writes, and commands pipelined behind a write
// on the same connection, go to the store's writer thread as one work item and
// are answered after their group commit. SUBSCRIBE pushes a message whenever a
// key changes on this node (a write or an expiry).
//
// In a cluster, each data command goes through the connection's Pipeline
// (node/pipeline.h) to the Replicator (the write and read coordinators), at
// the same time as the batch's commands on other keys, in the per-connection
// order node/key_order.h keeps (the simulation runs the same Pipeline); the
// server alone turns their typed answers (node/answer.h) into RESP.
//
// Owns: the listener, the sessions (each its socket, parsed requests, reply
// buffers, session contexts and Pipeline), the subscriptions.
// Executor: its io_context on Config::threads threads; each session on its
// own strand; shared state (subscriptions, client list, counters) is mutex-
// or atomic-guarded. Sends: RESP replies and SUBSCRIBE messages to clients;
// write jobs to the store's writer; commands to the Replicator. Receives:
// client requests; commit completions and Answers (posted to the session's
// strand).
#pragma once

#include <memory>

#include "node/config.h"
#include "node/engine.h"

namespace asio {
class io_context;
}

namespace lattice::node {

class Cluster;

class Server {
 public:
  Server(Config config, storage::Store& store, Engine& engine);
  ~Server();

  // The io_context the server runs (Run() drives it); the cluster shares it.
  asio::io_context& io();
  // Lets CLUSTER commands reach the cluster, and stops it on shutdown.
  void SetCluster(Cluster* cluster);

  // Binds the client port; a clear error when it is taken.
  Status Start();
  // Runs until Stop() or SIGINT/SIGTERM; then stops accepting, closes clients
  // and returns (the caller closes the store, which completes queued commits).
  void Run();
  void Stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lattice::node
