#include "storage/store.h"

#include <lmdb.h>
#include <xxhash.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <filesystem>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>
#include <chrono>

#include "crdt/codec.h"

namespace lattice::storage {

namespace {

using crdt::CrdtType;
using crdt::KeyState;

constexpr std::uint8_t kFormatVersion = 1;

Status LmdbError(const char* what, int rc) {
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  if (rc == MDB_MAP_FULL) return Status::ResourceExhausted(msg);
  if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND) return Status::Corruption(msg);
  return Status::IOError(msg);
}

void PutBE64(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void PutLE64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
std::uint64_t GetBE64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
std::uint64_t GetLE64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

std::string HeaderKey(std::string_view key) {
  std::string out;
  out.reserve(8 + key.size());
  PutBE64(out, KeyHash(key));
  out.append(key);
  return out;
}

std::string MemberPrefix(std::string_view key, CrdtType type) {
  std::string out;
  out.reserve(14 + key.size());
  PutBE64(out, KeyHash(key));
  std::uint32_t len = static_cast<std::uint32_t>(key.size());
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>(len >> (8 * i)));
  out.append(key);
  out.push_back(static_cast<char>(type));
  return out;
}

std::string ExpiryKey(std::uint64_t at_ms, std::string_view key) {
  std::string out;
  PutBE64(out, at_ms);
  out.append(HeaderKey(key));
  return out;
}

// Record: [version u8][flags u8][reserved u16][checksum u32 LE][body...]; the
// checksum (low 32 bits of xxh3_64) covers the body.
std::uint32_t Checksum(std::string_view body) {
  return static_cast<std::uint32_t>(XXH3_64bits(body.data(), body.size()));
}

std::string MakeRecord(std::uint8_t flags, std::string_view body) {
  std::string out;
  out.reserve(8 + body.size());
  out.push_back(static_cast<char>(kFormatVersion));
  out.push_back(static_cast<char>(flags));
  out.append(2, '\0');
  std::uint32_t sum = Checksum(body);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(sum >> (8 * i)));
  out.append(body);
  return out;
}

Status OpenRecord(std::string_view rec, std::uint8_t& flags, std::string_view& body) {
  if (rec.size() < 8) return Status::Corruption("record shorter than its header");
  if (static_cast<std::uint8_t>(rec[0]) != kFormatVersion) {
    return Status::Corruption("unknown record format version " +
                              std::to_string(static_cast<unsigned>(rec[0])));
  }
  flags = static_cast<std::uint8_t>(rec[1]);
  body = rec.substr(8);
  std::uint32_t sum = 0;
  for (int i = 3; i >= 0; --i) sum = (sum << 8) | static_cast<unsigned char>(rec[4 + i]);
  if (sum != Checksum(body)) return Status::Corruption("record checksum mismatch");
  return Status::Ok();
}

// Header body: [next_expiry u64][live_set u64][live_map u64][KeyState encoding]
constexpr std::uint8_t kLiveFlag = 1;
constexpr std::uint8_t kTombstoneFlag = 2;  // no data, only context: in the tombstones index
struct HeaderInfo {
  bool exists = false;
  bool live = false;
  bool tombstone = false;
  std::uint64_t next_expiry = 0;  // 0 = none
  std::uint64_t live_set = 0;
  std::uint64_t live_map = 0;
  std::string_view payload;
};

Status ParseHeader(std::string_view rec, HeaderInfo& info) {
  std::uint8_t flags = 0;
  std::string_view body;
  if (Status s = OpenRecord(rec, flags, body); !s.ok()) return s;
  if (body.size() < 24) return Status::Corruption("key header too short");
  info.exists = true;
  info.live = (flags & kLiveFlag) != 0;
  info.tombstone = (flags & kTombstoneFlag) != 0;
  info.next_expiry = GetLE64(body.data());
  info.live_set = GetLE64(body.data() + 8);
  info.live_map = GetLE64(body.data() + 16);
  info.payload = body.substr(24);
  return Status::Ok();
}


// The member records of a collection variant: name -> encoded single-member state.
bool MemberLive(CrdtType type, const KeyState& member) {
  const crdt::Variant* v = member.variants().empty() ? nullptr : &member.variants().begin()->second;
  if (v == nullptr) return false;
  if (type == CrdtType::kSet) return crdt::IsLive(v->value);
  const auto& store = std::get<crdt::ORMap>(v->value).state().store;
  return !store.empty() && crdt::FieldLive(store.begin()->second);
}

// A state holding one member of `type` with the dots it needs as its context.
template <class T, class S>
KeyState MemberState(const std::string& name, const S& member_store) {
  T value;
  value.mutable_state().store.emplace(name, member_store);
  crdt::CollectDots(member_store, value.mutable_state().ctx);
  KeyState out;
  out.PutVariant(crdt::Variant{crdt::Stamp{}, std::move(value)});
  return out;
}

// Inserts the decoded member into `state`'s variant of `type`.
Status AddMember(KeyState& state, CrdtType type, const KeyState& member, std::string_view key) {
  crdt::Variant* target = state.MutableVariant(type);
  if (target == nullptr || member.variants().size() != 1 ||
      member.variants().begin()->first != type) {
    return Status::Corruption("member record of key '" + std::string(key) + "' does not match its header");
  }
  const crdt::Variant& mv = member.variants().begin()->second;
  if (type == CrdtType::kSet) {
    const auto& src = std::get<crdt::ORSet>(mv.value).state().store;
    auto& dst = std::get<crdt::ORSet>(target->value).mutable_state().store;
    for (const auto& [name, dots] : src) dst.insert_or_assign(name, dots);
  } else {
    const auto& src = std::get<crdt::ORMap>(mv.value).state().store;
    auto& dst = std::get<crdt::ORMap>(target->value).mutable_state().store;
    for (const auto& [name, field] : src) dst.insert_or_assign(name, field);
  }
  return Status::Ok();
}

Status DecodeMember(std::string_view rec, KeyState& out) {
  std::uint8_t flags = 0;
  std::string_view body;
  if (Status s = OpenRecord(rec, flags, body); !s.ok()) return s;
  auto decoded = crdt::DecodeKeyState(body);
  if (!decoded.ok()) return decoded.status();
  out = std::move(decoded).value();
  return Status::Ok();
}

// A record's contribution to its key's digest: its LMDB key and its canonical
// payload (not the header counters, which may differ between equal states).
merkle::Digest RecordDigest(std::string_view record_key, std::string_view payload) {
  return merkle::KeyDigest(record_key, payload);
}

constexpr std::string_view kTreesMarker = "trees";

// What the persisted leaves were written for: they are restored only into
// trees of the same shape.
std::string TreesShape(const StoreOptions& o) {
  return "leaves:" + std::to_string(o.partitions) + "x" + std::to_string(o.tree_leaf_bits);
}

