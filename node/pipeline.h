// Pipeline: one connection's data commands in a cluster, in Redis's
// per-connection order of effects (DESIGN §4, one request path). Each batch's
// data commands go to the coordinators (Replicator::Execute) at the same time
// unless KeyOrder (node/key_order.h) makes one wait for an earlier one (the
// same key, or a barrier); a command starts with the session's contexts of
// its keys as its predecessors left them, and what it observed joins the
// session when it answers.
//
// The client-facing server runs every connection's commands through it (a
// Session, node/server.cc), and so does the simulation's client
// (tests/sim): the request path the daemon runs is the one simulated.
//
// Owns: the batch's commands by slot until they start, their KeyOrder, the
// callback waiting for the batch to finish (Drain). Reads and updates the
// connection's session contexts (ConnState::session, Observe). Executor: the
// connection's (a session's strand; the simulation's event loop): answers
// come back through `post`, which runs a function there, or not at all once
// the connection is gone. Sends: commands to the Replicator. Receives: their
// Answers, handed to `on_answer` with the command's slot.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "node/answer.h"
#include "node/commands_conn.h"
#include "node/key_order.h"
#include "node/replicator.h"

namespace lattice::node {

class Pipeline {
 public:
  using Post = std::function<void(std::function<void()>)>;
  using OnAnswer = std::function<void(std::size_t slot, Answer answer)>;

  Pipeline(Replicator& replicator, ConnState& conn, Post post, OnAnswer on_answer)
      : replicator_(replicator), conn_(conn), post_(std::move(post)), on_answer_(std::move(on_answer)) {}

  // Adds the batch's data command `slot` (slots count from 0 in each batch):
  // it starts now, or once what it waits for has answered.
  void Add(std::size_t slot, const CommandSpec& spec, Args args, Level level);
  // True when every command added has answered.
  bool Idle() const { return order_.Idle(); }
  // Calls `done` once every command added has answered (at once when they
  // have); then the next batch may begin.
  void Drain(std::function<void()> done);

 private:
  struct Waiting {
    const CommandSpec* spec = nullptr;
    Args args;
    Level level = Level::kQuorum;
    std::vector<std::string> keys;
  };
  void Launch(std::size_t slot);
  void Answered(std::size_t slot, Answer answer);

  Replicator& replicator_;
  ConnState& conn_;
  const Post post_;
  const OnAnswer on_answer_;
  std::vector<Waiting> waiting_;  // by slot (buffers kept across batches)
  KeyOrder order_;
  std::function<void()> drained_;
};

}  // namespace lattice::node
