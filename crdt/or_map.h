// Observed-remove map whose fields are LWW registers or PN-counters, all sharing
// the map's one causal context (DESIGN §2).
//
// A field's kind is fixed by its first write: HSET on a counter field and
// HINCRBY on a register field are refused. If two replicas concurrently create a
// field with different kinds, both stores are kept and every replica reads the
// kind whose newest live write has the higher (HLC, replica); removing the field
// removes both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crdt/counter.h"
#include "crdt/register.h"
#include "crdt/status.h"

namespace lattice::crdt {

struct FieldStore {
  RegisterStore reg;
  CounterStore counter;
  bool operator==(const FieldStore&) const = default;
};

bool IsBottom(const FieldStore& s);
void CollectDots(const FieldStore& s, DotContext& out);
FieldStore JoinStore(const FieldStore& a, const DotContext& ca, const FieldStore& b,
                     const DotContext& cb);

using MapStore = DotMap<std::string, FieldStore>;

enum class FieldKind : std::uint8_t { kRegister, kCounter };

struct FieldValue {
  FieldKind kind = FieldKind::kRegister;
  std::string bytes;        // kRegister
  std::int64_t number = 0;  // kCounter
  // The value as Redis would print it: the bytes, or the decimal number.
  std::string Text() const;
};

class ORMap : public CausalValue<ORMap, MapStore> {
 public:
  // HSET. WrongType when the field holds a counter.
  Result<ORMap> Set(ReplicaId replica, const std::string& field, std::string value, Hlc hlc);
  // HINCRBY. WrongType when the field holds a register.
  Result<ORMap> Increment(ReplicaId replica, const std::string& field, std::int64_t amount,
                          Hlc hlc);
  // HDEL: removes what this replica has observed of the field.
  ORMap Remove(const std::string& field);
  ORMap Clear();

  std::optional<FieldKind> KindOf(const std::string& field) const;
  std::optional<FieldValue> Get(const std::string& field) const;
  // Live fields, sorted by name.
  std::vector<std::pair<std::string, FieldValue>> Entries() const;
  std::size_t Size() const;
  bool Live() const;
};

}  // namespace lattice::crdt
