#include "node/ring.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace lattice::node {

namespace {
std::uint64_t Score(std::uint32_t partition, std::string_view member) {
  std::string buf(4, '\0');
  std::memcpy(buf.data(), &partition, 4);
  buf.append(member);
  return XXH3_64bits(buf.data(), buf.size());
}
}  // namespace

Ring::Ring(std::uint32_t partitions, std::uint32_t replicas)
    : partitions_(std::has_single_bit(partitions) && partitions <= 65536 ? partitions : 256),
      replicas_(replicas == 0 ? 1 : replicas),
      shift_(64 - std::countr_zero(partitions_)),
      table_(partitions_) {}

void Ring::SetMembers(std::vector<std::string> members) {
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  members_ = std::move(members);
  const std::size_t n = replication();
  table_.assign(partitions_, {});
  std::vector<std::pair<std::uint64_t, const std::string*>> scored;
  for (std::uint32_t p = 0; p < partitions_; ++p) {
    scored.clear();
    for (const auto& m : members_) scored.emplace_back(Score(p, m), &m);
    std::partial_sort(scored.begin(), scored.begin() + static_cast<long>(n), scored.end(),
                      [](const auto& a, const auto& b) {
                        return a.first != b.first ? a.first > b.first : *a.second < *b.second;
                      });
    auto& out = table_[p];
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) out.push_back(*scored[i].second);
  }
}

std::uint32_t Ring::replication() const {
  return std::min<std::uint32_t>(replicas_, static_cast<std::uint32_t>(members_.size()));
}

std::uint32_t Ring::PartitionOfHash(std::uint64_t key_hash) const {
  return shift_ >= 64 ? 0 : static_cast<std::uint32_t>(key_hash >> shift_);
}

std::uint32_t Ring::PartitionOf(std::string_view key) const {
  return PartitionOfHash(XXH3_64bits(key.data(), key.size()));
}

std::uint64_t Ring::FirstHash(std::uint32_t partition) const {
  return shift_ >= 64 ? 0 : static_cast<std::uint64_t>(partition) << shift_;
}

const std::vector<std::string>& Ring::Replicas(std::uint32_t partition) const {
  static const std::vector<std::string> kNone;
  return partition < table_.size() ? table_[partition] : kNone;
}

const std::vector<std::string>& Ring::ReplicasOf(std::string_view key) const {
  return Replicas(PartitionOf(key));
}

}  // namespace lattice::node
