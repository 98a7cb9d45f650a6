// TombstoneCollector (gossip/collector.h): rounds, queries and retiring.
#include "gossip/collector.h"

#include <spdlog/spdlog.h>

#include "gossip/wire.h"

namespace lattice::gossip {

TombstoneCollector::TombstoneCollector(PeerEnv& env, storage::Store& store, Options options, Placement placement,
                                       std::uint64_t seed)
    : env_(env), store_(store), opt_(options), placement_(std::move(placement)), next_id_(seed | 1) {}

void TombstoneCollector::Round() {
  const std::uint64_t now = env_.NowMs();
  std::string cursor;
  {
    std::lock_guard lock(mu_);
    if (stopped_ || (query_ && now < query_->deadline_ms)) return;  // the query in flight is answered first
    query_.reset();
    cursor = cursor_;
  }
  std::vector<std::pair<std::string, crdt::DotContext>> found;
  std::string next;
  Status s = store_.Read([&](storage::Txn& t) {
    std::vector<std::string> keys;
    auto r = t.Tombstones(cursor, opt_.batch, [&](std::string_view key) { keys.emplace_back(key); });
    if (!r.ok()) return r.status();
    next = std::move(*r);
    for (auto& key : keys) {
      auto loaded = t.Load(key, storage::Members::All());
      if (loaded.ok() && loaded->state.Tombstone()) found.emplace_back(std::move(key), loaded->state.AllContext());
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    spdlog::error("tombstone scan: {}", s.ToString());
    return;
  }
  // The tombstones old enough to offer (this node's own clock: the grace
  // lets deltas in flight land).
  std::vector<std::size_t> old;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    cursor_ = next;
    for (std::size_t i = 0; i < found.size(); ++i) {
      auto [it, fresh] = seen_.try_emplace(found[i].first, now, pass_);
      it->second.second = pass_;
      if (!fresh && now >= it->second.first + opt_.grace_ms) old.push_back(i);
    }
    if (next.empty()) {  // a pass ended: forget tombstones it did not see
      for (auto it = seen_.begin(); it != seen_.end();) {
        it = it->second.second < pass_ ? seen_.erase(it) : std::next(it);
      }
      ++pass_;
    }
  }
  if (old.empty()) return;
  std::vector<std::string> keys;
  for (std::size_t i : old) keys.push_back(found[i].first);
  auto holders = placement_(keys);
  Query q;
  for (std::size_t j = 0; j < old.size() && j < holders.size(); ++j) {
    if (!holders[j]) continue;
    const std::size_t k = q.keys.size();
    q.keys.push_back(std::move(found[old[j]].first));
    q.contexts.push_back(std::move(found[old[j]].second));
    q.failed.push_back(false);
    for (const auto& r : *holders[j]) q.asked[r].push_back(k);
    q.waiting.push_back(std::move(*holders[j]));
  }
  if (q.keys.empty()) return;
  {
    std::lock_guard lock(mu_);
    if (stopped_ || query_) return;
    q.id = next_id_++;
    q.deadline_ms = now + opt_.timeout_ms;
    if (!q.asked.empty()) query_ = q;
  }
  // A cluster of one: every tombstone is stable at once.
  if (q.asked.empty()) return RetireStable(std::move(q));
  for (const auto& [member, indices] : q.asked) {
    env_.Send(member, BuildPeerMessage(env_.WallHlc(), [&](auto root) {
                auto m = root.initGcQuery();
                m.setId(q.id);
                auto list = m.initTombstones(static_cast<unsigned>(indices.size()));
                for (unsigned i = 0; i < indices.size(); ++i) {
                  PutContext(list[i], q.keys[indices[i]], q.contexts[indices[i]]);
                }
              }),
              false);
  }
}

void TombstoneCollector::OnQuery(const std::string& from, std::uint64_t id,
                                 const std::vector<std::pair<std::string, crdt::DotContext>>& tombstones) {
  // A joining node answers too: whether it holds a covering tombstone is a
  // fact about its store whatever else it still lacks, and a joiner that
  // refused would keep a tombstone some replicas collected from being
  // collected by the rest, so their roots (and its join) never settle.
  auto held = std::make_shared<std::vector<bool>>(tombstones.size(), false);
  auto absent = std::make_shared<std::vector<std::pair<std::string, crdt::DotContext>>>();
  Status s = store_.Read([&](storage::Txn& t) {
    for (std::size_t i = 0; i < tombstones.size(); ++i) {
      const auto& [key, ctx] = tombstones[i];
      auto loaded = t.Load(key, storage::Members::All());
      if (loaded.status().IsNotFound()) {
        // Nothing of the key here (collected, or never received: a wiped
        // node, or one standing in for a joiner that only got later
        // writes). Asking for the tombstone itself would deadlock when some
        // replicas have already collected it, as nothing sends it to the
        // others; instead this node retires the offered context first
        // (below), so a delta of the key still on its way here is ignored
        // when it lands, and only then answers "held".
        absent->emplace_back(key, ctx);
        (*held)[i] = true;
      } else if (loaded.ok()) {
        (*held)[i] = loaded->state.Tombstone() && loaded->state.AllContext().Covers(ctx);
      }
    }
    return Status::Ok();
  });
  if (!s.ok()) return;
  auto reply = [wk = weak_from_this(), from, id, held] {
    auto self = wk.lock();
    if (!self) return;
    self->env_.Send(from, BuildPeerMessage(self->env_.WallHlc(), [&](auto root) {
                      auto m = root.initGcReply();
                      m.setId(id);
                      auto list = m.initHeld(static_cast<unsigned>(held->size()));
                      for (unsigned i = 0; i < held->size(); ++i) list.set(i, (*held)[i]);
                    }),
                    false);
  };
  if (absent->empty()) return reply();
  const std::uint64_t now = env_.NowMs();
  env_.Commit(
      [absent, now](storage::Txn& t) {
        for (const auto& [key, ctx] : *absent) {
          if (Status s = t.PutRetiredKey(key, ctx, now); !s.ok()) return s;
        }
        return Status::Ok();
      },
      [reply, held](Status s) {
        if (!s.ok()) {
          spdlog::error("retiring offered tombstone contexts: {}", s.ToString());
          held->assign(held->size(), false);
        }
        reply();
      });
}

void TombstoneCollector::OnReply(const std::string& from, std::uint64_t id, const std::vector<bool>& held) {
  Query done;
  {
    std::lock_guard lock(mu_);
    if (!query_ || query_->id != id) return;
    auto it = query_->asked.find(from);
    if (it == query_->asked.end()) return;
    const auto indices = std::move(it->second);
    query_->asked.erase(it);
    for (std::size_t i = 0; i < indices.size(); ++i) {
      const std::size_t k = indices[i];
      if (i < held.size() && held[i]) {
        query_->waiting[k].erase(from);
      } else {
        query_->failed[k] = true;
      }
    }
    if (!query_->asked.empty()) return;
    done = std::move(*query_);
    query_.reset();
  }
  RetireStable(std::move(done));
}

void TombstoneCollector::RetireStable(Query q) {
  auto keys = std::make_shared<std::vector<std::pair<std::string, crdt::DotContext>>>();
  for (std::size_t i = 0; i < q.keys.size(); ++i) {
    if (!q.failed[i] && q.waiting[i].empty()) keys->emplace_back(q.keys[i], q.contexts[i]);
  }
  if (keys->empty()) return;
  auto retired = std::make_shared<std::uint64_t>(0);
  const std::uint64_t now = env_.NowMs();
  env_.Commit(
      [keys, retired, now](storage::Txn& t) {
        *retired = 0;
        for (const auto& [key, ctx] : *keys) {
          // The tombstone is kept per key (storage/store.h, retired keys).
          auto loaded = t.Load(key, storage::Members::All());
          if (!loaded.ok() && !loaded.status().IsNotFound()) return loaded.status();
          auto r = t.Retire(key, ctx);
          if (!r.ok()) return r.status();
          *retired += *r ? 1 : 0;
          if (*r && loaded.ok()) {
            if (Status s = t.PutRetiredTombstone(key, loaded->state, now); !s.ok()) return s;
          }
        }
        return Status::Ok();
      },
      [wk = weak_from_this(), keys, retired](Status s) {
        auto self = wk.lock();
        if (!self) return;
        if (!s.ok()) {
          spdlog::error("collecting tombstones: {}", s.ToString());
          return;
        }
        std::lock_guard lock(self->mu_);
        self->collected_ += *retired;
        for (const auto& [key, ctx] : *keys) self->seen_.erase(key);
      });
}

void TombstoneCollector::Stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
  query_.reset();
}

std::uint64_t TombstoneCollector::collected() const {
  std::lock_guard lock(mu_);
  return collected_;
}

}  // namespace lattice::gossip
