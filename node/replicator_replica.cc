// Replicator::Impl, the replica side of a write: minting a forwarded command
// (session coverage, request ids remembered with their reply, a gathered base
// joined first), answering its coordinator, pushing the delta to the other
// replicas, and applying the deltas and states that arrive. The coordinator
// side is in node/replicator.cc; the shared state is declared in
// node/replicator_internal.h.
#include "node/replicator_internal.h"

#include <spdlog/spdlog.h>

#include "crdt/codec.h"
#include "gossip/wire.h"

namespace lattice::node {

void Replicator::Impl::Mint(const std::string& coordinator, std::uint64_t id, const Args& args, const crdt::DotContext& need, const std::string& base, bool base_partial) {
  const auto dedup = std::make_pair(coordinator, id);
  {
    std::unique_lock lock(mu);
    if (auto it = minted.find(dedup); it != minted.end()) {
      ++stats.duplicates;
      if (!it->second.done) return;
      Minted m = it->second;
      lock.unlock();
      Replay(coordinator, id, m);
      return;
    }
    minted[dedup] = Minted{};
    minted_order.push_back(dedup);
    while (minted_order.size() > opt.dedup_entries) {
      auto old = minted.find(minted_order.front());
      if (old != minted.end() && !old->second.done) break;  // still running
      if (old != minted.end()) minted.erase(old);
      minted_order.pop_front();
    }
  }
  bool rebuilding = false;
  {
    std::lock_guard lock(mu);
    rebuilding = view.joining.count(self) > 0 ||
                 ((opt.fresh_start || earlier_life) && env.NowMs() < started_ms + opt.request_timeout_ms);
  }
  if (rebuilding) {
    return Finish(coordinator, id,
                  Answer::Of(Outcome::kTryAgain, "this replica is rebuilding its data; the command was not applied"),
                  {}, {}, {});
  }
  const CommandSpec* spec = args.empty() ? nullptr : engine.Find(UpperCase(args[0]));
  if (spec == nullptr || !spec->write || !ArityOk(spec->arity, args.size()) || args.size() < 2) {
    return Finish(coordinator, id,
                  Answer::Of(Outcome::kError, "a forwarded command must be one write of a known command"), {}, {}, {});
  }
  struct Job {
    Answer answer;
    std::vector<KeyDelta> deltas;
    std::vector<std::string> changed;
    std::uint64_t hlc = 0;
    bool uncovered = false;
  };
  auto job = std::make_shared<Job>();
  const std::uint64_t now = env.NowMs();
  Engine& e = engine;
  // A non-idempotent command's id is remembered in its own transaction, so
  // that a resend after a restart of this replica is answered, not applied
  // again; the key's whole state is then pushed in place of the lost delta.
  const std::string request = !spec->idempotent ? coordinator + ":" + std::to_string(id) : std::string();
  // A partial base (a removal's gather) holds only the members the command
  // names: only those are rewritten with it.
  const storage::Members base_members = base_partial ? NamedMembers(*spec, args) : storage::Members::All();
  storage::Store::Work work = [job, spec, args, now, request, need, base, base_members, &e](storage::Txn& t) {
    job->answer = Answer{};
    job->deltas.clear();
    job->changed.clear();
    job->uncovered = false;
    job->hlc = PackHlc(e.clock().Last());
    // Session: first join what the coordinator gathered, then mint only if
    // this replica covers what the session has seen of the key.
    if (!base.empty()) {
      auto state = crdt::DecodeKeyState(base);
      if (!state.ok()) return state.status();
      Status s = e.ApplyDelta(t, KeyDelta{args[1], std::move(*state), base_members}, now, job->changed);
      if (!s.ok()) return s;
    }
    if (!need.Empty()) {
      auto loaded = t.Load(args[1], storage::Members::None());
      if (!loaded.ok() && !loaded.status().IsNotFound()) return loaded.status();
      if (!Covers(loaded.ok() ? loaded->state : crdt::KeyState{}, need)) {
        job->uncovered = true;
        return Status::Ok();
      }
    }
    if (!request.empty()) {
      auto prior = t.GetRequest(request);
      if (!prior.ok()) return prior.status();
      if (*prior) {
        // The stored reply of a command applied before (its outcome is not
        // stored: a non-idempotent command is never split, so nothing
        // combines it).
        job->answer.reply = std::move(**prior);
        auto loaded = t.Load(args[1], storage::Members::All());
        if (loaded.ok()) job->deltas.push_back(KeyDelta{args[1], std::move(loaded->state), storage::Members::All()});
        return Status::Ok();
      }
    }
    CommandContext ctx{t, true, now, job->answer.reply, &job->changed};
    ctx.deltas = &job->deltas;
    e.Run(*spec, ctx, args);
    job->answer.outcome = ctx.failed ? Outcome::kRefused : Outcome::kReplied;
    job->answer.count = ctx.count;
    job->hlc = PackHlc(e.clock().Last());
    if (!request.empty()) return t.PutRequest(request, now, job->answer.reply);
    return Status::Ok();
  };
  env.Commit(std::move(work), [wk = weak(), job, coordinator, id, key = args[1]](Status s) {
    auto im = wk.lock();
    if (!im) return;
    if (!s.ok()) {
      return im->Finish(coordinator, id, Answer::Of(Outcome::kError, "write not committed: " + s.message()), {}, {},
                        {});
    }
    if (job->uncovered) {
      // Not remembered: the coordinator resends with a gathered state.
      {
        std::lock_guard lock(im->mu);
        im->minted.erase(std::make_pair(coordinator, id));
      }
      Minted m;
      m.uncovered = true;
      return im->Replay(coordinator, id, m);
    }
    std::optional<KeyDelta> merged;
    for (auto& d : job->deltas) {
      if (!merged) {
        merged = std::move(d);
        continue;
      }
      merged->delta.Join(d.delta);
      if (d.touched.all) merged->touched = storage::Members::All();
      if (!merged->touched.all) {
        merged->touched.names.insert(merged->touched.names.end(), d.touched.names.begin(), d.touched.names.end());
      }
    }
    if (!job->changed.empty()) im->env.Changed(job->changed);
    if (merged) im->watch.Changed(key);
    im->Finish(coordinator, id, std::move(job->answer), std::move(merged), key, job->hlc);
  });
}

void Replicator::Impl::Finish(const std::string& coordinator, std::uint64_t id, Answer answer, std::optional<KeyDelta> delta, const std::string& key, std::uint64_t hlc) {
  Minted m;
  m.done = true;
  m.answer = std::move(answer);
  m.replicated = delta.has_value();
  if (delta) {
    m.delta_message = DeltaMessage(*delta, coordinator, id, hlc);
    m.written = delta->delta.Context();
  }
  {
    std::lock_guard lock(mu);
    if (delta) {
      // Every replica, joining ones included (they must not miss writes).
      std::set<std::string> targets;
      for (const auto& r : ring.ReplicasOf(key)) targets.insert(r);
      for (const auto& r : read_ring.ReplicasOf(key)) targets.insert(r);
      for (const auto& r : next_ring.ReplicasOf(key)) targets.insert(r);
      targets.erase(self);
      m.targets.assign(targets.begin(), targets.end());
    }
    minted[std::make_pair(coordinator, id)] = m;
  }
  Replay(coordinator, id, m);
}

std::string Replicator::Impl::DeltaMessage(const KeyDelta& d, const std::string& ack_to, std::uint64_t ack_id, std::uint64_t hlc) {
  const std::string state = crdt::EncodeKeyState(d.delta);
  return Build(hlc, [&](auto root) {
    auto m = root.initDelta();
    m.setKey(Bytes(d.key));
    m.setState(Bytes(state));
    m.setTouchedAll(d.touched.all);
    FillBytes(m.initTouched(static_cast<unsigned>(d.touched.names.size())), d.touched.names);
    m.setAckTo(ack_to);
    m.setAckId(ack_id);
  });
}

void Replicator::Impl::Replay(const std::string& coordinator, std::uint64_t id, const Minted& m) {
  if (m.replicated) {
    {
      std::lock_guard lock(mu);
      stats.deltas_sent += m.targets.size();
    }
    for (const auto& t : m.targets) outbox->Delta(t, m.delta_message);
  }
  if (coordinator == self) {
    wc->OnReply(self, id, m.answer, m.replicated, m.uncovered, m.written);
  } else {
    env.Send(coordinator, Build(WallHlc(), [&](auto root) {
               auto r = root.initForwardReply();
               r.setId(id);
               PutAnswer(r, m.answer);
               r.setReplicated(m.replicated);
               r.setUncovered(m.uncovered);
               if (!m.written.Empty()) PutContext(r.initContext(), "", m.written);
             }),
             true);
  }
}

void Replicator::Impl::ApplyDelta(KeyDelta d, std::uint64_t hlc, std::string ack_to, std::uint64_t ack_id) {
  struct Job {
    std::vector<std::string> changed;
    Engine::Applied applied = Engine::Applied::kUnchanged;
  };
  auto job = std::make_shared<Job>();
  auto delta = std::make_shared<KeyDelta>(std::move(d));
  const std::uint64_t now = env.NowMs();
  Engine& e = engine;
  storage::Store::Work work = [job, delta, hlc, now, &e](storage::Txn& t) {
    job->changed.clear();
    (void)e.clock().Observe(UnpackHlc(hlc));  // checked on arrival
    return e.ApplyDelta(t, *delta, now, job->changed, &job->applied);
  };
  env.Commit(std::move(work), [wk = weak(), job, delta, ack_to, ack_id](Status s) {
    auto im = wk.lock();
    if (!im) return;
    if (!s.ok()) {
      spdlog::error("applying a delta to key '{}': {}", delta->key, s.ToString());
      return;
    }
    {
      std::lock_guard lock(im->mu);
      ++im->stats.deltas_applied;
      // A whole state nobody acknowledges is a repair (anti-entropy, read repair).
      const bool repair = delta->touched.all && ack_to.empty();
      if (repair && job->applied == Engine::Applied::kChanged) ++im->stats.keys_repaired;
      if (job->applied == Engine::Applied::kIgnored) ++im->stats.retired_ignored;
    }
    if (!job->changed.empty()) im->env.Changed(job->changed);
    if (ack_to.empty()) return;
    if (ack_to == im->self) {
      im->wc->OnAck(im->self, ack_id);
    } else {
      im->outbox->Ack(ack_to, ack_id);
    }
  });
}

bool Replicator::Impl::SendState(const std::string& to, const std::string& key, const std::string& encoded, bool must, bool bulk) {
  if (to == self) {
    auto state = crdt::DecodeKeyState(encoded);
    if (state.ok()) ApplyDelta(KeyDelta{key, std::move(*state), storage::Members::All()}, WallHlc(), "", 0);
    return true;
  }
  std::string message = Build(WallHlc(), [&](auto root) {
    auto m = root.initDelta();
    m.setKey(Bytes(key));
    m.setState(Bytes(encoded));
    m.setTouchedAll(true);
  });
  if (bulk) return env.SendBulk(to, std::move(message));
  env.Send(to, std::move(message), must);
  return true;
}

}  // namespace lattice::node
