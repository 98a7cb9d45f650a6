// Store: Open and recovery, the writer and the syncer (store.h describes the
// pipeline; checkpoint.cc holds the checkpointer, txn.cc the transaction).
#include "storage/store.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include <pthread.h>

#include "storage/records.h"
#include "storage/store_impl.h"
#include "storage/view.h"

namespace lattice::storage {

using records::Table;

namespace {

std::uint64_t NowMs() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// A new incarnation: the wall clock in milliseconds above 20 random bits, so
// that a later life of a name has a higher incarnation than its earlier ones
// (membership merges by incarnation first, gossip/membership.h: a wiped node's
// new record must supersede what peers remember of its earlier life), and two
// lives started in the same millisecond still differ.
std::uint64_t RandomIncarnation() {
  std::random_device rd;
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  return (ms << 20) | (rd() & 0xfffffu) | 1;
}

std::string EncodeIdentity(const NodeIdentity& id) {
  std::string rec;
  records::PutLE64(rec, id.incarnation);
  rec.append(id.name);
  return rec;
}

std::string EncodeHlc(const crdt::Hlc& h) {
  std::string raw;
  records::PutLE64(raw, h.wall_ms);
  records::PutLE32(raw, h.logical);
  return raw;
}

}  // namespace

Store::Store(StoreOptions options)
    : options_(std::move(options)),
      impl_(std::make_unique<Impl>(options_.partitions, options_.tree_leaf_bits)) {}

Store::~Store() { Close(); }

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return Status::IOError("cannot create data directory " + options.dir + ": " + ec.message());
  std::unique_ptr<Store> store(new Store(options));
  Impl& im = *store->impl_;
  im.env = options.env != nullptr ? options.env : PosixEnv();
  im.log_dir = options.dir + "/wal";
  auto lmdb = Lmdb::Open(options.dir + "/data.mdb", options.map_bytes, options.max_map_bytes);
  if (!lmdb.ok()) return lmdb.status();
  im.lmdb = std::move(lmdb).value();
  if (Status s = store->Recover(); !s.ok()) return s;
  {
    std::lock_guard lock(im.stats_mu);
    im.stats.map_bytes = im.lmdb->map_bytes();
    im.stats.overlay_limit_bytes = options.overlay_bytes;
  }
  Store* raw = store.get();
  // Named, so top -H and perf tell them apart.
  im.syncer = std::thread([raw] {
    pthread_setname_np(pthread_self(), "store-syncer");
    raw->SyncerLoop();
  });
  im.checkpointer = std::thread([raw] {
    pthread_setname_np(pthread_self(), "store-ckpt");
    raw->CheckpointLoop();
  });
  im.writer = std::thread([raw] {
    pthread_setname_np(pthread_self(), "store-writer");
    raw->WriterLoop();
  });
  return store;
}

// ---- recovery --------------------------------------------------------------------

