// Store: the node's storage (DESIGN §3): a write-ahead log in front of a
// memory overlay in front of one LMDB environment. Every error comes back as
// a Status, nothing throws. The parts, each in its own file:
//   records.h      record layout of the tables (keys, members, expiry, meta,
//                  requests, tombstones) and their encodings
//   log.h          the write-ahead log (typed, checksummed, recycled segments)
//   overlay.h      the records written since the last checkpoint, versioned
//                  (durable / pending), in an active and a frozen layer
//   view.h         the one merged view, overlay over LMDB, that Txn reads
//   lmdb_layout.h  LMDB: the checkpoint's records (the only <lmdb.h> user)
//   checkpoint.cc  the checkpointer thread
//   trees.h        Merkle trees and retired contexts, derived in memory
//   txn.cc         Txn: keys, members, tombstones, request ids over a View
//   store.cc       Open and recovery, the writer and syncer pipeline
// A header record holds the key's KeyState with the stores of its sets and
// maps left out; each set element and map field is its own member record,
// so one SADD/HSET/HINCRBY reads and writes O(log n + delta), not O(n)
// (Riak's bigsets idea). Records start with a format version and a checksum;
// a record whose checksum fails is reported as Corruption, never served.
//
// Threads (a two-stage pipeline): Submit() queues work. The writer thread
// runs every queued item (up to max_batch) against its batch's write set,
// reading through the overlay's newest versions; it then waits for the
// previous batch's sync, appends the batch's records to the log and adds its
// versions to the overlay as pending, and hands the batch to the syncer
// thread, which makes it durable with one fdatasync, promotes its versions
// (readers see them from then on), applies its Merkle updates and only then
// calls each item's done callback. While one batch syncs the next is
// applied. The checkpointer thread writes a frozen overlay layer to LMDB in
// one synced transaction; the log is recycled up to it only after that
// commit. Read() runs a merged read view on the calling thread, any thread.
// An fdatasync or checkpoint failure is fatal (on_fatal): after it nobody
// knows what reached the disk; a restart replays the log.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/key_state.h"
#include "crdt/status.h"
#include "merkle/tree.h"
#include "storage/log.h"
#include "storage/records.h"
#include "storage/trees.h"

namespace lattice::storage {

enum class SyncMode { kAlways, kNone };

struct StoreOptions {
  std::string dir;                                  // created if missing
  std::string node_name;                            // must match an existing store
  SyncMode sync = SyncMode::kAlways;
  std::size_t map_bytes = std::size_t{16} << 30;    // initial map size; doubles when full
  std::size_t max_map_bytes = std::size_t{1} << 40;
  std::size_t max_state_bytes = std::size_t{64} << 20;  // one key's header or member
  std::size_t max_batch = 4096;                     // items per log batch
  // Group commit: a batch smaller than the last one waits up to this long,
  // after the last one became durable, for more work (0: never waits).
  std::uint32_t group_commit_wait_us = 0;
  std::uint32_t partitions = 256;                   // Merkle trees: one per partition
  int tree_leaf_bits = 10;                          // 1024 buckets per partition
  std::uint64_t incarnation = 0;  // of a new store; 0 = the clock above random bits (tests set it to replay)
  // The overlay's bound (DESIGN §3). A checkpoint starts when the active
  // layer holds half of it; at 90% Pressured() asks the node to stop reading
  // clients; at the bound the writer waits for the checkpoint.
  std::size_t overlay_bytes = std::size_t{1} << 30;
  // A checkpoint also starts when this much log was written since the last
  // one, or this long after the last one while the overlay holds anything.
  std::uint64_t checkpoint_log_bytes = std::uint64_t{256} << 20;
  std::uint64_t checkpoint_interval_ms = 60000;
  std::uint64_t segment_bytes = std::uint64_t{64} << 20;  // log segment size
  Env* env = nullptr;  // the log's file system; null = the real one (PosixEnv)
  // Called once, on the thread that saw it, when the store cannot go on (a
  // failed fdatasync or checkpoint). Null: the process prints it and aborts.
  std::function<void(const Status&)> on_fatal;