// Stores one leaf (deleted when empty: an empty leaf is the zero digest).
int PutLeaf(MDB_txn* txn, MDB_dbi dbi, std::uint32_t p, std::uint32_t leaf, const merkle::Digest& d) {
  std::string key, value;
  PutBE64(key, (std::uint64_t{p} << 32) | leaf);
  MDB_val k = Val(key);
  if (d == merkle::Digest{}) {
    int rc = mdb_del(txn, dbi, &k, nullptr);
    return rc == MDB_NOTFOUND ? 0 : rc;
  }
  PutLE64(value, d.hi);
  PutLE64(value, d.lo);
  MDB_val v = Val(value);
  return mdb_put(txn, dbi, &k, &v, 0);
}

}  // namespace

std::uint64_t KeyHash(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

// ---- Impl ----------------------------------------------------------------------

struct Store::Impl {
  MDB_env* env = nullptr;
  MDB_dbi keys = 0, members = 0, expiry = 0, meta = 0, requests = 0, tombstones = 0, leaves = 0;

  // Per partition: the highest counter per replica of every context this
  // node retired (collected tombstones), as persisted in meta "retired:<p>".
  mutable std::mutex retired_mu;
  std::map<std::uint32_t, crdt::DotContext::VersionVector> retired;

  struct Item {
    Work work;
    Done done;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> queue;
  bool closing = false;
  std::thread writer;

  std::shared_mutex resize_mu;  // shared: any open transaction; exclusive: resize
  std::mutex pool_mu;
  std::vector<MDB_txn*> read_pool;  // reset read transactions for reuse

  mutable std::mutex trees_mu;
  std::vector<merkle::Tree> trees;
  int partition_shift = 56;

  mutable std::mutex stats_mu;
  Stats stats;
  std::size_t map_bytes = 0;
  std::function<crdt::Hlc()> hlc_snapshot;
};

Store::Store(StoreOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

Store::~Store() { Close(); }

namespace {

Status GetMeta(MDB_txn* txn, MDB_dbi dbi, std::string_view name, std::string* out) {
  MDB_val k = Val(name), v;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return Status::NotFound(std::string(name));
  if (rc != 0) return LmdbError("read meta", rc);
  out->assign(View(v));
  return Status::Ok();
}

Status PutMeta(MDB_txn* txn, MDB_dbi dbi, std::string_view name, std::string_view value) {
  MDB_val k = Val(name), v = Val(value);
  int rc = mdb_put(txn, dbi, &k, &v, 0);
  return rc == 0 ? Status::Ok() : LmdbError("write meta", rc);
}

constexpr std::string_view kRetiredPrefix = "retired:";

std::string RetiredName(std::uint32_t partition) {
  std::string name(kRetiredPrefix);
  for (int i = 3; i >= 0; --i) name.push_back(static_cast<char>(partition >> (8 * i)));
  return name;
}

// A retired record: (replica u64 LE, counter u64 LE) pairs.
std::string EncodeRetired(const crdt::DotContext::VersionVector& vv) {
  std::string out;
  for (const auto& [replica, counter] : vv) {
    PutLE64(out, replica);
    PutLE64(out, counter);
  }
  return out;
}

Status LoadRetired(MDB_txn* txn, Store::Impl& im);

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return Status::IOError("cannot create data directory " + options.dir + ": " + ec.message());
  std::unique_ptr<Store> store(new Store(options));
  Impl& im = *store->impl_;
  int rc = mdb_env_create(&im.env);
  if (rc != 0) return LmdbError("mdb_env_create", rc);
  mdb_env_set_maxdbs(im.env, 8);
  mdb_env_set_maxreaders(im.env, 1024);
  im.map_bytes = options.map_bytes;
  if ((rc = mdb_env_set_mapsize(im.env, im.map_bytes)) != 0) return LmdbError("set map size", rc);
  unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSUBDIR;
  if (options.sync == SyncMode::kNone) flags |= MDB_NOSYNC;
  std::string path = options.dir + "/data.mdb";
  if ((rc = mdb_env_open(im.env, path.c_str(), flags, 0640)) != 0) {
    return Status::IOError("cannot open " + path + ": " + mdb_strerror(rc));
  }
  MDB_envinfo info;
  mdb_env_info(im.env, &info);
  im.map_bytes = std::max(im.map_bytes, info.me_mapsize);

  MDB_txn* txn = nullptr;
  if ((rc = mdb_txn_begin(im.env, nullptr, 0, &txn)) != 0) return LmdbError("begin", rc);
  auto fail = [&](Status s) {
    mdb_txn_abort(txn);
    return s;
  };
  for (auto [name, dbi] : {std::pair{"keys", &im.keys}, std::pair{"members", &im.members},
                           std::pair{"expiry", &im.expiry}, std::pair{"meta", &im.meta},
                           std::pair{"requests", &im.requests}, std::pair{"tombstones", &im.tombstones},
                           std::pair{"leaves", &im.leaves}}) {
    if ((rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi)) != 0) return fail(LmdbError("open db", rc));
  }
  // The persisted leaves are complete only while every commit since they were
  // written kept them ("trees" marker); without persist_trees they are dropped.
  std::string kept_shape;
  const bool leaves_kept =
      GetMeta(txn, im.meta, kTreesMarker, &kept_shape).ok() && kept_shape == TreesShape(options);
  if (!options.persist_trees || !leaves_kept) {
    if ((rc = mdb_drop(txn, im.leaves, 0)) != 0) return fail(LmdbError("drop leaves", rc));
    MDB_val mk = Val(kTreesMarker);
    rc = mdb_del(txn, im.meta, &mk, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND) return fail(LmdbError("trees marker", rc));
  }
  NodeIdentity& id = store->identity_;
  std::string raw;
  Status s = GetMeta(txn, im.meta, "identity", &raw);
  if (s.IsNotFound()) {
    std::random_device rd;
    id.name = options.node_name;
    id.incarnation = options.incarnation != 0
                         ? options.incarnation
                         : (std::uint64_t{rd()} << 32) ^ rd() ^
                               static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    id.fresh = true;
    std::string rec;
    PutLE64(rec, id.incarnation);
    rec.append(id.name);
    if (Status ps = PutMeta(txn, im.meta, "identity", rec); !ps.ok()) return fail(ps);
  } else if (!s.ok()) {
    return fail(s);
  } else {
    if (raw.size() < 8) return fail(Status::Corruption("node identity record is damaged"));
    id.incarnation = GetLE64(raw.data());
    id.name = raw.substr(8);
    if (id.name != options.node_name) {
      return fail(Status::InvalidArgument("data directory " + options.dir + " belongs to node '" +
                                          id.name + "', not '" + options.node_name + "'"));
    }
  }
  id.replica = crdt::MakeReplicaId(id.name, id.incarnation);
  if (GetMeta(txn, im.meta, "hlc", &raw).ok() && raw.size() == 12) {
    std::uint32_t logical = 0;
    for (int i = 3; i >= 0; --i) logical = (logical << 8) | static_cast<unsigned char>(raw[8 + i]);
    id.hlc = crdt::Hlc{GetLE64(raw.data()), logical};
  }
  if (Status s = LoadRetired(txn, im); !s.ok()) return fail(s);
  if ((rc = mdb_txn_commit(txn)) != 0) return LmdbError("commit", rc);
  if (Status s = store->RebuildTrees(options.persist_trees && leaves_kept); !s.ok()) return s;
  if (options.persist_trees && !leaves_kept) {
    if (Status s = store->WriteAllLeaves(); !s.ok()) return s;
  }

  Store* raw_store = store.get();
  im.writer = std::thread([raw_store] { raw_store->WriterLoop(); });
  return store;
}

// ---- Merkle trees ----------------------------------------------------------------

Status Store::RebuildTrees(bool from_leaves) {
  Impl& im = *impl_;
  const auto started = std::chrono::steady_clock::now();
  std::uint32_t partitions = options_.partitions;
  if (partitions == 0 || (partitions & (partitions - 1)) != 0) partitions = 256;
  int bits = 0;
  while ((1u << bits) < partitions) ++bits;
  im.partition_shift = 64 - bits;
  const std::uint64_t span = bits == 0 ? 0 : std::uint64_t{1} << (64 - bits);
  std::vector<merkle::Tree> trees;
  trees.reserve(partitions);
  for (std::uint32_t p = 0; p < partitions; ++p) trees.emplace_back(span * p, span, options_.tree_leaf_bits);
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(im.env, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) return LmdbError("begin", rc);
  Status status;
  if (from_leaves) {  // partition (BE32), leaf (BE32) -> hi, lo (LE64)
    MDB_cursor* cur = nullptr;
    if ((rc = mdb_cursor_open(txn, im.leaves, &cur)) == 0) {
      MDB_val k, v;
      for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const std::string_view key = View(k), value = View(v);
        const std::uint64_t at = key.size() == 8 ? GetBE64(key.data()) : ~std::uint64_t{0};
        const std::uint32_t p = static_cast<std::uint32_t>(at >> 32), leaf = static_cast<std::uint32_t>(at);
        if (value.size() != 16 || p >= trees.size() || leaf >= trees[p].leaves()) {
          mdb_cursor_close(cur);
          mdb_txn_abort(txn);
          return Status::Corruption("a persisted Merkle leaf is damaged; restart without persisted trees to rebuild");
        }
        trees[p].Update(trees[p].LeafRange(leaf).first, merkle::Digest{},
                        merkle::Digest{GetLE64(value.data()), GetLE64(value.data() + 8)});
      }
      mdb_cursor_close(cur);
    }
  }
  for (MDB_dbi dbi : {im.keys, im.members}) {
    if (from_leaves) break;
    MDB_cursor* cur = nullptr;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0) break;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      std::string_view key = View(k), value = View(v);
      if (key.size() < 8) continue;
      std::string_view payload;
      if (dbi == im.keys) {
        HeaderInfo info;
        if (!ParseHeader(value, info).ok()) continue;  // reported when the key is read
        payload = info.payload;
      } else {
        if (value.size() < 8) continue;
        payload = value.substr(8);
      }
      const std::uint64_t h = GetBE64(key.data());
      trees[h >> im.partition_shift].Update(h, merkle::Digest{}, RecordDigest(key, payload));
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) break;
    rc = 0;
  }
  mdb_txn_abort(txn);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("rebuild trees", rc);
  std::lock_guard lock(im.trees_mu);
  im.trees = std::move(trees);
  im.stats.tree_rebuild_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
  im.stats.trees_from_leaves = from_leaves;
  return status;
}