Status Store::Recover() {
  Impl& im = *impl_;
  const std::uint64_t started = NowMs();
  NodeIdentity& id = identity_;
  std::uint64_t checkpoint = 0;
  bool unsynced_before = false;
  std::string identity_raw;
  {
    auto txn = im.lmdb->BeginRead();
    if (!txn.ok()) return txn.status();
    auto raw = (*txn)->Get(Table::kMeta, records::kIdentity);
    if (!raw.ok()) return raw.status();
    if (*raw) identity_raw.assign(**raw);
    auto seq = (*txn)->Get(Table::kMeta, records::kCheckpointSeq);
    if (!seq.ok()) return seq.status();
    if (*seq && (**seq).size() == 8) checkpoint = records::GetLE64((**seq).data());
    auto unsynced = (*txn)->Get(Table::kMeta, records::kUnsyncedOpen);
    if (!unsynced.ok()) return unsynced.status();
    unsynced_before = unsynced->has_value();
  }
  std::string& reason = recovery_.new_incarnation_reason;
  if (identity_raw.empty()) {
    id.name = options_.node_name;
    id.incarnation = options_.incarnation != 0 ? options_.incarnation : RandomIncarnation();
    id.fresh = true;
  } else {
    if (identity_raw.size() < 8) return Status::Corruption("node identity record is damaged");
    id.incarnation = records::GetLE64(identity_raw.data());
    id.name = identity_raw.substr(8);
    if (id.name != options_.node_name) {
      return Status::InvalidArgument("data directory " + options_.dir + " belongs to node '" + id.name +
                                     "', not '" + options_.node_name + "'");
    }
    if (unsynced_before) {
      reason = "the last run used --sync none and did not stop cleanly, so acknowledged writes may be lost";
    }
  }
  recovery_.checkpoint_sequence = checkpoint;

  // Replay the log after the checkpoint.
  std::uint64_t last_replayed = checkpoint;
  Status apply;
  auto replayed = ReadLog(im.env, im.log_dir, checkpoint + 1, [&](const LogRecord& rec) -> Status {
    if (rec.type == RecordType::kCheckpoint) return Status::Ok();
    Status s = DecodeOps(rec.payload, [&](std::string_view key, bool present, std::string_view value) {
      im.overlay.PutDurable(key, Slot{true, present, std::string(value)});
    });
    if (!s.ok()) {
      // A record that passed its checksum but does not parse: our own bug or
      // damage the checksum missed; everything after it is not replayed.
      return Status::Corruption("log record " + std::to_string(rec.sequence) + ": " + s.message());
    }
    ++recovery_.replayed_records;
    recovery_.replayed_bytes += rec.payload.size();
    last_replayed = rec.sequence;
    return Status::Ok();
  });
  bool discard_log = false;
  if (!replayed.ok()) {
    if (replayed.status().code() != Status::Code::kCorruption) return replayed.status();
    reason = replayed.status().message();
    recovery_.stop = reason;
    discard_log = true;
  } else {
    const LogRecovery& r = *replayed;
    recovery_.stop = std::string(LogStopName(r.stop)) + (r.detail.empty() ? "" : ": " + r.detail);
    if (r.later_batch_found || r.stop == LogStop::kSequenceGap || r.stop == LogStop::kMissingSegment ||
        r.stop == LogStop::kStartsAfter) {
      reason = "the log lost synced records (" + recovery_.stop + ")";
      discard_log = true;
    } else if (!r.clean()) {
      recovery_.torn_tail = true;  // never acknowledged: only the last batch's sync was cut
    } else if (r.next_sequence < checkpoint + 1) {
      // Every record the log holds is older than the checkpoint (a log from
      // before it): LMDB has all of it; the log restarts after the checkpoint.
      discard_log = true;
    }
  }
  if (!reason.empty() && !id.fresh) {
    id.incarnation = std::max(RandomIncarnation(), id.incarnation + 2);  // above the earlier life's
    id.rejoin = true;
  }
  if (id.fresh || !reason.empty() || unsynced_before != (options_.sync == SyncMode::kNone)) {
    Status s = im.lmdb->Commit([&](Lmdb::Writer& w) -> Status {
      if (Status ps = w.Put(Table::kMeta, records::kIdentity, EncodeIdentity(id)); !ps.ok()) return ps;
      if (options_.sync == SyncMode::kNone) return w.Put(Table::kMeta, records::kUnsyncedOpen, "1");
      return w.Del(Table::kMeta, records::kUnsyncedOpen);
    });
    if (!s.ok()) return s;
  }
  id.replica = crdt::MakeReplicaId(id.name, id.incarnation);

  if (discard_log) {
    // What was replayed goes to LMDB now, then the damaged log is set aside
    // (kept for inspection, never read again) and a new one starts after it.
    if (auto layer = im.overlay.Freeze()) {
      if (Status s = WriteCheckpoint(*im.lmdb, *layer, last_replayed, false, nullptr); !s.ok()) return s;
      im.overlay.DropFrozen();
    }
    checkpoint = std::max(checkpoint, last_replayed);
    auto names = im.env->ListDir(im.log_dir);
    if (names.ok()) {
      const std::string prefix = "damaged-" + std::to_string(NowMs()) + "-";
      for (const std::string& name : *names) {
        if (name.rfind("wal-", 0) != 0) continue;
        if (Status s = im.env->Rename(im.log_dir + "/" + name, im.log_dir + "/" + prefix + name); !s.ok()) return s;
      }
      if (Status s = im.env->SyncDir(im.log_dir); !s.ok()) return s;
      if (!recovery_.stop.empty()) recovery_.stop += "; ";
      recovery_.stop += "its segments were set aside as " + prefix + "wal-*";
    }
    replayed = ReadLog(im.env, im.log_dir, checkpoint + 1, [](const LogRecord&) { return Status::Ok(); });
    if (!replayed.ok()) return replayed.status();
  }
  LogOptions lo;
  lo.dir = im.log_dir;
  lo.segment_bytes = options_.segment_bytes;
  lo.sync_batches = options_.sync == SyncMode::kAlways;
  lo.max_free_segments = 1;  // one spare to recycle (no zero-fill on the path), no more disk
  auto writer = LogWriter::Open(im.env, lo, *replayed);
  if (!writer.ok()) return writer.status();
  im.log = std::move(writer).value();
  // Segments the checkpoint already holds may be recycled from the first roll on.
  if (Status s = im.log->Release(checkpoint); !s.ok()) return s;
  recovery_.next_sequence = im.log->next_sequence();
  im.released_upto = checkpoint;

  // What the node derives from its records, read through the merged view.
  auto view = View::Open(im.overlay, *im.lmdb, nullptr);
  if (!view.ok()) return view.status();
  auto hlc = (*view)->Get(Table::kMeta, records::kHlc);
  if (!hlc.ok()) return hlc.status();
  if (*hlc && (**hlc).size() == 12) {
    id.hlc = crdt::Hlc{records::GetLE64((**hlc).data()), records::GetLE32((**hlc).data() + 8)};
  }
  if (Status s = im.retired.Load(**view); !s.ok()) return s;
  const std::uint64_t trees_started = NowMs();
  if (Status s = im.trees.Rebuild(**view); !s.ok()) return s;
  {
    std::lock_guard lock(im.stats_mu);
    im.stats.tree_rebuild_ms = NowMs() - trees_started;
    im.stats.checkpoint_sequence = checkpoint;
    im.stats.durable_sequence = im.log->durable_sequence();
  }
  recovery_.open_ms = NowMs() - started;
  return Status::Ok();
}

