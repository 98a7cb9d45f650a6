#include "crdt/register.h"

#include <algorithm>
#include <tuple>

namespace lattice::crdt {

const RegisterValue* RegisterWinner(const RegisterStore& store, ReplicaId* replica) {
  const RegisterValue* best = nullptr;
  ReplicaId best_replica = 0;
  for (const auto& [dot, value] : store) {
    if (best == nullptr ||
        std::tie(best->hlc, best_replica) < std::tie(value.hlc, dot.replica)) {
      best = &value;
      best_replica = dot.replica;
    }
  }
  if (replica != nullptr) *replica = best_replica;
  return best;
}

std::vector<std::string> MVRegister::Values() const {
  std::vector<std::pair<std::tuple<Hlc, ReplicaId>, const std::string*>> sorted;
  for (const auto& [dot, value] : state_.store) {
    sorted.push_back({{value.hlc, dot.replica}, &value.bytes});
  }
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::string> out;
  for (const auto& entry : sorted) out.push_back(*entry.second);
  return out;
}

std::optional<std::string> LWWRegister::Value() const {
  const RegisterValue* winner = RegisterWinner(state_.store);
  if (winner == nullptr) return std::nullopt;
  return winner->bytes;
}

Hlc LWWRegister::Timestamp() const {
  const RegisterValue* winner = RegisterWinner(state_.store);
  return winner == nullptr ? Hlc{} : winner->hlc;
}

}  // namespace lattice::crdt