// Writes every non-empty leaf of the in-memory trees and the marker, in one
// transaction (persist_trees on a store that did not keep them).
Status Store::WriteAllLeaves() {
  Impl& im = *impl_;
  MDB_txn* txn = nullptr;
  for (int attempt = 0;; ++attempt) {
    int rc = mdb_txn_begin(im.env, nullptr, 0, &txn);
    if (rc != 0) return LmdbError("begin", rc);
    {
      std::lock_guard lock(im.trees_mu);
      for (std::uint32_t p = 0; p < im.trees.size() && rc == 0; ++p) {
        const merkle::Tree& tree = im.trees[p];
        for (std::uint32_t leaf = 0; leaf < tree.leaves() && rc == 0; ++leaf) {
          rc = PutLeaf(txn, im.leaves, p, leaf, tree.Node(tree.leaf_bits(), leaf));
        }
      }
    }
    Status s = rc == 0 ? PutMeta(txn, im.meta, kTreesMarker, TreesShape(options_)) : LmdbError("write leaves", rc);
    if (s.ok() && (rc = mdb_txn_commit(txn)) == 0) return Status::Ok();
    if (s.ok()) s = LmdbError("commit", rc);
    else mdb_txn_abort(txn);
    if ((rc != MDB_MAP_FULL && s.code() != Status::Code::kResourceExhausted) || attempt >= 4) return s;
    im.map_bytes *= 2;  // no other transaction is open yet
    mdb_env_set_mapsize(im.env, im.map_bytes);
  }
}

namespace {
Status LoadRetired(MDB_txn* txn, Store::Impl& im) {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, im.meta, &cur);
  if (rc != 0) return LmdbError("cursor", rc);
  MDB_val k = Val(kRetiredPrefix), v;
  Status status;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string_view name = View(k), value = View(v);
    if (name.substr(0, kRetiredPrefix.size()) != kRetiredPrefix) break;
    if (name.size() != kRetiredPrefix.size() + 4 || value.size() % 16 != 0) {
      status = Status::Corruption("retired-context record is damaged");
      break;
    }
    std::uint32_t p = 0;
    for (std::size_t i = kRetiredPrefix.size(); i < name.size(); ++i) p = (p << 8) | static_cast<unsigned char>(name[i]);
    auto& vv = im.retired[p];
    for (std::size_t i = 0; i < value.size(); i += 16) vv[GetLE64(value.data() + i)] = GetLE64(value.data() + i + 8);
  }
  mdb_cursor_close(cur);
  if (status.ok() && rc != 0 && rc != MDB_NOTFOUND) return LmdbError("load retired contexts", rc);
  return status;
}
}  // namespace

std::uint64_t Store::MintFloor(std::uint32_t partition, crdt::ReplicaId replica) const {
  std::lock_guard lock(impl_->retired_mu);
  auto it = impl_->retired.find(partition);
  if (it == impl_->retired.end()) return 0;
  auto r = it->second.find(replica);
  return r == it->second.end() ? 0 : r->second;
}