// ---- the pipeline -----------------------------------------------------------------

void Store::Fatal(const Status& s) {
  Impl& im = *impl_;
  {
    std::lock_guard lock(im.failure_mu);
    if (im.failed.exchange(true)) return;
    im.failure = s.Annotate("storage failed, the node must stop: ");
  }
  if (options_.on_fatal) {
    options_.on_fatal(im.failure);
    return;
  }
  std::fprintf(stderr, "latticed: %s\n", im.failure.message().c_str());
  std::abort();
}

void Store::SetHlcSnapshot(std::function<crdt::Hlc()> snapshot) {
  std::lock_guard lock(impl_->mu);
  impl_->hlc_snapshot = std::move(snapshot);
}

Status Store::Read(const std::function<Status(Txn&)>& fn) {
  // The view's copy of an overlay value goes to a buffer this thread keeps
  // from read to read (lent to the view and taken back, so a nested read
  // gets its own).
  thread_local std::string value_buffer;
  View view(impl_->overlay, *impl_->lmdb, nullptr);  // on the stack: a read allocates nothing here
  view.SwapValueBuffer(value_buffer);
  Status s = view.Begin();
  if (s.ok()) {
    Txn t(this, &view);
    s = fn(t);
  }
  view.SwapValueBuffer(value_buffer);
  if (value_buffer.capacity() > kKeptBufferBytes) std::string().swap(value_buffer);
  return s;
}

bool Store::Pressured() const {
  return impl_->overlay.bytes() >= options_.overlay_bytes / 10 * 9;
}

