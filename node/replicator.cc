#include "node/replicator.h"
#include "node/replicator_internal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <type_traits>
#include <variant>

#include "crdt/codec.h"
#include "crdt/or_map.h"
#include "crdt/or_set.h"
#include "gossip/wire.h"
#include "node/command_group.h"
#include "node/coordination.h"
#include "node/resp.h"

namespace lattice::node {

std::optional<Level> ParseLevel(std::string_view name) {
  auto is = [name](std::string_view lower) {
    return name.size() == lower.size() && std::equal(name.begin(), name.end(), lower.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == b;
           });
  };
  if (is("quorum")) return Level::kQuorum;
  if (is("one")) return Level::kOne;
  if (is("all")) return Level::kAll;
  return std::nullopt;
}

std::vector<std::string> CommandKeys(const CommandSpec& spec, const Args& a) {
  std::vector<std::string> keys;
  if (spec.first_key == 0) return keys;
  std::size_t last = spec.last_key < 0 ? a.size() - 1 : static_cast<std::size_t>(spec.last_key);
  if (spec.numkeys_at > 0) {
    // The count as the command reads it; a bad one names no key (the command answers the error).
    std::int64_t n = 0;
    const std::string& count = a.size() > static_cast<std::size_t>(spec.numkeys_at) ? a[spec.numkeys_at] : "";
    auto [p, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
    if (ec != std::errc() || p != count.data() + count.size() || n <= 0) return keys;
    last = std::min(last, static_cast<std::size_t>(spec.first_key) + static_cast<std::size_t>(n) - 1);
  }
  for (std::size_t i = static_cast<std::size_t>(spec.first_key); i <= last && i < a.size();
       i += static_cast<std::size_t>(spec.key_step)) {
    keys.push_back(a[i]);
  }
  return keys;
}

// ---- Replicator::Impl: dispatching commands (the write coordinator: node/write_coordinator.h; minting and applying deltas: replicator_replica.cc)

Replicator::Impl::Impl(ReplicaEnv& e, Engine& en, ReplicatorOptions o, std::string s, std::uint64_t seed)
    : env(e), engine(en), opt(o), self(std::move(s)), ring(o.partitions, o.replicas),
      read_ring(o.partitions, o.replicas), next_ring(o.partitions, o.replicas), rng(seed) {
  view.members = {self};
  view.reachable = {self};
  ring.SetMembers(view.members);
  read_ring.SetMembers(view.members);
  next_ring.SetMembers(view.members);
  collector = std::make_shared<gossip::TombstoneCollector>(
      env, engine.store(),
      gossip::TombstoneCollector::Options{o.gc_batch, o.tombstone_grace_ms, o.request_timeout_ms},
      [this](const std::vector<std::string>& keys) { return Placement(keys); }, seed ^ 0x9e3779b97f4a7c15ull);
  Replica::Hooks replicating;
  replicating.targets = [this](const std::string& key) {
    std::set<std::string> targets;
    std::lock_guard lock(mu);
    for (const Ring* r : {&ring, &read_ring, &next_ring}) {
      for (const auto& m : r->ReplicasOf(key)) targets.insert(m);
    }
    targets.erase(self);
    return std::vector<std::string>(targets.begin(), targets.end());
  };
  replicating.joining = [this] {
    std::lock_guard lock(mu);
    return view.joining.count(self) > 0;
  };
  replicating.reply_here = [this](std::uint64_t id, const Answer& answer, bool replicated, bool uncovered,
                                  const crdt::DotContext& written) {
    wc->OnReply(self, id, answer, replicated, uncovered, written);
  };
  replicating.ack_here = [this](std::uint64_t id) { wc->OnAck(self, id); };
  replicating.minted_change = [this](const std::string& key) { watch.Changed(key); };
  replica = std::make_shared<Replica>(env, engine, self, o, outbox, std::move(replicating));
  ReadCoordinator::Hooks reading;
  reading.serving = [this](const std::string& key) { return Serving(key); };
  reading.load_here = [this](const std::vector<std::string>& keys, const storage::Members& select) {
    return LoadEncoded(keys, select);
  };
  reading.run = [this](const CommandSpec& spec, const Args& args, const StateMap& overlay) {
    return RunLocal(spec, args, &overlay);
  };
  reading.repair = [this](const std::string& member, const std::string& key, const std::string& encoded) {
    replica->SendState(member, key, encoded);
  };
  rc = std::make_shared<ReadCoordinator>(env, self, o, std::move(reading), seed ^ 0xc2b2ae3d27d4eb4full);
  WriteCoordinator::Hooks writes;
  writes.placement = [this](const std::string& key) { return WritePlacement(key); };
  writes.mint_here = [this](std::uint64_t id, const Args& args, const crdt::DotContext& need,
                            const std::string& base, bool partial) { replica->Mint(self, id, args, need, base, partial); };
  writes.gather = [this](std::vector<std::string> keys, std::function<void(StateMap&&)> fn) {
    rc->Gather(std::move(keys), std::move(fn));
  };
  writes.gather_at_least = [this](const std::string& key, std::uint32_t required, storage::Members select,
                                  std::function<void(StateMap&&)> fn) {
    rc->GatherAtLeast(key, required, std::move(select), std::move(fn));
  };
  writes.reachable = [this] {
    std::lock_guard lock(mu);
    return view.reachable;
  };
  wc = std::make_shared<WriteCoordinator>(env, engine, self, o, std::move(writes), seed ^ 0x5bd1e9955bd1e995ull);
  gossip::AntiEntropy::Hooks hooks;
  hooks.replicates = [this](std::uint32_t p, const std::string& member) { return Replicates(p, member); };
  hooks.reachable = [this](const std::string& member) {
    std::lock_guard lock(mu);
    return !stopped && view.reachable.count(member) > 0;
  };
  sync = std::make_unique<gossip::PartitionSync>(engine.store(), self);
  hooks.matched = [this](std::uint32_t p, const std::string& from, const merkle::Digest& root) {
    sync->Matched(p, from, root);
  };
  ae = std::make_unique<gossip::AntiEntropy>(
      env, engine.store(), self,
      gossip::AntiEntropy::Options{ring.partitions(), o.ae_max_keys, o.ae_bytes_per_s, o.ae_confirm_ms},
      std::move(hooks));
}

Answer Replicator::Impl::RunLocal(const CommandSpec& spec, const Args& args, const std::map<std::string, crdt::KeyState, std::less<>>* overlay) {
  Answer answer;
  const std::uint64_t now = env.NowMs();
  Status s = engine.store().Read([&](storage::Txn& t) {
    CommandContext ctx{t, false, now, answer.reply, nullptr};
    ctx.overlay = overlay;
    engine.Run(spec, ctx, args);
    answer.outcome = ctx.failed ? Outcome::kRefused : Outcome::kReplied;
    answer.count = ctx.count;
    return Status::Ok();
  });
  if (!s.ok()) return Answer::Of(Outcome::kError, s.message());
  return answer;
}

std::vector<std::string> Replicator::Impl::LoadEncoded(const std::vector<std::string>& keys,
                                                        const storage::Members& members) {
  std::vector<std::string> out(keys.size());
  Status s = engine.store().Read([&](storage::Txn& t) {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      auto loaded = t.Load(keys[i], members);
      if (loaded.ok()) {
        // Some members only (a removal's gather): the set's or map's context
        // must then claim only the dots of the members loaded, or whoever
        // joins this state would take the members left out for removed.
        if (!members.all) {
          for (auto type : {crdt::CrdtType::kSet, crdt::CrdtType::kMap}) {
            crdt::Variant* v = loaded->state.MutableVariant(type);
            if (v == nullptr) continue;
            std::visit(
                [](auto& x) {
                  using T = std::decay_t<decltype(x)>;
                  if constexpr (std::is_same_v<T, crdt::ORSet> || std::is_same_v<T, crdt::ORMap>) {
                    crdt::DotContext only;
                    CollectDots(x.state().store, only);
                    x.mutable_state().ctx = std::move(only);
                  }
                },
                v->value);
          }
        }
        out[i] = crdt::EncodeKeyState(loaded->state);
      } else if (!loaded.status().IsNotFound()) {
        return loaded.status();
      } else {
        // A key whose tombstone this node collected answers with that
        // tombstone (it removes nothing live: it was causally stable), so
        // that a session that saw the key's deletion is still covered here.
        auto retired = t.GetRetiredKey(keys[i]);
        if (!retired.ok()) return retired.status();
        if (*retired && (*retired)->tombstone) out[i] = crdt::EncodeKeyState(*(*retired)->tombstone);
      }
    }
    return Status::Ok();
  });
  if (!s.ok()) spdlog::error("reading states for a peer: {}", s.ToString());
  return out;
}

