#include "gossip/formation.h"

#include <xxhash.h>

#include <algorithm>

namespace lattice::gossip {

std::uint64_t FoundersId(std::vector<std::pair<std::string, std::uint64_t>> founders) {
  std::sort(founders.begin(), founders.end());
  std::string bytes;
  for (const auto& [name, inc] : founders) {
    bytes += name;
    bytes.push_back('\0');
    bytes += std::to_string(inc);
    bytes.push_back('\0');
  }
  const std::uint64_t h = XXH3_64bits(bytes.data(), bytes.size());
  return h == 0 ? 1 : h;
}

FormationStep Formation::Step(const Membership& membership, bool forming, std::uint64_t now) const {
  FormationStep step;
  const Member* me = membership.Find(membership.self());
  // A member of an existing cluster that we hear directly: join it.
  for (const auto& [name, m] : membership.members()) {
    if (name == membership.self() || m.cluster_id == 0 || m.state != MemberState::kAlive) continue;
    auto since = membership.SinceLastContact(name, now);
    if (!since || *since > kReachableMs) continue;
    step.cluster_id = m.cluster_id;
    step.through = name;
    if (!forming) {
      step.kind = FormationStep::Kind::kAdopt;
    } else if (me != nullptr && m.cluster_id == me->forming) {
      step.kind = FormationStep::Kind::kCofound;
    } else {
      step.kind = FormationStep::Kind::kJoin;
    }
    return step;
  }
  if (!forming) return step;
  // The fresh nodes we hear (ourselves included); founders agree on them.
  std::vector<std::pair<std::string, std::uint64_t>> fresh;
  std::string names;
  for (const auto& [name, m] : membership.members()) {
    if (m.cluster_id != 0 || m.state != MemberState::kAlive) continue;
    if (name != membership.self()) {
      auto since = membership.SinceLastContact(name, now);
      if (!since || *since > kReachableMs) continue;
    }
    fresh.emplace_back(name, m.incarnation);
    names += (names.empty() ? "" : ",") + name;
  }
  const std::uint64_t digest = FoundersId(fresh);
  step.forming = digest;
  bool agreed = fresh.size() >= expect_;
  for (const auto& [name, inc] : fresh) {
    agreed = agreed && (name == membership.self() || membership.Find(name)->forming == digest);
  }
  if (agreed && fresh.size() == 1 && now - started_ms_ < kFoundAloneAfterMs) agreed = false;
  if (agreed) {
    step.kind = FormationStep::Kind::kFound;
    step.cluster_id = digest;
    step.founders = names;
    step.founder_count = fresh.size();
    return step;
  }
  step.reason = "bootstrap-expect " + std::to_string(expect_) + ", " + std::to_string(fresh.size()) + " fresh node" +
                (fresh.size() == 1 ? "" : "s") + " heard (" + names + ")" +
                (fresh.size() >= expect_ ? ", agreeing on the founders" : "");
  return step;
}

}  // namespace lattice::gossip
