// WriteCoordinator (node/write_coordinator.h).
#include "node/write_coordinator.h"

#include <utility>

#include "node/coordination.h"
#include "node/resp.h"

namespace lattice::node {

WriteCoordinator::WriteCoordinator(ReplicaEnv& env, Engine& engine, std::string self,
                                   const ReplicatorOptions& options, Hooks hooks, std::uint64_t seed)
    : env_(env), engine_(engine), self_(std::move(self)), opt_(options), hooks_(std::move(hooks)),
      next_id_(seed | 1) {}

void WriteCoordinator::SplitWrite(const CommandSpec& spec, Args args, Level level, const SessionContexts& need,
                                  Reply done) {
  const bool is_set = std::string_view(spec.name) == "MSET";
  std::vector<Args> parts;
  if (is_set) {
    for (std::size_t i = 1; i + 1 < args.size(); i += 2) parts.push_back({"SET", args[i], args[i + 1]});
  } else {
    for (std::size_t i = 1; i < args.size(); ++i) parts.push_back({args[0], args[i]});
  }
  struct Gather {
    std::mutex mu;
    std::vector<Answer> answers;
    SessionContexts observed;
    std::size_t remaining;
    Reply done;
  };
  auto g = std::make_shared<Gather>();
  g->answers.resize(parts.size());
  g->remaining = parts.size();
  g->done = std::move(done);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    crdt::DotContext part_need;
    if (auto it = need.find(parts[i][1]); it != need.end()) part_need = it->second;
    Write(std::move(parts[i]), level, std::move(part_need), [g, i, is_set](Answer a) {
      std::unique_lock lock(g->mu);
      for (auto& [k, c] : a.observed) g->observed[k].Join(c);
      g->answers[i] = std::move(a);
      if (--g->remaining != 0) return;
      lock.unlock();
      // The first part that did not succeed answers for the command;
      // otherwise MSET's OK, or DEL's keys removed added up.
      Answer whole;
      for (auto& part : g->answers) {
        if (part.outcome != Outcome::kReplied) {
          whole = std::move(part);
          break;
        }
        whole.count += part.count;
      }
      if (whole.outcome == Outcome::kReplied) {
        if (is_set) {
          AppendSimple(whole.reply, "OK");
        } else {
          AppendInt(whole.reply, whole.count);
        }
      }
      whole.observed = std::move(g->observed);
      g->done(std::move(whole));
    });
  }
}

void WriteCoordinator::Write(Args args, Level level, crdt::DotContext session, Reply done) {
  // Quorums are over the key's N replicas; a joining one neither mints nor
  // counts (its acknowledgement would not mean a read could find the write).
  std::optional<Placement> place = hooks_.placement(args[1]);
  std::unique_lock lock(mu_);
  if (stopped_ || !place) {
    lock.unlock();
    return done(Stopping());
  }
  const std::uint32_t need = Required(level, place->replicas.size());
  if (place->writers.size() < need) {
    ++stats_.unavailable;
    lock.unlock();
    return done(Unavailable(need, place->replicas.size(), place->writers.size()));
  }
  const bool local = std::find(place->writers.begin(), place->writers.end(), self_) != place->writers.end();
  const std::uint64_t id = next_id_++;
  Pending& w = writes_[id];
  w.required = need;
  w.done = std::move(done);
  w.minter = local ? self_ : place->writers.front();
  w.counted = std::move(place->counted);
  const CommandSpec* spec = engine_.Find(Upper(args[0]));
  const bool gather_first = spec != nullptr && spec->removes && level != Level::kOne;
  // A removal's gather loads only the members it names (SREM of one member
  // of a large set stays O(log n + delta)); DEL and the like the whole key.
  storage::Members select = gather_first ? NamedMembers(*spec, args) : storage::Members::All();
  const std::string key = args[1];
  w.args = std::move(args);
  w.need = std::move(session);
  ++stats_.writes;
  lock.unlock();
  env_.After(opt_.request_timeout_ms, [wk = weak_from_this(), id] {
    if (auto self = wk.lock()) self->Timeout(id);
  });
  if (!gather_first) return SendForward(id);
  // A removal at QUORUM/ALL: minted on the join of `need` replicas' states,
  // so it removes every write acknowledged at QUORUM before it began.
  const bool partial = !select.all;
  hooks_.gather_at_least(key, need, std::move(select), [wk = weak_from_this(), id, key, partial](StateMap&& joined) {
    auto self = wk.lock();
    if (!self) return;
    {
      std::lock_guard lock(self->mu_);
      auto it = self->writes_.find(id);
      if (it == self->writes_.end() || self->stopped_) return;
      const crdt::KeyState& state = joined[key];
      it->second.base = state.Empty() ? std::string() : crdt::EncodeKeyState(state);
      it->second.base_partial = partial;
    }
    self->SendForward(id);
  });
}

void WriteCoordinator::SendForward(std::uint64_t id) {
  std::unique_lock lock(mu_);
  auto it = writes_.find(id);
  if (it == writes_.end() || stopped_) return;
  const std::string minter = it->second.minter;
  const Args args = it->second.args;
  const crdt::DotContext need = it->second.need;
  const std::string base = it->second.base;
  const bool base_partial = it->second.base_partial;
  ++it->second.sends;
  ++stats_.forwards_sent;
  lock.unlock();
  if (minter == self_) {
    hooks_.mint_here(id, args, need, base, base_partial);
  } else {
    std::string msg = Build(env_.WallHlc(), [&](auto root) {
      auto f = root.initForward();
      f.setId(id);
      FillBytes(f.initArgs(static_cast<unsigned>(args.size())), args);
      if (!need.Empty()) PutContext(f.initNeed(), "", need);
      if (!base.empty()) f.setBase(Bytes(base));
      f.setBasePartial(base_partial);
    });
    env_.Send(minter, std::move(msg), true);
  }
  env_.After(opt_.resend_ms, [wk = weak_from_this(), id] {
    if (auto self = wk.lock()) self->SendForward(id);
  });
}