void Replicator::Impl::Execute(const CommandSpec& spec, Args args, Level level, SessionContexts need, Reply done) {
  std::vector<std::string> keys = CommandKeys(spec, args);
  if (keys.empty()) return done(RunLocal(spec, args, nullptr));
  {
    std::unique_lock lock(mu);
    if (!view.forming.empty()) {
      std::string why = view.forming;
      lock.unlock();
      return done(Answer::Of(Outcome::kClusterDown, why));
    }
  }
  if (spec.write && keys.size() > 1) {
    return wc->SplitWrite(spec, std::move(args), level, need, std::move(done));
  }
  if (spec.write) {
    auto it = need.find(args[1]);
    crdt::DotContext ctx = it != need.end() ? it->second : crdt::DotContext{};
    return wc->Write(std::move(args), level, std::move(ctx), std::move(done));
  }
  rc->Read(spec, std::move(args), std::move(keys), level, std::move(need), std::move(done));
}

std::optional<WriteCoordinator::Placement> Replicator::Impl::WritePlacement(const std::string& key) {
  std::lock_guard lock(mu);
  if (stopped) return std::nullopt;
  WriteCoordinator::Placement p;
  p.replicas = ring.ReplicasOf(key);
  for (const auto& r : p.replicas) {
    if (view.joining.count(r)) continue;
    p.counted.insert(r);
    if (view.reachable.count(r)) p.writers.push_back(r);
  }
  return p;
}

