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
#include "node/resp.h"

namespace lattice::node {

std::optional<Level> ParseLevel(std::string_view name) {
  std::string n;
  for (char c : name) n.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (n == "one") return Level::kOne;
  if (n == "quorum") return Level::kQuorum;
  if (n == "all") return Level::kAll;
  return std::nullopt;
}

std::vector<std::string> CommandKeys(const CommandSpec& spec, const Args& a) {
  std::vector<std::string> keys;
  if (spec.first_key == 0) return keys;
  const std::size_t last = spec.last_key < 0 ? a.size() - 1 : static_cast<std::size_t>(spec.last_key);
  for (std::size_t i = static_cast<std::size_t>(spec.first_key); i <= last && i < a.size();
       i += static_cast<std::size_t>(spec.key_step)) {
    keys.push_back(a[i]);
  }
  return keys;
}

// ---- Replicator::Impl: coordinating writes (minting and applying deltas: replicator_replica.cc)

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
    return SplitWrite(spec, std::move(args), level, need, std::move(done));
  }
  if (spec.write) {
    auto it = need.find(args[1]);
    crdt::DotContext ctx = it != need.end() ? it->second : crdt::DotContext{};
    return WriteOne(std::move(args), level, std::move(ctx), std::move(done));
  }
  Read(spec, std::move(args), std::move(keys), level, std::move(need), std::move(done));
}

