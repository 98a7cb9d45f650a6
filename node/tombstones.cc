// Replicator::Impl, tombstone collection (DESIGN §2): a round offers old
// tombstones to every replica of their partition (GcQuery) and collects those
// every one of them holds or has no record of (each replica decides for
// itself, by its own rounds). The shared state is declared in
// node/replicator_internal.h.
#include "node/replicator_internal.h"

namespace lattice::node {

void Replicator::Impl::CollectRound() {
  std::vector<std::pair<std::string, crdt::DotContext>> found;
  std::string next;
  Status s = engine.store().Read([&](storage::Txn& t) {
    std::vector<std::string> keys;
    std::string cursor;
    {
      std::lock_guard lock(mu);
      cursor = gc_cursor;
    }
    auto r = t.Tombstones(cursor, opt.gc_batch, [&](std::string_view key) { keys.emplace_back(key); });
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
  const std::uint64_t now = env.NowMs();
  GcPending q;
  std::vector<std::size_t> alone;  // keys no other replica holds
  {
    std::lock_guard lock(mu);
    if (stopped) return;
    if (gc && now < gc->deadline_ms) return;  // the query in flight is answered first
    gc.reset();
    gc_cursor = next;
    for (auto& [key, ctx] : found) {
      auto [it, fresh] = gc_seen.try_emplace(key, now, gc_pass);
      it->second.second = gc_pass;
      if (fresh || now < it->second.first + opt.tombstone_grace_ms) continue;
      const std::uint32_t p = ring.PartitionOf(key);
      std::set<std::string> replicas;
      for (const auto& r : ring.Replicas(p)) replicas.insert(r);
      for (const auto& r : read_ring.Replicas(p)) replicas.insert(r);
      if (!replicas.count(self)) continue;  // not ours (any more): left to its replicas
      bool all_reachable = true;
      for (const auto& r : replicas) all_reachable = all_reachable && view.reachable.count(r) > 0;
      if (!all_reachable) continue;
      replicas.erase(self);
      const std::size_t i = q.keys.size();
      q.keys.push_back(key);
      q.contexts.push_back(std::move(ctx));
      q.failed.push_back(false);
      for (const auto& r : replicas) q.asked[r].push_back(i);
      if (replicas.empty()) alone.push_back(i);
      q.waiting.push_back(std::move(replicas));
    }
    if (next.empty()) {  // a pass ended: forget tombstones it did not see
      for (auto it = gc_seen.begin(); it != gc_seen.end();) {
        it = it->second.second < gc_pass ? gc_seen.erase(it) : std::next(it);
      }
      ++gc_pass;
    }
    if (q.keys.empty()) return;
    q.id = next_id++;
    q.deadline_ms = now + opt.request_timeout_ms;
    if (q.asked.empty()) {
      // A cluster of one: every tombstone is stable at once.
    } else {
      gc = q;
    }
  }
  if (q.asked.empty()) return RetireStable(std::move(q));
  for (const auto& [member, indices] : q.asked) {
    env.Send(member, Build(WallHlc(), [&](auto root) {
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

void Replicator::Impl::OnGcQuery(const std::string& from, std::uint64_t id, const std::vector<std::pair<std::string, crdt::DotContext>>& tombstones) {
  // A joining node answers too: whether it holds a covering tombstone is a
  // fact about its store whatever else it still lacks, and a joiner that
  // refused would keep a tombstone some replicas collected from being
  // collected by the rest, so their roots (and its join) never settle.
  auto held = std::make_shared<std::vector<bool>>(tombstones.size(), false);
  auto absent = std::make_shared<std::vector<std::pair<std::string, crdt::DotContext>>>();
  storage::Store& store = engine.store();
  Status s = store.Read([&](storage::Txn& t) {
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
  auto reply = [wk = weak(), from, id, held] {
    auto im = wk.lock();
    if (!im) return;
    im->env.Send(from, Build(im->WallHlc(), [&](auto root) {
                   auto m = root.initGcReply();
                   m.setId(id);
                   auto list = m.initHeld(static_cast<unsigned>(held->size()));
                   for (unsigned i = 0; i < held->size(); ++i) list.set(i, (*held)[i]);
                 }),
                 false);
  };
  if (absent->empty()) return reply();
  const std::uint64_t now = env.NowMs();
  env.Commit(
      [absent, now](storage::Txn& t) {
        for (const auto& [key, ctx] : *absent) {
          if (Status s = t.PutRetiredKey(key, ctx, now); !s.ok()) return s;
        }
        return Status::Ok();
      },
      [reply, held, absent](Status s) {
        if (!s.ok()) {
          spdlog::error("retiring offered tombstone contexts: {}", s.ToString());
          held->assign(held->size(), false);
        }
        reply();
      });
}

void Replicator::Impl::OnGcReply(const std::string& from, std::uint64_t id, const std::vector<bool>& held) {
  GcPending done;
  {
    std::lock_guard lock(mu);
    if (!gc || gc->id != id) return;
    auto it = gc->asked.find(from);
    if (it == gc->asked.end()) return;
    const auto indices = std::move(it->second);
    gc->asked.erase(it);
    for (std::size_t i = 0; i < indices.size(); ++i) {
      const std::size_t k = indices[i];
      if (i < held.size() && held[i]) {
        gc->waiting[k].erase(from);
      } else {
        gc->failed[k] = true;
      }
    }
    if (!gc->asked.empty()) return;
    done = std::move(*gc);
    gc.reset();
  }
  RetireStable(std::move(done));
}

void Replicator::Impl::RetireStable(GcPending q) {
  auto keys = std::make_shared<std::vector<std::pair<std::string, crdt::DotContext>>>();
  for (std::size_t i = 0; i < q.keys.size(); ++i) {
    if (!q.failed[i] && q.waiting[i].empty()) keys->emplace_back(q.keys[i], q.contexts[i]);
  }
  if (keys->empty()) return;
  auto retired = std::make_shared<std::uint64_t>(0);
  const std::uint64_t now = env.NowMs();
  env.Commit(
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
      [wk = weak(), keys, retired](Status s) {
        auto im = wk.lock();
        if (!im) return;
        if (!s.ok()) {
          spdlog::error("collecting tombstones: {}", s.ToString());
          return;
        }
        std::lock_guard lock(im->mu);
        im->stats.tombstones_collected += *retired;
        for (const auto& [key, ctx] : *keys) {
          if (auto it = im->gc_seen.find(key); it != im->gc_seen.end()) im->gc_seen.erase(it);
        }
      });
}

}  // namespace lattice::node
