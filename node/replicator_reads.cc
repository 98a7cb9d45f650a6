// Replicator::Impl, the read side: coordinated reads (gathering states from
// the level's number of replicas, joining them, read repair, session
// coverage) and SUBSCRIBE across nodes (watch leases and change
// notifications). Writes are in node/replicator.cc (coordinator) and
// node/replicator_replica.cc (minting, deltas); peer messages in
// node/peer_messages.cc; the shared state is declared in
// node/replicator_internal.h.
#include "node/replicator_internal.h"

namespace lattice::node {

void Replicator::Impl::Read(const CommandSpec& spec, Args args, std::vector<std::string> keys, Level level, SessionContexts need, Reply done) {
  std::unique_lock lock(mu);
  if (stopped) {
    lock.unlock();
    return done(Stopping());
  }
  ReadPending rp;
  rp.spec = &spec;
  rp.args = std::move(args);
  rp.done = std::move(done);
  rp.keys = std::move(keys);
  rp.deadline_ms = env.NowMs() + opt.request_timeout_ms;
  for (const auto& k : rp.keys) {
    if (auto it = need.find(k); it != need.end()) rp.need.insert(*it);
  }
  for (std::size_t k = 0; k < rp.keys.size(); ++k) {
    const auto replicas = ring.ReplicasOf(rp.keys[k]);
    const std::uint32_t required = Required(level, replicas.size());
    std::vector<std::string> order = ReachableReplicasLocked(replicas, rp.keys[k]);
    if (order.size() < required) {
      ++stats.unavailable;
      lock.unlock();
      return rp.done(Unavailable(required, replicas.size(), order.size()));
    }
    rp.required.push_back(required);
    for (std::uint32_t i = 0; i < required; ++i) rp.targets[order[i]].push_back(k);
  }
  ++stats.reads;
  lock.unlock();
  Launch(std::move(rp));
}

std::vector<std::string> Replicator::Impl::ReachableReplicasLocked(const std::vector<std::string>& replicas, std::string_view key) const {
  std::vector<std::string> order;
  auto serves = [&](const std::string& r) { return view.reachable.count(r) && !view.joining.count(r); };
  if (serves(self) && !pulling.count(ring.PartitionOf(key)) &&
      std::find(replicas.begin(), replicas.end(), self) != replicas.end()) {
    order.push_back(self);
  }
  for (const auto& r : replicas) {
    if (r != self && serves(r)) order.push_back(r);
  }
  return order;
}

void Replicator::Impl::Gather(std::vector<std::string> keys, std::function<void(StateMap&&)> fn) {
  ReadPending rp;
  rp.keys = std::move(keys);
  rp.on_joined = std::move(fn);
  {
    std::lock_guard lock(mu);
    if (stopped) return;
    for (std::size_t k = 0; k < rp.keys.size(); ++k) {
      std::vector<std::string> order = ReachableReplicasLocked(ring.ReplicasOf(rp.keys[k]), rp.keys[k]);
      rp.required.push_back(static_cast<std::uint32_t>(order.size()));
      for (const auto& m : order) rp.targets[m].push_back(k);
    }
  }
  Launch(std::move(rp));
}

void Replicator::Impl::GatherAtLeast(const std::string& key, std::uint32_t required, storage::Members select,
                                     std::function<void(StateMap&&)> fn) {
  ReadPending rp;
  rp.keys = {key};
  rp.on_joined = std::move(fn);
  rp.strict = true;
  rp.select = std::move(select);
  {
    std::lock_guard lock(mu);
    if (stopped) return;
    for (const auto& m : ReachableReplicasLocked(ring.ReplicasOf(key), key)) rp.targets[m].push_back(0);
  }
  rp.required = {required};
  Launch(std::move(rp));
}

void Replicator::Impl::Launch(ReadPending rp) {
  rp.states.resize(rp.keys.size());
  auto targets = rp.targets;
  auto all_keys = rp.keys;
  const storage::Members select = rp.select;
  std::unique_lock lock(mu);
  const std::uint64_t id = next_id++;
  reads.emplace(id, std::move(rp));
  lock.unlock();
  env.After(opt.request_timeout_ms, [wk = weak(), id] {
    if (auto im = wk.lock()) im->ReadTimeout(id);
  });
  if (targets.empty()) return OnReadReply("", id, {});
  for (const auto& [member, indices] : targets) {
    std::vector<std::string> keys;
    for (auto k : indices) keys.push_back(all_keys[k]);
    if (member == self) {
      OnReadReply(self, id, LoadEncoded(keys, select));
    } else {
      SendReadRequest(member, id, keys, select);
    }
  }
}

void Replicator::Impl::SendReadRequest(const std::string& member, std::uint64_t id, const std::vector<std::string>& keys,
                                       const storage::Members& select) {
  env.Send(member, Build(WallHlc(), [&](auto root) {
             auto r = root.initRead();
             r.setId(id);
             FillBytes(r.initKeys(static_cast<unsigned>(keys.size())), keys);
             if (!select.all) {
               r.setSelected(true);
               FillBytes(r.initMembers(static_cast<unsigned>(select.names.size())), select.names);
             }
           }),
           true);
  env.After(opt.resend_ms, [wk = weak(), member, id, keys, select] {
    auto im = wk.lock();
    if (!im) return;
    {
      std::lock_guard lock(im->mu);
      auto it = im->reads.find(id);
      if (it == im->reads.end() || it->second.answered.count(member) || im->stopped) return;
    }
    im->SendReadRequest(member, id, keys, select);
  });
}

void Replicator::Impl::ReadTimeout(std::uint64_t id) {
  auto taken = TakeExpired(reads, id);
  if (!taken) return;
  ReadPending& rp = *taken;
  if (rp.strict) return;                    // the request it serves answers at its own deadline
  if (rp.on_joined) return FinishRead(rp);  // a gather goes on with what it has
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

void Replicator::Impl::ReadRefused(const std::string& from, std::uint64_t id) {
  std::map<std::string, std::vector<std::string>> resend;
  storage::Members select = storage::Members::All();
  {
    std::lock_guard lock(mu);
    auto it = reads.find(id);
    if (it == reads.end()) return;
    ReadPending& rp = it->second;
    auto t = rp.targets.find(from);
    if (t == rp.targets.end() || rp.answered.count(from)) return;
    rp.answered.insert(from);
    const std::vector<std::size_t> indices = t->second;
    for (auto k : indices) {
      for (const auto& r : ReachableReplicasLocked(ring.ReplicasOf(rp.keys[k]), rp.keys[k])) {
        if (r == from || rp.targets.count(r)) continue;
        rp.targets[r].push_back(k);
        resend[r].push_back(rp.keys[k]);
        break;
      }
    }
    select = rp.select;
  }
  for (const auto& [member, keys] : resend) {
    if (member == self) {
      OnReadReply(self, id, LoadEncoded(keys, select));
    } else {
      SendReadRequest(member, id, keys, select);
    }
  }
}

void Replicator::Impl::OnReadReply(const std::string& from, std::uint64_t id, std::vector<std::string> states) {
  std::unique_lock lock(mu);
  auto it = reads.find(id);
  if (it == reads.end()) return;
  ReadPending& rp = it->second;
  if (!from.empty()) {
    auto t = rp.targets.find(from);
    if (t == rp.targets.end() || rp.answered.count(from) || t->second.size() != states.size()) return;
    rp.answered.insert(from);
    for (std::size_t j = 0; j < states.size(); ++j) rp.states[t->second[j]].emplace_back(from, std::move(states[j]));
  }
  for (std::size_t k = 0; k < rp.keys.size(); ++k) {
    if (rp.states[k].size() < rp.required[k]) return;
  }
  ReadPending done = std::move(rp);
  reads.erase(it);
  lock.unlock();
  FinishRead(done);
}

void Replicator::Impl::FinishRead(ReadPending& rp) {
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
      {
        std::lock_guard lock(mu);
        ++stats.read_repairs;
      }
      SendState(member, rp.keys[k], encoded, false);
    }
  }
  if (rp.on_joined) return rp.on_joined(std::move(overlay));
  auto pending = std::make_shared<ReadPending>(std::move(rp));
  {
    std::lock_guard lock(mu);
    covering.insert(pending);
  }
  AnswerCovered(pending, std::move(overlay));
}