bool Store::Retired(std::uint32_t partition, const crdt::DotContext& ctx) const {
  if (ctx.Empty()) return false;
  std::lock_guard lock(impl_->retired_mu);
  auto it = impl_->retired.find(partition);
  if (it == impl_->retired.end()) return false;
  auto within = [&](crdt::ReplicaId r, std::uint64_t counter) {
    auto e = it->second.find(r);
    return e != it->second.end() && counter <= e->second;
  };
  for (const auto& [r, n] : ctx.vv()) {
    if (!within(r, n)) return false;
  }
  for (const auto& d : ctx.cloud()) {
    if (!within(d.replica, d.counter)) return false;
  }
  return true;
}

std::uint32_t Store::PartitionOfHash(std::uint64_t key_hash) const {
  return static_cast<std::uint32_t>(key_hash >> impl_->partition_shift);
}

merkle::Tree Store::PartitionTree(std::uint32_t partition) const {
  std::lock_guard lock(impl_->trees_mu);
  return impl_->trees.at(partition);
}

merkle::Digest Store::PartitionRoot(std::uint32_t partition) const {
  std::lock_guard lock(impl_->trees_mu);
  return impl_->trees.at(partition).Root();
}

merkle::Digest Store::RootsDigest() const {
  std::string roots;
  {
    std::lock_guard lock(impl_->trees_mu);
    for (const auto& tree : impl_->trees) {
      PutLE64(roots, tree.Root().hi);
      PutLE64(roots, tree.Root().lo);
    }
  }
  const XXH128_hash_t h = XXH3_128bits(roots.data(), roots.size());
  return merkle::Digest{h.high64, h.low64};
}

// ---- Txn -----------------------------------------------------------------------

namespace {
MDB_txn* T(void* p) { return static_cast<MDB_txn*>(p); }

Status ReadHeader(MDB_txn* txn, MDB_dbi dbi, const std::string& hkey, HeaderInfo& info) {
  MDB_val k = Val(hkey), v;
  int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return Status::Ok();
  if (rc != 0) return LmdbError("read key", rc);
  return ParseHeader(View(v), info);
}

// Visits member records under `prefix` in order; fn(name, record) returns false to stop.
template <class Fn>
Status ForEachMember(MDB_txn* txn, MDB_dbi dbi, const std::string& prefix, Fn&& fn) {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != 0) return LmdbError("cursor", rc);
  MDB_val k = Val(prefix), v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  Status status;
  while (rc == 0) {
    std::string_view kv = View(k);
    if (kv.substr(0, prefix.size()) != prefix) break;
    if (!fn(kv.substr(prefix.size()), View(v), status)) break;
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (status.ok() && rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cursor", rc);
  return status;
}

}  // namespace

Result<LoadedKey> Txn::Load(std::string_view key, const Members& members) {
  Store::Impl& im = *store_->impl_;
  HeaderInfo info;
  if (Status s = ReadHeader(T(txn_), im.keys, HeaderKey(key), info); !s.ok()) return s;
  if (!info.exists) return Status::NotFound("no such key");
  auto decoded = crdt::DecodeKeyState(info.payload);
  if (!decoded.ok()) {
    return Status::Corruption("key '" + std::string(key) + "': " + decoded.status().message());
  }
  LoadedKey out{std::move(decoded).value(), info.live_set, info.live_map, info.next_expiry};
  for (CrdtType type : {CrdtType::kSet, CrdtType::kMap}) {
    if (out.state.MutableVariant(type) == nullptr) continue;
    const std::string prefix = MemberPrefix(key, type);
    std::uint64_t live_count = type == CrdtType::kSet ? info.live_set : info.live_map;
    bool have_live = false;
    auto add = [&](std::string_view rec, Status& status) {
      KeyState m;
      status = DecodeMember(rec, m);
      if (status.ok()) status = AddMember(out.state, type, m, key);
      if (status.ok() && MemberLive(type, m)) have_live = true;
      return status.ok();
    };
    Status status;
    if (members.all) {
      status = ForEachMember(T(txn_), im.members, prefix,
                             [&](std::string_view, std::string_view rec, Status& st) { return add(rec, st); });
    } else {
      for (const std::string& name : members.names) {
        std::string mkey = prefix + name;
        MDB_val k = Val(mkey), v;
        int rc = mdb_get(T(txn_), im.members, &k, &v);
        if (rc == MDB_NOTFOUND) continue;
        if (rc != 0) return LmdbError("read member", rc);
        if (!add(View(v), status)) break;
      }
      if (status.ok() && live_count > 0 && !have_live) {
        status = ForEachMember(T(txn_), im.members, prefix,
                               [&](std::string_view, std::string_view rec, Status& st) {
                                 return add(rec, st) && !have_live;
                               });
      }
    }
    if (!status.ok()) {
      return Status::Corruption("key '" + std::string(key) + "': " + status.message());
    }
  }
  return out;
}

Status Txn::DeleteMembers(std::string_view key, CrdtType type) {
  const std::string prefix = MemberPrefix(key, type);
  const std::uint64_t key_hash = KeyHash(key);
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(T(txn_), store_->impl_->members, &cur);
  if (rc != 0) return LmdbError("cursor", rc);
  MDB_val k = Val(prefix), v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && View(k).substr(0, prefix.size()) == prefix) {
    tree_updates_.push_back({key_hash, RecordDigest(View(k), View(v).substr(8)), merkle::Digest{}});
    if ((rc = mdb_cursor_del(cur, 0)) != 0) break;
    rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
  }
  mdb_cursor_close(cur);
  if (rc == MDB_MAP_FULL) map_full_ = true;
  if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL) return LmdbError("delete members", rc);
  return Status::Ok();
}

