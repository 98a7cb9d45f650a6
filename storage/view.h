// View: the one merged read of the store's tables (DESIGN §3), the overlay
// over LMDB, for the reader or the writer that opens it. Internal to
// storage/; Txn reads and writes through it.
//
// A reader's view (no write set) sees durable versions only: the overlay's
// durable slots, then the frozen layer, then LMDB. The writer's view sees its
// batch's write set first, then pending versions too. Put and Del go to the
// write set and are also appended, encoded, to `ops` (the log payload of the
// work item that made them).
//
// One thread uses a View; from Begin to End (or its destruction) it holds a
// snapshot of the overlay's layers and one LMDB read transaction, opened in
// that order. The store's writer keeps one View and begins it again for
// every batch, so its buffers (the key and value copies, the encoded ops)
// keep their capacity from batch to batch.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"
#include "storage/lmdb_layout.h"
#include "storage/overlay.h"
#include "storage/records.h"

namespace lattice::storage {

class View;

// Records of one table in key order, the layers merged. key() and value()
// stay valid until the next Seek or Next.
class MergedCursor {
 public:
  ~MergedCursor();
  void Seek(std::string_view target);  // first record >= target ("" = the first)
  bool Valid() const { return valid_; }
  std::string_view key() const { return key_; }
  std::string_view value() const { return value_; }
  void Next();
  Status status() const;

  struct Source;  // view.cc

 private:
  friend class View;
  MergedCursor() = default;
  void Settle();
  std::vector<std::unique_ptr<Source>> sources_;  // topmost first
  bool valid_ = false;
  std::string_view key_, value_;
  std::string current_;
};

class View {
 public:
  // `writes`: the writer's batch (null for a reader); `spares`: where the
  // writer's new write-set entries take their memory from (may be null).
  static Result<std::unique_ptr<View>> Open(Overlay& overlay, Lmdb& lmdb, Overlay::WriteSet* writes);
  // The same in place (Store::Read: no allocation): construct, then Begin.
  View(Overlay& overlay, Lmdb& lmdb, Overlay::WriteSet* writes, Overlay::Spares* spares = nullptr)
      : overlay_(overlay), lmdb_db_(&lmdb), writes_(writes), spares_(spares) {}
  View(const View&) = delete;
  View& operator=(const View&) = delete;
  // Opens the view: a new snapshot and read transaction (the ones of an
  // earlier Begin are released first), no ops, written_bytes() 0. The write
  // set is the caller's: Begin does not clear it.
  Status Begin();
  // Releases the snapshot and the read transaction (values Get returned are
  // gone); ops() stays until the next Begin. Begin may follow again.
  void End();
  // Swaps the buffer the view copies overlay values into with `buffer`: a
  // reader lends its thread's buffer, and takes it back before the view goes.
  void SwapValueBuffer(std::string& buffer) { scratch_value_.swap(buffer); }

  // The record, or nullopt; the view stays valid until the next Get.
  Result<std::optional<std::string_view>> Get(records::Table table, std::string_view key);
  std::unique_ptr<MergedCursor> Cursor(records::Table table);

  bool writer() const { return writes_ != nullptr; }
  // Writer views only.
  void Put(records::Table table, std::string_view key, std::string_view value);
  void Del(records::Table table, std::string_view key);
  // The encoded writes since Begin, in order: the writer takes each work
  // item's log payload as the range its writes appended.
  std::string_view ops() const { return ops_; }
  // Bytes of keys and values put or deleted through this view.
  std::size_t written_bytes() const { return written_bytes_; }

 private:
  void Record(records::Table table, std::string_view key, const std::string_view* value);
  Overlay& overlay_;
  Lmdb* lmdb_db_;
  Overlay::WriteSet* writes_;
  Overlay::Spares* spares_;
  Overlay::Layers layers_;
  std::optional<Lmdb::ReadTxn> lmdb_txn_;  // engaged from Begin to End
  std::string scratch_value_;  // Get's copy of an active-layer value
  std::string record_key_;     // Record's overlay key (table byte and key)
  std::string ops_;
  std::size_t written_bytes_ = 0;
};

// Buffers a View keeps from batch to batch, or a thread from read to read,
// up to this capacity; a larger one (a rare huge record) is freed.
inline constexpr std::size_t kKeptBufferBytes = std::size_t{64} << 10;
inline constexpr std::size_t kKeptOpsBytes = std::size_t{4} << 20;  // a batch's ops

// The log payload of a work item: a sequence of ops
//   [u8 table][u32 LE key length][key][u8 present][u32 LE value length][value]
// DecodeOps calls fn(overlay key (table byte ‖ record key), present, value).
Status DecodeOps(std::string_view payload,
                 const std::function<void(std::string_view key, bool present, std::string_view value)>& fn);

}  // namespace lattice::storage
