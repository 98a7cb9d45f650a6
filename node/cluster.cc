#include "node/cluster.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <list>
#include <map>
#include <set>


#include "crdt/dot.h"
#include "gossip/formation.h"
#include "gossip/membership.h"
#include "gossip/transport.h"
#include "gossip/wire.h"
#include "node/cluster_options.h"
#include "node/engine.h"
#include "node/replicator.h"
#include "node/ring.h"

namespace lattice::node {

using gossip::FoundersId;

struct Cluster::Impl : std::enable_shared_from_this<Impl>, ReplicaEnv {
  Impl(asio::io_context& io_, const Config& c, Engine& e)
      : io(io_), config(c), engine(e), transport(io_, TransportOptionsFor(c, e.store().identity())),
        membership(SelfRecord(c, e.store().identity())), ring(256, static_cast<std::uint32_t>(c.replicas)),
        timer(io_), ae_timer(io_),
        replicator(*this, e, ReplicatorOptionsFor(c), e.store().identity().name, std::random_device{}() ^ ClockMs()) {
    for (const auto& s : c.seeds) seeds.insert(s);
    started_ms = ClockMs();
    RestoreMembers();
    InitFormationLocked(e.store().identity());
    // Joining survives a restart until every partition is pulled.
    bool joining = membership.Find(membership.self())->joining;
    (void)e.store().Read([&](storage::Txn& t) {
      auto r = t.GetNodeRecord("joining");
      if (r.ok() && *r && **r == "1") joining = true;
      return Status::Ok();
    });
    SetJoiningLocked(joining);
    UpdateViewLocked();
  }

  void SetJoiningLocked(bool joining) {
    membership.SetJoining(joining);
    engine.store().Submit([joining](storage::Txn& t) { return t.PutNodeRecord("joining", joining ? "1" : "0"); },
                          [](Status s) {
                            if (!s.ok()) spdlog::warn("persisting the joining flag: {}", s.ToString());
                          });
    if (joining && !forming) spdlog::info("joining: pulling the partitions this node replicates before serving reads");
  }

  // Formation (DESIGN §4). A node that has a cluster id keeps it. A fresh one
  // founds alone when it has no seeds but itself, else it forms: it waits to
  // reach a member of an existing cluster (and joins it) or to agree with
  // bootstrap_expect fresh nodes on founding one; a restart while forming
  // forms again. A node with data but no id (written before formation
  // existed) serves as before and adopts the first id it hears.
  void InitFormationLocked(const storage::NodeIdentity& id) {
    bool was_forming = false;  // restarted before it founded or joined
    (void)engine.store().Read([&](storage::Txn& t) {
      auto r = t.GetNodeRecord("cluster_id");
      if (r.ok() && *r) cluster_id = std::strtoull((**r).c_str(), nullptr, 16);
      auto f = t.GetNodeRecord("forming");
      was_forming = f.ok() && *f && **f == "1";
      return Status::Ok();
    });
    expect = config.bootstrap_expect > 0 ? static_cast<std::size_t>(config.bootstrap_expect)
                                         : std::max<std::size_t>(1, seeds.size());
    formation = gossip::Formation(expect, started_ms);
    if (cluster_id == 0 && (id.fresh || was_forming)) {
      if (FoundsAloneAtOnce(config)) {
        SetClusterIdLocked(FoundersId({{id.name, id.incarnation}}));
        spdlog::info("founded cluster {:016x} alone", cluster_id);
      } else {
        forming = true;
        engine.store().Submit([](storage::Txn& t) { return t.PutNodeRecord("forming", "1"); },
                              [](Status s) {
                                if (!s.ok()) spdlog::error("persisting the forming flag: {}", s.ToString());
                              });
        spdlog::info("forming: waiting for a member of an existing cluster, or for {} fresh nodes to found one",
                     expect);
      }
    }
    transport.SetClusterId(cluster_id);
    membership.SetCluster(cluster_id, 0);
  }

