// Replica (node/replica.h): minting, answering, pushing and applying.
#include "node/replica.h"

#include <spdlog/spdlog.h>

#include <set>

#include "crdt/codec.h"
#include "node/answer_wire.h"
#include "node/coordination.h"
#include "node/resp.h"

namespace lattice::node {

namespace {

std::string DeltaMessage(const KeyDelta& d, const std::string& ack_to, std::uint64_t ack_id, std::uint64_t hlc) {
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

}  // namespace

Replica::Replica(ReplicaEnv& env, Engine& engine, std::string self, const ReplicatorOptions& options,
                 std::shared_ptr<gossip::PeerOutbox> outbox, Hooks hooks)
    : env_(env), engine_(engine), self_(std::move(self)), opt_(options), outbox_(std::move(outbox)),
      hooks_(std::move(hooks)), started_ms_(env.NowMs()) {}

void Replica::EarlierLife() {
  std::lock_guard lock(mu_);
  earlier_life_ = true;
}

Replica::Stats Replica::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Replica::Mint(const std::string& coordinator, std::uint64_t id, const Args& args, const crdt::DotContext& need, const std::string& base, bool base_partial) {
  const auto dedup = std::make_pair(coordinator, id);
  {
    std::unique_lock lock(mu_);
    if (auto it = minted_.find(dedup); it != minted_.end()) {
      ++stats_.duplicates;
      if (!it->second.done) return;
      Minted m = it->second;
      lock.unlock();
      Replay(coordinator, id, m);
      return;
    }
    minted_[dedup] = Minted{};
    minted_order_.push_back(dedup);
    while (minted_order_.size() > opt_.dedup_entries) {
      auto old = minted_.find(minted_order_.front());
      if (old != minted_.end() && !old->second.done) break;  // still running
      if (old != minted_.end()) minted_.erase(old);
      minted_order_.pop_front();
    }
  }
  bool earlier = false;
  {
    std::lock_guard lock(mu_);
    earlier = earlier_life_;
  }
  const bool rebuilding = hooks_.joining() ||
                          ((opt_.fresh_start || earlier) && env_.NowMs() < started_ms_ + opt_.request_timeout_ms);
  if (rebuilding) {
    return Finish(coordinator, id,
                  Answer::Of(Outcome::kTryAgain, "this replica is rebuilding its data; the command was not applied"),
                  {}, {}, {});
  }
  const CommandSpec* spec = args.empty() ? nullptr : engine_.Find(Upper(args[0]));
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
  const std::uint64_t now = env_.NowMs();
  Engine& e = engine_;
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
      bool covered = Covers(loaded.ok() ? loaded->state : crdt::KeyState{}, need);
      if (!covered && !loaded.ok()) {
        // No record: what this node retired of the key (a collected
        // tombstone) covers what a session saw of it before.
        auto retired = t.GetRetiredKey(args[1]);
        if (!retired.ok()) return retired.status();
        covered = *retired && (*retired)->context.Covers(need);
      }
      if (!covered) {
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
  env_.Commit(std::move(work), [wk = weak_from_this(), job, coordinator, id, key = args[1]](Status s) {
    auto im = wk.lock();
    if (!im) return;
    if (!s.ok()) {
      return im->Finish(coordinator, id, Answer::Of(Outcome::kError, "write not committed: " + s.message()), {}, {},
                        {});
    }
    if (job->uncovered) {
      // Not remembered: the coordinator resends with a gathered state.
      {
        std::lock_guard lock(im->mu_);
        im->minted_.erase(std::make_pair(coordinator, id));
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
    if (!job->changed.empty()) im->env_.Changed(job->changed);
    if (merged) im->hooks_.minted_change(key);
    im->Finish(coordinator, id, std::move(job->answer), std::move(merged), key, job->hlc);
  });
}

void Replica::Finish(const std::string& coordinator, std::uint64_t id, Answer answer, std::optional<KeyDelta> delta, const std::string& key, std::uint64_t hlc) {
  Minted m;
  m.done = true;
  m.answer = std::move(answer);
  m.replicated = delta.has_value();
  if (delta) {
    m.delta_message = DeltaMessage(*delta, coordinator, id, hlc);
    m.written = delta->delta.Context();
    m.targets = hooks_.targets(key);
  }
  {
    std::lock_guard lock(mu_);
    minted_[std::make_pair(coordinator, id)] = m;
  }
  Replay(coordinator, id, m);
}

void Replica::Replay(const std::string& coordinator, std::uint64_t id, const Minted& m) {
  if (m.replicated) {
    {
      std::lock_guard lock(mu_);
      stats_.deltas_sent += m.targets.size();
    }
    for (const auto& t : m.targets) outbox_->Delta(t, m.delta_message);
  }
  if (coordinator == self_) {
    hooks_.reply_here(id, m.answer, m.replicated, m.uncovered, m.written);
  } else {
    env_.Send(coordinator, Build(env_.WallHlc(), [&](auto root) {
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

void Replica::Apply(KeyDelta d, std::uint64_t hlc, std::string ack_to, std::uint64_t ack_id) {
  struct Job {
    std::vector<std::string> changed;
    Engine::Applied applied = Engine::Applied::kUnchanged;
  };
  auto job = std::make_shared<Job>();
  auto delta = std::make_shared<KeyDelta>(std::move(d));
  const std::uint64_t now = env_.NowMs();
  Engine& e = engine_;
  storage::Store::Work work = [job, delta, hlc, now, &e](storage::Txn& t) {
    job->changed.clear();
    (void)e.clock().Observe(UnpackHlc(hlc));  // checked on arrival
    return e.ApplyDelta(t, *delta, now, job->changed, &job->applied);
  };
  env_.Commit(std::move(work), [wk = weak_from_this(), job, delta, ack_to, ack_id](Status s) {
    auto im = wk.lock();
    if (!im) return;
    if (!s.ok()) {
      spdlog::error("applying a delta to key '{}': {}", delta->key, s.ToString());
      return;
    }
    {
      std::lock_guard lock(im->mu_);
      ++im->stats_.deltas_applied;
      // A whole state nobody acknowledges is a repair (anti-entropy, read repair).
      const bool repair = delta->touched.all && ack_to.empty();
      if (repair && job->applied == Engine::Applied::kChanged) ++im->stats_.keys_repaired;
      if (job->applied == Engine::Applied::kIgnored) ++im->stats_.retired_ignored;
    }
    if (!job->changed.empty()) im->env_.Changed(job->changed);
    if (ack_to.empty()) return;
    if (ack_to == im->self_) {
      im->hooks_.ack_here(ack_id);
    } else {
      im->outbox_->Ack(ack_to, ack_id);
    }
  });
}

void Replica::SendState(const std::string& to, const std::string& key, const std::string& encoded) {
  if (to == self_) {
    auto state = crdt::DecodeKeyState(encoded);
    if (state.ok()) Apply(KeyDelta{key, std::move(*state), storage::Members::All()}, env_.WallHlc(), "", 0);
    return;
  }
  std::string message = Build(env_.WallHlc(), [&](auto root) {
    auto m = root.initDelta();
    m.setKey(Bytes(key));
    m.setState(Bytes(encoded));
    m.setTouchedAll(true);
  });
  env_.Send(to, std::move(message), false);
}

}  // namespace lattice::node