void Store::Submit(Work work, Done done) {
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->closing) {
      impl_->queue.push_back(Impl::Item{std::move(work), std::move(done)});
      impl_->cv.notify_one();
      return;
    }
  }
  done(Status::Unavailable("the node is shutting down"));
}

namespace {
// Clears `v`, keeping its capacity unless that is beyond what a batch
// usually needs (a huge batch's containers are not kept).
template <class T>
void ClearKept(std::vector<T>& v) {
  constexpr std::size_t kKeptElements = std::size_t{1} << 13;
  v.clear();
  if (v.capacity() > kKeptElements) std::vector<T>().swap(v);
}
}  // namespace

void Store::Impl::Batch::Clear() {
  ClearKept(items);
  ClearKept(results);
  ClearKept(touched);
  ClearKept(tree_updates);
  appended = false;
}

void Store::SyncerLoop() {
  Impl& im = *impl_;
  for (;;) {
    Impl::Batch b;
    {
      std::unique_lock lock(im.sync_mu);
      im.sync_cv.wait(lock, [&] { return im.stop_syncer || im.to_sync.has_value(); });
      if (!im.to_sync) return;
      b = std::move(*im.to_sync);
      im.to_sync.reset();
    }
    Status s = b.appended ? im.log->Sync() : Status::Ok();
    if (!s.ok()) {
      Fatal(s);
    } else {
      im.overlay.Promote(b.touched, &b.freed_values);  // readers see the batch from here on
      im.trees.Apply(b.tree_updates);
    }
    {
      std::lock_guard lock(im.stats_mu);
      if (s.ok()) {
        ++im.stats.commits;
        im.stats.items += b.items.size();
      }
      im.stats.log = im.log->stats();
      im.stats.durable_sequence = im.log->durable_sequence();
    }
    {
      std::lock_guard lock(im.sync_mu);
      im.syncing = false;
    }
    im.sync_cv.notify_all();
    for (std::size_t i = 0; i < b.items.size(); ++i) b.items[i].done(s.ok() ? b.results[i] : s);
    // The batch's containers go back to the writer for a later batch.
    b.Clear();
    std::lock_guard lock(im.sync_mu);
    if (im.spare_batches.size() < Impl::kSpareBatches) im.spare_batches.push_back(std::move(b));
  }
}