  void SetClusterIdLocked(std::uint64_t id) {
    cluster_id = id;
    forming = false;
    transport.SetClusterId(id);
    membership.SetCluster(id, 0);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(id));
    engine.store().Submit([v = std::string(hex)](storage::Txn& t) { return t.PutNodeRecord("cluster_id", v); },
                          [](Status s) {
                            if (!s.ok()) spdlog::error("persisting the cluster id: {}", s.ToString());
                          });
  }

  // One formation step per gossip round (under mu): gossip/formation.h
  // decides, this node persists, announces and logs it.
  void FormLocked(std::uint64_t now) {
    if (cluster_id != 0 && !forming) return;
    const gossip::FormationStep step = formation.Step(membership, forming, now);
    using K = gossip::FormationStep::Kind;
    switch (step.kind) {
      case K::kCofound:
        SetClusterIdLocked(step.cluster_id);
        SetJoiningLocked(false);
        spdlog::info("founded cluster {:016x} with {} (who completed the agreement first)", cluster_id, step.through);
        return;
      case K::kJoin:
        SetClusterIdLocked(step.cluster_id);
        spdlog::info("joining cluster {:016x} through member {}: pulling partitions before serving reads",
                     cluster_id, step.through);
        return;
      case K::kAdopt:
        SetClusterIdLocked(step.cluster_id);
        spdlog::info("adopted cluster id {:016x} from member {}", cluster_id, step.through);
        return;
      case K::kFound:
        SetClusterIdLocked(step.cluster_id);
        SetJoiningLocked(false);
        spdlog::info("founded cluster {:016x} with {} founders ({})", cluster_id, step.founder_count, step.founders);
        return;
      case K::kWait:
        if (!forming) return;
        membership.SetCluster(0, step.forming);
        forming_reason = step.reason;
        if (now - last_forming_log_ms >= 5000) {
          last_forming_log_ms = now;
          spdlog::info("forming: not founded yet: {}; and no member of an existing cluster reached", forming_reason);
        }
        return;
    }
  }

  // The members known before a restart, as suspects until they are heard
  // from: the node then coordinates over its real replicas at once instead of
  // believing it is alone.
  void RestoreMembers() {
    std::vector<gossip::Member> known;
    (void)engine.store().Read([&](storage::Txn& t) {
      auto r = t.GetNodeRecord("members");
      if (r.ok() && *r) gossip::DecodeMembers(**r, known);
      return Status::Ok();
    });
    for (auto& m : known) {
      if (m.state == gossip::MemberState::kAlive) m.state = gossip::MemberState::kSuspect;
    }
    if (!known.empty()) {
      membership.Merge(known);
      spdlog::info("restored {} known members", known.size() - 1);
    }
  }

  // Persists the membership when the set of members or their addresses changed.
  void PersistMembersLocked() {
    std::vector<gossip::Member> view;
    std::string signature;
    for (const auto& [name, m] : membership.members()) {
      view.push_back(m);
      signature += name + "@" + m.peer_address + "/" + m.client_address + "/" +
                   std::to_string(m.state == gossip::MemberState::kLeft) + ";";
    }
    if (signature == persisted_signature) return;
    persisted_signature = signature;
    std::string bytes = gossip::EncodeMembers(view, WallHlc());
    engine.store().Submit([bytes](storage::Txn& t) { return t.PutNodeRecord("members", bytes); },
                          [](Status s) {
                            if (!s.ok()) spdlog::warn("persisting the membership: {}", s.ToString());
                          });
  }

