// Store::Impl: the store's parts and the state its threads share (store.h
// describes the pipeline). Internal to storage/: store.cc, checkpoint.cc and
// txn.cc include it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "storage/lmdb_layout.h"
#include "storage/overlay.h"
#include "storage/store.h"
#include "storage/trees.h"

namespace lattice::storage {

struct Store::Impl {
  Impl(std::uint32_t partitions, int leaf_bits) : trees(partitions, leaf_bits) { spare_batches.reserve(kSpareBatches); }

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
  // A FIFO of items in one vector that keeps its capacity, so that queueing
  // allocates nothing in steady state (a std::deque frees a block and
  // allocates a new one every few items). Items before `head_` are taken
  // (moved from); the vector is compacted when it would grow, and emptied
  // when the last item is taken.
  class ItemQueue {
   public:
    bool empty() const { return head_ == items_.size(); }
    Item& front() { return items_[head_]; }
    void pop_front() {
      if (++head_ == items_.size()) Reset();
    }
    void push_back(Item&& item) {
      if (items_.size() == items_.capacity() && head_ > 0) {
        items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
      }
      items_.push_back(std::move(item));
    }
    void push_front(Item&& item) {  // an item taken back (rare: a batch cut short)
      if (head_ > 0) {
        items_[--head_] = std::move(item);
      } else {
        items_.insert(items_.begin(), std::move(item));
      }
    }

   private:
    void Reset() {
      items_.clear();
      head_ = 0;
      if (items_.capacity() > (std::size_t{1} << 14)) std::vector<Item>().swap(items_);  // after a burst
    }
    std::vector<Item> items_;
    std::size_t head_ = 0;
  };
  // Submit -> writer.
  std::mutex mu;
  std::condition_variable cv;  // work queued, closing, or a checkpoint freed room
  ItemQueue queue;
  bool closing = false;
  bool killed = false;  // Kill(): no last checkpoint
  std::function<crdt::Hlc()> hlc_snapshot;

  // Writer -> syncer: one batch at a time.
  struct Batch {
    std::vector<Item> items;
    std::vector<Status> results;
    std::vector<Overlay::Layer::iterator> touched;
    std::vector<TreeUpdate> tree_updates;
    // The durable values its Promote replaced, for the writer's Overlay::Spares.
    std::vector<std::string> freed_values;
    bool appended = false;  // records went to the log
    // Empties everything but freed_values; the containers keep their
    // capacity (up to a bound) for a later batch.
    void Clear();
  };
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  std::optional<Batch> to_sync;
  // Syncer -> writer: finished batches, emptied, whose containers the
  // writer's next batches fill again instead of allocating new ones (the
  // writer applies a batch while the syncer still calls the last one's done
  // callbacks, hence more than one).
  static constexpr std::size_t kSpareBatches = 2;
  std::vector<Batch> spare_batches;
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
