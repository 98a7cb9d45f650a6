// ReadCoordinator (node/read_coordinator.h).
#include "node/read_coordinator.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "node/coordination.h"

namespace lattice::node {

ReadCoordinator::ReadCoordinator(ReplicaEnv& env, std::string self, const ReplicatorOptions& options, Hooks hooks,
                                 std::uint64_t seed)
    : env_(env), self_(std::move(self)), opt_(options), hooks_(std::move(hooks)), next_id_(seed | 1) {}

void ReadCoordinator::Count(std::uint64_t Stats::*field) {
  std::lock_guard lock(mu_);
  ++(stats_.*field);
}

void ReadCoordinator::Read(const CommandSpec& spec, Args args, std::vector<std::string> keys, Level level,
                           SessionContexts need, Reply done) {
  Pending rp;
  rp.spec = &spec;
  rp.args = std::move(args);
  rp.done = std::move(done);
  rp.keys = std::move(keys);
  rp.deadline_ms = env_.NowMs() + opt_.request_timeout_ms;
  for (const auto& k : rp.keys) {
    if (auto it = need.find(k); it != need.end()) rp.need.insert(*it);
  }
  for (std::size_t k = 0; k < rp.keys.size(); ++k) {
    auto serving = hooks_.serving(rp.keys[k]);
    if (!serving) return rp.done(Stopping());
    const auto& [n, order] = *serving;
    const std::uint32_t required = Required(level, n);
    if (order.size() < required) {
      Count(&Stats::unavailable);
      return rp.done(Unavailable(required, n, order.size()));
    }
    rp.required.push_back(required);
    for (std::uint32_t i = 0; i < required; ++i) rp.targets[order[i]].push_back(k);
  }
  {
    std::lock_guard lock(mu_);
    if (stopped_) return rp.done(Stopping());
    ++stats_.reads;
  }
  Launch(std::move(rp));
}

void ReadCoordinator::Gather(std::vector<std::string> keys, std::function<void(StateMap&&)> fn) {
  Pending rp;
  rp.keys = std::move(keys);
  rp.on_joined = std::move(fn);
  for (std::size_t k = 0; k < rp.keys.size(); ++k) {
    auto serving = hooks_.serving(rp.keys[k]);
    if (!serving) return;
    rp.required.push_back(static_cast<std::uint32_t>(serving->second.size()));
    for (const auto& m : serving->second) rp.targets[m].push_back(k);
  }
  Launch(std::move(rp));
}

void ReadCoordinator::GatherAtLeast(const std::string& key, std::uint32_t required, storage::Members select,
                                    std::function<void(StateMap&&)> fn) {
  Pending rp;
  rp.keys = {key};
  rp.on_joined = std::move(fn);
  rp.strict = true;
  rp.select = std::move(select);
  auto serving = hooks_.serving(key);
  if (!serving) return;
  for (const auto& m : serving->second) rp.targets[m].push_back(0);
  rp.required = {required};
  Launch(std::move(rp));
}

void ReadCoordinator::Launch(Pending rp) {
  rp.states.resize(rp.keys.size());
  auto targets = rp.targets;
  auto all_keys = rp.keys;
  const storage::Members select = rp.select;
  std::uint64_t id = 0;
  {
    std::unique_lock lock(mu_);
    if (stopped_) {
      lock.unlock();
      if (rp.done) rp.done(Stopping());
      return;
    }
    id = next_id_++;
    reads_.emplace(id, std::move(rp));
  }
  env_.After(opt_.request_timeout_ms, [wk = weak_from_this(), id] {
    if (auto self = wk.lock()) self->Timeout(id);
  });
  if (targets.empty()) return OnReply("", id, {});
  for (const auto& [member, indices] : targets) {
    std::vector<std::string> keys;
    for (auto k : indices) keys.push_back(all_keys[k]);
    Ask(member, id, keys, select);
  }
}

void ReadCoordinator::Ask(const std::string& member, std::uint64_t id, const std::vector<std::string>& keys,
                          const storage::Members& select) {
  if (member == self_) return OnReply(self_, id, hooks_.load_here(keys, select));
  SendRequest(member, id, keys, select);
}

void ReadCoordinator::SendRequest(const std::string& member, std::uint64_t id, const std::vector<std::string>& keys,
                                  const storage::Members& select) {
  env_.Send(member, Build(env_.WallHlc(), [&](auto root) {
              auto r = root.initRead();
              r.setId(id);
              FillBytes(r.initKeys(static_cast<unsigned>(keys.size())), keys);
              if (!select.all) {
                r.setSelected(true);
                FillBytes(r.initMembers(static_cast<unsigned>(select.names.size())), select.names);
              }
            }),
            true);
  env_.After(opt_.resend_ms, [wk = weak_from_this(), member, id, keys, select] {
    auto self = wk.lock();
    if (!self) return;
    {
      std::lock_guard lock(self->mu_);
      auto it = self->reads_.find(id);
      if (it == self->reads_.end() || it->second.answered.count(member) || self->stopped_) return;
    }
    self->SendRequest(member, id, keys, select);
  });
}

void ReadCoordinator::Timeout(std::uint64_t id) {
  Pending rp;
  {
    std::lock_guard lock(mu_);
    auto it = reads_.find(id);
    if (it == reads_.end()) return;
    rp = std::move(it->second);
    reads_.erase(it);
    ++stats_.timeouts;
  }
  if (rp.strict) return;                // the request it serves answers at its own deadline
  if (rp.on_joined) return Finish(rp);  // a gather goes on with what it has
  std::uint32_t need = 0, got = 0;
  for (std::size_t k = 0; k < rp.keys.size(); ++k) {
    if (rp.states[k].size() < rp.required[k]) {
      need = rp.required[k];
      got = static_cast<std::uint32_t>(rp.states[k].size());
      break;
    }
  }
  rp.done(Answer::Of(Outcome::kTimeout,
                     "answered by " + std::to_string(got) + " of " + std::to_string(need) + " required replicas"));
}

void ReadCoordinator::OnRefused(const std::string& from, std::uint64_t id) {
  // The keys `from` was asked, and each key's serving replicas now.
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    auto it = reads_.find(id);
    if (it == reads_.end()) return;
    auto t = it->second.targets.find(from);
    if (t == it->second.targets.end() || it->second.answered.count(from)) return;
    for (auto k : t->second) keys.push_back(it->second.keys[k]);
  }
  std::vector<std::vector<std::string>> serving;
  for (const auto& key : keys) {
    auto s = hooks_.serving(key);
    if (!s) return;
    serving.push_back(std::move(s->second));
  }
  std::map<std::string, std::vector<std::string>> resend;
  storage::Members select = storage::Members::All();
  {
    std::lock_guard lock(mu_);
    auto it = reads_.find(id);
    if (it == reads_.end()) return;
    Pending& rp = it->second;
    auto t = rp.targets.find(from);
    if (t == rp.targets.end() || rp.answered.count(from)) return;
    rp.answered.insert(from);
    const std::vector<std::size_t> indices = t->second;
    for (std::size_t j = 0; j < indices.size() && j < serving.size(); ++j) {
      const std::size_t k = indices[j];
      for (const auto& r : serving[j]) {
        if (r == from || rp.targets.count(r)) continue;
        rp.targets[r].push_back(k);
        resend[r].push_back(rp.keys[k]);
        break;
      }
    }
    select = rp.select;
  }
  for (const auto& [member, ks] : resend) Ask(member, id, ks, select);
}