  asio::io_context& io;
  Config config;
  Engine& engine;
  gossip::Transport transport;
  mutable std::mutex mu;  // guards membership, ring, seeds, timers, on_changed
  gossip::Membership membership;
  Ring ring;
  std::set<std::string> seeds;  // peer addresses to contact until known
  asio::steady_timer timer;
  asio::steady_timer ae_timer;
  std::atomic<bool> stopped{false};
  std::mt19937_64 rng{std::random_device{}()};
  std::list<std::shared_ptr<asio::steady_timer>> timers;  // the replicator's, cancelled on Stop
  std::function<void(const std::vector<std::string>&)> on_changed;
  std::function<void(const std::string&, const std::string&)> on_notify;
  std::string persisted_signature;
  // Formation: our cluster id (0: none yet), whether we are forming (fresh,
  // neither founded nor joined), the founders expected, why we wait.
  std::uint64_t cluster_id = 0;
  bool forming = false;
  std::size_t expect = 1;
  gossip::Formation formation{1, 0};
  std::string forming_reason = "starting";
  std::uint64_t started_ms = 0;
  std::uint64_t last_forming_log_ms = 0;
  // Members whose link closed or whose port refused us since we last linked:
  // unreachable at once (DESIGN §4), not after the heartbeat timeout.
  std::set<std::string> link_down;
  // The peer protocol each member's messages came with (ReplicaEnv::Batches).
  std::map<std::string, std::uint32_t> protocols;
  // Commit callbacks waiting for RunCompletions, and (on the thread running
  // it) what they Defer.
  std::mutex completions_mu;
  std::vector<std::pair<std::function<void(Status)>, Status>> completions;
  static inline thread_local std::vector<std::function<void()>>* deferring = nullptr;
  Replicator replicator;  // last: it uses the members above

  // The ring and the replicator follow the membership.
  void UpdateViewLocked() {
    ReplicaView v;
    v.members = membership.NotLeft();
    if (forming) {
      v.forming = "the cluster is not formed yet: " + forming_reason + "; see CLUSTER INFO";
    }
    for (const auto& [name, m] : membership.members()) {
      if (m.joining && m.state != gossip::MemberState::kLeft) v.joining.insert(name);
      if (m.leaving && m.state != gossip::MemberState::kLeft) v.leaving.insert(name);
    }
    v.reachable = membership.Reachable(link_down, ClockMs());  // reachable: see gossip/membership.h
    ring.SetMembers(v.members);
    replicator.SetView(std::move(v));
    PersistMembersLocked();
  }

  // ---- ReplicaEnv ----
  std::uint64_t NowMs() override { return ClockMs(); }

  void Send(const std::string& member, std::string message, bool must_deliver) override {
    std::string address;
    {
      std::lock_guard lock(mu);
      const gossip::Member* m = membership.Find(member);
      if (m == nullptr) return;
      address = m->peer_address;
    }
    transport.Send(address, std::move(message), must_deliver);
  }

  bool SendBulk(const std::string& member, std::string message) override {
    std::string address;
    {
      std::lock_guard lock(mu);
      const gossip::Member* m = membership.Find(member);
      if (m == nullptr) return false;
      address = m->peer_address;
    }
    return transport.Send(address, std::move(message), false, gossip::TransportOptions{}.max_queue_bytes / 2);
  }

  // The commits that complete together (one writer batch: the syncer runs
  // their callbacks back to back) are answered in one handler on the
  // io_context, and what they Defer (acknowledgements and deltas, peer
  // batching) runs at its end: coalesced per batch, without waiting behind
  // the rest of the io_context's queue.
  void Commit(storage::Store::Work work, std::function<void(Status)> done) override {
    engine.store().Submit(std::move(work), [self = shared_from_this(), done = std::move(done)](Status s) mutable {
      bool first = false;
      {
        std::lock_guard lock(self->completions_mu);
        first = self->completions.empty();
        self->completions.emplace_back(std::move(done), std::move(s));
      }
      if (first) asio::post(self->io, [self] { self->RunCompletions(); });
    });
  }

  // A node alone sends nothing to peers: its commits answer on the syncer
  // thread (the caller posts to where it runs).
  void CommitAlone(storage::Store::Work work, std::function<void(Status)> done) override {
    engine.store().Submit(std::move(work), std::move(done));
  }

  void RunCompletions() {
    std::vector<std::pair<std::function<void(Status)>, Status>> batch;
    {
      std::lock_guard lock(completions_mu);
      batch.swap(completions);
    }
    std::vector<std::function<void()>> deferred;
    deferring = &deferred;
    for (auto& [done, s] : batch) done(s);
    deferring = nullptr;
    for (auto& fn : deferred) fn();
  }