void Store::WriterLoop() {
  Impl& im = *impl_;
  std::uint64_t log_bytes_since_cut = 0;
  std::uint64_t last_checkpoint_ms = NowMs();
  std::uint64_t released = im.released_upto;
  // What the replay brought back goes to LMDB soon, so the log it came from
  // is recycled and the next restart has little to replay.
  bool checkpoint_soon = recovery_.replayed_records > 0;
  std::size_t last_batch_items = 0;  // of the batch handed to the syncer last

  auto wait_synced = [&] {
    std::unique_lock lock(im.sync_mu);
    im.sync_cv.wait(lock, [&] { return !im.syncing; });
  };
  auto checkpoint_running = [&] {
    std::lock_guard lock(im.ckpt_mu);
    return im.ckpt_layer != nullptr;
  };
  // With nothing pending: freeze the active layer and hand it to the checkpointer.
  auto start_checkpoint = [&](bool final) {
    if (checkpoint_running()) return false;
    auto layer = im.overlay.Freeze();
    if (layer == nullptr) return false;
    {
      std::lock_guard lock(im.ckpt_mu);
      im.ckpt_layer = std::move(layer);
      im.ckpt_cut = im.log->durable_sequence();
      im.ckpt_final = final;
      if (options_.test.release_before_checkpoint) im.released_upto = im.ckpt_cut;  // the bug, on purpose
    }
    im.ckpt_cv.notify_all();
    log_bytes_since_cut = 0;
    last_checkpoint_ms = NowMs();
    return true;
  };
  auto maybe_checkpoint = [&] {
    const bool want = checkpoint_soon || im.overlay.active_bytes() >= options_.overlay_bytes / 2 ||
                      log_bytes_since_cut >= options_.checkpoint_log_bytes ||
                      (NowMs() - last_checkpoint_ms >= options_.checkpoint_interval_ms &&
                       im.overlay.active_bytes() > 0);
    if (want && start_checkpoint(false)) checkpoint_soon = false;
    if (const std::uint64_t upto = im.released_upto; upto > released) {
      auto crash = [&](std::string_view step) { return options_.test.crash_at && options_.test.crash_at(step); };
      if (crash("log.before_release")) return Fatal(Status::IOError("power cut before the log's release"));
      released = upto;
      if (Status s = im.log->Release(upto); !s.ok()) return Fatal(s);
      if (crash("log.after_release")) return Fatal(Status::IOError("power cut after the log's release"));
    }
  };
  auto killed = [&] {
    std::lock_guard lock(im.mu);
    return im.killed;
  };
  auto fail_all = [&](std::vector<Impl::Item>& items, const Status& s) {
    for (auto& item : items) item.done(s);
    items.clear();
  };
  // After a fatal error every item fails with it; true when that happened.
  auto failed_all = [&](std::vector<Impl::Item>& items) {
    if (!im.failed) return false;
    std::lock_guard lock(im.failure_mu);
    fail_all(items, im.failure);
    return true;
  };

  // Kept from batch to batch, so that a batch in steady state allocates
  // nothing here: the items, the write set and the spares its entries reuse,
  // the view (begun again for every batch), the batch's containers (the
  // syncer hands finished batches back), the log records as ranges of the
  // view's ops, and the buffer of Txn's last-header key.
  std::vector<Impl::Item> items;
  Overlay::WriteSet writes;
  Overlay::Spares spares;
  View view(im.overlay, *im.lmdb, &writes, &spares);
  Impl::Batch batch;
  struct LogRecordRef {
    RecordType type;
    std::size_t offset;  // in view.ops()
    std::size_t size;
  };
  std::vector<LogRecordRef> log_records;
  std::string header_key;
  for (;;) {
    std::function<crdt::Hlc()> hlc_snapshot;
    bool closing = false;
    {
      std::unique_lock lock(im.mu);
      im.cv.wait_for(lock, std::chrono::milliseconds(500), [&] { return im.closing || !im.queue.empty(); });
      while (!im.queue.empty() && items.size() < options_.max_batch) {
        items.push_back(std::move(im.queue.front()));
        im.queue.pop_front();
      }
      closing = im.closing && items.empty();
      hlc_snapshot = im.hlc_snapshot;
    }
    if (closing) break;
    if (items.empty()) {  // idle: a checkpoint may be due by time
      wait_synced();
      if (!im.failed) maybe_checkpoint();
      continue;
    }
    if (killed()) {
      fail_all(items, Status::Unavailable("the node was killed"));
      continue;
    }
    if (failed_all(items)) continue;

    // Stage 1: apply the batch into its write set (the previous one may still be syncing).
    {
      std::lock_guard lock(im.sync_mu);
      if (!im.spare_batches.empty()) {
        batch = std::move(im.spare_batches.back());
        im.spare_batches.pop_back();
      }
    }
    for (std::string& value : batch.freed_values) spares.GiveValue(std::move(value));
    batch.freed_values.clear();
    batch.Clear();
    spares.Reclaim(writes);  // what a batch that failed left (nothing otherwise)
    log_records.clear();
    if (Status s = view.Begin(); !s.ok()) {
      fail_all(items, s);
      continue;
    }
    {
      Txn t(this, &view);
      t.tree_updates_.swap(batch.tree_updates);  // empty: their capacity
      t.last_header_.key.swap(header_key);       // not valid in a new Txn: its capacity
      batch.results.reserve(items.size());
      // A batch also ends at an eighth of the overlay's bound, so that no
      // batch carries the overlay far past it; the items not applied go back
      // to the front of the queue, in order.
      const std::size_t batch_bytes = std::max<std::size_t>(options_.overlay_bytes / 8, 64 << 10);
      // The ops view.ops() gained since `from`, when there are any, are a log record of type `type`.
      auto add_record = [&](RecordType type, std::size_t from) {
        const std::size_t size = view.ops().size() - from;
        if (size > 0) log_records.push_back(LogRecordRef{type, from, size});
      };
      auto apply = [&](std::size_t from) {
        std::size_t i = from;
        for (; i < items.size() && (i == 0 || view.written_bytes() < batch_bytes); ++i) {
          t.kind_set_ = false;
          t.kind_ = RecordType::kDelta;
          const std::size_t ops_from = view.ops().size();
          batch.results.push_back(items[i].work(t));
          add_record(t.kind_, ops_from);
        }
        if (i < items.size()) {
          std::lock_guard lock(im.mu);
          for (std::size_t j = items.size(); j-- > i;) im.queue.push_front(std::move(items[j]));
          items.resize(i);
        }
        return i == items.size() && view.written_bytes() < batch_bytes;
      };
      apply(0);
      wait_synced();
      // Group commit: the clients of the batch that just became durable send
      // their next requests within microseconds of its replies. While this
      // batch is smaller than that one, it waits a little for them, so that
      // one fdatasync serves them all instead of every other one.
      if (!im.failed && options_.group_commit_wait_us > 0 && items.size() < last_batch_items) {
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::microseconds(options_.group_commit_wait_us);
        std::unique_lock lock(im.mu);
        while (items.size() < last_batch_items && items.size() < options_.max_batch && !im.closing) {
          if (im.queue.empty() && !im.cv.wait_until(lock, deadline, [&] { return !im.queue.empty() || im.closing; })) {
            break;
          }
          const std::size_t from = items.size();
          while (!im.queue.empty() && items.size() < options_.max_batch) {
            items.push_back(std::move(im.queue.front()));
            im.queue.pop_front();
          }
          lock.unlock();
          const bool room = apply(from);
          lock.lock();
          if (!room) break;
        }
      }
      if (!log_records.empty() && hlc_snapshot) {
        const std::size_t ops_from = view.ops().size();
        view.Put(Table::kMeta, records::kHlc, EncodeHlc(hlc_snapshot()));
        add_record(RecordType::kNodeRecord, ops_from);
      }
      batch.tree_updates.swap(t.tree_updates_);
      header_key.swap(t.last_header_.key);
    }
    view.End();  // the log records stay in view.ops() until the next Begin

    // Stage 2: the previous batch is durable: log this one and hand it to the syncer.
    if (failed_all(items)) continue;
    maybe_checkpoint();
    if (im.overlay.bytes() >= options_.overlay_bytes) {
      // At the bound: wait for the running checkpoint (or start one) to free room.
      {
        std::lock_guard lock(im.stats_mu);
        ++im.stats.overlay_full_waits;
      }
      for (;;) {
        if (!checkpoint_running() && !start_checkpoint(false)) break;  // nothing left to free
        std::unique_lock lock(im.ckpt_mu);
        im.ckpt_cv.wait(lock, [&] { return im.ckpt_layer == nullptr || im.failed; });
        lock.unlock();
        maybe_checkpoint();  // release the log
        if (im.failed || im.overlay.bytes() < options_.overlay_bytes) break;
      }
    }
    for (const LogRecordRef& record : log_records) {
      const std::string_view payload = view.ops().substr(record.offset, record.size);
      auto seq = im.log->Append(record.type, payload);
      if (!seq.ok()) {
        Fatal(seq.status());
        break;
      }
      log_bytes_since_cut += payload.size() + 32;
    }
    if (failed_all(items)) continue;
    {
      std::lock_guard lock(im.stats_mu);
      im.stats.log_records += log_records.size();
    }
    batch.appended = !log_records.empty();
    im.overlay.AddPending(writes, batch.touched, &spares);
    last_batch_items = items.size();
    batch.items.swap(items);  // `items` takes the batch's emptied vector, for its capacity
    {
      std::lock_guard lock(im.sync_mu);
      im.syncing = true;
      im.to_sync = std::move(batch);
    }
    im.sync_cv.notify_all();
  }

  // Closing: everything queued is applied; the last batch's sync completes,
  // then a last checkpoint, so the next open has nothing to replay.
  wait_synced();
  if (im.failed || killed()) return;
  for (int round = 0; round < 2; ++round) {  // a running checkpoint first, then the rest
    {
      std::unique_lock lock(im.ckpt_mu);
      im.ckpt_cv.wait(lock, [&] { return im.ckpt_layer == nullptr; });
    }
    if (im.failed) return;
    if (start_checkpoint(true)) continue;
    if (options_.sync == SyncMode::kNone) {
      // Nothing left to write, but the clean stop is recorded all the same.
      if (Status s = WriteCheckpoint(*im.lmdb, Overlay::Layer{}, im.log->durable_sequence(), true, nullptr);
          !s.ok()) {
        Fatal(s);
      } else {
        std::lock_guard lock(im.stats_mu);
        im.stats.checkpoint_sequence = im.log->durable_sequence();
      }
    }
    break;
  }
  std::unique_lock lock(im.ckpt_mu);
  im.ckpt_cv.wait(lock, [&] { return im.ckpt_layer == nullptr; });
}

