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
// One thread uses a View; it holds a snapshot of the overlay's layers and
// one LMDB read transaction for its lifetime, opened in that order.
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
  // `writes`: the writer's batch (null for a reader).
  static Result<std::unique_ptr<View>> Open(Overlay& overlay, Lmdb& lmdb, Overlay::WriteSet* writes);
  // The same in place (Store::Read: no allocation): construct, then Begin.
  View(Overlay& overlay, Lmdb& lmdb, Overlay::WriteSet* writes) : overlay_(overlay), lmdb_db_(&lmdb), writes_(writes) {}
  Status Begin();

  // The record, or nullopt; the view stays valid until the next Get.
  Result<std::optional<std::string_view>> Get(records::Table table, std::string_view key);
  std::unique_ptr<MergedCursor> Cursor(records::Table table);

  bool writer() const { return writes_ != nullptr; }
  // Writer views only.
  void Put(records::Table table, std::string_view key, std::string_view value);
  void Del(records::Table table, std::string_view key);
  // The encoded writes since the last call (cleared).
  std::string TakeOps();
  // Bytes of keys and values put or deleted through this view.
  std::size_t written_bytes() const { return written_bytes_; }

 private:
  void Record(records::Table table, std::string_view key, const std::string_view* value);
  Overlay& overlay_;
  Lmdb* lmdb_db_;
  Overlay::WriteSet* writes_;
  Overlay::Layers layers_;
  Lmdb::ReadTxn lmdb_txn_;
  Lmdb::ReadTxn* lmdb_ = &lmdb_txn_;
  std::string scratch_value_;
  std::string ops_;
  std::size_t written_bytes_ = 0;
};

// The log payload of a work item: a sequence of ops
//   [u8 table][u32 LE key length][key][u8 present][u32 LE value length][value]
// DecodeOps calls fn(overlay key (table byte ‖ record key), present, value).
Status DecodeOps(std::string_view payload,
                 const std::function<void(std::string_view key, bool present, std::string_view value)>& fn);

}  // namespace lattice::storage