  void After(std::uint64_t delay_ms, std::function<void()> fn) override {
    auto t = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(delay_ms));
    std::list<std::shared_ptr<asio::steady_timer>>::iterator it;
    {
      std::lock_guard lock(mu);
      if (stopped) return;
      it = timers.insert(timers.end(), t);
    }
    t->async_wait([self = shared_from_this(), t, it, fn = std::move(fn)](asio::error_code ec) {
      {
        std::lock_guard lock(self->mu);
        if (self->stopped) return;  // Stop() cleared the list
        self->timers.erase(it);
      }
      if (!ec) fn();
    });
  }

  void Defer(std::function<void()> fn) override {
    if (deferring != nullptr) return deferring->push_back(std::move(fn));  // in RunCompletions, on this thread
    asio::post(io, std::move(fn));
  }

  bool Batches(const std::string& member) override {
    std::lock_guard lock(mu);
    auto it = protocols.find(member);
    return it != protocols.end() && it->second >= 5;
  }

  void Changed(const std::vector<std::string>& keys) override {
    std::function<void(const std::vector<std::string>&)> fn;
    {
      std::lock_guard lock(mu);
      fn = on_changed;
    }
    if (fn) fn(keys);
  }

  void Joined() override {
    std::lock_guard lock(mu);
    SetJoiningLocked(false);
    UpdateViewLocked();
    spdlog::info("joined: every partition this node replicates is pulled; it now serves reads");
  }

  void HandedOff() override {
    std::lock_guard lock(mu);
    membership.Leave();
    UpdateViewLocked();
    spdlog::info("left the cluster: every partition this node replicated is handed off; it can be stopped");
  }

  void Notify(const std::string& key, const std::string& value) override {
    std::function<void(const std::string&, const std::string&)> fn;
    {
      std::lock_guard lock(mu);
      fn = on_notify;
    }
    if (fn) fn(key, value);
  }

  void OnMessage(const gossip::PeerInfo& from, std::string_view bytes) {
    {
      std::lock_guard lock(mu);
      membership.Heard(from.node, ClockMs());
      protocols[from.node] = from.protocol;
    }
    if (replicator.OnMessage(from.node, bytes)) return;
    std::vector<gossip::Member> view;
    if (!gossip::DecodeMembers(bytes, view)) {
      spdlog::warn("malformed gossip from {}", from.node);
      return;
    }
    bool earlier = false;
    {
      std::lock_guard lock(mu);
      const gossip::Member* me = membership.Find(membership.self());
      for (const auto& r : view) {
        earlier = earlier || (r.name == me->name && r.incarnation != me->incarnation);
      }
      // Records of another cluster (relayed by a node that has not joined
      // either yet) stay out: two clusters never merge.
      if (cluster_id != 0) {
        std::erase_if(view, [&](const gossip::Member& r) { return r.cluster_id != 0 && r.cluster_id != cluster_id; });
      }
      if (membership.Merge(view)) UpdateViewLocked();
    }
    // Peers remember another life of our name: resends meant for it may come.
    if (earlier) replicator.EarlierLife();
  }

  void OnLinkChange(const std::string& address, bool up) {
    std::string name;
    {
      std::lock_guard lock(mu);
      for (const auto& [n, m] : membership.members()) {
        if (m.peer_address == address && n != membership.self()) name = n;
      }
      if (name.empty()) return;
      if (up ? link_down.erase(name) == 0 : !link_down.insert(name).second) return;
      if (!up) spdlog::info("link to member {} closed: unreachable until it links again", name);
      UpdateViewLocked();
    }
    if (!up) replicator.PeerDown(name);
  }

  asio::awaitable<void> AntiEntropy() {
    auto self = shared_from_this();
    while (!stopped && config.ae_interval_ms > 0) {
      ae_timer.expires_after(std::chrono::milliseconds(config.ae_interval_ms));
      asio::error_code ec;
      co_await ae_timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopped) break;
      replicator.AntiEntropyRound();
    }
  }

  asio::awaitable<void> Gossip() {
    auto self = shared_from_this();
    while (!stopped) {
      std::vector<std::string> targets;
      std::string payload;
      {
        std::lock_guard lock(mu);
        for (const auto& name : membership.Detect(ClockMs())) {
          spdlog::info("member {} is now {}", name, gossip::StateName(membership.Find(name)->state));
        }
        FormLocked(ClockMs());
        membership.Tick();
        // Every member every round, and the seeds not yet known: the
        // heartbeats are what each node's failure detector and reachability
        // go by (clusters are small).
        targets = membership.GossipTargets(seeds);
        payload = gossip::EncodeMembers(membership.View(), WallHlc());
        UpdateViewLocked();
      }
      for (const auto& t : targets) transport.Send(t, payload);
      replicator.Tick();
      timer.expires_after(std::chrono::milliseconds(200));
      asio::error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }
};

