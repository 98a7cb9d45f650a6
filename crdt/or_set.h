// Add-wins observed-remove set and enable-wins flag.
//
// An add mints a fresh dot for the element; a remove drops only the dots it has
// observed, so an add concurrent with a remove survives it.
#pragma once

#include <string>
#include <vector>

#include "crdt/dot_store.h"

namespace lattice::crdt {

using SetStore = DotMap<std::string, DotFun<Unit>>;

class ORSet : public CausalValue<ORSet, SetStore> {
 public:
  ORSet Add(ReplicaId replica, const std::string& element);
  ORSet Remove(const std::string& element);
  ORSet Clear();

  bool Contains(const std::string& element) const { return state_.store.count(element) != 0; }
  std::size_t Size() const { return state_.store.size(); }
  std::vector<std::string> Members() const;  // sorted
  bool Live() const { return !state_.store.empty(); }
};

// Enable-wins flag: each write replaces the observed dots with one dot that says
// enabled or disabled; the flag reads enabled when any surviving dot says so, so
// an enable concurrent with a disable wins. Clear (DEL) removes the key itself.
class Flag : public CausalValue<Flag, DotFun<bool>> {
 public:
  Flag Enable(ReplicaId replica) { return Write(replica, true); }
  Flag Disable(ReplicaId replica) { return Write(replica, false); }
  Flag Clear();

  bool Enabled() const;
  bool Live() const { return !state_.store.empty(); }

 private:
  Flag Write(ReplicaId replica, bool enabled);
};

}  // namespace lattice::crdt
