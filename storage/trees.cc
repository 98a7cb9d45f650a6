#include "storage/trees.h"

#include <xxhash.h>

#include <algorithm>

#include "storage/records.h"
#include "storage/view.h"

namespace lattice::storage {

using records::Table;

Trees::Trees(std::uint32_t partitions, int leaf_bits) : partitions_(partitions), leaf_bits_(leaf_bits) {
  if (partitions_ == 0 || (partitions_ & (partitions_ - 1)) != 0) partitions_ = 256;
  int bits = 0;
  while ((1u << bits) < partitions_) ++bits;
  shift_ = 64 - bits;
  trees_ = Empty();
}

std::vector<merkle::Tree> Trees::Empty() const {
  const int bits = 64 - shift_;
  const std::uint64_t span = bits == 0 ? 0 : std::uint64_t{1} << (64 - bits);
  std::vector<merkle::Tree> out;
  out.reserve(partitions_);
  for (std::uint32_t p = 0; p < partitions_; ++p) out.emplace_back(span * p, span, leaf_bits_);
  return out;
}

Status Trees::Rebuild(View& view) {
  std::vector<merkle::Tree> trees = Empty();
  for (Table table : {Table::kKeys, Table::kMembers}) {
    auto c = view.Cursor(table);
    for (c->Seek(""); c->Valid(); c->Next()) {
      merkle::Digest d;
      if (!records::StoredRecordDigest(table, c->key(), c->value(), d)) continue;  // reported when read
      const std::uint64_t h = records::GetBE64(c->key().data());
      trees[h >> shift_].Update(h, merkle::Digest{}, d);
    }
    if (Status s = c->status(); !s.ok()) return s;
  }
  std::lock_guard lock(mu_);
  trees_ = std::move(trees);
  return Status::Ok();
}

void Trees::Apply(const std::vector<TreeUpdate>& updates) {
  // Grouped by partition (hash order), so each tree recomputes a changed node once per batch.
  std::lock_guard apply_lock(apply_mu_);
  std::vector<merkle::Tree::Change>& changes = changes_;
  changes.clear();
  changes.reserve(updates.size());
  for (const auto& u : updates) changes.push_back({u.key_hash, u.old_digest, u.new_digest});
  std::sort(changes.begin(), changes.end(), [](const auto& a, const auto& b) { return a.key_hash < b.key_hash; });
  {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < changes.size();) {
      const std::uint32_t p = PartitionOfHash(changes[i].key_hash);
      std::size_t j = i;
      while (j < changes.size() && PartitionOfHash(changes[j].key_hash) == p) ++j;
      trees_[p].UpdateMany(changes.data() + i, j - i, dirty_);
      i = j;
    }
  }
  // A huge batch's buffers are not kept.
  constexpr std::size_t kKeep = std::size_t{1} << 16;
  if (changes.capacity() > kKeep) std::vector<merkle::Tree::Change>().swap(changes);
  if (dirty_.capacity() > kKeep) std::vector<std::uint32_t>().swap(dirty_);
}

merkle::Tree Trees::Partition(std::uint32_t p) const {
  std::lock_guard lock(mu_);
  return trees_.at(p);
}

merkle::Digest Trees::Root(std::uint32_t p) const {
  std::lock_guard lock(mu_);
  return trees_.at(p).Root();
}

merkle::Digest Trees::RootsDigest() const {
  std::string roots;
  {
    std::lock_guard lock(mu_);
    for (const auto& tree : trees_) {
      records::PutLE64(roots, tree.Root().hi);
      records::PutLE64(roots, tree.Root().lo);
    }
  }
  const XXH128_hash_t h = XXH3_128bits(roots.data(), roots.size());
  return merkle::Digest{h.high64, h.low64};
}

// A retired record: (replica u64 LE, counter u64 LE) pairs.
Status RetiredContexts::Load(View& view) {
  std::map<std::uint32_t, crdt::DotContext::VersionVector> loaded;
  const std::string_view prefix = records::kRetiredPrefix;
  auto c = view.Cursor(Table::kMeta);
  for (c->Seek(prefix); c->Valid(); c->Next()) {
    const std::string_view name = c->key(), value = c->value();
    if (name.substr(0, prefix.size()) != prefix) break;
    if (name.size() != prefix.size() + 4 || value.size() % 16 != 0) {
      return Status::Corruption("retired-context record is damaged");
    }
    std::uint32_t p = 0;
    for (std::size_t i = prefix.size(); i < name.size(); ++i) p = (p << 8) | static_cast<unsigned char>(name[i]);
    auto& vv = loaded[p];
    for (std::size_t i = 0; i < value.size(); i += 16) {
      vv[records::GetLE64(value.data() + i)] = records::GetLE64(value.data() + i + 8);
    }
  }
  if (Status s = c->status(); !s.ok()) return s;
  std::lock_guard lock(mu_);
  retired_ = std::move(loaded);
  return Status::Ok();
}

std::uint64_t RetiredContexts::MintFloor(std::uint32_t partition, crdt::ReplicaId replica) const {
  std::lock_guard lock(mu_);
  auto it = retired_.find(partition);
  if (it == retired_.end()) return 0;
  auto r = it->second.find(replica);
  return r == it->second.end() ? 0 : r->second;
}

bool RetiredContexts::Retired(std::uint32_t partition, const crdt::DotContext& ctx) const {
  if (ctx.Empty()) return false;
  std::lock_guard lock(mu_);
  auto it = retired_.find(partition);
  if (it == retired_.end()) return false;
  auto within = [&](crdt::ReplicaId r, std::uint64_t counter) {
    auto e = it->second.find(r);
    return e != it->second.end() && counter <= e->second;
  };
  for (const auto& [r, n] : ctx.vv()) {
    if (!within(r, n)) return false;
  }
  for (const auto& d : ctx.cloud()) {
    if (!within(d.replica, d.counter)) return false;
  }
  return true;
}

std::string RetiredContexts::Raise(std::uint32_t partition, const crdt::DotContext& ctx) {
  std::lock_guard lock(mu_);
  auto& vv = retired_[partition];
  auto raise = [&](crdt::ReplicaId r, std::uint64_t n) {
    auto& c = vv[r];
    c = std::max(c, n);
  };
  for (const auto& [r, n] : ctx.vv()) raise(r, n);
  for (const auto& d : ctx.cloud()) raise(d.replica, d.counter);
  std::string out;
  for (const auto& [replica, counter] : vv) {
    records::PutLE64(out, replica);
    records::PutLE64(out, counter);
  }
  return out;
}

}  // namespace lattice::storage
