// Txn: the store's keys, members, expiry and tombstone indexes, request ids,
// retired keys and node records, read and written through one View (the
// overlay over LMDB; view.h). Runs on the thread that holds the Txn: the
// writer for write transactions, any thread for reads.
#include <algorithm>
#include <optional>
#include <set>

#include "crdt/codec.h"
#include "storage/records.h"
#include "storage/store.h"
#include "storage/store_impl.h"
#include "storage/view.h"

namespace lattice::storage {

using crdt::CrdtType;
using crdt::KeyState;
using records::HeaderInfo;
using records::Table;

std::uint64_t KeyHash(std::string_view key) { return records::KeyHash(key); }

namespace {

Status ReadHeader(View& view, std::string_view hkey, HeaderInfo& info) {
  auto v = view.Get(Table::kKeys, hkey);
  if (!v.ok()) return v.status();
  if (!*v) return Status::Ok();
  return records::ParseHeader(**v, info);
}

// Visits member records under `prefix` in order; fn(name, record, status) returns false to stop.
template <class Fn>
Status ForEachMember(View& view, const std::string& prefix, Fn&& fn) {
  auto c = view.Cursor(Table::kMembers);
  Status status;
  for (c->Seek(prefix); c->Valid(); c->Next()) {
    const std::string_view k = c->key();
    if (k.substr(0, prefix.size()) != prefix) break;
    if (!fn(k.substr(prefix.size()), c->value(), status)) break;
  }
  if (status.ok()) status = c->status();
  return status;
}

}  // namespace

Status Txn::RequireWrite(const char* what) const {
  if (view_->writer()) return Status::Ok();
  return Status::InvalidArgument(std::string(what) + " in a read transaction");
}

Status Txn::LoadHeader(std::string_view key, HeaderInfo& info) {
  thread_local std::string hkey;  // keeps its capacity from read to read
  hkey.clear();
  records::AppendHeaderKey(hkey, key);
  if (Status s = ReadHeader(*view_, hkey, info); !s.ok()) return s;
  if (view_->writer()) {  // a Save of the same key reads it from here, not again
    last_header_.key.assign(hkey);
    last_header_.info = info;
    last_header_.info.payload = {};
    last_header_.digest = info.exists ? records::RecordDigest(hkey, info.payload) : merkle::Digest{};
    last_header_.valid = true;
  }
  return Status::Ok();
}

Result<LoadedKey> Txn::Load(std::string_view key, const Members& members) {
  HeaderInfo info;
  if (Status s = LoadHeader(key, info); !s.ok()) return s;
  if (!info.exists) return Status::NotFound("no such key");
  auto decoded = crdt::DecodeKeyState(info.payload);
  if (!decoded.ok()) {
    return Status::Corruption("key '" + std::string(key) + "': " + decoded.status().message());
  }
  LoadedKey out{std::move(decoded).value(), info.live_set, info.live_map, info.next_expiry};
  for (CrdtType type : {CrdtType::kSet, CrdtType::kMap}) {
    if (out.state.MutableVariant(type) == nullptr) continue;
    const std::string prefix = records::MemberPrefix(key, type);
    std::uint64_t live_count = type == CrdtType::kSet ? info.live_set : info.live_map;
    bool have_live = false;
    auto add = [&](std::string_view rec, Status& status) {
      KeyState m;
      status = records::DecodeMember(rec, m);
      if (status.ok()) status = records::AddMember(out.state, type, m, key);
      if (status.ok() && records::MemberLive(type, m)) have_live = true;
      return status.ok();
    };
    Status status;
    if (members.all) {
      status = ForEachMember(*view_, prefix,
                             [&](std::string_view, std::string_view rec, Status& st) { return add(rec, st); });
    } else {
      for (const std::string& name : members.names) {
        auto v = view_->Get(Table::kMembers, prefix + name);
        if (!v.ok()) return v.status();
        if (!*v) continue;
        if (!add(**v, status)) break;
      }
      if (status.ok() && live_count > 0 && !have_live) {
        status = ForEachMember(*view_, prefix, [&](std::string_view, std::string_view rec, Status& st) {
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
  const std::string prefix = records::MemberPrefix(key, type);
  const std::uint64_t key_hash = records::KeyHash(key);
  std::vector<std::string> doomed;
  Status s = ForEachMember(*view_, prefix, [&](std::string_view name, std::string_view rec, Status&) {
    std::string mkey = prefix + std::string(name);
    tree_updates_.push_back({key_hash, records::RecordDigest(mkey, rec.substr(std::min<std::size_t>(8, rec.size()))),
                             merkle::Digest{}});
    doomed.push_back(std::move(mkey));
    return true;
  });
  if (!s.ok()) return s;
  for (const std::string& mkey : doomed) view_->Del(Table::kMembers, mkey);
  return Status::Ok();
}

Status Txn::Save(std::string_view key, const KeyState& state, const Members& touched) {
  const std::size_t max_bytes = store_->options_.max_state_bytes;
  std::string_view hkey;
  HeaderInfo old;
  merkle::Digest old_header_digest;
  if (Status s = BeginSave("Save", key, hkey, old, old_header_digest); !s.ok()) return s;

  // Everything is encoded and size-checked before anything is written.
  struct MemberWrite {
    std::string mkey;
    std::string record;  // empty: delete
    bool old_live = false;
    bool new_live = false;
    merkle::Digest old_digest;  // of the record this replaces
  };
  const std::uint64_t key_hash = records::KeyHash(key);
  std::vector<MemberWrite> writes;
  std::vector<CrdtType> wipe;  // collections rewritten wholesale
  // The header keeps the state without its collections' members: a copy to
  // strip, only when the state has a set or a map.
  const bool collections =
      state.variants().count(CrdtType::kSet) != 0 || state.variants().count(CrdtType::kMap) != 0;
  std::optional<KeyState> stripped;
  if (collections) stripped = state;
  const KeyState& header = collections ? *stripped : state;
  std::uint64_t live_set = old.live_set, live_map = old.live_map;
  for (CrdtType type : {CrdtType::kSet, CrdtType::kMap}) {
    crdt::Variant* hv = collections ? stripped->MutableVariant(type) : nullptr;
    if (hv == nullptr && !touched.all && touched.names.empty()) continue;  // no member to touch
    const std::string prefix = records::MemberPrefix(key, type);
    std::uint64_t& count = type == CrdtType::kSet ? live_set : live_map;
    auto encode_state = [&](const std::string& name, KeyState m) -> Status {
      MemberWrite w{prefix + name, records::MakeRecord(0, crdt::EncodeKeyState(m)), false,
                    records::MemberLive(type, m), {}};
      if (w.record.size() > max_bytes) {
        return Status::ResourceExhausted("member '" + name + "' of key '" + std::string(key) +
                                         "' exceeds max-state-bytes");
      }
      writes.push_back(std::move(w));
      return Status::Ok();
    };
    auto encode_set = [&](const std::string& name, const crdt::DotFun<crdt::Unit>& dots) {
      return encode_state(name, records::SetMemberState(name, dots));
    };
    auto encode_map = [&](const std::string& name, const crdt::FieldStore& field) {
      return encode_state(name, records::MapMemberState(name, field));
    };
    if (touched.all) {
      wipe.push_back(type);
      count = 0;
      if (hv != nullptr) {
        if (type == CrdtType::kSet) {
          for (const auto& [name, dots] : std::get<crdt::ORSet>(hv->value).state().store) {
            if (Status s = encode_set(name, dots); !s.ok()) return s;
          }
        } else {
          for (const auto& [name, field] : std::get<crdt::ORMap>(hv->value).state().store) {
            if (Status s = encode_map(name, field); !s.ok()) return s;
          }
        }
      }
      for (auto& w : writes) {
        if (w.mkey.compare(0, prefix.size(), prefix) == 0) count += w.new_live;
      }
    } else if (hv != nullptr || old.exists) {
      std::vector<std::string> names = touched.names;  // each member once
      std::sort(names.begin(), names.end());
      names.erase(std::unique(names.begin(), names.end()), names.end());
      for (const std::string& name : names) {
        MemberWrite w{prefix + name, {}, false, false, {}};
        auto v = view_->Get(Table::kMembers, w.mkey);
        if (!v.ok()) return v.status();
        const bool existed = v->has_value();
        if (existed) {
          KeyState m;
          if (Status s = records::DecodeMember(**v, m); !s.ok()) return s;
          w.old_live = records::MemberLive(type, m);
          w.old_digest = records::RecordDigest(w.mkey, (**v).substr(8));
        }
        bool now_present = false;
        if (hv != nullptr) {
          if (type == CrdtType::kSet) {
            const auto& st = std::get<crdt::ORSet>(hv->value).state().store;
            if (auto it = st.find(name); it != st.end()) {
              if (Status s = encode_set(name, it->second); !s.ok()) return s;
              now_present = true;
            }
          } else {
            const auto& st = std::get<crdt::ORMap>(hv->value).state().store;
            if (auto it = st.find(name); it != st.end()) {
              if (Status s = encode_map(name, it->second); !s.ok()) return s;
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
    if (header.variants().count(CrdtType::kMap) != 0) next = old.next_expiry;
  }
  // A tombstone: no data in any variant (collections by their live counts,
  // whose members the header leaves out) and no expiry.
  bool tombstone = !live && live_set == 0 && live_map == 0 && state.expiry().store.empty() && !state.Empty();
  if (tombstone) {
    for (const auto& [type, v] : header.variants()) {
      if (crdt::IsLive(v.value)) tombstone = false;
    }
  }
  // The record is built in place: frame, counts, then the state's encoding.
  thread_local std::string record;  // keeps its capacity from save to save
  record.assign(records::kRecordFrameBytes, '\0');
  records::PutLE64(record, next);
  records::PutLE64(record, live_set);
  records::PutLE64(record, live_map);
  crdt::AppendKeyState(header, record);
  if (Status s = SealHeader(key, record, live, tombstone); !s.ok()) return s;

  // Write.
  for (CrdtType type : wipe) {
    if (Status s = DeleteMembers(key, type); !s.ok()) return s;
  }
  for (const MemberWrite& w : writes) {
    tree_updates_.push_back({key_hash, w.old_digest,
                             w.record.empty() ? merkle::Digest{}
                                              : records::RecordDigest(w.mkey, std::string_view(w.record).substr(8))});
    if (w.record.empty()) view_->Del(Table::kMembers, w.mkey);
    else view_->Put(Table::kMembers, w.mkey, w.record);
  }
  PutHeader(key, hkey, old, old_header_digest, record, HeaderInfo{true, live, tombstone, next, live_set, live_map, {}});
  return Status::Ok();
}

Status Txn::BeginSave(const char* what, std::string_view key, std::string_view& hkey, HeaderInfo& old,
                      merkle::Digest& digest) {
  if (Status s = RequireWrite(what); !s.ok()) return s;
  Kind(RecordType::kDelta);
  thread_local std::string hkey_buf;  // keeps its capacity from save to save
  hkey_buf.clear();
  records::AppendHeaderKey(hkey_buf, key);
  hkey = hkey_buf;
  return OldHeader(hkey, old, digest);
}

Status Txn::OldHeader(std::string_view hkey, HeaderInfo& old, merkle::Digest& digest) {
  if (last_header_.valid && last_header_.key == hkey) {
    old = last_header_.info;
    digest = last_header_.digest;
    return Status::Ok();
  }
  if (Status s = ReadHeader(*view_, hkey, old); !s.ok()) return s;
  // The old record's digest, taken now: `old.payload` is valid until the next read.
  digest = old.exists ? records::RecordDigest(hkey, old.payload) : merkle::Digest{};
  old.payload = {};
  return Status::Ok();
}

Status Txn::SealHeader(std::string_view key, std::string& record, bool live, bool tombstone) const {
  records::SealRecord(record, (live ? records::kLiveFlag : 0) | (tombstone ? records::kTombstoneFlag : 0));
  const std::size_t max_bytes = store_->options_.max_state_bytes;
  if (record.size() > max_bytes) {
    return Status::ResourceExhausted("key '" + std::string(key) + "' exceeds max-state-bytes (" +
                                     std::to_string(record.size()) + " > " + std::to_string(max_bytes) + ")");
  }
  return Status::Ok();
}

void Txn::PutHeader(std::string_view key, std::string_view hkey, const HeaderInfo& old,
                    const merkle::Digest& old_digest, std::string_view record, const HeaderInfo& now) {
  view_->Put(Table::kKeys, hkey, record);
  const std::string_view payload = record.substr(records::kRecordFrameBytes + 24);
  const merkle::Digest new_digest = records::RecordDigest(hkey, payload);
  tree_updates_.push_back({records::KeyHash(key), old_digest, new_digest});
  last_header_.key.assign(hkey);  // what the header is now, for a Save of the same key that follows
  last_header_.info = now;
  last_header_.digest = new_digest;
  last_header_.valid = true;
  if (old.next_expiry != now.next_expiry) {
    if (old.next_expiry != 0) view_->Del(Table::kExpiry, records::ExpiryKey(old.next_expiry, key));
    if (now.next_expiry != 0) view_->Put(Table::kExpiry, records::ExpiryKey(now.next_expiry, key), {});
  }
  if (old.tombstone != now.tombstone) {
    if (now.tombstone) view_->Put(Table::kTombstones, hkey, {});
    else view_->Del(Table::kTombstones, hkey);
  }
  if (old.live != now.live) {
    std::uint64_t n = LiveKeys();
    n = now.live ? n + 1 : (n > 0 ? n - 1 : 0);
    std::string raw;
    records::PutLE64(raw, n);
    view_->Put(Table::kMeta, records::kLiveKeys, raw);
  }
}

Result<std::optional<Txn::EncodedKey>> Txn::LoadEncoded(std::string_view key) {
  using R = std::optional<EncodedKey>;
  HeaderInfo info;
  if (Status s = LoadHeader(key, info); !s.ok()) return s;
  if (!info.exists) return R();
  return R(EncodedKey{info.payload, info.live, info.next_expiry, info.live_set, info.live_map});
}

Status Txn::SaveEncoded(std::string_view key, std::string_view state, bool live, bool tombstone,
                        std::uint64_t next_expiry) {
  std::string_view hkey;
  HeaderInfo old;
  merkle::Digest old_digest;
  if (Status s = BeginSave("SaveEncoded", key, hkey, old, old_digest); !s.ok()) return s;
  thread_local std::string record;
  record.assign(records::kRecordFrameBytes, '\0');
  records::PutLE64(record, next_expiry);
  records::PutLE64(record, 0);  // no set or map: no live members
  records::PutLE64(record, 0);
  record.append(state);
  if (Status s = SealHeader(key, record, live, tombstone); !s.ok()) return s;
  PutHeader(key, hkey, old, old_digest, record, HeaderInfo{true, live, tombstone, next_expiry, 0, 0, {}});
  return Status::Ok();
}

std::uint64_t Txn::LiveKeys() {
  auto v = view_->Get(Table::kMeta, records::kLiveKeys);
  if (!v.ok() || !*v || (**v).size() != 8) return 0;
  return records::GetLE64((**v).data());
}

Result<std::uint64_t> Txn::ScanKeys(std::uint64_t cursor, std::size_t limit,
                                    const std::function<bool(std::string_view)>& fn) {
  auto c = view_->Cursor(Table::kKeys);
  std::string start;
  records::PutBE64(start, cursor);
  std::size_t visited = 0;
  std::uint64_t next = 0;
  for (c->Seek(start); c->Valid(); c->Next()) {
    const std::string_view kv = c->key();
    if (kv.size() < 8) continue;
    if (visited == limit) {
      next = records::GetBE64(kv.data());
      break;
    }
    ++visited;
    if (!fn(kv.substr(8))) {
      c->Next();
      if (c->Valid() && c->key().size() >= 8) next = records::GetBE64(c->key().data());
      break;
    }
  }
  if (Status s = c->status(); !s.ok()) return s;
  return next;
}

Status Txn::KeyDigests(std::uint64_t first, std::uint64_t last,
                       const std::function<void(std::string_view key, const merkle::Digest& digest)>& fn) {
  std::map<std::string, merkle::Digest, std::less<>> digests;
  std::string start;
  records::PutBE64(start, first);
  for (Table table : {Table::kKeys, Table::kMembers}) {
    auto c = view_->Cursor(table);
    for (c->Seek(start); c->Valid(); c->Next()) {
      const std::string_view rk = c->key();
      if (rk.size() < 8) continue;
      if (records::GetBE64(rk.data()) > last) break;
      std::string_view key;
      if (table == Table::kKeys) {  // hash, key
        key = rk.substr(8);
      } else {  // hash, key length (BE32), key, type, member
        if (rk.size() < 12) continue;
        const std::uint32_t len = (std::uint32_t{static_cast<std::uint8_t>(rk[8])} << 24) |
                                  (std::uint32_t{static_cast<std::uint8_t>(rk[9])} << 16) |
                                  (std::uint32_t{static_cast<std::uint8_t>(rk[10])} << 8) |
                                  std::uint32_t{static_cast<std::uint8_t>(rk[11])};
        if (rk.size() < 12 + std::size_t{len}) continue;
        key = rk.substr(12, len);
      }
      merkle::Digest d;
      if (!records::StoredRecordDigest(table, rk, c->value(), d)) continue;  // reported when the key is read
      auto it = digests.find(key);
      if (it == digests.end()) it = digests.emplace(std::string(key), merkle::Digest{}).first;
      it->second ^= d;
    }
    if (Status s = c->status(); !s.ok()) return s;
  }
  for (const auto& [key, digest] : digests) fn(key, digest);
  return Status::Ok();
}

Result<std::vector<std::string>> Txn::DueKeys(std::uint64_t now_ms, std::size_t limit) {
  std::vector<std::string> out;
  auto c = view_->Cursor(Table::kExpiry);
  for (c->Seek(""); c->Valid() && out.size() < limit; c->Next()) {
    const std::string_view kv = c->key();
    if (kv.size() < 16 || records::GetBE64(kv.data()) > now_ms) break;
    out.emplace_back(kv.substr(16));
  }
  if (Status s = c->status(); !s.ok()) return s;
  return out;
}

// ---- tombstones ------------------------------------------------------------------

namespace {
// Visits the records of `table` from `cursor` ("" = the first), at most
// `limit`; fn(key, value). Returns the key to resume from ("" = the end was reached).
template <class Fn>
Result<std::string> Walk(View& view, Table table, std::string_view cursor, std::size_t limit, Fn&& fn) {
  auto c = view.Cursor(table);
  std::string next;
  std::size_t visited = 0;
  for (c->Seek(cursor); c->Valid(); c->Next(), ++visited) {
    if (visited == limit) {
      next.assign(c->key());
      break;
    }
    fn(c->key(), c->value());
  }
  if (Status s = c->status(); !s.ok()) return s;
  return next;
}
}  // namespace

Result<std::string> Txn::Tombstones(std::string_view cursor, std::size_t limit,
                                    const std::function<void(std::string_view key)>& fn) {
  return Walk(*view_, Table::kTombstones, cursor, limit, [&](std::string_view key, std::string_view) {
    if (key.size() > 8) fn(key.substr(8));
  });
}

Result<bool> Txn::Retire(std::string_view key, const crdt::DotContext& expected) {
  if (Status s = RequireWrite("Retire"); !s.ok()) return s;
  last_header_.valid = false;
  auto loaded = Load(key, Members::All());
  if (loaded.status().IsNotFound()) return false;
  if (!loaded.ok()) return loaded.status();
  const crdt::DotContext ctx = loaded->state.AllContext();
  if (!loaded->state.Tombstone() || !(ctx == expected)) return false;
  Kind(RecordType::kRetire);
  const std::uint64_t key_hash = records::KeyHash(key);
  const std::string hkey = records::HeaderKey(key);
  HeaderInfo info;
  if (Status s = ReadHeader(*view_, hkey, info); !s.ok()) return s;
  tree_updates_.push_back({key_hash, records::RecordDigest(hkey, info.payload), merkle::Digest{}});
  const std::uint64_t next_expiry = info.next_expiry;
  for (CrdtType type : {CrdtType::kSet, CrdtType::kMap}) {
    if (Status s = DeleteMembers(key, type); !s.ok()) return s;
  }
  view_->Del(Table::kKeys, hkey);
  last_header_.valid = false;
  view_->Del(Table::kTombstones, hkey);
  if (next_expiry != 0) view_->Del(Table::kExpiry, records::ExpiryKey(next_expiry, key));
  // The partition's retired context takes the tombstone's. Raised in memory
  // at once: were this batch lost, a higher floor only skips counters.
  const std::uint32_t p = store_->PartitionOfHash(key_hash);
  view_->Put(Table::kMeta, records::RetiredName(p), store_->impl_->retired.Raise(p, ctx));
  return true;
}

std::uint64_t Txn::MintFloor(std::string_view key) const {
  return store_->MintFloor(store_->PartitionOfHash(records::KeyHash(key)), store_->identity_.replica);
}

// ---- node records and remembered request ids --------------------------------------

Result<std::optional<std::string>> Txn::GetNodeRecord(std::string_view name) {
  auto v = view_->Get(Table::kMeta, "record:" + std::string(name));
  if (!v.ok()) return v.status();
  if (!*v) return std::optional<std::string>();
  return std::optional<std::string>(std::string(**v));
}

Status Txn::PutNodeRecord(std::string_view name, std::string_view value) {
  if (Status s = RequireWrite("PutNodeRecord"); !s.ok()) return s;
  Kind(RecordType::kNodeRecord);
  view_->Put(Table::kMeta, "record:" + std::string(name), value);
  return Status::Ok();
}

Result<std::optional<std::string>> Txn::GetRequest(std::string_view id) {
  auto v = view_->Get(Table::kRequests, id);
  if (!v.ok()) return v.status();
  if (!*v) return std::optional<std::string>();
  if ((**v).size() < 8) return Status::Corruption("request id record too short");
  return std::optional<std::string>(std::string((**v).substr(8)));
}

Status Txn::PutRequest(std::string_view id, std::uint64_t now_ms, std::string_view reply) {
  if (Status s = RequireWrite("PutRequest"); !s.ok()) return s;
  Kind(RecordType::kRequestId);
  std::string value;
  records::PutBE64(value, now_ms);
  value.append(reply);
  view_->Put(Table::kRequests, id, value);
  return Status::Ok();
}

namespace {
// Retired keys share the request-id table under a prefix no request id has
// (request ids start with a node name).
void AssignRetiredKeyId(std::string& out, std::string_view key) { out.assign("\x01retired:").append(key); }
std::string RetiredKeyId(std::string_view key) {
  std::string id;
  AssignRetiredKeyId(id, key);
  return id;
}
}  // namespace

Result<bool> Txn::HasRetiredKey(std::string_view key) {
  thread_local std::string id;  // keeps its capacity from call to call
  AssignRetiredKeyId(id, key);
  auto v = view_->Get(Table::kRequests, id);
  if (!v.ok()) return v.status();
  return v->has_value();
}

Status Txn::PutRetiredKey(std::string_view key, const crdt::DotContext& ctx, std::uint64_t now_ms) {
  auto prior = GetRetiredKey(key);
  if (!prior.ok()) return prior.status();
  if (*prior && (*prior)->tombstone && (*prior)->context.Covers(ctx)) return Status::Ok();  // knows more
  crdt::DotContext joined = ctx;
  if (*prior) joined.Join((*prior)->context);
  std::string value("C");
  records::PutBE64(value, joined.vv().size());
  for (const auto& [r, n] : joined.vv()) records::PutBE64(value, r), records::PutBE64(value, n);
  for (const auto& d : joined.cloud()) records::PutBE64(value, d.replica), records::PutBE64(value, d.counter);
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
  const std::uint64_t nvv = records::GetBE64(v.data() + 1);
  if (nvv > (v.size() - 9) / 16) return damaged();
  crdt::DotContext::VersionVector vv;
  std::set<crdt::Dot> cloud;
  for (std::size_t i = 0, at = 9; at < v.size(); ++i, at += 16) {
    const std::uint64_t x = records::GetBE64(v.data() + at), y = records::GetBE64(v.data() + at + 8);
    if (i < nvv) vv[x] = y;
    else cloud.insert(crdt::Dot{x, y});
  }
  if (!out.context.AssignCompacted(std::move(vv), std::move(cloud))) return damaged();
  return std::optional<RetiredKey>(std::move(out));
}

Result<std::string> Txn::PruneRequests(std::string_view cursor, std::uint64_t before_ms, std::size_t limit) {
  if (Status s = RequireWrite("PruneRequests"); !s.ok()) return s;
  std::vector<std::string> doomed;
  auto next = Walk(*view_, Table::kRequests, cursor, limit, [&](std::string_view key, std::string_view value) {
    if (value.size() < 8 || records::GetBE64(value.data()) < before_ms) doomed.emplace_back(key);
  });
  if (!next.ok()) return next.status();
  for (const std::string& id : doomed) view_->Del(Table::kRequests, id);
  return next;
}

}  // namespace lattice::storage