Status Txn::Save(std::string_view key, const KeyState& state, const Members& touched) {
  if (!write_) return Status::InvalidArgument("Save in a read transaction");
  auto fail = [this](const char* what, int rc) {
    if (rc == MDB_MAP_FULL) map_full_ = true;
    return LmdbError(what, rc);
  };
  Store::Impl& im = *store_->impl_;
  const std::size_t max_bytes = store_->options_.max_state_bytes;
  const std::string hkey = HeaderKey(key);
  HeaderInfo old;
  if (Status s = ReadHeader(T(txn_), im.keys, hkey, old); !s.ok()) return s;
  // The old record's digest, taken now: `old.payload` points into the map,
  // and when this transaction already wrote the key, the writes below reuse
  // that (dirty) page in place.
  const merkle::Digest old_header_digest = old.exists ? RecordDigest(hkey, old.payload) : merkle::Digest{};
  old.payload = {};

  // Everything is encoded and size-checked before anything is written.
  struct MemberWrite {
    std::string mkey;
    std::string record;  // empty: delete
    bool old_live = false;
    bool new_live = false;
    merkle::Digest old_digest;  // of the record this replaces
  };
  const std::uint64_t key_hash = KeyHash(key);
  std::vector<MemberWrite> writes;
  std::vector<CrdtType> wipe;  // collections rewritten wholesale
  KeyState header = state;
  std::uint64_t live_set = old.live_set, live_map = old.live_map;
  for (CrdtType type : {CrdtType::kSet, CrdtType::kMap}) {
    crdt::Variant* hv = header.MutableVariant(type);
    const std::string prefix = MemberPrefix(key, type);
    std::uint64_t& count = type == CrdtType::kSet ? live_set : live_map;
    auto encode = [&](const std::string& name, const auto& member_store) -> Status {
      using Value = std::conditional_t<std::is_same_v<std::decay_t<decltype(member_store)>, crdt::FieldStore>,
                                       crdt::ORMap, crdt::ORSet>;
      KeyState m = MemberState<Value>(name, member_store);
      MemberWrite w{prefix + name, MakeRecord(0, crdt::EncodeKeyState(m)), false, MemberLive(type, m), {}};
      if (w.record.size() > max_bytes) {
        return Status::ResourceExhausted("member '" + name + "' of key '" + std::string(key) +
                                         "' exceeds max-state-bytes");
      }
      writes.push_back(std::move(w));
      return Status::Ok();
    };
    auto each_member = [&](auto&& fn) -> Status {
      if (hv == nullptr) return Status::Ok();
      if (type == CrdtType::kSet) {
        for (const auto& [name, dots] : std::get<crdt::ORSet>(hv->value).state().store) {
          if (Status s = fn(name, dots); !s.ok()) return s;
        }
      } else {
        for (const auto& [name, field] : std::get<crdt::ORMap>(hv->value).state().store) {
          if (Status s = fn(name, field); !s.ok()) return s;
        }
      }
      return Status::Ok();
    };
    if (touched.all) {
      wipe.push_back(type);
      count = 0;
      if (Status s = each_member(encode); !s.ok()) return s;
      for (auto& w : writes) {
        if (w.mkey.compare(0, prefix.size(), prefix) == 0) count += w.new_live;
      }
    } else if (hv != nullptr || old.exists) {
      std::vector<std::string> names = touched.names;  // each member once
      std::sort(names.begin(), names.end());
      names.erase(std::unique(names.begin(), names.end()), names.end());
      for (const std::string& name : names) {
        MemberWrite w{prefix + name, {}, false, false, {}};
        MDB_val k = Val(w.mkey), v;
        int rc = mdb_get(T(txn_), im.members, &k, &v);
        if (rc != 0 && rc != MDB_NOTFOUND) return fail("read member", rc);
        bool existed = rc == 0;
        if (existed) {
          KeyState m;
          if (Status s = DecodeMember(View(v), m); !s.ok()) return s;
          w.old_live = MemberLive(type, m);
          w.old_digest = RecordDigest(w.mkey, View(v).substr(8));
        }
        bool now_present = false;
        if (hv != nullptr) {
          if (type == CrdtType::kSet) {
            const auto& st = std::get<crdt::ORSet>(hv->value).state().store;
            if (auto it = st.find(name); it != st.end()) {
              if (Status s = encode(name, it->second); !s.ok()) return s;
              now_present = true;
            }
          } else {
            const auto& st = std::get<crdt::ORMap>(hv->value).state().store;
            if (auto it = st.find(name); it != st.end()) {
              if (Status s = encode(name, it->second); !s.ok()) return s;
              now_present = true;
            }
          }
        }
        if (now_present) {
          writes.back().old_live = w.old_live;
          writes.back().old_digest = w.old_digest;
        } else if (existed) {
          writes.push_back(std::move(w));
        } else {
          continue;
        }
        const MemberWrite& done = writes.back();
        count = count + (done.new_live ? 1 : 0) - (done.old_live ? 1 : 0);
      }
    }
    // The header keeps the collection's context and stamp, not its members.
    if (hv != nullptr) {
      if (type == CrdtType::kSet) {
        std::get<crdt::ORSet>(hv->value).mutable_state().store.clear();
      } else {
        std::get<crdt::ORMap>(hv->value).mutable_state().store.clear();
      }
    }
  }

  // Liveness of the key as a whole, from the visible variant.
  bool live = false;
  if (const crdt::Variant* vis = state.Visible()) {
    CrdtType vt = crdt::TypeOfValue(vis->value);
    live = vt == CrdtType::kSet ? live_set > 0 : vt == CrdtType::kMap ? live_map > 0 : crdt::IsLive(vis->value);
  }
  std::uint64_t next = 0;
  if (auto n = state.NextExpiry()) next = *n;
  if (!touched.all && old.next_expiry != 0 && (next == 0 || old.next_expiry < next)) {
    // Members not loaded may still hold expiries; keep the earlier deadline
    // (a sweep that finds nothing due recomputes it exactly).
    if (header.MutableVariant(CrdtType::kMap) != nullptr) next = old.next_expiry;
  }
  std::string body;
  PutLE64(body, next);
  PutLE64(body, live_set);
  PutLE64(body, live_map);
  const std::string header_payload = crdt::EncodeKeyState(header);
  body.append(header_payload);
  // A tombstone: no data in any variant (collections by their live counts,
  // whose members the header leaves out) and no expiry.
  bool tombstone = !live && live_set == 0 && live_map == 0 && state.expiry().store.empty() && !state.Empty();
  if (tombstone) {
    for (const auto& [type, v] : header.variants()) {
      if (crdt::IsLive(v.value)) tombstone = false;
    }
  }
  std::string record = MakeRecord((live ? kLiveFlag : 0) | (tombstone ? kTombstoneFlag : 0), body);
  if (record.size() > max_bytes) {
    return Status::ResourceExhausted("key '" + std::string(key) + "' exceeds max-state-bytes (" +
                                     std::to_string(record.size()) + " > " + std::to_string(max_bytes) + ")");
  }

  // Write.
  int rc = 0;
  for (CrdtType type : wipe) {
    if (Status s = DeleteMembers(key, type); !s.ok()) return s;
  }
  for (const MemberWrite& w : writes) {
    tree_updates_.push_back({key_hash, w.old_digest,
                             w.record.empty() ? merkle::Digest{} : RecordDigest(w.mkey, std::string_view(w.record).substr(8))});
    MDB_val k = Val(w.mkey);
    if (w.record.empty()) {
      rc = mdb_del(T(txn_), im.members, &k, nullptr);
      if (rc == MDB_NOTFOUND) rc = 0;
    } else {
      MDB_val v = Val(w.record);
      rc = mdb_put(T(txn_), im.members, &k, &v, 0);
    }
    if (rc != 0) return fail("write member", rc);
  }
  MDB_val k = Val(hkey), v = Val(record);
  if ((rc = mdb_put(T(txn_), im.keys, &k, &v, 0)) != 0) return fail("write key", rc);
  tree_updates_.push_back({key_hash, old_header_digest, RecordDigest(hkey, header_payload)});
  if (old.next_expiry != next) {
    if (old.next_expiry != 0) {
      std::string ek = ExpiryKey(old.next_expiry, key);
      MDB_val ekv = Val(ek);
      rc = mdb_del(T(txn_), im.expiry, &ekv, nullptr);
      if (rc != 0 && rc != MDB_NOTFOUND) return fail("expiry index", rc);
    }
    if (next != 0) {
      std::string ek = ExpiryKey(next, key);
      MDB_val ekv = Val(ek), empty{0, nullptr};
      if ((rc = mdb_put(T(txn_), im.expiry, &ekv, &empty, 0)) != 0) return fail("expiry index", rc);
    }
  }
  if (old.tombstone != tombstone) {
    MDB_val tk = Val(hkey), empty{0, nullptr};
    rc = tombstone ? mdb_put(T(txn_), im.tombstones, &tk, &empty, 0) : mdb_del(T(txn_), im.tombstones, &tk, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND) return fail("tombstone index", rc);
  }
  if (old.live != live) {
    std::uint64_t n = LiveKeys();
    n = live ? n + 1 : (n > 0 ? n - 1 : 0);
    std::string raw;
    PutLE64(raw, n);
    MDB_val mk = Val("live_keys"), mv = Val(raw);
    if ((rc = mdb_put(T(txn_), im.meta, &mk, &mv, 0)) != 0) return fail("write meta", rc);
  }
  return Status::Ok();
}

