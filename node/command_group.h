// CommandGroup: data commands of one connection that run together on this
// node's store, in the connection's order, when this node alone replicates
// every key (a cluster of one, N = 1: Replicator::ExecuteGroup). The items
// ahead of the group's first write run in one read view (one View and LMDB
// read transaction for all of them); the first write and everything behind
// it run in one writer job, in order, so a read behind a write sees it and
// the group costs one commit however many writes it holds.
//
// Owns nothing beyond the group it is handed. Executor: RunGroup's reads run
// on the calling thread; its writer job on the store's writer; `done` where
// the commit completes (the syncer thread, or the daemon's io_context
// through ReplicaEnv::Commit). Sends nothing to peers: with N = 1 there are
// none.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "node/answer.h"
#include "node/engine.h"
#include "node/replicator.h"

namespace lattice::node {

struct CommandGroup {
  struct Item {
    std::size_t slot = 0;  // the command's place in its connection's batch
    const CommandSpec* spec = nullptr;
    Args args;
    Level level = Level::kQuorum;
    Answer answer;  // set when the group answers
  };
  std::vector<Item> items;
  // Changed keys are collected into `changed` (for SUBSCRIBE) only while
  // this counts a watched key (read in the writer job, so a SUBSCRIBE
  // answered before the job runs is counted); null: always.
  const std::atomic<std::size_t>* watched = nullptr;
  std::vector<std::string> changed;
  Engine* engine = nullptr;  // set by RunGroupWrites, for the writer job
  std::size_t first_write = 0;  // set by RunGroupReads
};

using CommitFn = std::function<void(storage::Store::Work, std::function<void(Status)>)>;

// Runs every item of `group` in order (above), each answer into its item.
// RunGroupReads runs the items ahead of the first write, now; true when
// that was all of them. Then RunGroupWrites queues the writer job for the
// rest through `commit` (Store::Submit, ReplicaEnv::CommitAlone) and calls
// `done(committed)` once every item has its answer: `committed` is the
// writer job's status; when it failed, each item the job held answers `ERR
// write not committed: ...`. The group is not touched after `done` begins;
// the caller keeps it alive until then.
bool RunGroupReads(Engine& engine, CommandGroup& group);
void RunGroupWrites(Engine& engine, CommandGroup& group, const CommitFn& commit,
                    std::function<void(const Status&)> done);

}  // namespace lattice::node
