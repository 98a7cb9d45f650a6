// The session's causal context as the nodes hand it out: per key, opaque
// tokens from `SESSION KEYS`, each with a generation, so a connection knows
// which keys it must `SESSION RESUME` before it touches them. No I/O.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace lattice::detail {

class SessionTokens {
 public:
  // What one connection's session on its node holds: key -> generation.
  using Held = std::unordered_map<std::string, std::uint64_t>;
  // Keys kept (the oldest go first), as a node keeps 10,000 keys per session.
  static constexpr std::size_t kKeys = 10000;

  // The tokens a connection holding `held` must resume before a call on
  // `keys`; `held` is updated as if it did. `sent` gets each key's generation
  // now, for Store.
  std::vector<std::string> ToResume(const std::vector<std::string>& keys, Held& held, std::vector<std::uint64_t>& sent);

  // Keeps the token a call on `keys` got back. It replaces a key's tokens when
  // nothing newer arrived since the call was sent (`sent`): the node joined
  // those into it, and `held` then holds it. Otherwise a concurrent call on
  // another connection stored one meanwhile, and both are kept.
  void Store(const std::vector<std::string>& keys, const std::vector<std::uint64_t>& sent, std::string token,
             Held& held);

 private:
  static constexpr std::size_t kMaxTokensPerKey = 8;
  struct Entry {
    std::vector<std::shared_ptr<const std::string>> tokens;  // usually one
    std::uint64_t gen = 0;
  };
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::string> order_;
  std::uint64_t gen_ = 0;
};

}  // namespace lattice::detail