void Store::Kill() {
  if (!impl_ || impl_->lmdb == nullptr) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->killed = true;
  }
  Close();
}

void Store::Close() {
  if (!impl_ || impl_->lmdb == nullptr) return;
  Impl& im = *impl_;
  {
    std::lock_guard lock(im.mu);
    im.closing = true;
  }
  im.cv.notify_all();
  if (im.writer.joinable()) im.writer.join();
  {
    std::lock_guard lock(im.sync_mu);
    im.stop_syncer = true;
  }
  im.sync_cv.notify_all();
  if (im.syncer.joinable()) im.syncer.join();
  {
    std::lock_guard lock(im.ckpt_mu);
    im.stop_checkpointer = true;
  }
  im.ckpt_cv.notify_all();
  if (im.checkpointer.joinable()) im.checkpointer.join();
  const bool everything_checkpointed =
      im.log != nullptr && !im.failed && !im.killed && stats().checkpoint_sequence == im.log->durable_sequence();
  im.log.reset();
  if (everything_checkpointed) {
    // The last checkpoint holds every record: the log's segments go, so a
    // stopped node's disk is its LMDB file. The next open finds no log and
    // continues after the checkpoint.
    if (auto names = im.env->ListDir(im.log_dir); names.ok()) {
      bool removed = false;
      for (const std::string& name : *names) {
        if (name.rfind("wal-", 0) != 0) continue;
        removed = im.env->Remove(im.log_dir + "/" + name).ok() || removed;
      }
      if (removed) (void)im.env->SyncDir(im.log_dir);
    }
  }
  im.lmdb.reset();
}

// ---- derived state ---------------------------------------------------------------

std::uint64_t Store::MintFloor(std::uint32_t partition, crdt::ReplicaId replica) const {
  return impl_->retired.MintFloor(partition, replica);
}
bool Store::Retired(std::uint32_t partition, const crdt::DotContext& ctx) const {
  return impl_->retired.Retired(partition, ctx);
}
std::uint32_t Store::PartitionOfHash(std::uint64_t key_hash) const { return impl_->trees.PartitionOfHash(key_hash); }
merkle::Tree Store::PartitionTree(std::uint32_t partition) const { return impl_->trees.Partition(partition); }
merkle::Digest Store::PartitionRoot(std::uint32_t partition) const { return impl_->trees.Root(partition); }
merkle::Digest Store::RootsDigest() const { return impl_->trees.RootsDigest(); }

Store::Stats Store::stats() const {
  Stats s;
  {
    std::lock_guard lock(impl_->stats_mu);
    s = impl_->stats;
  }
  s.overlay_bytes = impl_->overlay.bytes();
  s.overlay_records = impl_->overlay.active_records();
  return s;
}

}  // namespace lattice::storage