void Replicator::Impl::Tick() {
  gossip::PartitionSync::Step pull, hand;
  {
    std::lock_guard lock(mu);
    if (stopped) return;
    const RingLayout layout(*this);
    const std::uint64_t now = env.NowMs();
    pull = sync->Pull(layout, now);
    hand = sync->HandOff(layout, now);
  }
  if (pull.done) env.Joined();
  if (hand.done) env.HandedOff();
  for (const auto* step : {&pull, &hand}) {
    for (const auto& [peer, parts] : step->asks) ae->SendRoots(peer, parts, gossip::AntiEntropy::Roots::kSync);
  }
  std::set<std::string> back;
  {
    std::lock_guard lock(mu);
    back.swap(reconnected);
  }
  for (const auto& peer : back) ExchangeRoots(peer);
  ae->Tick();
  {
    std::lock_guard lock(mu);
    if (stopped || ++ticks % 5 != 0) return;
  }
  watch.Renew();
}

void Replicator::Impl::Stop() {
  {
    std::lock_guard lock(mu);
    stopped = true;
  }
  collector->Stop();
  ae->Stop();
  rc->Stop();
  wc->Stop();
}

Replicator::Replicator(ReplicaEnv& env, Engine& engine, ReplicatorOptions options, std::string self,
                       std::uint64_t seed)
    : impl_(std::make_shared<Impl>(env, engine, options, std::move(self), seed)) {}

Replicator::~Replicator() { impl_->Stop(); }

void Replicator::SetView(ReplicaView view) {
  std::lock_guard lock(impl_->mu);
  view.reachable.insert(impl_->self);
  if (std::find(view.members.begin(), view.members.end(), impl_->self) == view.members.end()) {
    view.members.push_back(impl_->self);
  }
  Impl& im = *impl_;
  const bool first_view = im.view.members.size() <= 1;
  // Most views (one per gossip round) change only reachability: the rings,
  // and what this node pulls or hands off, stay as they are.
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  const bool rings_change = view.joining != im.view.joining || view.leaving != im.view.leaving ||
                            sorted(view.members) != sorted(im.view.members);
  std::vector<bool> had;
  const bool started_leaving = view.leaving.count(im.self) && !im.view.leaving.count(im.self);
  if (rings_change) {
    // Partitions this node gains (a member was forgotten or left) are pulled
    // before it serves their reads; a joining node pulls everything anyway.
    had.resize(im.ring.partitions());
    for (std::uint32_t p = 0; p < im.ring.partitions(); ++p) {
      const auto& r = im.ring.Replicas(p);
      had[p] = std::find(r.begin(), r.end(), im.self) != r.end();
    }
    im.ring.SetMembers(view.members);
    std::vector<std::string> readers, stayers;
    for (const auto& m : view.members) {
      if (!view.joining.count(m)) readers.push_back(m);
      if (!view.leaving.count(m)) stayers.push_back(m);
    }
    im.read_ring.SetMembers(readers);
    im.next_ring.SetMembers(stayers);
  }
  // A peer reachable again is compared at once (at the next Tick: this runs
  // under the caller's locks): what it missed is repaired without waiting
  // for a round to pick it.
  if (!first_view && im.opt.ae_on_reconnect) {
    for (const auto& m : view.reachable) {
      if (m != im.self && !im.view.reachable.count(m)) im.reconnected.insert(m);
    }
  }
  im.view = std::move(view);
  im.alone.store(im.view.members.size() <= 1 && im.view.forming.empty(), std::memory_order_release);
  if (rings_change) im.sync->Changed(Impl::RingLayout(im), had, first_view, started_leaving);
}

