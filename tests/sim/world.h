// The simulated cluster the simulation tests run on (DESIGN §1 tests/sim):
// five node::Replicators over real LMDB stores in one process, on a network
// driven by one seeded RNG that drops, duplicates, delays and reorders
// messages, with partitions (cuts), crashes, restarts and wiped disks.
//
// Membership and failure detection run as in the daemon (node/cluster.cc):
// each node keeps a gossip::Membership, gossips its view to every member
// every 200 ms over the simulated links (so gossip is dropped, delayed and
// cut like any message), counts every message as a heartbeat, and hands its
// replicator the view its membership gives: the members not left, their
// joining and leaving flags, and the members reachable (alive, heard from
// within kReachableMs, link not down). A crash closes its peers' links to it
// at once (as a TCP connection's close does); a link comes back when a dial
// succeeds (the peer is up and not cut off). A cut closes nothing: it is
// found by the heartbeats' absence. What the tests decide as operators
// (a wipe's joining, CLUSTER LEAVE, CLUSTER FORGET) sets the flags in the
// nodes' own memberships (ApplyView), from where gossip spreads them.
// replication_sim_test.cc runs the randomised chaos workload on it;
// scenarios_sim_test.cc the targeted cases (deletes during partitions,
// membership changes, anti-entropy traffic and budget, clock offsets).
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <tuple>
#include <string>
#include <vector>

#include <unistd.h>

#include "crdt/codec.h"
#include "crdt/hlc.h"
#include "gossip/membership.h"
#include "node/engine.h"
#include "node/replicator.h"
#include "node/ring.h"
#include "storage/fault_env.h"
#include "storage/store.h"

namespace lattice::sim {

using node::Level;

constexpr int kNodes = 5;
constexpr std::uint64_t kStart = 1'700'000'000'000;  // sim epoch, ms

struct World;

class SimEnv : public node::ReplicaEnv {
 public:
  SimEnv(World& w, int index) : w_(w), index_(index) {}
  std::uint64_t NowMs() override;
  void Send(const std::string& member, std::string message, bool must_deliver) override;
  void Commit(storage::Store::Work work, std::function<void(Status)> done) override;
  void After(std::uint64_t delay_ms, std::function<void()> fn) override;
  void Defer(std::function<void()> fn) override { After(0, std::move(fn)); }
  bool Batches(const std::string&) override { return true; }
  void Changed(const std::vector<std::string>&) override {}
  void Joined() override;
  void HandedOff() override;