void ReadCoordinator::OnReply(const std::string& from, std::uint64_t id, std::vector<std::string> states) {
  std::unique_lock lock(mu_);
  auto it = reads_.find(id);
  if (it == reads_.end()) return;
  Pending& rp = it->second;
  if (!from.empty()) {
    auto t = rp.targets.find(from);
    if (t == rp.targets.end() || rp.answered.count(from) || t->second.size() != states.size()) return;
    rp.answered.insert(from);
    for (std::size_t j = 0; j < states.size(); ++j) rp.states[t->second[j]].emplace_back(from, std::move(states[j]));
  }
  for (std::size_t k = 0; k < rp.keys.size(); ++k) {
    if (rp.states[k].size() < rp.required[k]) return;
  }
  Pending done = std::move(rp);
  reads_.erase(it);
  lock.unlock();
  Finish(done);
}

void ReadCoordinator::Finish(Pending& rp) {
  StateMap overlay;
  for (std::size_t k = 0; k < rp.keys.size(); ++k) {
    crdt::KeyState joined;
    for (const auto& [member, encoded] : rp.states[k]) {
      if (encoded.empty()) continue;
      auto s = crdt::DecodeKeyState(encoded);
      if (!s.ok()) {
        spdlog::warn("a state of key '{}' from {} does not decode: {}", rp.keys[k], member, s.status().ToString());
        continue;
      }
      joined.Join(*s);
    }
    overlay[rp.keys[k]] = std::move(joined);
  }
  // Read repair: whoever answered with less gets the joined state (not from
  // a removal's gather: its minter's delta carries what matters, and a
  // partial state must not be sent as a whole one).
  for (std::size_t k = 0; !rp.strict && k < rp.keys.size(); ++k) {
    const crdt::KeyState& joined = overlay[rp.keys[k]];
    const std::string encoded = joined.Empty() ? std::string() : crdt::EncodeKeyState(joined);
    for (const auto& [member, theirs] : rp.states[k]) {
      if (theirs == encoded) continue;
      Count(&Stats::read_repairs);
      hooks_.repair(member, rp.keys[k], encoded);
    }
  }
  if (rp.on_joined) return rp.on_joined(std::move(overlay));
  auto pending = std::make_shared<Pending>(std::move(rp));
  {
    std::lock_guard lock(mu_);
    if (stopped_) return pending->done(Stopping());
    covering_.insert(pending);
  }
  AnswerCovered(pending, std::move(overlay));
}

