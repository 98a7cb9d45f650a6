#include "storage/lmdb_layout.h"

#include <lmdb.h>

#include <algorithm>
#include <mutex>
#include <vector>

namespace lattice::storage {

using records::Table;

namespace {
Status LmdbError(const char* what, int rc) {
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  if (rc == MDB_MAP_FULL) return Status::ResourceExhausted(msg);
  if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND) return Status::Corruption(msg);
  return Status::IOError(msg);
}
MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }
MDB_txn* T(void* p) { return static_cast<MDB_txn*>(p); }
MDB_env* E(void* p) { return static_cast<MDB_env*>(p); }
}  // namespace

Result<std::unique_ptr<Lmdb>> Lmdb::Open(const std::string& path, std::size_t map_bytes, std::size_t max_map_bytes) {
  std::unique_ptr<Lmdb> db(new Lmdb());
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return LmdbError("mdb_env_create", rc);
  db->env_ = env;
  mdb_env_set_maxdbs(env, 8);
  mdb_env_set_maxreaders(env, 1024);
  db->map_bytes_ = map_bytes;
  db->max_map_bytes_ = std::max(max_map_bytes, map_bytes);
  if ((rc = mdb_env_set_mapsize(env, map_bytes)) != 0) return LmdbError("set map size", rc);
  // Full sync always (DESIGN §3): the checkpoint is what the log is recycled against.
  const unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSUBDIR;
  if ((rc = mdb_env_open(env, path.c_str(), flags, 0640)) != 0) {
    return Status::IOError("cannot open " + path + ": " + mdb_strerror(rc));
  }
  MDB_envinfo info;
  mdb_env_info(env, &info);
  db->map_bytes_ = std::max(db->map_bytes_, info.me_mapsize);
  MDB_txn* txn = nullptr;
  if ((rc = mdb_txn_begin(env, nullptr, 0, &txn)) != 0) return LmdbError("begin", rc);
  for (int t = 0; t < records::kTables; ++t) {
    MDB_dbi dbi = 0;
    if ((rc = mdb_dbi_open(txn, records::TableName(static_cast<Table>(t)), MDB_CREATE, &dbi)) != 0) {
      mdb_txn_abort(txn);
      return LmdbError("open db", rc);
    }
    db->dbi_[t] = dbi;
  }
  // A database of an earlier layout that is no longer read: dropped so its pages come back.
  MDB_dbi leaves = 0;
  if (mdb_dbi_open(txn, "leaves", 0, &leaves) == 0) mdb_drop(txn, leaves, 1);
  if ((rc = mdb_txn_commit(txn)) != 0) return LmdbError("commit", rc);
  return db;
}

Lmdb::~Lmdb() {
  for (void* r : read_pool_) mdb_txn_abort(T(r));
  if (env_ != nullptr) mdb_env_close(E(env_));
}

Result<std::unique_ptr<Lmdb::ReadTxn>> Lmdb::BeginRead() {
  auto txn = std::make_unique<ReadTxn>();
  if (Status s = Begin(*txn); !s.ok()) return s;
  return txn;
}

Status Lmdb::Begin(ReadTxn& into) {
  into.End();
  std::shared_lock resize_lock(resize_mu_);
  MDB_txn* txn = nullptr;
  {
    std::lock_guard lock(pool_mu_);
    if (!read_pool_.empty()) {
      txn = T(read_pool_.back());
      read_pool_.pop_back();
    }
  }
  int rc = txn != nullptr ? mdb_txn_renew(txn) : mdb_txn_begin(E(env_), nullptr, MDB_RDONLY, &txn);
  if (rc != 0) {
    if (txn != nullptr) mdb_txn_abort(txn);
    return LmdbError("begin read", rc);
  }
  into.db_ = this;
  into.txn_ = txn;
  into.resize_lock_ = std::move(resize_lock);
  return Status::Ok();
}

Lmdb::ReadTxn::~ReadTxn() { End(); }

void Lmdb::ReadTxn::End() {
  if (db_ == nullptr) return;
  mdb_txn_reset(T(txn_));  // pooled while the resize lock is still held
  {
    std::lock_guard lock(db_->pool_mu_);
    db_->read_pool_.push_back(txn_);
  }
  resize_lock_ = {};
  db_ = nullptr;
  txn_ = nullptr;
}

