// Observed-remove map whose fields are strings (crdt/string_value.h: an LWW
// base plus the increments since it), all sharing the map's one causal
// context (DESIGN §2). HSET sets the base and removes the increments it
// observed; HINCRBY adds (the caller checks the base is an integer); a field
// reads base + increments. Removing the field removes both.
//
// Fields can expire (HEXPIRE, Redis 7.4): an expiry is a scheduled
// observed-remove. It records, when set, the register dots and counter entries
// of the field it has observed; once its time passes, ExpireDue removes exactly
// those, so a write made later by a replica that had not seen the expiry
// survives it. HSET clears a field's expiry (as in Redis); HINCRBY keeps it and
// folds its own contribution into it (the key-level rule, crdt/key_state.h).
// Concurrent expiries of one field are siblings; the one set with the highest
// (HLC, replica) counts, with the siblings of the same HEXPIRE.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "crdt/counter.h"
#include "crdt/register.h"
#include "crdt/status.h"
#include "crdt/string_value.h"

namespace lattice::crdt {

struct FieldExpiry {
  Hlc set;                // when the expiry was set (orders siblings)
  std::uint64_t at_ms = 0;  // wall-clock deadline
  std::set<Dot> reg_dots;   // register values it removes
  std::map<ReplicaId, CounterEntry> floors;  // counter contributions it removes
  auto operator<=>(const FieldExpiry&) const = default;
};

struct FieldStore {
  RegisterStore reg;
  CounterStore counter;
  DotFun<FieldExpiry> expiry;
  bool operator==(const FieldStore&) const = default;
};

bool IsBottom(const FieldStore& s);
void CollectDots(const FieldStore& s, DotContext& out);
FieldStore JoinStore(const FieldStore& a, const DotContext& ca, const FieldStore& b,
                     const DotContext& cb);

using MapStore = DotMap<std::string, FieldStore>;

// True when a read would show the field.
bool FieldLive(const FieldStore& f);

class ORMap : public CausalValue<ORMap, MapStore> {
 public:
  // HSET: the field's base, its observed increments and expiry removed.
  // `keep_ttl` (HINCRBYFLOAT): the expiry stays, with this write folded in.
  ORMap Set(ReplicaId replica, const std::string& field, std::string value, Hlc hlc, bool keep_ttl = false);
  // HINCRBY: adds to the field's increments (its expiry kept).
  ORMap Increment(ReplicaId replica, const std::string& field, std::int64_t amount, Hlc hlc);
  // HDEL: removes what this replica has observed of the field.
  ORMap Remove(const std::string& field);
  ORMap Clear();

  // HEXPIRE: schedules the removal of what is observed of a live field now.
  // NotFound when the field is absent.
  Result<ORMap> ExpireField(ReplicaId replica, const std::string& field, std::uint64_t at_ms,
                            Hlc hlc);
  // HPERSIST: removes the field's observed expiries.
  ORMap PersistField(const std::string& field);
  // The deadline of the field's expiry, if it has one.
  std::optional<std::uint64_t> FieldExpiresAt(const std::string& field) const;
  // Earliest deadline over all fields.
  std::optional<std::uint64_t> NextExpiry() const;
  // Applies every expiry whose deadline is at or before `now_ms`; returns the
  // delta and, in `expired`, the names of fields that stopped being live.
  ORMap ExpireDue(std::uint64_t now_ms, std::vector<std::string>* expired = nullptr);

  std::optional<StringValue> Get(const std::string& field) const;
  // Live fields, sorted by name.
  std::vector<std::pair<std::string, StringValue>> Entries() const;
  std::size_t Size() const;
  bool Live() const;

 private:
  // A write to `field` that keeps its TTL: the winning expiry (and its
  // siblings of the same HEXPIRE), with what the write's `delta` made folded
  // in, replaces them; into `delta`.
  void KeepFieldExpiry(ReplicaId replica, const std::string& field, ORMap& delta);
};

}  // namespace lattice::crdt