  // Fault injection, for tests only.
  struct TestFaults {
    // Asked at each checkpoint step: "checkpoint.before_commit",
    // "checkpoint.after_commit", "log.before_release", "log.after_release".
    // True: the machine dies there (the step does not happen; the store
    // stops as after a fatal error; the test cuts the power of its Env).
    std::function<bool(std::string_view step)> crash_at;
    // A deliberate bug: the log is released up to the cut when the layer is
    // frozen, before the checkpoint commits.
    bool release_before_checkpoint = false;
  };
  TestFaults test;
};

// What Open found (for the node's log and INFO).
struct RecoveryInfo {
  std::uint64_t checkpoint_sequence = 0;  // the LMDB checkpoint's log sequence
  std::uint64_t replayed_records = 0;     // log records after it, applied
  std::uint64_t replayed_bytes = 0;
  std::uint64_t next_sequence = 1;
  std::uint64_t open_ms = 0;              // Open, start to ready (replay and tree scan included)
  std::string stop;                       // where and why the replay stopped
  bool torn_tail = false;                 // a torn, never-acknowledged tail was dropped
  // Non-empty when durable state may have been lost, so the node took a new
  // incarnation (DESIGN §3): its old dots may be out in the cluster.
  std::string new_incarnation_reason;
};

// Who this node is. A store opened on an empty directory gets a fresh random
// incarnation, so a wiped node never reuses a dot or HLC of its earlier life.
struct NodeIdentity {
  std::string name;
  std::uint64_t incarnation = 0;
  crdt::ReplicaId replica = 0;
  crdt::Hlc hlc;       // last HLC persisted
  bool fresh = false;  // true when this open created the store
  // True when this open took a new incarnation because durable state may
  // have been lost (RecoveryInfo::new_incarnation_reason): the node rejoins
  // like a wiped one, pulling its partitions before it serves reads.
  bool rejoin = false;
};

// Which members of a key's sets and maps a Load brings into memory.
struct Members {
  bool all = false;
  std::vector<std::string> names;
  static Members All() { return Members{true, {}}; }
  static Members None() { return Members{}; }
  static Members Of(std::vector<std::string> names) { return Members{false, std::move(names)}; }
};

// A key as loaded: its state (header plus selected members) and what the
// header knows about the whole key.
struct LoadedKey {
  crdt::KeyState state;
  std::uint64_t live_set_members = 0;  // live elements of the set variant
  std::uint64_t live_map_fields = 0;   // live fields of the map variant
  std::uint64_t next_expiry_ms = 0;    // earliest deadline of any expiry (0 = none);
                                       // may be early when fields were not loaded
};

class Store;
class View;

// One transaction, read-only or read-write. Not thread-safe; short-lived.
class Txn {
 public:
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  // The key's state with every header datum and the selected members; when a
  // set or map has live members but none was selected, one live member is
  // loaded too, so liveness and type checks read right. NotFound when the key
  // was never stored (or its tombstone was collected).
  Result<LoadedKey> Load(std::string_view key, const Members& members);

  // Writes `state` (as loaded and then changed) back. `touched` names the members
  // that may have changed; with Members::All() every member record of the key is
  // rewritten. ResourceExhausted, before anything is written, when a record would
  // exceed max_state_bytes. Write transactions only.
  Status Save(std::string_view key, const crdt::KeyState& state, const Members& touched);

  // For the codec's fast paths (crdt/codec.h), which work on a key's encoded
  // state without a KeyState. LoadEncoded: the key's header record as
  // stored, nullopt when it has none; `state` is the header's KeyState
  // encoding (without set or map members, which are records of their own)
  // and stays valid until the next read or write through this Txn.
  struct EncodedKey {
    std::string_view state;
    bool live = false;
    std::uint64_t next_expiry = 0;  // 0 = none
    std::uint64_t live_set = 0, live_map = 0;
  };
  Result<std::optional<EncodedKey>> LoadEncoded(std::string_view key);
  // Save of a state with no set or map variant, given as its encoding
  // (EncodeKeyState's bytes) with what Save would derive from it: whether a
  // read finds it, whether it is a tombstone, and its next expiry. The
  // caller vouches for them (the fast paths know them by the shape they
  // handle). Write transactions only.
  Status SaveEncoded(std::string_view key, std::string_view state, bool live, bool tombstone,
                     std::uint64_t next_expiry);

  // Calls `fn(key)` for stored keys in hash order from `cursor` (a hash; 0 =
  // start) until it returns false or `limit` keys were visited. Returns the
  // hash to resume from, 0 when the end was reached.
  Result<std::uint64_t> ScanKeys(std::uint64_t cursor, std::size_t limit,
                                 const std::function<bool(std::string_view key)>& fn);

  // Calls `fn(key, digest)` for every key with records whose hash lies in
  // [first, last], digest being the XOR of its records' digests (what the key
  // contributes to its Merkle leaf), in key order.
  Status KeyDigests(std::uint64_t first, std::uint64_t last,
                    const std::function<void(std::string_view key, const merkle::Digest& digest)>& fn);

  // Keys whose earliest expiry is due at or before `now_ms`, at most `limit`.
  Result<std::vector<std::string>> DueKeys(std::uint64_t now_ms, std::size_t limit);

  // Number of keys whose state is live.
  std::uint64_t LiveKeys();