void Replicator::Impl::SplitWrite(const CommandSpec& spec, Args args, Level level, const SessionContexts& need, Reply done) {
  const bool is_set = std::string_view(spec.name) == "MSET";
  const CommandSpec* sub = is_set ? engine.Find("SET") : &spec;
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
    SessionContexts part_need;
    if (auto it = need.find(parts[i][1]); it != need.end()) part_need.insert(*it);
    Execute(*sub, std::move(parts[i]), level, std::move(part_need), [g, i, is_set](Answer a) {
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

void Replicator::Impl::WriteOne(Args args, Level level, crdt::DotContext session, Reply done) {
  std::unique_lock lock(mu);
  if (stopped) {
    lock.unlock();
    return done(Stopping());
  }
  // Quorums are over the key's N replicas; a joining one neither mints nor
  // counts (its acknowledgement would not mean a read could find the write).
  const auto replicas = ring.ReplicasOf(args[1]);
  const std::uint32_t need = Required(level, replicas.size());
  std::vector<std::string> reachable;
  for (const auto& r : replicas) {
    if (view.reachable.count(r) && !view.joining.count(r)) reachable.push_back(r);
  }
  if (reachable.size() < need) {
    ++stats.unavailable;
    lock.unlock();
    return done(Unavailable(need, replicas.size(), reachable.size()));
  }
  const bool local = std::find(reachable.begin(), reachable.end(), self) != reachable.end();
  const std::uint64_t id = next_id++;
  WritePending& w = writes[id];
  w.required = need;
  w.done = std::move(done);
  w.minter = local ? self : reachable.front();
  for (const auto& r : replicas) {
    if (!view.joining.count(r)) w.counted.insert(r);
  }
  const CommandSpec* spec = engine.Find(UpperCase(args[0]));
  const bool gather_first = spec != nullptr && spec->removes && level != Level::kOne;
  // A removal's gather loads only the members it names (SREM of one member
  // of a large set stays O(log n + delta)); DEL and the like the whole key.
  storage::Members select = gather_first ? NamedMembers(*spec, args) : storage::Members::All();
  const std::string key = args[1];
  w.args = std::move(args);
  w.need = std::move(session);
  ++stats.writes;
  lock.unlock();
  env.After(opt.request_timeout_ms, [wk = weak(), id] {
    if (auto im = wk.lock()) im->WriteTimeout(id);
  });
  if (!gather_first) return SendForward(id);
  // A removal at QUORUM/ALL: minted on the join of `need` replicas' states,
  // so it removes every write acknowledged at QUORUM before it began.
  const bool partial = !select.all;
  GatherAtLeast(key, need, std::move(select), [wk = weak(), id, key, partial](StateMap&& joined) {
    auto im = wk.lock();
    if (!im) return;
    {
      std::lock_guard lock(im->mu);
      auto it = im->writes.find(id);
      if (it == im->writes.end() || im->stopped) return;
      const crdt::KeyState& state = joined[key];
      it->second.base = state.Empty() ? std::string() : crdt::EncodeKeyState(state);
      it->second.base_partial = partial;
    }
    im->SendForward(id);
  });
}

void Replicator::Impl::SendForward(std::uint64_t id) {
  std::unique_lock lock(mu);
  auto it = writes.find(id);
  if (it == writes.end() || stopped) return;
  const std::string minter = it->second.minter;
  const Args args = it->second.args;
  const crdt::DotContext need = it->second.need;
  const std::string base = it->second.base;
  const bool base_partial = it->second.base_partial;
  ++it->second.sends;
  ++stats.forwards_sent;
  lock.unlock();
  if (minter == self) {
    Mint(self, id, args, need, base, base_partial);
  } else {
    std::string msg = Build(WallHlc(), [&](auto root) {
      auto f = root.initForward();
      f.setId(id);
      FillBytes(f.initArgs(static_cast<unsigned>(args.size())), args);
      if (!need.Empty()) PutContext(f.initNeed(), "", need);
      if (!base.empty()) f.setBase(Bytes(base));
      f.setBasePartial(base_partial);
    });
    env.Send(minter, std::move(msg), true);
  }
  env.After(opt.resend_ms, [wk = weak(), id] {
    if (auto im = wk.lock()) im->SendForward(id);
  });
}

Answer Replicator::Impl::WriteTimeoutReply(std::size_t acks, std::uint32_t required) {
  return Answer::Of(Outcome::kTimeout, "acknowledged by " + std::to_string(acks) + " of " + std::to_string(required) +
                                           " required replicas; the write may still apply");
}

void Replicator::Impl::WriteTimeout(std::uint64_t id) {
  auto w = TakeExpired(writes, id);
  if (!w) return;
  const bool stale = w->uncovered && !w->reply;
  if (stale) {
    std::lock_guard lock(mu);
    ++stats.stale;
  }
  w->done(stale ? Stale(w->args[1]) : WriteTimeoutReply(w->acks.size(), w->required));
}

void Replicator::PeerDown(const std::string& name) {
  Impl& im = *impl_;
  std::vector<Impl::WritePending> failed;
  {
    std::lock_guard lock(im.mu);
    for (auto it = im.writes.begin(); it != im.writes.end();) {
      Impl::WritePending& w = it->second;
      // Acknowledgements still possible: counted replicas not yet heard that
      // are reachable (the minter's own reply included).
      std::size_t possible = w.acks.size();
      for (const auto& r : w.counted) {
        if (!w.acks.count(r) && im.view.reachable.count(r)) ++possible;
      }
      const bool lost_minter = w.minter == name && !w.reply;
      if ((!w.counted.count(name) || w.acks.count(name) || possible >= w.required) && !lost_minter) {
        ++it;
        continue;
      }
      failed.push_back(std::move(w));
      it = im.writes.erase(it);
      ++im.stats.timeouts;
    }
  }
  for (auto& w : failed) w.done(Impl::WriteTimeoutReply(w.acks.size(), w.required));
}

void Replicator::Impl::OnForwardReply(const std::string& from, std::uint64_t id, Answer answer, bool replicated, bool uncovered, crdt::DotContext written) {
  std::unique_lock lock(mu);
  auto it = writes.find(id);
  if (it == writes.end()) return;
  WritePending& w = it->second;
  if (from != w.minter || w.reply) return;
  if (!replicated && answer.outcome == Outcome::kTryAgain && w.sends <= 1) {
    // The minter is rebuilding and saw this command first: it was applied
    // nowhere, so another replica may take it.
    w.rebuilding.insert(from);
    for (const auto& r : ring.ReplicasOf(w.args[1])) {
      if (!w.rebuilding.count(r) && view.reachable.count(r) && !view.joining.count(r)) {
        w.minter = r;
        w.sends = 0;
        lock.unlock();
        return SendForward(id);
      }
    }
  }
  if (uncovered) {
    // The minter has not seen what the session saw: gather the key from
    // every reachable replica and send the join along (one gather at a time).
    if (w.uncovered) return;
    w.uncovered = true;
    ++stats.session_gathers;
    const std::string key = w.args[1];
    lock.unlock();
    return GatherForWrite(id, key);
  }
  w.reply = std::move(answer);
  w.written = std::move(written);
  if (w.counted.count(from)) w.acks.insert(from);
  CompleteWriteLocked(it, lock, !replicated);
}

void Replicator::Impl::GatherForWrite(std::uint64_t id, const std::string& key) {
  Gather({key}, [wk = weak(), id, key](std::map<std::string, crdt::KeyState, std::less<>>&& joined) {
    auto im = wk.lock();
    if (!im) return;
    std::unique_lock lock(im->mu);
    auto it = im->writes.find(id);
    if (it == im->writes.end() || im->stopped) return;
    const crdt::KeyState& state = joined[key];
    if (Covers(state, it->second.need)) {
      it->second.base = state.Empty() ? std::string() : crdt::EncodeKeyState(state);
      it->second.uncovered = false;
      lock.unlock();
      return im->SendForward(id);
    }
    lock.unlock();
    im->env.After(100, [wk, id, key] {
      if (auto again = wk.lock()) again->GatherForWrite(id, key);
    });
  });
}

void Replicator::Impl::OnAck(const std::string& from, std::uint64_t id) {
  std::unique_lock lock(mu);
  ++stats.acks;
  auto it = writes.find(id);
  if (it == writes.end()) return;
  if (it->second.counted.count(from)) it->second.acks.insert(from);
  CompleteWriteLocked(it, lock, false);
}

void Replicator::Impl::CompleteWriteLocked(std::map<std::uint64_t, WritePending>::iterator it, std::unique_lock<std::mutex>& lock, bool now) {
  WritePending& w = it->second;
  if (!w.reply || (!now && w.acks.size() < w.required)) return;
  WritePending done = std::move(w);
  writes.erase(it);
  lock.unlock();
  SessionContexts observed;
  if (!done.written.Empty()) observed[done.args[1]] = std::move(done.written);
  Answer answer = std::move(*done.reply);
  answer.observed = std::move(observed);
  done.done(std::move(answer));
}

void Replicator::Impl::Tick() {
  SyncRound();
  HandOffRound();
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
  std::map<std::uint64_t, WritePending> w;
  std::map<std::uint64_t, ReadPending> r;
  std::set<std::shared_ptr<ReadPending>> c;
  {
    std::lock_guard lock(mu);
    stopped = true;
    w.swap(writes);
    r.swap(reads);
    c.swap(covering);
  }
  collector->Stop();
  ae->Stop();
  for (const auto& p : c) p->done(Stopping());
  for (auto& [id, p] : w) p.done(Stopping());
  for (auto& [id, p] : r) {
    if (p.done) p.done(Stopping());
  }
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
  if (view.joining != im.view.joining || view.leaving != im.view.leaving ||
      sorted(view.members) != sorted(im.view.members)) {
    // Partitions this node gains (a member was forgotten or left) are pulled
    // before it serves their reads; a joining node pulls everything anyway.
    std::vector<bool> had(im.ring.partitions());
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
    if (!first_view && !view.joining.count(im.self)) {
      for (std::uint32_t p = 0; p < im.ring.partitions(); ++p) {
        const auto& r = im.ring.Replicas(p);
        if (had[p] || std::find(r.begin(), r.end(), im.self) == r.end()) continue;
        im.pulling.insert(p);
        for (const auto& peer : r) im.synced.erase({p, peer});
      }
    }
    if (view.leaving.count(im.self) && !im.view.leaving.count(im.self)) {
      for (std::uint32_t p = 0; p < im.ring.partitions(); ++p) {
        for (const auto& heir : im.next_ring.Replicas(p)) im.synced.erase({p, heir});
      }
    }
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
}

bool Replicator::Alone() const {
  std::lock_guard lock(impl_->mu);
  return impl_->view.members.size() <= 1 && impl_->view.forming.empty();
}

void Replicator::Execute(const CommandSpec& spec, Args args, Level level, SessionContexts session, Reply done) {
  impl_->Execute(spec, std::move(args), level, std::move(session), std::move(done));
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

void Replicator::EarlierLife() {
  std::lock_guard lock(impl_->mu);
  impl_->earlier_life = true;
}

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