Answer WriteCoordinator::TimeoutReply(std::size_t acks, std::uint32_t required) {
  return Answer::Of(Outcome::kTimeout, "acknowledged by " + std::to_string(acks) + " of " + std::to_string(required) +
                                           " required replicas; the write may still apply");
}

void WriteCoordinator::Timeout(std::uint64_t id) {
  Pending w;
  bool stale = false;
  {
    std::lock_guard lock(mu_);
    auto it = writes_.find(id);
    if (it == writes_.end()) return;
    w = std::move(it->second);
    writes_.erase(it);
    ++stats_.timeouts;
    stale = w.uncovered && !w.reply;
    if (stale) ++stats_.stale;
  }
  w.done(stale ? Stale(w.args[1]) : TimeoutReply(w.acks.size(), w.required));
}

void WriteCoordinator::PeerDown(const std::string& name) {
  std::vector<Pending> failed;
  const std::set<std::string> reachable = hooks_.reachable();
  {
    std::lock_guard lock(mu_);
    for (auto it = writes_.begin(); it != writes_.end();) {
      Pending& w = it->second;
      // Acknowledgements still possible: counted replicas not yet heard that
      // are reachable (the minter's own reply included).
      std::size_t possible = w.acks.size();
      for (const auto& r : w.counted) {
        if (!w.acks.count(r) && reachable.count(r)) ++possible;
      }
      const bool lost_minter = w.minter == name && !w.reply;
      if ((!w.counted.count(name) || w.acks.count(name) || possible >= w.required) && !lost_minter) {
        ++it;
        continue;
      }
      failed.push_back(std::move(w));
      it = writes_.erase(it);
      ++stats_.timeouts;
    }
  }
  for (auto& w : failed) w.done(TimeoutReply(w.acks.size(), w.required));
}

void WriteCoordinator::OnReply(const std::string& from, std::uint64_t id, Answer answer, bool replicated,
                               bool uncovered, crdt::DotContext written) {
  std::unique_lock lock(mu_);
  auto it = writes_.find(id);
  if (it == writes_.end()) return;
  Pending& w = it->second;
  if (from != w.minter || w.reply) return;
  if (!replicated && answer.outcome == Outcome::kTryAgain && w.sends <= 1) {
    // The minter is rebuilding and saw this command first: it was applied
    // nowhere, so another replica may take it.
    w.rebuilding.insert(from);
    const std::string key = w.args[1];
    lock.unlock();
    std::optional<Placement> place = hooks_.placement(key);
    lock.lock();
    it = writes_.find(id);
    if (it == writes_.end() || !place) return;
    Pending& again = it->second;
    for (const auto& r : place->writers) {
      if (!again.rebuilding.count(r)) {
        again.minter = r;
        again.sends = 0;
        lock.unlock();
        return SendForward(id);
      }
    }
  }
  Pending& p = it->second;
  if (uncovered) {
    // The minter has not seen what the session saw: gather the key from
    // every reachable replica and send the join along (one gather at a time).
    if (p.uncovered) return;
    p.uncovered = true;
    ++stats_.session_gathers;
    const std::string key = p.args[1];
    lock.unlock();
    return GatherForWrite(id, key);
  }
  p.reply = std::move(answer);
  p.written = std::move(written);
  if (p.counted.count(from)) p.acks.insert(from);
  CompleteLocked(it, lock, !replicated);
}

void WriteCoordinator::GatherForWrite(std::uint64_t id, const std::string& key) {
  hooks_.gather({key}, [wk = weak_from_this(), id, key](StateMap&& joined) {
    auto self = wk.lock();
    if (!self) return;
    std::unique_lock lock(self->mu_);
    auto it = self->writes_.find(id);
    if (it == self->writes_.end() || self->stopped_) return;
    const crdt::KeyState& state = joined[key];
    if (Covers(state, it->second.need)) {
      it->second.base = state.Empty() ? std::string() : crdt::EncodeKeyState(state);
      it->second.uncovered = false;
      lock.unlock();
      return self->SendForward(id);
    }
    lock.unlock();
    self->env_.After(100, [wk, id, key] {
      if (auto again = wk.lock()) again->GatherForWrite(id, key);
    });
  });
}

void WriteCoordinator::OnAck(const std::string& from, std::uint64_t id) {
  std::unique_lock lock(mu_);
  ++stats_.acks;
  auto it = writes_.find(id);
  if (it == writes_.end()) return;
  if (it->second.counted.count(from)) it->second.acks.insert(from);
  CompleteLocked(it, lock, false);
}

void WriteCoordinator::CompleteLocked(Iter it, std::unique_lock<std::mutex>& lock, bool now) {
  Pending& w = it->second;
  if (!w.reply || (!now && w.acks.size() < w.required)) return;
  Pending done = std::move(w);
  writes_.erase(it);
  lock.unlock();
  SessionContexts observed;
  if (!done.written.Empty()) observed[done.args[1]] = std::move(done.written);
  Answer answer = std::move(*done.reply);
  answer.observed = std::move(observed);
  done.done(std::move(answer));
}

void WriteCoordinator::Stop() {
  std::map<std::uint64_t, Pending> pending;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    pending.swap(writes_);
  }
  for (auto& [id, w] : pending) w.done(Stopping());
}

WriteCoordinator::Stats WriteCoordinator::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace lattice::node
