#include "merkle/tree.h"

#include <algorithm>

#include <xxhash.h>

#include <cstring>
#include <memory>

namespace lattice::merkle {

Digest KeyDigest(std::string_view key, std::string_view encoded_state) {
  // One hashing state per thread, made once: this runs for every record written.
  thread_local std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(),
                                                                                     XXH3_freeState);
  XXH3_state_t* st = state.get();
  XXH3_128bits_reset(st);
  const std::uint64_t len = key.size();  // length first: (key, state) splits are unambiguous
  XXH3_128bits_update(st, &len, sizeof len);
  XXH3_128bits_update(st, key.data(), key.size());
  XXH3_128bits_update(st, encoded_state.data(), encoded_state.size());
  XXH128_hash_t h = XXH3_128bits_digest(st);
  return Digest{h.high64, h.low64};
}

namespace {
Digest HashPair(const Digest& a, const Digest& b) {
  if (a == Digest{} && b == Digest{}) return Digest{};  // empty subtrees hash to zero
  std::uint64_t buf[4] = {a.hi, a.lo, b.hi, b.lo};
  XXH128_hash_t h = XXH3_128bits(buf, sizeof buf);
  return Digest{h.high64, h.low64};
}
}  // namespace

Tree::Tree(std::uint64_t first, std::uint64_t span, int leaf_bits)
    : first_(first), span_(span), leaf_bits_(leaf_bits < 0 ? 0 : leaf_bits > 20 ? 20 : leaf_bits) {
  levels_.resize(static_cast<std::size_t>(leaf_bits_) + 1);
  for (int l = 0; l <= leaf_bits_; ++l) levels_[static_cast<std::size_t>(l)].assign(std::size_t{1} << l, Digest{});
}

std::uint32_t Tree::LeafOf(std::uint64_t key_hash) const {
  const std::uint64_t offset = key_hash - first_;
  if (leaf_bits_ == 0) return 0;
  if (span_ == 0) return static_cast<std::uint32_t>(offset >> (64 - leaf_bits_));
  // offset * leaves / span without overflow.
  const unsigned __int128 scaled = static_cast<unsigned __int128>(offset) << leaf_bits_;
  return static_cast<std::uint32_t>(scaled / span_);
}

std::pair<std::uint64_t, std::uint64_t> Tree::LeafRange(std::uint32_t leaf) const {
  const unsigned __int128 span = span_ == 0 ? (static_cast<unsigned __int128>(1) << 64) : span_;
  auto start = [&](std::uint64_t i) {
    // The first offset whose leaf is i: ceil(i * span / leaves).
    unsigned __int128 num = static_cast<unsigned __int128>(i) * span;
    unsigned __int128 den = static_cast<unsigned __int128>(1) << leaf_bits_;
    return static_cast<std::uint64_t>((num + den - 1) / den);
  };
  std::uint64_t lo = first_ + start(leaf);
  std::uint64_t hi = first_ + (leaf + 1 == leaves() ? static_cast<std::uint64_t>(span - 1) : start(leaf + 1) - 1);
  return {lo, hi};
}

void Tree::Update(std::uint64_t key_hash, const Digest& old_digest, const Digest& new_digest) {
  if (old_digest == new_digest) return;
  std::uint32_t index = LeafOf(key_hash);
  Digest& leaf = levels_[static_cast<std::size_t>(leaf_bits_)][index];
  leaf ^= old_digest;
  leaf ^= new_digest;
  for (int l = leaf_bits_ - 1; l >= 0; --l) {
    index >>= 1;
    Recompute(l, index);
  }
}

void Tree::UpdateMany(const Change* changes, std::size_t n) {
  std::vector<std::uint32_t> dirty;
  UpdateMany(changes, n, dirty);
}

void Tree::UpdateMany(const Change* changes, std::size_t n, std::vector<std::uint32_t>& dirty) {
  dirty.clear();
  dirty.reserve(n);
  auto& leaves = levels_[static_cast<std::size_t>(leaf_bits_)];
  for (std::size_t i = 0; i < n; ++i) {
    if (changes[i].old_digest == changes[i].new_digest) continue;
    const std::uint32_t index = LeafOf(changes[i].key_hash);
    leaves[index] ^= changes[i].old_digest;
    leaves[index] ^= changes[i].new_digest;
    dirty.push_back(index);
  }
  std::sort(dirty.begin(), dirty.end());
  dirty.erase(std::unique(dirty.begin(), dirty.end()), dirty.end());
  for (int l = leaf_bits_ - 1; l >= 0; --l) {
    std::size_t out = 0;
    for (std::size_t i = 0; i < dirty.size(); ++i) {
      const std::uint32_t parent = dirty[i] >> 1;
      if (out > 0 && dirty[out - 1] == parent) continue;
      dirty[out++] = parent;
      Recompute(l, parent);
    }
    dirty.resize(out);
  }
}

void Tree::Recompute(int level, std::uint32_t index) {
  const auto& below = levels_[static_cast<std::size_t>(level) + 1];
  levels_[static_cast<std::size_t>(level)][index] = HashPair(below[2 * index], below[2 * index + 1]);
}

std::vector<std::uint32_t> Tree::DifferingNodes(int level, const std::vector<std::uint32_t>& indices,
                                                const std::vector<Digest>& remote) const {
  std::vector<std::uint32_t> out;
  for (std::size_t i = 0; i < indices.size() && i < remote.size(); ++i) {
    if (!(levels_[static_cast<std::size_t>(level)][indices[i]] == remote[i])) out.push_back(indices[i]);
  }
  return out;
}

std::vector<std::uint32_t> Tree::Diff(const Tree& other) const {
  std::vector<std::uint32_t> frontier{0};
  for (int level = 0;; ++level) {
    std::vector<Digest> remote;
    for (std::uint32_t i : frontier) remote.push_back(other.Node(level, i));
    frontier = DifferingNodes(level, frontier, remote);
    if (frontier.empty() || level == leaf_bits_) return frontier;
    std::vector<std::uint32_t> children;
    for (std::uint32_t i : frontier) {
      children.push_back(2 * i);
      children.push_back(2 * i + 1);
    }
    frontier = std::move(children);
  }
}

}  // namespace lattice::merkle