bool Replicator::Impl::TakeCovering(const std::shared_ptr<ReadPending>& rp) {
  std::lock_guard lock(mu);
  return covering.erase(rp) > 0;
}

void Replicator::Impl::AnswerCovered(std::shared_ptr<ReadPending> rp, StateMap overlay) {
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
    Answer answer = RunLocal(*rp->spec, rp->args, &overlay);
    answer.observed = std::move(observed);
    return rp->done(std::move(answer));
  }
  if (env.NowMs() >= rp->deadline_ms) {
    if (!TakeCovering(rp)) return;
    {
      std::lock_guard lock(mu);
      ++stats.stale;
    }
    return rp->done(Stale(uncovered.front()));
  }
  {
    std::lock_guard lock(mu);
    ++stats.session_gathers;
  }
  auto shared = std::make_shared<StateMap>(std::move(overlay));
  Gather(uncovered, [wk = weak(), rp, shared](StateMap&& more) {
    auto im = wk.lock();
    if (!im) return;
    for (auto& [key, state] : more) (*shared)[key].Join(state);
    bool covered = true;
    for (const auto& [key, need] : rp->need) covered = covered && Covers((*shared)[key], need);
    if (covered || im->env.NowMs() >= rp->deadline_ms) return im->AnswerCovered(rp, std::move(*shared));
    im->env.After(100, [wk, rp, shared] {
      if (auto again = wk.lock()) again->AnswerCovered(rp, std::move(*shared));
    });
  });
}

void Replicator::Impl::Swept(const std::vector<std::string>& keys) {
  for (const auto& key : keys) {
    bool first = false;
    {
      std::lock_guard lock(mu);
      auto replicas = ReachableReplicasLocked(ring.ReplicasOf(key), key);
      first = !replicas.empty() && replicas.front() == self;
    }
    if (first) watch.Changed(key);
  }
}

}  // namespace lattice::node