Result<std::optional<std::string_view>> Lmdb::ReadTxn::Get(Table table, std::string_view key) {
  MDB_val k = Val(key), v;
  int rc = mdb_get(T(txn_), db_->dbi_[static_cast<int>(table)], &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string_view>();
  if (rc != 0) return LmdbError("read", rc);
  return std::optional<std::string_view>(View(v));
}

std::unique_ptr<Lmdb::Cursor> Lmdb::ReadTxn::OpenCursor(Table table) {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(T(txn_), db_->dbi_[static_cast<int>(table)], &cur);
  std::unique_ptr<Cursor> c(new Cursor(cur));
  if (rc != 0) {
    c->cur_ = nullptr;
    c->status_ = LmdbError("cursor", rc);
  }
  return c;
}

Lmdb::Cursor::~Cursor() {
  if (cur_ != nullptr) mdb_cursor_close(static_cast<MDB_cursor*>(cur_));
}

void Lmdb::Cursor::Take(int rc) {
  valid_ = false;
  if (rc == MDB_NOTFOUND) return;
  if (rc != 0) {
    status_ = LmdbError("cursor", rc);
    return;
  }
  valid_ = true;
}

void Lmdb::Cursor::Seek(std::string_view target) {
  if (cur_ == nullptr) return;
  MDB_val k = Val(target), v;
  int rc = target.empty() ? mdb_cursor_get(static_cast<MDB_cursor*>(cur_), &k, &v, MDB_FIRST)
                          : mdb_cursor_get(static_cast<MDB_cursor*>(cur_), &k, &v, MDB_SET_RANGE);
  Take(rc);
  if (valid_) key_ = View(k), value_ = View(v);
}

void Lmdb::Cursor::Next() {
  if (cur_ == nullptr || !valid_) return;
  MDB_val k, v;
  Take(mdb_cursor_get(static_cast<MDB_cursor*>(cur_), &k, &v, MDB_NEXT));
  if (valid_) key_ = View(k), value_ = View(v);
}

Status Lmdb::Writer::Put(Table table, std::string_view key, std::string_view value) {
  MDB_val k = Val(key), v = Val(value);
  int rc = mdb_put(T(txn_), db_->dbi_[static_cast<int>(table)], &k, &v, 0);
  if (rc == MDB_MAP_FULL) full_ = true;
  return rc == 0 ? Status::Ok() : LmdbError("write", rc);
}

Status Lmdb::Writer::Del(Table table, std::string_view key) {
  MDB_val k = Val(key);
  int rc = mdb_del(T(txn_), db_->dbi_[static_cast<int>(table)], &k, nullptr);
  if (rc == MDB_MAP_FULL) full_ = true;
  return rc == 0 || rc == MDB_NOTFOUND ? Status::Ok() : LmdbError("delete", rc);
}

Status Lmdb::Commit(const std::function<Status(Writer&)>& fill) {
  for (;;) {
    MDB_txn* txn = nullptr;
    int rc = 0;
    {
      std::shared_lock resize_lock(resize_mu_);
      if ((rc = mdb_txn_begin(E(env_), nullptr, 0, &txn)) != 0) return LmdbError("begin write", rc);
      Writer w(this, txn);
      Status s = fill(w);
      if (s.ok() && !w.full_) {
        rc = mdb_txn_commit(txn);  // full sync: the environment has no NOSYNC flag
        if (rc == 0) return Status::Ok();
        if (rc != MDB_MAP_FULL) return LmdbError("commit", rc);
      } else {
        mdb_txn_abort(txn);
        if (!w.full_) return s;
      }
    }
    if (map_bytes_ * 2 > max_map_bytes_) {
      return Status::ResourceExhausted("storage is full: the LMDB map reached " + std::to_string(map_bytes_) +
                                       " bytes (max-map-bytes)");
    }
    // Grow the map with no transaction open in this process, then refill.
    std::unique_lock resize_lock(resize_mu_);
    {
      std::lock_guard lock(pool_mu_);
      for (void* r : read_pool_) mdb_txn_abort(T(r));
      read_pool_.clear();
    }
    map_bytes_ *= 2;
    if ((rc = mdb_env_set_mapsize(E(env_), map_bytes_)) != 0) return LmdbError("grow map", rc);
    ++resizes_;
  }
}

}  // namespace lattice::storage