  // Tombstones (DESIGN §2): keys whose state has seen dots but holds no data.
  // Save keeps them in an index; the replicator collects one (Retire) once
  // every replica of its partition holds it (or has no record of the key). Tombstones visits indexed keys
  // from `cursor` ("" = the first), at most `limit`, and returns where to go
  // on ("" = the end was reached).
  Result<std::string> Tombstones(std::string_view cursor, std::size_t limit,
                                 const std::function<void(std::string_view key)>& fn);
  // Collects `key` when it is still a tombstone whose context (AllContext)
  // equals `expected`: deletes its records (their digests leave the tree) and
  // raises the partition's retired context by it. False when it is not.
  Result<bool> Retire(std::string_view key, const crdt::DotContext& expected);
  // The mint floor (KeyState::Mutate) of this node for `key`'s partition.
  std::uint64_t MintFloor(std::string_view key) const;

  // Small named records of the node's own (e.g. the last known membership,
  // so that a restarted node knows its cluster before anyone answers it).
  Result<std::optional<std::string>> GetNodeRecord(std::string_view name);
  Status PutNodeRecord(std::string_view name, std::string_view value);

  // Request ids of non-idempotent writes (DESIGN §4), remembered with their
  // reply in the write's own transaction so that a resent INCR is answered,
  // not applied again, also after a restart. GetRequest: the reply, or nullopt.
  Result<std::optional<std::string>> GetRequest(std::string_view id);
  Status PutRequest(std::string_view id, std::uint64_t now_ms, std::string_view reply);
  // Forgets ids remembered before `before_ms`, visiting at most `limit` from
  // `cursor` ("" = the first); returns where to go on ("" = the end was reached).
  Result<std::string> PruneRequests(std::string_view cursor, std::uint64_t before_ms, std::size_t limit);

  // Retired keys (DESIGN §2's tombstone rule, per key). When this node
  // collects a tombstone it keeps the tombstone itself here; when it answers a
  // collector "no record", the context offered. While the key has no record,
  // a state of it that arrives is joined onto what is kept (a delta delayed
  // past the collection brings nothing back), and a write that re-creates the
  // key starts from the kept tombstone (so counters continue their totals and
  // never go below a floor some replica still holds). Kept beside the request
  // ids and forgotten with them (PruneRequests).
  struct RetiredKey {
    crdt::DotContext context;               // what was retired
    std::optional<crdt::KeyState> tombstone;  // the collected tombstone, if this node held one
  };
  Status PutRetiredKey(std::string_view key, const crdt::DotContext& ctx, std::uint64_t now_ms);
  Status PutRetiredTombstone(std::string_view key, const crdt::KeyState& tombstone, std::uint64_t now_ms);
  Result<std::optional<RetiredKey>> GetRetiredKey(std::string_view key);
  // True when GetRetiredKey would find something, without decoding it.
  Result<bool> HasRetiredKey(std::string_view key);

 private:
  friend class Store;
  Txn(Store* store, View* view) : store_(store), view_(view) {}
  // Deletes every member record of `key`'s collection of `type` (their digests leave the tree).
  Status DeleteMembers(std::string_view key, crdt::CrdtType type);
  Status RequireWrite(const char* what) const;
  // Reads `key`'s header record into `info` (payload valid until the next
  // read); in a write transaction also remembers it for a Save that follows.
  Status LoadHeader(std::string_view key, records::HeaderInfo& info);
  // Save's parts. BeginSave: checks for a write transaction, sets the log
  // record's kind, and gives the header key (in the thread's buffer, valid
  // until the next save) and OldHeader's answer for it. OldHeader: the header `hkey` holds now (payload cleared)
  // and its digest, from the last Load or Save when it was of this key.
  Status BeginSave(const char* what, std::string_view key, std::string_view& hkey, records::HeaderInfo& old,
                   merkle::Digest& digest);
  Status OldHeader(std::string_view hkey, records::HeaderInfo& old, merkle::Digest& digest);
  // Seals a header record built in place (frame room, counts, encoding);
  // ResourceExhausted when it exceeds max_state_bytes.
  Status SealHeader(std::string_view key, std::string& record, bool live, bool tombstone) const;
  // Writes the sealed header record and the indexes that follow from it
  // (expiry, tombstones, live count) and its Merkle change.
  void PutHeader(std::string_view key, std::string_view hkey, const records::HeaderInfo& old,
                 const merkle::Digest& old_digest, std::string_view record, const records::HeaderInfo& now);
  // The type of the log record the current item's writes make: its first write's.
  void Kind(RecordType k) {
    if (!kind_set_) kind_ = k, kind_set_ = true;
  }