 private:
  World& w_;
  int index_;
};

struct SimNode {
  std::string name;
  std::string dir;
  std::int64_t skew_ms = 0;
  bool up = false;
  std::uint64_t epoch = 0;
  std::unique_ptr<storage::FaultEnv> disk;  // the log's file system: a crash is a power cut
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<crdt::HlcClock> clock;
  std::unique_ptr<node::Engine> engine;
  std::unique_ptr<SimEnv> env;
  std::unique_ptr<node::Replicator> replicator;
  // Kept across a restart (the daemon persists its members); a wipe loses it.
  std::unique_ptr<gossip::Membership> membership;
  std::set<std::string> link_down;  // members whose link closed or whose dial failed
};

struct Event {
  std::uint64_t at;
  std::uint64_t seq;
  int node;  // -1: the world's own event
  std::uint64_t epoch;
  std::function<void()> fn;
  bool operator>(const Event& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

struct World {
  explicit World(std::uint64_t seed) : seed(seed), rng(seed) {}

  std::uint64_t seed;
  std::mt19937_64 rng;
  std::uint64_t now = kStart;
  std::uint64_t seq = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  std::vector<SimNode> nodes;
  std::set<std::pair<int, int>> cuts;
  std::set<int> joining;  // wiped nodes still pulling their partitions
  std::set<int> leaving;  // nodes handing off (CLUSTER LEAVE)
  std::set<int> handed;   // leaving nodes that have handed everything off
  std::set<int> gone;     // left or forgotten: no longer members
  int wipes = 0;
  std::filesystem::path root;
  std::vector<std::string> names;

  // Tombstones are collected this soon, so that runs exercise collection
  // while faults go on.
  std::uint64_t grace_ms = 1000;
  int leaf_bits = 10;  // Merkle leaves per partition: 2^leaf_bits
  std::uint64_t ae_bytes_per_s = 64ull << 20;  // ReplicatorOptions::ae_bytes_per_s
  std::uint64_t collected = 0, ignored = 0;  // over replicators that stopped

  // Network faults.
  double p_drop = 0.05, p_dup = 0.03;
  std::uint64_t max_delay_ms = 20;

  std::uint64_t Rand(std::uint64_t n) { return n == 0 ? 0 : rng() % n; }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }

  void Schedule(int node, std::uint64_t delay, std::function<void()> fn) {
    std::uint64_t epoch = node >= 0 ? nodes[node].epoch : 0;
    events.push(Event{now + delay, seq++, node, epoch, std::move(fn)});
  }

  bool Cut(int a, int b) const { return cuts.count({std::min(a, b), std::max(a, b)}) > 0; }

  int IndexOf(const std::string& name) const {
    for (int i = 0; i < kNodes; ++i) {
      if (names[i] == name) return i;
    }
    return -1;
  }

  // A test may hold back chosen messages (hold returns true) and deliver
  // them later with Release: a delayed delta.
  std::function<bool(int from, int to, const std::string& msg)> hold;
  std::vector<std::tuple<int, int, std::string>> held;
  void Release() {
    for (auto& [from, to, msg] : held) {
      Schedule(to, 1, [this, from = from, to = to, msg = msg] { Deliver(from, to, msg); });
    }
    held.clear();
  }

  // A message arrives at `to`: a heartbeat from `from`, then replication's
  // or, if not, membership gossip (as node/cluster.cc OnMessage).
  void Deliver(int from, int to, const std::string& msg) {
    SimNode& n = nodes[to];
    n.membership->Heard(names[from], n.env->NowMs());
    if (n.replicator->OnMessage(names[from], msg)) return;
    std::vector<gossip::Member> view;
    if (!gossip::DecodeMembers(msg, view)) return;
    if (n.membership->Merge(view)) ApplyView(to);
  }

  void Transmit(int from, const std::string& to_name, const std::string& msg) {
    int to = IndexOf(to_name);
    if (to >= 0 && hold && hold(from, to, msg)) {
      held.emplace_back(from, to, msg);
      return;
    }
    if (to < 0 || !nodes[from].up || !nodes[to].up || Cut(from, to) || Chance(p_drop)) return;
    int copies = Chance(p_dup) ? 2 : 1;
    for (int c = 0; c < copies; ++c) {
      Schedule(to, 1 + Rand(max_delay_ms), [this, from, to, msg] {
        if (Cut(from, to)) return;
        Deliver(from, to, msg);
      });
    }
  }

  void Start(int i) {
    SimNode& n = nodes[i];
    if (n.disk == nullptr) NewDisk(i);
    storage::StoreOptions o;
    o.dir = n.dir;
    o.node_name = n.name;
    o.sync = storage::SyncMode::kAlways;  // synced into the FaultEnv: what a power cut keeps
    o.env = n.disk.get();
    o.on_fatal = [](const Status& s) { FAIL("storage failed in the simulation: " << s.ToString()); };
    o.overlay_bytes = std::size_t{4} << 20;  // checkpoints happen during runs
    o.segment_bytes = std::size_t{1} << 20;
    o.map_bytes = std::size_t{64} << 20;
    // From the seed, so a replay mints the same dots; later lives higher, as
    // the daemon's (storage/store.cc RandomIncarnation).
    o.incarnation = (now << 20) | (rng() & 0xfffff) | 1;
    o.tree_leaf_bits = leaf_bits;
    auto store = storage::Store::Open(o);
    REQUIRE_MESSAGE(store.ok(), store.status().ToString());
    n.store = std::move(*store);
    n.clock = std::make_unique<crdt::HlcClock>(
        [this, i] { return static_cast<std::uint64_t>(static_cast<std::int64_t>(now) + nodes[i].skew_ms); });
    n.clock->Restore(n.store->identity().hlc);
    n.store->SetHlcSnapshot([c = n.clock.get()] { return c->Last(); });
    n.engine = std::make_unique<node::Engine>(*n.store, *n.clock);
    n.env = std::make_unique<SimEnv>(*this, i);
    node::ReplicatorOptions ro;
    ro.replicas = 3;
    ro.fresh_start = n.store->identity().fresh && joining.count(i) > 0;
    ro.tombstone_grace_ms = grace_ms;
    ro.ae_bytes_per_s = ae_bytes_per_s;
    n.replicator = std::make_unique<node::Replicator>(*n.env, *n.engine, ro, n.name, rng());
    // A restarted node knows the members it knew (the daemon persists them),
    // as suspects until it hears from them; a new or wiped one knows the
    // others' names from its seeds. It has heard from nobody yet.
    std::vector<gossip::Member> known;
    if (n.membership != nullptr) {
      known = n.membership->View();
      known.erase(known.begin());  // its own earlier record
    } else {
      for (int j = 0; j < kNodes; ++j) {
        if (j != i) known.push_back(gossip::Member{names[j], names[j], names[j], 0, 0, gossip::MemberState::kSuspect});
      }
    }
    for (auto& m : known) {
      if (m.state == gossip::MemberState::kAlive) m.state = gossip::MemberState::kSuspect;
    }
    n.membership = std::make_unique<gossip::Membership>(gossip::Member{
        n.name, n.name, n.name, n.store->identity().incarnation, n.env->NowMs(), gossip::MemberState::kAlive,
        joining.count(i) > 0, leaving.count(i) > 0});
    n.membership->Merge(known);
    n.link_down.clear();
    n.up = true;
    ++n.epoch;
    ApplyView(i);
    AntiEntropy(i);
    Tick(i);
  }

  // Every 200 ms, as the daemon's gossip loop: failure detection, links
  // dialled again, the membership gossiped to every member, the view
  // handed to the replicator, and Replicator::Tick (watch leases, joining).
  void Tick(int i) {
    Schedule(i, 200, [this, i] {
      SimNode& n = nodes[i];
      const std::uint64_t t = n.env->NowMs();
      n.membership->Detect(t);
      for (auto it = n.link_down.begin(); it != n.link_down.end();) {
        const int k = IndexOf(*it);
        it = k >= 0 && nodes[k].up && !Cut(i, k) ? n.link_down.erase(it) : std::next(it);
      }
      n.membership->Tick();
      const std::string payload = gossip::EncodeMembers(n.membership->View(), t << 16);
      for (const auto& to : n.membership->GossipTargets({})) Transmit(i, to, payload);
      ApplyView(i);
      n.replicator->Tick();
      Tick(i);
    });
  }

  // The node loses its disk and comes back empty: it joins again and pulls.
  void Wipe(int i) {
    if (nodes[i].up) Crash(i);
    std::filesystem::remove_all(nodes[i].dir);
    nodes[i].membership.reset();  // persisted in the data directory
    NewDisk(i);
    joining.insert(i);
    Start(i);
  }

  // A fresh disk for node i: its data directory (LMDB, on a real file system)
  // and, for the log, a FaultEnv holding the same directory path.
  void NewDisk(int i) {
    SimNode& n = nodes[i];
    n.disk = std::make_unique<storage::FaultEnv>(rng());
    std::filesystem::create_directories(n.dir);
    Status s = n.disk->CreateDirs(n.dir);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }

  // An anti-entropy round every 500 ms while the node runs.
  void AntiEntropy(int i) {
    Schedule(i, 500, [this, i] {
      nodes[i].replicator->AntiEntropyRound();
      AntiEntropy(i);
    });
  }

  void Crash(int i) {
    SimNode& n = nodes[i];
    n.up = false;
    ++n.epoch;  // drops its timers, commits in flight and messages to it
    collected += n.replicator->stats().tombstones_collected;
    ignored += n.replicator->stats().retired_ignored;
    n.replicator.reset();
    n.engine.reset();
    // A crash is a power cut: no last checkpoint, and the log keeps only
    // what was synced (or a torn part of the batch being synced).
    n.store->Kill();
    n.store.reset();
    n.disk->PowerCut(static_cast<storage::FaultEnv::Cut>(rng() % 4));
    n.clock.reset();
    // Its peers' connections to it close: unreachable to them at once.
    for (int j = 0; j < kNodes; ++j) {
      if (j == i || !nodes[j].up) continue;
      Schedule(j, 1 + Rand(5), [this, i, j] {
        if (nodes[i].up || !nodes[j].link_down.insert(names[i]).second) return;
        ApplyView(j);
        nodes[j].replicator->PeerDown(names[i]);
      });
    }
  }

  // Operator actions (joining, leaving, forgetting: the sets above) reach
  // each node after up to 300 ms.
  void ViewsChanged() {
    for (int i = 0; i < kNodes; ++i) {
      if (!nodes[i].up) continue;
      Schedule(i, Rand(300), [this, i] { ApplyView(i); });
    }
  }

  std::vector<std::string> Members() const {
    std::vector<std::string> out;
    for (int j = 0; j < kNodes; ++j) {
      if (!gone.count(j)) out.push_back(names[j]);
    }
    return out;
  }

  // Node i's own flags and the members forgotten or left, as the operator
  // set them, go into its membership; the replicator gets the view its
  // membership gives (node/cluster.cc UpdateViewLocked).
  void ApplyView(int i) {
    SimNode& n = nodes[i];
    gossip::Membership& m = *n.membership;
    m.SetJoining(joining.count(i) > 0);
    m.SetLeaving(leaving.count(i) > 0);
    for (int j : gone) {
      const gossip::Member* r = m.Find(names[j]);
      if (r == nullptr || r->state == gossip::MemberState::kLeft) continue;
      if (j == i) {
        m.Leave();
      } else {
        m.Forget(names[j]);
      }
    }
    node::ReplicaView v;
    v.members = m.NotLeft();
    for (const auto& [name, r] : m.members()) {
      if (r.state == gossip::MemberState::kLeft) continue;
      if (r.joining) v.joining.insert(name);
      if (r.leaving) v.leaving.insert(name);
    }
    v.reachable = m.Reachable(n.link_down, n.env->NowMs());
    n.replicator->SetView(std::move(v));
  }

  void RunUntil(std::uint64_t t, const std::function<bool()>& stop = {}) {
    while (!events.empty() && events.top().at <= t) {
      Event e = events.top();
      events.pop();
      now = std::max(now, e.at);
      if (e.node >= 0 && (!nodes[e.node].up || nodes[e.node].epoch != e.epoch)) continue;
      e.fn();
      if (stop && stop()) return;
    }
    now = std::max(now, t);
  }

  // A read command run on one node's own store.
  std::string LocalRead(int i, const node::Args& args) {
    SimNode& n = nodes[i];
    std::string out;
    const node::CommandSpec* spec = n.engine->Find(args[0]);
    REQUIRE(spec != nullptr);
    REQUIRE(n.store->Read([&](storage::Txn& t) {
      node::CommandContext ctx{t, false, now, out, nullptr};
      n.engine->Run(*spec, ctx, args);
      return Status::Ok();
    }).ok());
    return out;
  }
};

inline std::uint64_t SimEnv::NowMs() { return w_.now + w_.nodes[index_].skew_ms; }

inline void SimEnv::Send(const std::string& member, std::string message, bool) { w_.Transmit(index_, member, message); }

inline void SimEnv::Commit(storage::Store::Work work, std::function<void(Status)> done) {
  std::promise<Status> committed;
  w_.nodes[index_].store->Submit(std::move(work), [&committed](Status s) { committed.set_value(std::move(s)); });
  Status s = committed.get_future().get();
  w_.Schedule(index_, 1 + w_.Rand(3), [done = std::move(done), s] { done(s); });
}

inline void SimEnv::After(std::uint64_t delay_ms, std::function<void()> fn) { w_.Schedule(index_, delay_ms, std::move(fn)); }

inline void SimEnv::HandedOff() { w_.handed.insert(index_); }

inline void SimEnv::Joined() {
  if (w_.joining.erase(index_) > 0) w_.ViewsChanged();
}

// Members of a RESP array of bulk strings.
inline std::set<std::string> ParseArray(const std::string& r) {
  std::set<std::string> out;
  if (r.empty() || r[0] != '*') return out;
  std::size_t pos = r.find("\r\n") + 2;
  while (pos < r.size() && r[pos] == '$') {
    std::size_t eol = r.find("\r\n", pos);
    std::size_t len = std::stoul(r.substr(pos + 1, eol - pos - 1));
    out.insert(r.substr(eol + 2, len));
    pos = eol + 2 + len + 2;
  }
  return out;
}

inline std::int64_t ParseInt(const std::string& r) {
  if (r.size() > 1 && r[0] == ':') return std::stoll(r.substr(1));
  if (r.size() > 1 && r[0] == '$' && r[1] != '-') {
    std::size_t eol = r.find("\r\n");
    return std::stoll(r.substr(eol + 2));
  }
  return 0;
}


inline std::uint64_t EnvU64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::strtoull(v, nullptr, 10) : fallback;
}

// The seed of a targeted case: LATTICE_SEED when set, else `fixed`.
inline std::uint64_t CaseSeed(std::uint64_t fixed) {
  return std::getenv("LATTICE_SEED") != nullptr ? EnvU64("LATTICE_SEED", 1) : fixed;
}

// Where worlds keep their LMDB files: /dev/shm when there is one (its syncs are cheap).
inline std::filesystem::path SimRoot() {
  std::error_code ec;
  return std::filesystem::is_directory("/dev/shm", ec) ? std::filesystem::path("/dev/shm")
                                                       : std::filesystem::temp_directory_path();
}

// Crashes every node that is up and removes the world's data.
inline void TearDown(World& w) {
  for (int i = 0; i < kNodes; ++i) {
    if (w.nodes[i].up) w.Crash(i);
  }
  std::filesystem::remove_all(w.root);
}

// A world of kNodes fresh nodes without network faults, started.
inline void StartQuiet(World& w, const std::string& tag) {
  w.root = SimRoot() / ("lattice-sim-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(w.root);
  w.p_drop = 0;
  w.p_dup = 0;
  w.nodes.resize(kNodes);
  for (int i = 0; i < kNodes; ++i) {
    w.names.push_back("n" + std::to_string(i + 1));
    w.nodes[i].name = w.names[i];
    w.nodes[i].dir = (w.root / w.names[i]).string();
  }
  for (int i = 0; i < kNodes; ++i) w.Start(i);
  w.RunUntil(w.now + 500);
}

// Runs `args` coordinated by node `at` and returns the reply.
inline std::string Exec(World& w, int at, node::Args args, Level level) {
  std::optional<std::string> reply;
  const node::CommandSpec* spec = w.nodes[at].engine->Find(args[0]);
  REQUIRE(spec != nullptr);
  w.nodes[at].replicator->Execute(*spec, std::move(args), level, {}, [&](node::Answer a) {
    reply.emplace();
    node::AppendAnswer(*reply, a);
  });
  w.RunUntil(w.now + 10000, [&] { return reply.has_value(); });
  REQUIRE(reply.has_value());
  return *reply;
}

inline bool Holds(World& w, int i, const std::string& key) {
  bool found = false;
  REQUIRE(w.nodes[i].store->Read([&](storage::Txn& t) {
    auto r = t.Load(key, storage::Members::None());
    found = r.ok();
    return r.ok() || r.status().IsNotFound() ? Status::Ok() : r.status();
  }).ok());
  return found;
}

// Writes `n` keys at ALL through node 0 and returns them.
inline std::vector<std::string> WriteKeys(World& w, int n) {
  std::vector<std::string> keys;
  for (int k = 0; k < n; ++k) {
    keys.push_back("key" + std::to_string(k));
    REQUIRE(Exec(w, 0, {"SADD", keys.back(), "v"}, Level::kAll) == ":1\r\n");
  }
  return keys;
}

// Every key is held by each of its replicas among `members`.
inline void CheckPlaced(World& w, const std::vector<std::string>& keys) {
  node::Ring ring(256, 3);
  ring.SetMembers(w.Members());
  for (const auto& key : keys) {
    for (const auto& r : ring.ReplicasOf(key)) {
      INFO("key " << key << " on " << r);
      CHECK(ParseArray(w.LocalRead(w.IndexOf(r), {"SMEMBERS", key})) == std::set<std::string>{"v"});
    }
  }
}

}  // namespace lattice::sim
