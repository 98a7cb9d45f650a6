// Pipeline: one connection's data commands, in Redis's per-connection order
// of effects (DESIGN §4): the one request path, whatever the cluster's size.
//
// While this node alone replicates every key (a cluster of one, N = 1:
// Replicator::Alone when a run of commands begins), the commands added until
// the next Drain go to the replicator together, as one CommandGroup
// (node/command_group.h), which runs them in order on this node: one read
// view, one writer job. Otherwise each data command goes to the coordinators
// (Replicator::Execute) at once unless KeyOrder (node/key_order.h) makes it
// wait for an earlier one (the same key, or a barrier); a command starts with
// the session's contexts of its keys as its predecessors left them, and what
// it observed joins the session when it answers.
//
// The client-facing server runs every connection's commands through it (a
// Session, node/server.cc), and so does the simulation's client
// (tests/sim): the request path the daemon runs is the one simulated.
//
// Owns: the commands by slot until they start, their KeyOrder or the group
// being gathered, the callback waiting for them to finish (Drain). Reads and
// updates the connection's session contexts (ConnState::session, Observe).
// Executor: the connection's (a session's strand; the simulation's event
// loop): answers come back through `post`, which runs a function there, or
// not at all once the connection is gone. Sends: commands (or a group) to
// the Replicator. Receives: their Answers, handed to `on_answer` with the
// command's slot.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "node/answer.h"
#include "node/command_group.h"
#include "node/commands_conn.h"
#include "node/key_order.h"
#include "node/replicator.h"

namespace lattice::node {

class Pipeline {
 public:
  using Post = std::function<void(std::function<void()>)>;
  using OnAnswer = std::function<void(std::size_t slot, Answer& answer)>;  // may move from it

  Pipeline(Replicator& replicator, ConnState& conn, Post post, OnAnswer on_answer)
      : replicator_(replicator), conn_(conn), post_(std::make_shared<const Post>(std::move(post))),
        on_answer_(std::move(on_answer)) {}

  // Adds the batch's data command `slot` (slots count from 0 in each batch):
  // it starts now, or once what it waits for has answered, or (N = 1) with
  // its group at the next Drain.
  void Add(std::size_t slot, const CommandSpec& spec, Args args, Level level);
  // True when every command added has answered.
  bool Idle() const { return order_.Idle() && !group_running_ && !group_waiting_; }
  // Starts the commands that wait to start together (N = 1: the group).
  void Flush();
  // Flushes, and calls `done` once every command added has answered (at once
  // when they have); then the next batch may begin.
  void Drain(std::function<void()> done);
  // After a batch has drained: the arguments its group held go back to the
  // requests they came from (batch[slot], where still empty), so that the
  // next requests parsed into them reuse their buffers.
  void ReturnArgs(std::span<Request> batch);
  // While set, a group collects changed keys only while this counts a
  // watched key (CommandGroup::watched); unset: always.
  void WatchCount(const std::atomic<std::size_t>* watched) { group_->watched = watched; }

 private:
  struct Waiting {
    const CommandSpec* spec = nullptr;
    Args args;
    Level level = Level::kQuorum;
    std::vector<std::string> keys;
  };
  void Launch(std::size_t slot);
  void Answered(std::size_t slot, Answer answer);
  void GroupAnswered();

  Replicator& replicator_;
  ConnState& conn_;
  const std::shared_ptr<const Post> post_;  // shared by the callbacks in flight (a copy is a count)
  const OnAnswer on_answer_;
  std::vector<Waiting> waiting_;  // by slot (buffers kept across batches)
  KeyOrder order_;
  // N = 1: the commands since the run began go out together at Drain.
  bool grouped_ = false;
  bool group_waiting_ = false;  // commands added, not started yet
  bool group_running_ = false;  // started, not answered yet
  std::shared_ptr<CommandGroup> group_ = std::make_shared<CommandGroup>();
  std::function<void()> drained_;
};

}  // namespace lattice::node
