// Store::Impl: the store's parts and the state its threads share (store.h
// describes the pipeline). Internal to storage/: store.cc, checkpoint.cc and
// txn.cc include it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "storage/lmdb_layout.h"
#include "storage/overlay.h"
#include "storage/store.h"
#include "storage/trees.h"

namespace lattice::storage {

struct Store::Impl {
  Impl(std::uint32_t partitions, int leaf_bits) : trees(partitions, leaf_bits) {}

  Env* env = nullptr;
  std::string log_dir;
  std::unique_ptr<Lmdb> lmdb;
  Overlay overlay;
  Trees trees;
  RetiredContexts retired;
  // Used by one thread at a time: the writer appends and releases, the
  // syncer syncs, handed over through sync_mu (`syncing`).
  std::unique_ptr<LogWriter> log;

  struct Item {
    Work work;
    Done done;
  };
  // Submit -> writer.
  std::mutex mu;
  std::condition_variable cv;  // work queued, closing, or a checkpoint freed room
  std::deque<Item> queue;
  bool closing = false;
  bool killed = false;  // Kill(): no last checkpoint
  std::function<crdt::Hlc()> hlc_snapshot;

  // Writer -> syncer: one batch at a time.
  struct Batch {
    std::vector<Item> items;
    std::vector<Status> results;
    std::vector<Overlay::Layer::iterator> touched;
    std::vector<TreeUpdate> tree_updates;
    bool appended = false;  // records went to the log
  };
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  std::optional<Batch> to_sync;
  bool syncing = false;  // a batch is handed over and not yet durable
  bool stop_syncer = false;

  // Writer -> checkpointer.
  std::mutex ckpt_mu;
  std::condition_variable ckpt_cv;
  std::shared_ptr<const Overlay::Layer> ckpt_layer;  // to write
  std::uint64_t ckpt_cut = 0;
  bool ckpt_final = false;  // the last checkpoint of a clean close
  bool stop_checkpointer = false;
  std::atomic<std::uint64_t> released_upto{0};  // checkpointed: the log may go up to here

  std::atomic<bool> failed{false};
  std::mutex failure_mu;
  Status failure;

  std::thread writer, syncer, checkpointer;

  mutable std::mutex stats_mu;
  Stats stats;
};

// Writes `layer` to LMDB as a checkpoint at log sequence `cut`, in one fully
// synced transaction (checkpoint.cc). `clean_close` also clears the
// unsynced-open marker of a --sync none node.
Status WriteCheckpoint(Lmdb& lmdb, const Overlay::Layer& layer, std::uint64_t cut, bool clean_close,
                       std::uint64_t* records_written);

}  // namespace lattice::storage
