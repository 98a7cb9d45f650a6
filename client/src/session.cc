#include "client/src/session.h"

#include <unordered_set>

namespace lattice::detail {

std::vector<std::string> SessionTokens::ToResume(const std::vector<std::string>& keys, Held& held,
                                                 std::vector<std::uint64_t>& sent) {
  std::vector<std::string> out;
  std::unordered_set<const std::string*> seen;
  sent.assign(keys.size(), 0);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto it = entries_.find(keys[i]);
    if (it == entries_.end()) continue;
    sent[i] = it->second.gen;
    auto& have = held[keys[i]];
    if (have >= it->second.gen) continue;
    have = it->second.gen;
    for (const auto& t : it->second.tokens) {
      if (seen.insert(t.get()).second) out.push_back(*t);
    }
  }
  if (held.size() > 4 * kKeys) held.clear();  // only costs resumes
  return out;
}

void SessionTokens::Store(const std::vector<std::string>& keys, const std::vector<std::uint64_t>& sent,
                          std::string token, Held& held) {
  auto shared = std::make_shared<const std::string>(std::move(token));
  const std::uint64_t gen = ++gen_;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto [it, inserted] = entries_.try_emplace(keys[i]);
    Entry& e = it->second;
    if (e.gen == (i < sent.size() ? sent[i] : 0)) {
      e.tokens = {shared};
      held[keys[i]] = gen;
    } else {
      e.tokens.push_back(shared);
      if (e.tokens.size() > kMaxTokensPerKey) e.tokens.erase(e.tokens.begin());
    }
    e.gen = gen;
    if (inserted) order_.push_back(keys[i]);
  }
  while (entries_.size() > kKeys) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
}

}  // namespace lattice::detail