std::uint64_t Txn::LiveKeys() {
  std::string raw;
  if (!GetMeta(T(txn_), store_->impl_->meta, "live_keys", &raw).ok() || raw.size() != 8) return 0;
  return GetLE64(raw.data());
}

Result<std::uint64_t> Txn::ScanKeys(std::uint64_t cursor, std::size_t limit,
                                    const std::function<bool(std::string_view)>& fn) {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(T(txn_), store_->impl_->keys, &cur);
  if (rc != 0) return LmdbError("cursor", rc);
  std::string start;
  PutBE64(start, cursor);
  MDB_val k = Val(start), v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  std::size_t visited = 0;
  std::uint64_t next = 0;
  while (rc == 0) {
    std::string_view kv = View(k);
    if (kv.size() < 8) {
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
      continue;
    }
    if (visited == limit) {
      next = GetBE64(kv.data());
      break;
    }
    ++visited;
    if (!fn(kv.substr(8))) {
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
      if (rc == 0) next = GetBE64(static_cast<const char*>(k.mv_data));
      break;
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("scan", rc);
  return next;
}

Status Txn::KeyDigests(std::uint64_t first, std::uint64_t last,
                       const std::function<void(std::string_view key, const merkle::Digest& digest)>& fn) {
  Store::Impl& im = *store_->impl_;
  std::map<std::string, merkle::Digest, std::less<>> digests;
  std::string start;
  PutBE64(start, first);
  for (MDB_dbi dbi : {im.keys, im.members}) {
    MDB_cursor* cur = nullptr;
    int rc = mdb_cursor_open(T(txn_), dbi, &cur);
    if (rc != 0) return LmdbError("cursor", rc);
    MDB_val k = Val(start), v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      const std::string_view rk = View(k), value = View(v);
      if (rk.size() < 8) continue;
      if (GetBE64(rk.data()) > last) break;
      std::string_view key, payload;
      if (dbi == im.keys) {  // hash, key
        HeaderInfo info;
        if (!ParseHeader(value, info).ok()) continue;  // reported when the key is read
        key = rk.substr(8);
        payload = info.payload;
      } else {  // hash, key length (BE32), key, type, member
        if (rk.size() < 12 || value.size() < 8) continue;
        const std::uint32_t len = (std::uint32_t{static_cast<std::uint8_t>(rk[8])} << 24) |
                                  (std::uint32_t{static_cast<std::uint8_t>(rk[9])} << 16) |
                                  (std::uint32_t{static_cast<std::uint8_t>(rk[10])} << 8) |
                                  std::uint32_t{static_cast<std::uint8_t>(rk[11])};
        if (rk.size() < 12 + std::size_t{len}) continue;
        key = rk.substr(12, len);
        payload = value.substr(8);
      }
      auto it = digests.find(key);
      if (it == digests.end()) it = digests.emplace(std::string(key), merkle::Digest{}).first;
      it->second ^= RecordDigest(rk, payload);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("digest scan", rc);
  }
  for (const auto& [key, digest] : digests) fn(key, digest);
  return Status::Ok();
}

Result<std::vector<std::string>> Txn::DueKeys(std::uint64_t now_ms, std::size_t limit) {
  std::vector<std::string> out;
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(T(txn_), store_->impl_->expiry, &cur);
  if (rc != 0) return LmdbError("cursor", rc);
  MDB_val k, v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  while (rc == 0 && out.size() < limit) {
    std::string_view kv = View(k);
    if (kv.size() < 16 || GetBE64(kv.data()) > now_ms) break;
    out.emplace_back(kv.substr(16));
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("expiry scan", rc);
  return out;
}

// ---- tombstones ------------------------------------------------------------------

namespace {
// Visits the records of `dbi` from `cursor` ("" = the first), at most
// `limit`; `fn(cur, key, value)` returns an LMDB code (0 to go on). Returns
// the key to resume from ("" = the end was reached).
template <class Fn>
Result<std::string> Walk(MDB_txn* txn, MDB_dbi dbi, std::string_view cursor, std::size_t limit, const char* what,
                         Fn&& fn) {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != 0) return LmdbError("cursor", rc);
  MDB_val k = Val(cursor), v;
  rc = cursor.empty() ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  std::string next;
  for (std::size_t visited = 0; rc == 0; ++visited) {
    if (visited == limit) {
      next.assign(View(k));
      break;
    }
    if ((rc = fn(cur, View(k), View(v))) != 0) break;
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError(what, rc);
  return next;
}
}  // namespace

Result<std::string> Txn::Tombstones(std::string_view cursor, std::size_t limit,
                                    const std::function<void(std::string_view key)>& fn) {
  return Walk(T(txn_), store_->impl_->tombstones, cursor, limit, "tombstone scan",
              [&](MDB_cursor*, std::string_view key, std::string_view) {
                if (key.size() > 8) fn(key.substr(8));
                return 0;
              });
}

Result<bool> Txn::Retire(std::string_view key, const crdt::DotContext& expected) {
  if (!write_) return Status::InvalidArgument("Retire in a read transaction");
  auto loaded = Load(key, Members::All());
  if (loaded.status().IsNotFound()) return false;
  if (!loaded.ok()) return loaded.status();
  const crdt::DotContext ctx = loaded->state.AllContext();
  if (!loaded->state.Tombstone() || !(ctx == expected)) return false;
  auto fail = [this](const char* what, int rc) {
    if (rc == MDB_MAP_FULL) map_full_ = true;
    return LmdbError(what, rc);
  };
  Store::Impl& im = *store_->impl_;
  const std::uint64_t key_hash = KeyHash(key);
  const std::string hkey = HeaderKey(key);
  HeaderInfo info;
  if (Status s = ReadHeader(T(txn_), im.keys, hkey, info); !s.ok()) return s;
  tree_updates_.push_back({key_hash, RecordDigest(hkey, info.payload), merkle::Digest{}});
  const std::uint64_t next_expiry = info.next_expiry;
  int rc = 0;
  for (CrdtType type : {CrdtType::kSet, CrdtType::kMap}) {
    if (Status s = DeleteMembers(key, type); !s.ok()) return s;
  }
  MDB_val hk = Val(hkey);
  if ((rc = mdb_del(T(txn_), im.keys, &hk, nullptr)) != 0) return fail("delete key", rc);
  rc = mdb_del(T(txn_), im.tombstones, &hk, nullptr);
  if (rc != 0 && rc != MDB_NOTFOUND) return fail("tombstone index", rc);
  if (next_expiry != 0) {
    std::string ek = ExpiryKey(next_expiry, key);
    MDB_val ekv = Val(ek);
    rc = mdb_del(T(txn_), im.expiry, &ekv, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND) return fail("expiry index", rc);
  }
  // The partition's retired context takes the tombstone's. Raised in memory
  // at once: were this transaction lost, a higher floor only skips counters.
  const std::uint32_t p = store_->PartitionOfHash(key_hash);
  std::string record;
  {
    std::lock_guard lock(im.retired_mu);
    auto& vv = im.retired[p];
    auto raise = [&](crdt::ReplicaId r, std::uint64_t n) {
      auto& c = vv[r];
      c = std::max(c, n);
    };
    for (const auto& [r, n] : ctx.vv()) raise(r, n);
    for (const auto& d : ctx.cloud()) raise(d.replica, d.counter);
    record = EncodeRetired(vv);
  }
  if (Status s = PutMeta(T(txn_), im.meta, RetiredName(p), record); !s.ok()) return s;
  return true;
}

std::uint64_t Txn::MintFloor(std::string_view key) const {
  return store_->MintFloor(store_->PartitionOfHash(KeyHash(key)), store_->identity_.replica);
}

// ---- node records and remembered request ids --------------------------------------

Result<std::optional<std::string>> Txn::GetNodeRecord(std::string_view name) {
  std::string value;
  Status s = GetMeta(T(txn_), store_->impl_->meta, "record:" + std::string(name), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return s;
  return std::optional<std::string>(std::move(value));
}

Status Txn::PutNodeRecord(std::string_view name, std::string_view value) {
  if (!write_) return Status::InvalidArgument("PutNodeRecord in a read transaction");
  return PutMeta(T(txn_), store_->impl_->meta, "record:" + std::string(name), value);
}

Result<std::optional<std::string>> Txn::GetRequest(std::string_view id) {
  MDB_val k = Val(id), v;
  int rc = mdb_get(T(txn_), store_->impl_->requests, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<std::string>();
  if (rc != 0) return LmdbError("read request id", rc);
  std::string_view value = View(v);
  if (value.size() < 8) return Status::Corruption("request id record too short");
  return std::optional<std::string>(std::string(value.substr(8)));
}

Status Txn::PutRequest(std::string_view id, std::uint64_t now_ms, std::string_view reply) {
  if (!write_) return Status::InvalidArgument("PutRequest in a read transaction");
  std::string value;
  PutBE64(value, now_ms);
  value.append(reply);
  MDB_val k = Val(id), v = Val(value);
  int rc = mdb_put(T(txn_), store_->impl_->requests, &k, &v, 0);
  if (rc == MDB_MAP_FULL) map_full_ = true;
  return rc == 0 ? Status::Ok() : LmdbError("write request id", rc);
}

namespace {
// Retired keys share the request-id table under a prefix no request id has
// (request ids start with a node name).
std::string RetiredKeyId(std::string_view key) { return std::string("\x01retired:").append(key); }
}  // namespace

Status Txn::PutRetiredKey(std::string_view key, const crdt::DotContext& ctx, std::uint64_t now_ms) {
  auto prior = GetRetiredKey(key);
  if (!prior.ok()) return prior.status();
  if (*prior && (*prior)->tombstone && (*prior)->context.Covers(ctx)) return Status::Ok();  // knows more
  crdt::DotContext joined = ctx;
  if (*prior) joined.Join((*prior)->context);
  std::string value("C");
  PutBE64(value, joined.vv().size());
  for (const auto& [r, n] : joined.vv()) PutBE64(value, r), PutBE64(value, n);
  for (const auto& d : joined.cloud()) PutBE64(value, d.replica), PutBE64(value, d.counter);
  return PutRequest(RetiredKeyId(key), now_ms, value);
}

Status Txn::PutRetiredTombstone(std::string_view key, const crdt::KeyState& tombstone, std::uint64_t now_ms) {
  return PutRequest(RetiredKeyId(key), now_ms, "S" + crdt::EncodeKeyState(tombstone));
}

Result<std::optional<Txn::RetiredKey>> Txn::GetRetiredKey(std::string_view key) {
  auto raw = GetRequest(RetiredKeyId(key));
  if (!raw.ok()) return raw.status();
  if (!*raw) return std::optional<RetiredKey>();
  const std::string& v = **raw;
  auto damaged = [] { return Status::Corruption("retired-key record is damaged"); };
  RetiredKey out;
  if (!v.empty() && v[0] == 'S') {
    auto state = crdt::DecodeKeyState(std::string_view(v).substr(1));
    if (!state.ok()) return damaged();
    out.context = state->AllContext();
    out.tombstone = std::move(*state);
    return std::optional<RetiredKey>(std::move(out));
  }
  if (v.size() < 9 || v[0] != 'C' || (v.size() - 9) % 16 != 0) return damaged();
  const std::uint64_t nvv = GetBE64(v.data() + 1);
  if (nvv > (v.size() - 9) / 16) return damaged();
  crdt::DotContext::VersionVector vv;
  std::set<crdt::Dot> cloud;
  for (std::size_t i = 0, at = 9; at < v.size(); ++i, at += 16) {
    const std::uint64_t x = GetBE64(v.data() + at), y = GetBE64(v.data() + at + 8);
    if (i < nvv) vv[x] = y;
    else cloud.insert(crdt::Dot{x, y});
  }
  if (!out.context.AssignCompacted(std::move(vv), std::move(cloud))) return damaged();
  return std::optional<RetiredKey>(std::move(out));
}

Result<std::string> Txn::PruneRequests(std::string_view cursor, std::uint64_t before_ms, std::size_t limit) {
  if (!write_) return Status::InvalidArgument("PruneRequests in a read transaction");
  return Walk(T(txn_), store_->impl_->requests, cursor, limit, "prune request ids",
              [&](MDB_cursor* cur, std::string_view, std::string_view value) {
                return value.size() < 8 || GetBE64(value.data()) < before_ms ? mdb_cursor_del(cur, 0) : 0;
              });
}

// ---- Store: reads, writer, shutdown ----------------------------------------------

void Store::SetHlcSnapshot(std::function<crdt::Hlc()> snapshot) {
  std::lock_guard lock(impl_->mu);
  impl_->hlc_snapshot = std::move(snapshot);
}

Status Store::Read(const std::function<Status(Txn&)>& fn) {
  Impl& im = *impl_;
  std::shared_lock resize_lock(im.resize_mu);
  MDB_txn* txn = nullptr;
  {
    std::lock_guard lock(im.pool_mu);
    if (!im.read_pool.empty()) {
      txn = im.read_pool.back();
      im.read_pool.pop_back();
    }
  }
  int rc = txn != nullptr ? mdb_txn_renew(txn) : mdb_txn_begin(im.env, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) {
    if (txn != nullptr) mdb_txn_abort(txn);
    return LmdbError("begin read", rc);
  }
  Txn t(this, txn, false);
  Status s = fn(t);
  mdb_txn_reset(txn);
  std::lock_guard lock(im.pool_mu);
  im.read_pool.push_back(txn);
  return s;
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

void Store::WriterLoop() {
  Impl& im = *impl_;
  std::vector<Impl::Item> batch;
  std::vector<Status> results;
  for (;;) {
    std::function<crdt::Hlc()> hlc_snapshot;
    {
      std::unique_lock lock(im.mu);
      im.cv.wait(lock, [&] { return im.closing || !im.queue.empty(); });
      if (im.queue.empty()) return;  // closing and drained
      while (!im.queue.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(im.queue.front()));
        im.queue.pop_front();
      }
      hlc_snapshot = im.hlc_snapshot;
    }
    Status commit;
    for (int attempt = 0;; ++attempt) {
      results.assign(batch.size(), Status::Ok());
      MDB_txn* txn = nullptr;
      int rc = mdb_txn_begin(im.env, nullptr, 0, &txn);
      if (rc != 0) {
        commit = LmdbError("begin write", rc);
        break;
      }
      Txn t(this, txn, true);
      bool map_full = false;
      for (std::size_t i = 0; i < batch.size() && !t.map_full_; ++i) {
        results[i] = batch[i].work(t);
      }
      map_full = t.map_full_;
      if (!map_full && options_.persist_trees && !t.tree_updates_.empty()) {
        // The leaves this transaction changes, as they will be after it.
        std::map<std::uint64_t, merkle::Digest> changed;  // partition << 32 | leaf
        {
          std::lock_guard lock(im.trees_mu);
          for (const auto& u : t.tree_updates_) {
            const std::uint32_t p = static_cast<std::uint32_t>(u.key_hash >> im.partition_shift);
            const merkle::Tree& tree = im.trees[p];
            const std::uint32_t leaf = tree.LeafOf(u.key_hash);
            auto [it, fresh] = changed.try_emplace((std::uint64_t{p} << 32) | leaf, tree.Node(tree.leaf_bits(), leaf));
            it->second ^= u.old_digest;
            it->second ^= u.new_digest;
          }
        }
        for (const auto& [at, d] : changed) {
          rc = PutLeaf(txn, im.leaves, static_cast<std::uint32_t>(at >> 32), static_cast<std::uint32_t>(at), d);
          if (rc == MDB_MAP_FULL) map_full = true;
          if (rc != 0) break;
        }
        if (rc != 0 && !map_full) {
          mdb_txn_abort(txn);
          commit = LmdbError("write leaves", rc);
          break;
        }
      }
      if (!map_full && hlc_snapshot) {
        crdt::Hlc h = hlc_snapshot();
        std::string raw;
        PutLE64(raw, h.wall_ms);
        for (int i = 0; i < 4; ++i) raw.push_back(static_cast<char>(h.logical >> (8 * i)));
        Status s = PutMeta(txn, im.meta, "hlc", raw);
        if (!s.ok() && s.code() == Status::Code::kResourceExhausted) map_full = true;
      }
      rc = map_full ? MDB_MAP_FULL : mdb_txn_commit(txn);
      if (map_full) mdb_txn_abort(txn);
      if (rc == MDB_MAP_FULL && attempt < 4 && im.map_bytes * 2 <= options_.max_map_bytes) {
        // Grow the map with no transaction open in this process, then retry.
        std::unique_lock resize_lock(im.resize_mu);
        {
          std::lock_guard lock(im.pool_mu);
          for (MDB_txn* r : im.read_pool) mdb_txn_abort(r);
          im.read_pool.clear();
        }
        im.map_bytes *= 2;
        mdb_env_set_mapsize(im.env, im.map_bytes);
        std::lock_guard lock(im.stats_mu);
        ++im.stats.resizes;
        continue;
      }
      if (rc == 0) {
        std::lock_guard lock(im.trees_mu);
        for (const auto& u : t.tree_updates_) {
          im.trees[u.key_hash >> im.partition_shift].Update(u.key_hash, u.old_digest, u.new_digest);
        }
      }
      commit = rc == 0 ? Status::Ok()
                       : rc == MDB_MAP_FULL
                             ? Status::ResourceExhausted("storage is full: the LMDB map reached " +
                                                         std::to_string(im.map_bytes) + " bytes")
                             : LmdbError("commit", rc);
      break;
    }
    {
      std::lock_guard lock(im.stats_mu);
      ++im.stats.commits;
      im.stats.items += batch.size();
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      batch[i].done(commit.ok() ? results[i] : commit);
    }
    batch.clear();
  }
}

void Store::Close() {
  if (!impl_ || impl_->env == nullptr) return;
  {
    std::lock_guard lock(impl_->mu);
    impl_->closing = true;
    impl_->cv.notify_all();
  }
  if (impl_->writer.joinable()) impl_->writer.join();
  {
    std::lock_guard lock(impl_->pool_mu);
    for (MDB_txn* r : impl_->read_pool) mdb_txn_abort(r);
    impl_->read_pool.clear();
  }
  mdb_env_close(impl_->env);
  impl_->env = nullptr;
}

Store::Stats Store::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  Stats s = impl_->stats;
  s.map_bytes = impl_->map_bytes;
  return s;
}

}  // namespace lattice::storage
