#include "storage/records.h"

#include <xxhash.h>

#include "crdt/codec.h"

namespace lattice::storage::records {

using crdt::CrdtType;
using crdt::KeyState;

namespace {
constexpr std::uint8_t kFormatVersion = 1;

std::uint32_t Checksum(std::string_view body) {
  return static_cast<std::uint32_t>(XXH3_64bits(body.data(), body.size()));
}
}  // namespace

const char* TableName(Table t) {
  switch (t) {
    case Table::kKeys: return "keys";
    case Table::kMembers: return "members";
    case Table::kExpiry: return "expiry";
    case Table::kMeta: return "meta";
    case Table::kRequests: return "requests";
    case Table::kTombstones: return "tombstones";
  }
  return "?";
}

void PutBE64(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void PutLE64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void PutLE32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
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
std::uint32_t GetLE32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::uint64_t KeyHash(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

void AppendHeaderKey(std::string& out, std::string_view key) {
  PutBE64(out, KeyHash(key));
  out.append(key);
}

std::string HeaderKey(std::string_view key) {
  std::string out;
  out.reserve(8 + key.size());
  AppendHeaderKey(out, key);
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
  AppendHeaderKey(out, key);
  return out;
}

std::string MakeRecord(std::uint8_t flags, std::string_view body) {
  std::string out;
  out.reserve(8 + body.size());
  out.push_back(static_cast<char>(kFormatVersion));
  out.push_back(static_cast<char>(flags));
  out.append(2, '\0');
  PutLE32(out, Checksum(body));
  out.append(body);
  return out;
}

void SealRecord(std::string& rec, std::uint8_t flags) {
  rec[0] = static_cast<char>(kFormatVersion);
  rec[1] = static_cast<char>(flags);
  rec[2] = rec[3] = '\0';
  const std::uint32_t sum = Checksum(std::string_view(rec).substr(kRecordFrameBytes));
  for (int i = 0; i < 4; ++i) rec[4 + i] = static_cast<char>(sum >> (8 * i));
}

Status OpenRecord(std::string_view rec, std::uint8_t& flags, std::string_view& body) {
  if (rec.size() < 8) return Status::Corruption("record shorter than its header");
  if (static_cast<std::uint8_t>(rec[0]) != kFormatVersion) {
    return Status::Corruption("unknown record format version " +
                              std::to_string(static_cast<unsigned>(rec[0])));
  }
  flags = static_cast<std::uint8_t>(rec[1]);
  body = rec.substr(8);
  if (GetLE32(rec.data() + 4) != Checksum(body)) return Status::Corruption("record checksum mismatch");
  return Status::Ok();
}

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

bool MemberLive(CrdtType type, const KeyState& member) {
  const crdt::Variant* v = member.variants().empty() ? nullptr : &member.variants().begin()->second;
  if (v == nullptr) return false;
  if (type == CrdtType::kSet) return crdt::IsLive(v->value);
  const auto& store = std::get<crdt::ORMap>(v->value).state().store;
  return !store.empty() && crdt::FieldLive(store.begin()->second);
}

namespace {
template <class T, class S>
KeyState MemberState(const std::string& name, const S& member_store) {
  T value;
  value.mutable_state().store.emplace(name, member_store);
  crdt::CollectDots(member_store, value.mutable_state().ctx);
  KeyState out;
  out.PutVariant(crdt::Variant{crdt::Stamp{}, std::move(value)});
  return out;
}
}  // namespace

KeyState SetMemberState(const std::string& name, const crdt::DotFun<crdt::Unit>& dots) {
  return MemberState<crdt::ORSet>(name, dots);
}
KeyState MapMemberState(const std::string& name, const crdt::FieldStore& field) {
  return MemberState<crdt::ORMap>(name, field);
}

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

merkle::Digest RecordDigest(std::string_view record_key, std::string_view payload) {
  return merkle::KeyDigest(record_key, payload);
}

bool StoredRecordDigest(Table table, std::string_view record_key, std::string_view value, merkle::Digest& out) {
  if (record_key.size() < 8) return false;
  if (table == Table::kKeys) {
    HeaderInfo info;
    if (!ParseHeader(value, info).ok()) return false;
    out = RecordDigest(record_key, info.payload);
    return true;
  }
  if (value.size() < 8) return false;
  out = RecordDigest(record_key, value.substr(8));
  return true;
}

std::string RetiredName(std::uint32_t partition) {
  std::string name(kRetiredPrefix);
  for (int i = 3; i >= 0; --i) name.push_back(static_cast<char>(partition >> (8 * i)));
  return name;
}

}  // namespace lattice::storage::records
