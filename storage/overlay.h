// Overlay: every record written since the last checkpoint, in memory above
// LMDB (DESIGN §3). Owned by the Store; read by any thread.
//
// Records are the store's own (records.h): a key's header and each set
// member, map field (and later sorted-set and list record) apart, so an
// update costs O(log n + delta) here as in LMDB. A record key is its table's
// byte followed by the record's LMDB key; a deletion is kept as such and
// hides the records below it.
//
// Versions. Each entry keeps the last durable version of its record and at
// most one newer, pending version: the one of the batch that is being synced
// (the writer applies the next batch meanwhile into its own write set, see
// Store). Readers see durable versions only; the writer sees the pending one
// too. When the batch's fdatasync returns, Promote makes its versions the
// durable ones.
//
// Layers. Writes go to the active layer. A checkpoint freezes it (when no
// version is pending) and starts a new one; the frozen layer is immutable
// and read without a lock until the checkpointer has committed it to LMDB and
// drops it. A reader takes a snapshot of both layers before opening its LMDB
// read transaction, so whatever it misses in a dropped frozen layer it finds
// in LMDB.
//
// Threads: one shared_mutex guards the active layer's tree and values:
// readers take it shared per lookup or cursor step, the store's writer and
// syncer take it exclusively to add and promote a batch. Sizes are atomics.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace lattice::storage {

struct Slot {
  bool set = false;      // this layer (or version) has something for the record
  bool present = false;  // ... a value (false: a deletion)
  std::string value;
};

class Overlay {
 public:
  struct Entry {
    Slot durable;
    Slot pending;
  };
  // A layer: its records in key order (cursors, checkpoints) and a hash
  // index over them (point reads and the writer's updates, which would
  // otherwise walk a tree of cache misses per record).
  struct Layer {
    using Records = std::map<std::string, Entry, std::less<>>;
    using iterator = Records::iterator;
    // The hash index: one slot (the key's xxh3 hash, made odd so that 0 is
    // an empty slot, and its node in `records`) per record, linear probing
    // in a power-of-two table at most half full. A lookup reads its slot and
    // then only a node whose hash matches; the std::unordered_map it
    // replaces read a bucket pointer, the node before the chain and the
    // chain's nodes, a cache miss each (45% of a GET's CPU at -P 16, perf).
    // A layer only grows until it is dropped whole: there is no erase.
    class Index {
     public:
      static std::uint64_t Hash(std::string_view key);
      // The node of `key` (whose Hash is `hash`), or nullptr.
      const iterator* Find(std::string_view key, std::uint64_t hash) const;
      void Insert(std::uint64_t hash, iterator node);  // `node`'s key is not in the index
      std::size_t size() const { return used_; }

     private:
      struct Slot {
        std::uint64_t hash = 0;
        iterator node;
      };
      std::vector<Slot> slots_;
      std::size_t used_ = 0;
    };
    Records records;
    Index index;
    Records::const_iterator Find(std::string_view key) const;
    // The entry of `key`, created when missing; `created` says which.
    iterator Emplace(std::string_view key, bool& created);
    template <class MakeKey>  // make_key() gives the key to store when it is new
    iterator Emplace(std::string_view key, MakeKey&& make_key, bool& created);
    bool empty() const { return records.empty(); }
    std::size_t size() const { return records.size(); }
  };
  // The writer's batch: record key -> its newest version.
  using WriteSet = std::map<std::string, Slot, std::less<>>;