Cluster::Cluster(asio::io_context& io, const Config& config, Engine& engine)
    : impl_(std::make_shared<Impl>(io, config, engine)) {}

Cluster::~Cluster() { Stop(); }

Status Cluster::Start() {
  Impl& im = *impl_;
  if (Status s = im.transport.Listen(); !s.ok()) return s;
  std::weak_ptr<Impl> weak = impl_;
  im.transport.OnMessage([weak](const gossip::PeerInfo& from, std::string_view m) {
    if (auto im = weak.lock()) im->OnMessage(from, m);
  });
  im.transport.OnLinkChange([weak](const std::string& address, bool up) {
    if (auto im = weak.lock()) im->OnLinkChange(address, up);
  });
  asio::co_spawn(im.io, im.Gossip(), asio::detached);
  asio::co_spawn(im.io, im.AntiEntropy(), asio::detached);
  spdlog::info("peer transport on {}:{} (cluster '{}'), seeds: {}", im.config.bind, im.transport.port(),
               im.config.cluster_name, im.seeds.empty() ? "none" : std::to_string(im.seeds.size()));
  return Status::Ok();
}

void Cluster::Stop() {
  Impl& im = *impl_;
  im.replicator.Stop();
  {
    std::lock_guard lock(im.mu);
    im.stopped = true;
    for (auto& t : im.timers) t->cancel();
    im.timers.clear();
  }
  asio::post(im.io, [p = impl_] {
    p->timer.cancel();
    p->ae_timer.cancel();
  });
  im.transport.Stop();
}

Status Cluster::Join(const std::string& address) {
  if (address.rfind(':') == std::string::npos) return Status::InvalidArgument("expected host:port");
  std::lock_guard lock(impl_->mu);
  impl_->seeds.insert(address);
  return Status::Ok();
}

std::string Cluster::Leave() {
  std::lock_guard lock(impl_->mu);
  Impl& im = *impl_;
  const gossip::Member* me = im.membership.Find(im.membership.self());
  if (me->state == gossip::MemberState::kLeft) return "already left";
  if (me->leaving) return "already leaving";
  if (im.membership.NotLeft().size() <= 1) {
    im.membership.Leave();
    im.UpdateViewLocked();
    return "left";
  }
  im.membership.SetLeaving(true);
  im.UpdateViewLocked();
  spdlog::info("leaving: handing off every partition this node replicates before it leaves");
  return "leaving: handing off partitions; CLUSTER NODES shows this node as left when done";
}

Status Cluster::Forget(const std::string& name) {
  std::lock_guard lock(impl_->mu);
  const gossip::Member* m = impl_->membership.Find(name);
  if (m == nullptr) return Status::NotFound("no member named '" + name + "'");
  if (name == impl_->membership.self()) return Status::InvalidArgument("a node cannot forget itself; use CLUSTER LEAVE");
  if (m->state == gossip::MemberState::kAlive) {
    return Status::InvalidArgument("member '" + name + "' is alive; only a dead or suspect member can be forgotten");
  }
  impl_->membership.Forget(name);
  impl_->UpdateViewLocked();
  return Status::Ok();
}

