// The checkpointer (DESIGN §3): writes the overlay's frozen layer to LMDB in
// key order, in one fully synced transaction that also records the log
// sequence of the cut; only then may the log be recycled up to it and the
// layer be dropped. Runs on its own thread, beside the writer: the writer
// goes on filling the new active layer meanwhile.
#include <chrono>

#include "storage/records.h"
#include "storage/store_impl.h"

namespace lattice::storage {

using records::Table;

Status WriteCheckpoint(Lmdb& lmdb, const Overlay::Layer& layer, std::uint64_t cut, bool clean_close,
                       std::uint64_t* records_written) {
  return lmdb.Commit([&](Lmdb::Writer& w) -> Status {
    std::uint64_t n = 0;
    for (const auto& [key, entry] : layer.records) {  // key order: table byte, then record key
      if (!entry.durable.set || key.empty()) continue;
      const auto table = static_cast<Table>(key[0]);
      const std::string_view rk = std::string_view(key).substr(1);
      Status s = entry.durable.present ? w.Put(table, rk, entry.durable.value) : w.Del(table, rk);
      if (!s.ok()) return s;
      ++n;
    }
    std::string seq;
    records::PutLE64(seq, cut);
    if (Status s = w.Put(Table::kMeta, records::kCheckpointSeq, seq); !s.ok()) return s;
    if (clean_close) {
      if (Status s = w.Del(Table::kMeta, records::kUnsyncedOpen); !s.ok()) return s;
    }
    if (records_written != nullptr) *records_written = n;
    return Status::Ok();
  });
}

void Store::CheckpointLoop() {
  Impl& im = *impl_;
  for (;;) {
    std::shared_ptr<const Overlay::Layer> layer;
    std::uint64_t cut = 0;
    bool final = false;
    {
      std::unique_lock lock(im.ckpt_mu);
      im.ckpt_cv.wait(lock, [&] { return im.stop_checkpointer || im.ckpt_layer != nullptr; });
      if (im.ckpt_layer == nullptr) return;
      layer = im.ckpt_layer;
      cut = im.ckpt_cut;
      final = im.ckpt_final;
    }
    {
      std::lock_guard lock(im.stats_mu);
      im.stats.checkpoint_running = true;
    }
    const auto started = std::chrono::steady_clock::now();
    std::uint64_t written = 0;
    auto crash = [&](std::string_view step) { return options_.test.crash_at && options_.test.crash_at(step); };
    Status s = crash("checkpoint.before_commit") ? Status::IOError("power cut before the checkpoint's commit")
                                                 : WriteCheckpoint(*im.lmdb, *layer, cut, final, &written);
    if (s.ok() && crash("checkpoint.after_commit")) s = Status::IOError("power cut after the checkpoint's commit");
    const auto ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
    if (!s.ok()) {
      Fatal(s.Annotate("checkpoint at log sequence " + std::to_string(cut) + " failed: "));
    } else {
      im.overlay.DropFrozen();
      im.released_upto = cut;
    }
    {
      std::lock_guard lock(im.stats_mu);
      im.stats.checkpoint_running = false;
      if (s.ok()) {
        ++im.stats.checkpoints;
        im.stats.checkpoint_last_ms = ms;
        im.stats.checkpoint_max_ms = std::max(im.stats.checkpoint_max_ms, ms);
        im.stats.checkpoint_records = written;
        im.stats.checkpoint_sequence = cut;
        im.stats.map_bytes = im.lmdb->map_bytes();
        im.stats.resizes = im.lmdb->resizes();
      }
    }
    {
      std::lock_guard lock(im.ckpt_mu);
      im.ckpt_layer.reset();
      layer.reset();
    }
    im.ckpt_cv.notify_all();
    {
      std::lock_guard lock(im.mu);  // the writer may wait for room
    }
    im.cv.notify_all();
  }
}

}  // namespace lattice::storage