void Replicator::PeerDown(const std::string& name) { impl_->wc->PeerDown(name); }

bool Replicator::Alone() const { return impl_->alone.load(std::memory_order_acquire); }

void Replicator::Execute(const CommandSpec& spec, Args args, Level level, SessionContexts session, Reply done) {
  impl_->Execute(spec, std::move(args), level, std::move(session), std::move(done));
}

bool Replicator::ExecuteGroup(std::shared_ptr<CommandGroup> group, std::function<void()> done) {
  Impl& im = *impl_;
  if (!Alone()) {
    Impl::RunInOrder(impl_, std::move(group), 0, std::move(done));
    return false;
  }
  if (RunGroupReads(im.engine, *group)) return true;
  CommandGroup& g = *group;
  RunGroupWrites(
      im.engine, g,
      [&env = im.env](storage::Store::Work work, std::function<void(Status)> committed) {
        env.CommitAlone(std::move(work), std::move(committed));
      },
      [&env = im.env, group = std::move(group), done = std::move(done)](const Status& s) {
        if (s.ok() && !group->changed.empty()) env.Changed(group->changed);
        done();
      });
  return false;
}

void Replicator::Impl::RunInOrder(const std::shared_ptr<Impl>& im, std::shared_ptr<CommandGroup> g, std::size_t i,
                                  std::function<void()> done) {
  // A command that answers before Execute returns continues the loop here;
  // one that answers later continues it from its callback.
  struct Step {
    std::mutex mu;
    bool calling = true;
    bool answered = false;
  };
  for (; i < g->items.size(); ++i) {
    CommandGroup::Item& item = g->items[i];
    auto step = std::make_shared<Step>();
    im->Execute(*item.spec, std::move(item.args), item.level, {},
                [wk = std::weak_ptr<Impl>(im), g, i, done, step](Answer a) {
                  g->items[i].answer = std::move(a);
                  {
                    std::lock_guard lock(step->mu);
                    step->answered = true;
                    if (step->calling) return;
                  }
                  if (auto self = wk.lock()) {
                    RunInOrder(self, g, i + 1, done);
                  } else {
                    for (std::size_t j = i + 1; j < g->items.size(); ++j) g->items[j].answer = Stopping();
                    done();
                  }
                });
    std::lock_guard lock(step->mu);
    step->calling = false;
    if (!step->answered) return;
  }
  done();
}

std::string EncodeSessionToken(const SessionContexts& contexts) {
  capnp::MallocMessageBuilder mb;
  auto keys = mb.initRoot<gossip::wire::SessionToken>().initKeys(static_cast<unsigned>(contexts.size()));
  unsigned i = 0;
  for (const auto& [key, ctx] : contexts) PutContext(keys[i++], key, ctx);
  const std::string bytes = gossip::ToBytes(mb);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

Result<SessionContexts> DecodeSessionToken(std::string_view token) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const auto bad = Status::InvalidArgument("not a session token (from SESSION)");
  if (token.empty() || token.size() % 16 != 0) return bad;
  std::string bytes(token.size() / 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    int hi = nibble(token[2 * i]), lo = nibble(token[2 * i + 1]);
    if (hi < 0 || lo < 0) return bad;
    bytes[i] = static_cast<char>(hi << 4 | lo);
  }
  SessionContexts out;
  try {
    auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), bytes.data(), bytes.size());
    capnp::FlatArrayMessageReader reader(words.asPtr());
    for (auto k : reader.getRoot<gossip::wire::SessionToken>().getKeys()) {
      crdt::DotContext ctx;
      if (!GetContext(k, ctx)) return bad;
      out[std::string(View(k.getKey()))].Join(ctx);
    }
  } catch (const kj::Exception&) {
    return bad;
  }
  return out;
}

