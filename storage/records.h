// Record layout of the store (DESIGN §3), shared by the overlay, the LMDB
// layout, the checkpointer and the transaction code: which table a record
// lives in, how its key is built and how its value is framed. Internal to
// storage/; pure functions, any thread.
//
// Tables (one LMDB named database each; in the overlay and the log a record
// key is prefixed with its table's byte):
//   keys       xxh3_64(key) big-endian ‖ key              -> header record
//   members    xxh3_64(key) ‖ u32 len ‖ key ‖ type ‖ m     -> member record
//   expiry     deadline ms big-endian ‖ xxh3_64(key) ‖ key -> (empty): due-time index
//   meta       name                                        -> identity, HLC, live count,
//                                                             retired contexts, node records,
//                                                             checkpoint sequence
//   requests   request id                                  -> remembered reply
//   tombstones xxh3_64(key) ‖ key                           -> (empty): keys that are tombstones
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "crdt/key_state.h"
#include "crdt/status.h"
#include "merkle/tree.h"

namespace lattice::storage::records {

enum class Table : std::uint8_t { kKeys = 0, kMembers, kExpiry, kMeta, kRequests, kTombstones };
constexpr int kTables = 6;
const char* TableName(Table t);

void PutBE64(std::string& out, std::uint64_t v);
void PutLE64(std::string& out, std::uint64_t v);
void PutLE32(std::string& out, std::uint32_t v);
std::uint64_t GetBE64(const char* p);
std::uint64_t GetLE64(const char* p);
std::uint32_t GetLE32(const char* p);

std::uint64_t KeyHash(std::string_view key);
std::string HeaderKey(std::string_view key);
// Appends HeaderKey(key) to `out` (no allocation when `out` has room).
void AppendHeaderKey(std::string& out, std::string_view key);
std::string MemberPrefix(std::string_view key, crdt::CrdtType type);
std::string ExpiryKey(std::uint64_t at_ms, std::string_view key);

// Record: [version u8][flags u8][reserved u16][checksum u32 LE][body...]; the
// checksum (low 32 bits of xxh3_64) covers the body.
std::string MakeRecord(std::uint8_t flags, std::string_view body);
// The same built in place: `rec` holds kRecordFrameBytes of room, then the
// body; SealRecord writes the frame (version, flags, checksum of the body).
constexpr std::size_t kRecordFrameBytes = 8;
void SealRecord(std::string& rec, std::uint8_t flags);
Status OpenRecord(std::string_view rec, std::uint8_t& flags, std::string_view& body);

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
Status ParseHeader(std::string_view rec, HeaderInfo& info);

// The member records of a collection variant: one encoded single-member state each.
bool MemberLive(crdt::CrdtType type, const crdt::KeyState& member);
// A state holding member `name` of a set (dots) or map (field) with the dots it needs.
crdt::KeyState SetMemberState(const std::string& name, const crdt::DotFun<crdt::Unit>& dots);
crdt::KeyState MapMemberState(const std::string& name, const crdt::FieldStore& field);
// Inserts the decoded member into `state`'s variant of `type`.
Status AddMember(crdt::KeyState& state, crdt::CrdtType type, const crdt::KeyState& member, std::string_view key);
Status DecodeMember(std::string_view rec, crdt::KeyState& out);

// A record's contribution to its key's digest: its record key and its
// canonical payload (not the header counters, which may differ between equal
// states). For a keys record the payload is the header's state encoding, for
// a members record everything after the 8-byte frame.
merkle::Digest RecordDigest(std::string_view record_key, std::string_view payload);
// The digest of a stored keys or members record; false when it is damaged
// (reported when the key is read, left out of the trees until then).
bool StoredRecordDigest(Table table, std::string_view record_key, std::string_view value, merkle::Digest& out);

// Meta names.
constexpr std::string_view kIdentity = "identity";
constexpr std::string_view kHlc = "hlc";
constexpr std::string_view kLiveKeys = "live_keys";
constexpr std::string_view kCheckpointSeq = "checkpoint_seq";  // u64 LE: the log sequence the checkpoint holds
constexpr std::string_view kUnsyncedOpen = "unsynced_open";    // set while a --sync none node runs
constexpr std::string_view kRetiredPrefix = "retired:";
std::string RetiredName(std::uint32_t partition);

}  // namespace lattice::storage::records
