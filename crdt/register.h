// Registers. An MVRegister keeps every concurrently written value (siblings); a
// write removes exactly the values it has observed. An LWWRegister is an
// MVRegister read as the sibling with the highest (HLC, replica id): a causally
// later write always wins because it removed the earlier value, whatever the
// clocks say; only truly concurrent writes fall to last-writer-wins (DESIGN §2).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "crdt/dot_store.h"
#include "crdt/hlc.h"

namespace lattice::crdt {

struct RegisterValue {
  std::string bytes;
  Hlc hlc;
  auto operator<=>(const RegisterValue&) const = default;
};

using RegisterStore = DotFun<RegisterValue>;

// The sibling with the highest (hlc, replica), or nullptr when empty.
const RegisterValue* RegisterWinner(const RegisterStore& store, ReplicaId* replica = nullptr);

// Write and Clear shared by both registers; they differ only in how they read.
template <class Derived>
class RegisterBase : public CausalValue<Derived, RegisterStore> {
 public:
  Derived Write(ReplicaId replica, std::string value, Hlc hlc) {
    return this->FromDelta(ReplaceAll(this->state_.store, this->state_.ctx, replica,
                                      RegisterValue{std::move(value), hlc}));
  }
  Derived Clear() { return this->FromDelta(RemoveAll(this->state_)); }
  bool Live() const { return !this->state_.store.empty(); }
};

class MVRegister : public RegisterBase<MVRegister> {
 public:
  // Concurrent values, ordered by (hlc, replica).
  std::vector<std::string> Values() const;
};

class LWWRegister : public RegisterBase<LWWRegister> {
 public:
  std::optional<std::string> Value() const;
  // The HLC of the winning value (zero when empty).
  Hlc Timestamp() const;
};

}  // namespace lattice::crdt
