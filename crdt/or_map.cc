#include "crdt/or_map.h"

#include <iterator>
#include <tuple>

namespace lattice::crdt {

bool IsBottom(const FieldStore& s) {
  return IsBottom(s.reg) && IsBottom(s.counter) && IsBottom(s.expiry);
}

void CollectDots(const FieldStore& s, DotContext& out) {
  CollectDots(s.reg, out);
  CollectDots(s.counter, out);
  CollectDots(s.expiry, out);
}

FieldStore JoinStore(const FieldStore& a, const DotContext& ca, const FieldStore& b,
                     const DotContext& cb) {
  return FieldStore{JoinStore(a.reg, ca, b.reg, cb), JoinStore(a.counter, ca, b.counter, cb),
                    JoinStore(a.expiry, ca, b.expiry, cb)};
}

namespace {

std::optional<StringValue> ValueOf(const FieldStore& f) {
  if (f.reg.empty() && !CounterLive(f.counter)) return std::nullopt;
  return ReadString(&f.reg, &f.counter);
}

}  // namespace

bool FieldLive(const FieldStore& f) { return !f.reg.empty() || CounterLive(f.counter); }

namespace {

const FieldExpiry* WinningExpiry(const FieldStore& f) {
  const FieldExpiry* best = nullptr;
  ReplicaId best_replica = 0;
  for (const auto& [dot, e] : f.expiry) {
    if (best == nullptr || std::tie(best->set, best_replica) < std::tie(e.set, dot.replica)) {
      best = &e;
      best_replica = dot.replica;
    }
  }
  return best;
}

// Live counter entries (above their floors), as an expiry or reset observes them.
std::map<ReplicaId, CounterEntry> LiveEntries(const CounterStore& s) {
  std::map<ReplicaId, CounterEntry> out;
  for (const auto& [replica, entry] : s.entries) {
    auto floor = s.floors.find(replica);
    if (floor == s.floors.end() || entry.counter > floor->second.counter) {
      out.emplace(replica, entry);
    }
  }
  return out;
}

// The expiries of `f` set by the same HEXPIRE as `winner` (concurrent folds).
std::vector<const FieldExpiry*> SameExpiry(const FieldStore& f, const FieldExpiry& winner) {
  std::vector<const FieldExpiry*> out;
  for (const auto& [dot, e] : f.expiry) {
    if (e.set == winner.set && e.at_ms == winner.at_ms) out.push_back(&e);
  }
  return out;
}

void MaxInto(std::map<ReplicaId, CounterEntry>& floors, ReplicaId r, const CounterEntry& e) {
  auto [it, inserted] = floors.emplace(r, e);
  if (!inserted && it->second < e) it->second = e;
}

}  // namespace

ORMap ORMap::Set(ReplicaId replica, const std::string& field, std::string value, Hlc hlc, bool keep_ttl) {
  FieldStore& f = state_.store[field];
  ORMap delta;
  // HSET clears the field's expiry, as in Redis, and the increments it observed.
  if (!keep_ttl) {
    delta.state_.ctx = RemovalDelta(f.expiry).ctx;
    f.expiry.clear();
  }
  Causal<CounterStore> counter_view{std::move(f.counter), {}};
  Causal<CounterStore> reset = CounterReset(counter_view);
  f.counter = std::move(counter_view.store);
  delta.state_.ctx.Join(reset.ctx);
  Causal<RegisterStore> d =
      ReplaceAll(f.reg, state_.ctx, replica, RegisterValue{std::move(value), hlc});
  delta.state_.ctx.Join(d.ctx);
  FieldStore& out = delta.state_.store[field];
  out.reg = std::move(d.store);
  if (!IsBottom(reset.store)) out.counter = std::move(reset.store);
  if (keep_ttl) KeepFieldExpiry(replica, field, delta);
  return delta;
}

void ORMap::KeepFieldExpiry(ReplicaId replica, const std::string& field, ORMap& delta) {
  FieldStore& f = state_.store[field];
  const FieldExpiry* e = WinningExpiry(f);
  if (e == nullptr) return;
  FieldExpiry kept{e->set, e->at_ms, {}, {}};
  for (const FieldExpiry* s : SameExpiry(f, *e)) {
    kept.reg_dots.insert(s->reg_dots.begin(), s->reg_dots.end());
    for (const auto& [r, floor] : s->floors) MaxInto(kept.floors, r, floor);
  }
  // Only what this write made (the delta's own register dots and counter
  // entries), as at the key level: a value merged from a concurrent HSET that
  // had not seen the expiry stays outside it.
  if (auto mine = delta.state_.store.find(field); mine != delta.state_.store.end()) {
    for (const auto& [dot, v] : mine->second.reg) kept.reg_dots.insert(dot);
    for (const auto& [r, entry] : mine->second.counter.entries) MaxInto(kept.floors, r, entry);
  }
  Causal<DotFun<FieldExpiry>> x = ReplaceAll(f.expiry, state_.ctx, replica, std::move(kept));
  delta.state_.ctx.Join(x.ctx);
  delta.state_.store[field].expiry = std::move(x.store);
}

ORMap ORMap::Increment(ReplicaId replica, const std::string& field, std::int64_t amount, Hlc hlc) {
  FieldStore& f = state_.store[field];
  // The counter needs its own Causal view of the shared context to mint a dot.
  Causal<CounterStore> view{std::move(f.counter), std::move(state_.ctx)};
  Causal<CounterStore> d = CounterAdd(view, replica, amount, hlc);
  f.counter = std::move(view.store);
  state_.ctx = std::move(view.ctx);
  ORMap delta;
  delta.state_.ctx = std::move(d.ctx);
  delta.state_.store[field].counter = std::move(d.store);
  KeepFieldExpiry(replica, field, delta);  // HINCRBY keeps the TTL and goes with it
  return delta;
}

ORMap ORMap::Remove(const std::string& field) {
  ORMap delta;
  auto it = state_.store.find(field);
  if (it == state_.store.end()) return delta;
  FieldStore& f = it->second;
  Causal<RegisterStore> reg_delta = RemovalDelta(f.reg);
  Causal<CounterStore> counter_view{std::move(f.counter), {}};
  Causal<CounterStore> counter_delta = CounterReset(counter_view);
  f.counter = std::move(counter_view.store);
  f.reg.clear();

  delta.state_.ctx = std::move(reg_delta.ctx);
  delta.state_.ctx.Join(counter_delta.ctx);
  delta.state_.ctx.Join(RemovalDelta(f.expiry).ctx);
  f.expiry.clear();
  if (!IsBottom(counter_delta.store)) {
    delta.state_.store[field].counter = std::move(counter_delta.store);
  }
  if (IsBottom(f)) state_.store.erase(it);
  return delta;
}

ORMap ORMap::Clear() {
  ORMap delta;
  std::vector<std::string> fields;
  for (const auto& entry : state_.store) fields.push_back(entry.first);
  for (const auto& field : fields) delta.Join(Remove(field));
  return delta;
}


Result<ORMap> ORMap::ExpireField(ReplicaId replica, const std::string& field,
                                 std::uint64_t at_ms, Hlc hlc) {
  auto found = state_.store.find(field);
  if (found == state_.store.end() || !FieldLive(found->second)) return Status::NotFound("no such field");
  FieldStore& f = found->second;
  FieldExpiry e{hlc, at_ms, {}, LiveEntries(f.counter)};
  for (const auto& entry : f.reg) e.reg_dots.insert(entry.first);
  Causal<DotFun<FieldExpiry>> d = ReplaceAll(f.expiry, state_.ctx, replica, std::move(e));
  ORMap delta;
  delta.state_.ctx = std::move(d.ctx);
  delta.state_.store[field].expiry = std::move(d.store);
  return delta;
}

ORMap ORMap::PersistField(const std::string& field) {
  ORMap delta;
  auto it = state_.store.find(field);
  if (it == state_.store.end()) return delta;
  delta.state_.ctx = RemovalDelta(it->second.expiry).ctx;
  it->second.expiry.clear();
  if (IsBottom(it->second)) state_.store.erase(it);
  return delta;
}

std::optional<std::uint64_t> ORMap::FieldExpiresAt(const std::string& field) const {
  auto it = state_.store.find(field);
  if (it == state_.store.end()) return std::nullopt;
  const FieldExpiry* e = WinningExpiry(it->second);
  if (e == nullptr) return std::nullopt;
  return e->at_ms;
}

std::optional<std::uint64_t> ORMap::NextExpiry() const {
  std::optional<std::uint64_t> next;
  for (const auto& entry : state_.store) {
    const FieldExpiry* e = WinningExpiry(entry.second);
    if (e != nullptr && (!next || e->at_ms < *next)) next = e->at_ms;
  }
  return next;
}

ORMap ORMap::ExpireDue(std::uint64_t now_ms, std::vector<std::string>* expired) {
  ORMap delta;
  for (auto it = state_.store.begin(); it != state_.store.end();) {
    FieldStore& f = it->second;
    const FieldExpiry* e = WinningExpiry(f);
    if (e == nullptr || e->at_ms > now_ms) {
      ++it;
      continue;
    }
    bool was_live = FieldLive(f);
    // Remove what the expiry (and its siblings of the same HEXPIRE) observed,
    // and the expiry entries themselves. The removed dots enter the context,
    // so a value this replica has not yet received stays removed when it arrives.
    std::set<Dot> reg_dots;
    std::map<ReplicaId, CounterEntry> floors;
    for (const FieldExpiry* x : SameExpiry(f, *e)) {
      reg_dots.insert(x->reg_dots.begin(), x->reg_dots.end());
      for (const auto& [r, floor] : x->floors) MaxInto(floors, r, floor);
    }
    for (const Dot& d : reg_dots) {
      f.reg.erase(d);
      state_.ctx.Insert(d);
      delta.state_.ctx.Insert(d);
    }
    if (!floors.empty()) {
      for (const auto& [replica, floor] : floors) {
        auto [fit, inserted] = f.counter.floors.emplace(replica, floor);
        if (!inserted && fit->second < floor) fit->second = floor;
      }
      delta.state_.store[it->first].counter.floors = std::move(floors);
    }
    delta.state_.ctx.Join(RemovalDelta(f.expiry).ctx);
    f.expiry.clear();
    if (was_live && !FieldLive(f) && expired != nullptr) expired->push_back(it->first);
    it = IsBottom(f) ? state_.store.erase(it) : std::next(it);
  }
  return delta;
}

std::optional<StringValue> ORMap::Get(const std::string& field) const {
  auto it = state_.store.find(field);
  if (it == state_.store.end()) return std::nullopt;
  return ValueOf(it->second);
}

std::vector<std::pair<std::string, StringValue>> ORMap::Entries() const {
  std::vector<std::pair<std::string, StringValue>> out;
  for (const auto& [name, f] : state_.store) {
    if (auto value = ValueOf(f)) out.emplace_back(name, std::move(*value));
  }
  return out;
}

std::size_t ORMap::Size() const {
  std::size_t n = 0;
  for (const auto& entry : state_.store) n += FieldLive(entry.second);
  return n;
}

bool ORMap::Live() const {
  for (const auto& entry : state_.store) {
    if (FieldLive(entry.second)) return true;
  }
  return false;
}

}  // namespace lattice::crdt