  Store* store_;
  View* view_;
  RecordType kind_ = RecordType::kDelta;
  bool kind_set_ = false;
  std::vector<TreeUpdate> tree_updates_;  // applied to the trees when the batch is durable
  // The header record the last Load or Save saw (write transactions): a
  // Save after a Load of the same key does not read and hash it again.
  struct LastHeader {
    bool valid = false;
    std::string key;
    records::HeaderInfo info;
    merkle::Digest digest;
  } last_header_;
};

class Store {
 public:
  using Work = std::function<Status(Txn&)>;
  using Done = std::function<void(Status)>;

  // Opens (creating if needed) the store in options.dir. Fails with a clear
  // message when the directory holds another node's data or cannot be used.
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();  // Close()

  const NodeIdentity& identity() const { return identity_; }
  const StoreOptions& options() const { return options_; }

  const RecoveryInfo& recovery() const { return recovery_; }

  // The HLC to persist with every batch (called on the writer thread).
  void SetHlcSnapshot(std::function<crdt::Hlc()> snapshot);

  // Queues `work` for the writer. It runs once, on the writer thread, in the
  // batch's transaction; it must return an error only before it writes, and
  // it keeps no effects outside the transaction until `done`.
  // `done(status)` runs on the syncer thread once the batch is durable: with
  // work's own status, or the log's error. Unavailable after Close().
  void Submit(Work work, Done done);

  // Runs `fn` in a read view on the calling thread: it sees every batch
  // that is durable when the view opens (and maybe later ones).
  Status Read(const std::function<Status(Txn&)>& fn);

  // The overlay is at 90% of its bound (DESIGN §3): clients should not be
  // read and anti-entropy should pause until the running checkpoint frees
  // room. Peers' deltas and acknowledgements go on into the reserve.
  bool Pressured() const;

  // Stops accepting work, completes everything queued, writes a last
  // checkpoint (so the next open has nothing to replay) and joins the threads.
  void Close();
  // Stops as a killed process would (tests and the simulation): work still
  // queued fails, no checkpoint is written, the log stays as it is; the next
  // open replays it. With a FaultEnv, follow with PowerCut.
  void Kill();

  // The Merkle tree of a partition (a copy) and its root. A key's digest is the
  // XOR of its records' digests (xxh3-128 of record key and canonical payload),
  // kept up to date by every commit and rebuilt by one scan on open.
  merkle::Tree PartitionTree(std::uint32_t partition) const;
  merkle::Digest PartitionRoot(std::uint32_t partition) const;
  // xxh3-128 of every partition's root in order: equal on two nodes holding
  // the same partitions exactly when all their roots are equal.
  merkle::Digest RootsDigest() const;

  // Retired contexts, per partition. MintFloor: the highest counter of
  // `replica` in any tombstone this node collected in `partition`. Retired:
  // true when every dot of `ctx` (non-empty) lies within them, i.e. a
  // tombstone with this context carries nothing this node has not retired,
  // and is ignored on arrival (DESIGN §2) so collection never starts a repair
  // loop.
  std::uint64_t MintFloor(std::uint32_t partition, crdt::ReplicaId replica) const;
  bool Retired(std::uint32_t partition, const crdt::DotContext& ctx) const;
  std::uint32_t PartitionOfHash(std::uint64_t key_hash) const;

  // Counters for INFO.
  struct Stats {
    std::uint64_t commits = 0;  // batches made durable
    std::uint64_t items = 0;    // work items in them
    std::uint64_t map_bytes = 0;
    std::uint64_t resizes = 0;
    std::uint64_t tree_rebuild_ms = 0;  // the open-time tree scan
    LogWriter::Stats log;
    std::uint64_t log_records = 0;
    std::uint64_t checkpoints = 0;
    std::uint64_t checkpoint_last_ms = 0;
    std::uint64_t checkpoint_max_ms = 0;
    std::uint64_t checkpoint_records = 0;  // records written by the last checkpoint
    bool checkpoint_running = false;
    std::uint64_t checkpoint_sequence = 0;  // the last committed checkpoint's
    std::uint64_t durable_sequence = 0;
    std::uint64_t overlay_bytes = 0;
    std::uint64_t overlay_limit_bytes = 0;
    std::uint64_t overlay_records = 0;     // in the active layer
    std::uint64_t overlay_full_waits = 0;  // batches that waited for a checkpoint at the bound
  };
  Stats stats() const;

  struct Impl;

 private:
  explicit Store(StoreOptions options);
  friend class Txn;
  Status Recover();
  void WriterLoop();
  void SyncerLoop();
  void CheckpointLoop();
  void Fatal(const Status& s);

  StoreOptions options_;
  NodeIdentity identity_;
  RecoveryInfo recovery_;
  std::unique_ptr<Impl> impl_;
};

// Key layout helpers, exposed for tests and for anti-entropy.
std::uint64_t KeyHash(std::string_view key);

}  // namespace lattice::storage