std::string Cluster::Nodes() const {
  std::lock_guard lock(impl_->mu);
  const auto now = ClockMs();
  std::string out;
  for (const auto& [name, m] : impl_->membership.members()) {
    std::string contact = "self";
    if (name != impl_->membership.self()) {
      auto since = impl_->membership.SinceLastContact(name, now);
      contact = since ? std::to_string(*since) + "ms" : "never";
    }
    const char* state = m.state != gossip::MemberState::kAlive ? gossip::StateName(m.state)
                        : m.joining                            ? "joining"
                        : m.leaving                            ? "leaving"
                                                               : "alive";
    out += name + " " + m.peer_address + " " + m.client_address + " " + state + " " + contact + "\n";
  }
  return out;
}

std::string Cluster::Info() const {
  std::lock_guard lock(impl_->mu);
  std::size_t counts[4] = {0, 0, 0, 0};
  for (const auto& [name, m] : impl_->membership.members()) ++counts[static_cast<int>(m.state)];
  auto s = impl_->transport.stats();
  const Impl& im = *impl_;
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(im.cluster_id));
  const gossip::Member* me = im.membership.Find(im.membership.self());
  std::string state = im.forming ? "forming" : me->joining ? "joining" : me->leaving ? "leaving" : "ok";
  std::string formation = "cluster_state:" + state + "\r\ncluster_id:" + id + "\r\n";
  if (im.forming) formation += "cluster_forming:" + im.forming_reason + "\r\n";
  formation += "cluster_bootstrap_expect:" + std::to_string(im.expect) + "\r\n";
  return formation + "cluster_name:" + impl_->config.cluster_name + "\r\ncluster_known_nodes:" +
         std::to_string(impl_->membership.members().size()) + "\r\ncluster_alive:" + std::to_string(counts[0]) +
         "\r\ncluster_suspect:" + std::to_string(counts[1]) + "\r\ncluster_dead:" + std::to_string(counts[2]) +
         "\r\ncluster_left:" + std::to_string(counts[3]) + "\r\ncluster_partitions:" +
         std::to_string(impl_->ring.partitions()) + "\r\ncluster_replication:" +
         std::to_string(impl_->ring.replication()) + "\r\npeer_messages_sent:" + std::to_string(s.messages_sent) +
         "\r\npeer_frames_sent:" + std::to_string(s.frames_sent) + "\r\npeer_bytes_sent:" +
         std::to_string(s.bytes_sent) + "\r\npeer_messages_received:" +
         std::to_string(s.messages_received) + "\r\npeer_messages_dropped:" + std::to_string(s.dropped) +
         "\r\npeer_links_reset:" + std::to_string(s.links_reset) + "\r\n";
}

std::string Cluster::NameOfReplica(std::uint64_t id) const {
  std::lock_guard lock(impl_->mu);
  for (const auto& [name, m] : impl_->membership.members()) {
    if (crdt::MakeReplicaId(name, m.incarnation) == id) return name;
  }
  return {};
}

std::vector<std::string> Cluster::Replicas(const std::string& key, std::uint32_t* partition) const {
  std::lock_guard lock(impl_->mu);
  std::uint32_t p = impl_->ring.PartitionOf(key);
  if (partition != nullptr) *partition = p;
  return impl_->ring.Replicas(p);
}

}  // namespace lattice::node

namespace lattice::node {

Replicator& Cluster::replicator() { return impl_->replicator; }

void Cluster::OnChanged(std::function<void(const std::vector<std::string>&)> fn) {
  std::lock_guard lock(impl_->mu);
  impl_->on_changed = std::move(fn);
}

void Cluster::OnNotify(std::function<void(const std::string&, const std::string&)> fn) {
  std::lock_guard lock(impl_->mu);
  impl_->on_notify = std::move(fn);
}

}  // namespace lattice::node