bool Replicator::OnMessage(const std::string& from, std::string_view bytes) { return impl_->OnMessage(from, bytes); }

void Replicator::AntiEntropyRound() { impl_->AntiEntropyRound(); }

void Replicator::Watch(const std::string& key, bool on) { impl_->watch.Watch(key, on); }

void Replicator::Tick() { impl_->Tick(); }

void Replicator::EarlierLife() { impl_->replica->EarlierLife(); }

void Replicator::Swept(const std::vector<std::string>& keys) { impl_->Swept(keys); }

void Replicator::Stop() { impl_->Stop(); }

std::vector<std::string> Replicator::ReplicasOf(std::string_view key) const {
  std::lock_guard lock(impl_->mu);
  return impl_->ring.ReplicasOf(key);
}

std::uint32_t Replicator::PartitionOf(std::string_view key) const {
  std::lock_guard lock(impl_->mu);
  return impl_->ring.PartitionOf(key);
}

Replicator::Stats Replicator::stats() const {
  Stats s;
  {
    std::lock_guard lock(impl_->mu);
    s = impl_->stats;
  }
  s.tombstones_collected = impl_->collector->collected();
  // The counts both coordinators keep add up.
  auto outcomes = [&s](const auto& c) {
    s.timeouts += c.timeouts;
    s.unavailable += c.unavailable;
    s.stale += c.stale;
    s.session_gathers += c.session_gathers;
  };
  const auto r = impl_->rc->stats();
  s.reads = r.reads;
  s.read_repairs = r.read_repairs;
  outcomes(r);
  const auto w = impl_->wc->stats();
  s.writes = w.writes;
  s.forwards_sent = w.forwards_sent;
  s.acks = w.acks;
  outcomes(w);
  const auto rep = impl_->replica->stats();
  s.deltas_sent = rep.deltas_sent;
  s.deltas_applied = rep.deltas_applied;
  s.duplicates = rep.duplicates;
  s.keys_repaired = rep.keys_repaired;
  s.retired_ignored = rep.retired_ignored;
  const auto a = impl_->ae->stats();
  s.ae_rounds = a.rounds;
  s.ae_partitions_differing = a.partitions_differing;
  s.ae_keys_sent = a.keys_sent;
  s.ae_bytes_sent = a.bytes_sent;
  s.ae_tree_bytes_sent = a.tree_bytes_sent;
  s.ae_throttled = a.throttled;
  s.ae_queue_full = a.queue_full;
  const auto out = impl_->outbox->stats();
  s.acks_sent = out.acks;
  s.ack_messages = out.ack_messages;
  s.delta_messages = out.delta_messages;
  return s;
}

std::string Replicator::InfoLines() const {
  Stats s = stats();
  std::string out;
  auto line = [&](const char* name, std::uint64_t v) { out += std::string(name) + ":" + std::to_string(v) + "\r\n"; };
  line("coordinated_writes", s.writes);
  line("coordinated_reads", s.reads);
  line("forwards_sent", s.forwards_sent);
  line("deltas_sent", s.deltas_sent);
  line("deltas_applied", s.deltas_applied);
  line("acks_received", s.acks);
  line("acks_sent", s.acks_sent);
  line("ack_messages_sent", s.ack_messages);
  line("delta_messages_sent", s.delta_messages);
  line("duplicates_ignored", s.duplicates);
  line("read_repairs", s.read_repairs);
  line("request_timeouts", s.timeouts);
  line("requests_unavailable", s.unavailable);
  line("peer_clock_refused", s.clock_refused);
  line("peer_malformed", s.malformed);
  line("ae_rounds", s.ae_rounds);
  line("ae_partitions_differing", s.ae_partitions_differing);
  line("ae_keys_sent", s.ae_keys_sent);
  line("ae_bytes_sent", s.ae_bytes_sent);
  line("ae_tree_bytes_sent", s.ae_tree_bytes_sent);
  line("ae_throttled", s.ae_throttled);
  line("ae_queue_full", s.ae_queue_full);
  line("keys_repaired", s.keys_repaired);
  line("tombstones_collected", s.tombstones_collected);
  line("retired_ignored", s.retired_ignored);
  return out;
}

}  // namespace lattice::node
