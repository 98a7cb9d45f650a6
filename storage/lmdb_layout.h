// The LMDB side of the store (DESIGN §3): one environment per node, one named
// database per records::Table, always opened with full sync (never
// MDB_NOSYNC or MDB_MAPASYNC). The only code that includes <lmdb.h>.
//
// LMDB holds the last checkpoint; everything newer lives in the memory
// overlay and the write-ahead log. Reads run in short read transactions
// (pooled, any thread); writes come only from Commit, which the
// checkpointer (and Open, before any other thread runs) calls: one write
// transaction, committed with a full sync. A full map is grown (doubling up
// to a maximum) and the transaction refilled; beyond the maximum Commit
// reports ResourceExhausted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"
#include "storage/records.h"

namespace lattice::storage {

class Lmdb {
 public:
  static Result<std::unique_ptr<Lmdb>> Open(const std::string& path, std::size_t map_bytes,
                                            std::size_t max_map_bytes);
  ~Lmdb();
  Lmdb(const Lmdb&) = delete;
  Lmdb& operator=(const Lmdb&) = delete;

  class Cursor;
  // A read transaction. Values it returns stay valid until it ends. Used by
  // one thread; many may be open at once.
  class ReadTxn {
   public:
    ReadTxn() = default;  // not begun: see Lmdb::Begin
    ~ReadTxn();
    ReadTxn(const ReadTxn&) = delete;
    ReadTxn& operator=(const ReadTxn&) = delete;
    // nullopt when absent.
    Result<std::optional<std::string_view>> Get(records::Table table, std::string_view key);
    std::unique_ptr<Cursor> OpenCursor(records::Table table);

   private:
    friend class Lmdb;
    ReadTxn(Lmdb* db, void* txn, std::shared_lock<std::shared_mutex> lock)
        : db_(db), txn_(txn), resize_lock_(std::move(lock)) {}
    void End();
    Lmdb* db_ = nullptr;
    void* txn_ = nullptr;  // MDB_txn*
    std::shared_lock<std::shared_mutex> resize_lock_;
  };
  Result<std::unique_ptr<ReadTxn>> BeginRead();
  // Begins `txn` in place (no allocation; a pooled LMDB transaction is renewed).
  Status Begin(ReadTxn& txn);

  class Cursor {
   public:
    ~Cursor();
    void Seek(std::string_view target);  // first record >= target
    bool Valid() const { return valid_; }
    std::string_view key() const { return key_; }
    std::string_view value() const { return value_; }
    void Next();
    const Status& status() const { return status_; }

   private:
    friend class ReadTxn;
    explicit Cursor(void* cur) : cur_(cur) {}
    void Take(int rc);
    void* cur_;  // MDB_cursor*
    bool valid_ = false;
    std::string_view key_, value_;
    Status status_;
  };

  // What Commit's fill function writes through.
  class Writer {
   public:
    Status Put(records::Table table, std::string_view key, std::string_view value);
    Status Del(records::Table table, std::string_view key);  // absent is fine

   private:
    friend class Lmdb;
    Writer(Lmdb* db, void* txn) : db_(db), txn_(txn) {}
    Lmdb* db_;
    void* txn_;
    bool full_ = false;
  };
  // Runs `fill` in one write transaction and commits it durably. `fill` may
  // run more than once (the map is grown and the transaction refilled).
  Status Commit(const std::function<Status(Writer&)>& fill);

  std::size_t map_bytes() const { return map_bytes_; }
  std::uint64_t resizes() const { return resizes_; }

 private:
  Lmdb() = default;
  void* env_ = nullptr;  // MDB_env*
  unsigned dbi_[records::kTables] = {};
  std::size_t map_bytes_ = 0;
  std::size_t max_map_bytes_ = 0;
  std::uint64_t resizes_ = 0;
  std::shared_mutex resize_mu_;  // shared: an open read transaction; exclusive: a resize
  std::mutex pool_mu_;
  std::vector<void*> read_pool_;  // reset read transactions for reuse
};

}  // namespace lattice::storage