  // Spare write-set nodes and value buffers, the writer thread's own, so
  // that a batch's records reuse the memory of earlier batches' instead of
  // allocating it again: AddPending gives back the write-set nodes it
  // empties (with their key's buffer when the layer already had the key),
  // Promote hands out the durable values it replaces (the store carries them
  // from the syncer back to the writer with the finished batch). A buffer is
  // reused only where it is at most about 1.5 times what it will hold, so
  // what moves into a layer carries no slack that Cost would not see.
  // Bounded: at most kMaxNodes nodes (keys over kMaxKeyBytes lose their
  // buffer) and kMaxValues values of at most kMaxValueBytes each, together
  // at most kMaxSpareBytes.
  class Spares {
   public:
    static constexpr std::size_t kMaxNodes = 4096;
    static constexpr std::size_t kMaxKeyBytes = 256;
    static constexpr std::size_t kMaxValues = 4096;
    static constexpr std::size_t kMaxValueBytes = std::size_t{64} << 10;
    static constexpr std::size_t kMaxSpareBytes = std::size_t{4} << 20;

    // A node whose key is `key` and whose Slot is empty and unset, for the
    // caller to insert; an empty node_type when there is none spare.
    WriteSet::node_type TakeNode(std::string_view key);
    // Gives `into` (a value about to be assigned `size` bytes) a spare
    // buffer when its own is too small and one fits.
    void TakeValue(std::string& into, std::size_t size);
    void GiveNode(WriteSet::node_type node);
    void GiveValue(std::string&& value);
    // Empties `writes` into the spares (a batch that was not added).
    void Reclaim(WriteSet& writes);
    // Whether a buffer of `capacity` bytes is one to reuse for `size` bytes.
    static bool Fits(std::size_t capacity, std::size_t size) {
      return capacity >= size && capacity <= size + size / 2 + 64;
    }

   private:
    std::vector<WriteSet::node_type> nodes_;
    std::vector<std::string> values_;
    std::size_t value_bytes_ = 0;  // capacity of values_
  };

  Overlay();

  struct Layers {
    std::shared_ptr<Layer> active;
    std::shared_ptr<const Layer> frozen;  // null when no checkpoint is running
  };
  Layers Snapshot() const;

  enum class Found { kAbsent, kPresent, kDeleted };  // kAbsent: look in the layer below
  // The version of `key` in `active` (durable, or the newest when `latest`), copied into `out`.
  Found Lookup(const Layer& active, std::string_view key, bool latest, std::string* out) const;
  // A frozen layer is immutable: `out` points into it.
  static Found LookupFrozen(const Layer& frozen, std::string_view key, std::string_view* out);

  // Writer: the batch's versions become pending (moved out of `writes`,
  // which is left empty). Appends the entries touched to `touched`, for
  // Promote; the emptied write-set nodes go to `spares` (when not null).
  void AddPending(WriteSet& writes, std::vector<Layer::iterator>& touched, Spares* spares);
  // Syncer: the batch is durable. The durable values it replaces go to
  // `freed` (when not null) for the writer's Spares, as far as those would
  // keep them; the rest are freed.
  void Promote(const std::vector<Layer::iterator>& touched, std::vector<std::string>* freed);
  // Recovery: a replayed version, durable at once.
  void PutDurable(std::string_view key, Slot slot);

  // Writer, with nothing pending: the active layer becomes the frozen one.
  // Returns it, or null when the active layer is empty or a frozen layer
  // still exists.
  std::shared_ptr<const Layer> Freeze();
  // Checkpointer, after the frozen layer is in LMDB.
  void DropFrozen();

  std::size_t bytes() const { return active_bytes_.load() + frozen_bytes_.load(); }
  std::size_t active_bytes() const { return active_bytes_.load(); }
  std::size_t frozen_bytes() const { return frozen_bytes_.load(); }
  std::size_t active_records() const;

  // The lock a cursor over the active layer takes per step (overlay.cc, view.cc).
  std::shared_mutex& mutex() const { return mu_; }

 private:
  static std::size_t Cost(const std::string& key, const Entry& e) {
    return key.size() + e.durable.value.size() + e.pending.value.size() + 160;  // + map node and index entry
  }
  mutable std::shared_mutex mu_;
  std::shared_ptr<Layer> active_;
  std::shared_ptr<const Layer> frozen_;
  std::atomic<std::size_t> active_bytes_{0};
  std::atomic<std::size_t> frozen_bytes_{0};
};

}  // namespace lattice::storage