bool ReadCoordinator::TakeCovering(const std::shared_ptr<Pending>& rp) {
  std::lock_guard lock(mu_);
  return covering_.erase(rp) > 0;
}

void ReadCoordinator::AnswerCovered(std::shared_ptr<Pending> rp, StateMap overlay) {
  std::vector<std::string> uncovered;
  for (const auto& [key, need] : rp->need) {
    if (!Covers(overlay[key], need)) uncovered.push_back(key);
  }
  if (uncovered.empty()) {
    if (!TakeCovering(rp)) return;
    SessionContexts observed;
    for (const auto& [key, state] : overlay) {
      if (!state.Empty()) observed[key] = state.Context();
    }
    Answer answer = hooks_.run(*rp->spec, rp->args, overlay);
    answer.observed = std::move(observed);
    return rp->done(std::move(answer));
  }
  if (env_.NowMs() >= rp->deadline_ms) {
    if (!TakeCovering(rp)) return;
    Count(&Stats::stale);
    return rp->done(Stale(uncovered.front()));
  }
  Count(&Stats::session_gathers);
  auto shared = std::make_shared<StateMap>(std::move(overlay));
  Gather(uncovered, [wk = weak_from_this(), rp, shared](StateMap&& more) {
    auto self = wk.lock();
    if (!self) return;
    for (auto& [key, state] : more) (*shared)[key].Join(state);
    bool covered = true;
    for (const auto& [key, need] : rp->need) covered = covered && Covers((*shared)[key], need);
    if (covered || self->env_.NowMs() >= rp->deadline_ms) return self->AnswerCovered(rp, std::move(*shared));
    self->env_.After(100, [wk, rp, shared] {
      if (auto again = wk.lock()) again->AnswerCovered(rp, std::move(*shared));
    });
  });
}

void ReadCoordinator::Stop() {
  std::map<std::uint64_t, Pending> pending;
  std::set<std::shared_ptr<Pending>> covering;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    pending.swap(reads_);
    covering.swap(covering_);
  }
  for (const auto& p : covering) p->done(Stopping());
  for (auto& [id, p] : pending) {
    if (p.done) p.done(Stopping());
  }
}

ReadCoordinator::Stats ReadCoordinator::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace lattice::node
