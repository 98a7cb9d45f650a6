#include "gossip/membership.h"

#include <cmath>
#include <numeric>
#include <tuple>

#include "gossip/wire.h"

namespace lattice::gossip {

const char* StateName(MemberState s) {
  switch (s) {
    case MemberState::kAlive: return "alive";
    case MemberState::kSuspect: return "suspect";
    case MemberState::kDead: return "dead";
    case MemberState::kLeft: return "left";
  }
  return "unknown";
}

bool Supersedes(const Member& a, const Member& b) {
  auto key = [](const Member& m) {
    return std::make_tuple(m.incarnation, m.state == MemberState::kLeft, m.version, static_cast<int>(m.state));
  };
  if (key(a) != key(b)) return key(a) > key(b);
  // Equal keys: addresses break the tie, so the merge stays deterministic.
  return std::tie(a.peer_address, a.client_address) > std::tie(b.peer_address, b.client_address);
}

Membership::Membership(Member self, DetectorOptions options) : self_(self.name), opt_(options) {
  members_.emplace(self.name, std::move(self));
}

const Member* Membership::Find(const std::string& name) const {
  auto it = members_.find(name);
  return it == members_.end() ? nullptr : &it->second;
}

const Member& Membership::Tick() {
  Member& me = members_.at(self_);
  ++me.version;
  return me;
}

bool Membership::Merge(const std::vector<Member>& records) {
  bool changed = false;
  for (const Member& r : records) {
    if (r.name.empty()) continue;
    if (r.name == self_) {
      Member& me = members_.at(self_);
      // Someone thinks we are suspect or dead: refute with a newer version.
      if (r.incarnation == me.incarnation && r.state != MemberState::kAlive &&
          me.state != MemberState::kLeft && r.version >= me.version) {
        me.version = r.version + 1;
        changed = true;
      }
      continue;
    }
    auto [it, inserted] = members_.try_emplace(r.name, r);
    if (inserted) {
      changed = true;
    } else if (Supersedes(r, it->second)) {
      if (r.incarnation != it->second.incarnation) contacts_.erase(r.name);  // a new life
      it->second = r;
      changed = true;
    }
  }
  return changed;
}

void Membership::Heard(const std::string& name, std::uint64_t now_ms) {
  Contact& c = contacts_[name];
  if (c.last_ms != 0 && now_ms > c.last_ms) {
    c.intervals.push_back(now_ms - c.last_ms);
    if (c.intervals.size() > opt_.window) c.intervals.pop_front();
  }
  if (now_ms > c.last_ms) c.last_ms = now_ms;
  c.suspect_since_ms = 0;
}

std::optional<std::uint64_t> Membership::SinceLastContact(const std::string& name, std::uint64_t now_ms) const {
  auto it = contacts_.find(name);
  if (it == contacts_.end() || it->second.last_ms == 0) return std::nullopt;
  return now_ms > it->second.last_ms ? now_ms - it->second.last_ms : 0;
}

double Membership::Phi(const std::string& name, std::uint64_t now_ms) const {
  auto it = contacts_.find(name);
  if (it == contacts_.end() || it->second.last_ms == 0) return 0.0;
  const Contact& c = it->second;
  double mean = static_cast<double>(opt_.min_interval_ms);
  if (!c.intervals.empty()) {
    double avg = static_cast<double>(std::accumulate(c.intervals.begin(), c.intervals.end(), std::uint64_t{0})) /
                 static_cast<double>(c.intervals.size());
    mean = std::max(mean, avg);
  }
  double t = now_ms > c.last_ms ? static_cast<double>(now_ms - c.last_ms) : 0.0;
  // Exponential inter-arrival model: P(no heartbeat for t) = e^(-t/mean).
  return t / mean * std::log10(std::exp(1.0));
}

std::vector<std::string> Membership::Detect(std::uint64_t now_ms) {
  std::vector<std::string> changed;
  for (auto& [name, m] : members_) {
    if (name == self_ || m.state == MemberState::kLeft || m.state == MemberState::kDead) continue;
    auto it = contacts_.find(name);
    if (it == contacts_.end() || it->second.last_ms == 0) continue;  // never heard: no opinion
    Contact& c = it->second;
    if (Phi(name, now_ms) < opt_.phi_suspect) {
      if (m.state == MemberState::kSuspect) {
        m.state = MemberState::kAlive;  // heard again, locally
        changed.push_back(name);
      }
      continue;
    }
    if (m.state == MemberState::kAlive) {
      m.state = MemberState::kSuspect;
      c.suspect_since_ms = now_ms;
      changed.push_back(name);
    } else if (c.suspect_since_ms != 0 && now_ms - c.suspect_since_ms >= opt_.dead_after_ms) {
      m.state = MemberState::kDead;
      changed.push_back(name);
    } else if (c.suspect_since_ms == 0) {
      c.suspect_since_ms = now_ms;  // suspicion learnt from a peer
    }
  }
  return changed;
}

void Membership::SetJoining(bool joining) {
  Member& me = members_.at(self_);
  if (me.joining == joining) return;
  me.joining = joining;
  ++me.version;
}

void Membership::SetLeaving(bool leaving) {
  Member& me = members_.at(self_);
  if (me.leaving == leaving) return;
  me.leaving = leaving;
  ++me.version;
}

void Membership::SetCluster(std::uint64_t cluster_id, std::uint64_t forming) {
  Member& me = members_.at(self_);
  if (me.cluster_id == cluster_id && me.forming == forming) return;
  me.cluster_id = cluster_id;
  me.forming = forming;
  ++me.version;
}

void Membership::Leave() {
  Member& me = members_.at(self_);
  me.state = MemberState::kLeft;
  ++me.version;
}

bool Membership::Forget(const std::string& name) {
  auto it = members_.find(name);
  if (it == members_.end() || name == self_) return false;
  it->second.state = MemberState::kLeft;
  ++it->second.version;
  return true;
}

std::vector<std::string> Membership::NotLeft() const {
  std::vector<std::string> out;
  for (const auto& [name, m] : members_) {
    if (m.state != MemberState::kLeft) out.push_back(name);
  }
  return out;
}

std::vector<Member> Membership::View() const {
  std::vector<Member> view;
  view.push_back(members_.at(self_));
  for (const auto& [name, m] : members_) {
    if (name != self_) view.push_back(m);
  }
  return view;
}

std::vector<std::string> Membership::GossipTargets(const std::set<std::string>& seeds) const {
  std::vector<std::string> targets;
  std::set<std::string> known;
  for (const auto& [name, m] : members_) {
    known.insert(m.peer_address);
    if (name != self_ && m.state != MemberState::kLeft) targets.push_back(m.peer_address);
  }
  for (const auto& s : seeds) {
    if (!known.count(s)) targets.push_back(s);
  }
  return targets;
}

std::set<std::string> Membership::Reachable(const std::set<std::string>& link_down, std::uint64_t now) const {
  std::set<std::string> out;
  for (const auto& [name, m] : members_) {
    if (m.state != MemberState::kAlive) continue;
    auto since = SinceLastContact(name, now);
    if (name == self_ || (since && *since <= kReachableMs && !link_down.count(name))) out.insert(name);
  }
  return out;
}

std::string EncodeMembers(const std::vector<Member>& view, std::uint64_t hlc) {
  return BuildPeerMessage(hlc, [&](wire::PeerMessage::Builder root) {
    auto list = root.initMembers(static_cast<unsigned>(view.size()));
    for (unsigned i = 0; i < view.size(); ++i) {
      list[i].setName(view[i].name);
      list[i].setPeerAddress(view[i].peer_address);
      list[i].setClientAddress(view[i].client_address);
      list[i].setIncarnation(view[i].incarnation);
      list[i].setVersion(view[i].version);
      list[i].setState(static_cast<std::uint8_t>(view[i].state));
      list[i].setJoining(view[i].joining);
      list[i].setLeaving(view[i].leaving);
      list[i].setClusterId(view[i].cluster_id);
      list[i].setForming(view[i].forming);
    }
  });
}

bool DecodeMembers(std::string_view bytes, std::vector<Member>& out) {
  return ReadPeerMessage(bytes, [&](wire::PeerMessage::Reader msg) {
    if (!msg.isMembers()) return false;
    for (auto r : msg.getMembers()) {
      if (r.getState() > static_cast<std::uint8_t>(MemberState::kLeft)) return false;
      out.push_back(Member{r.getName().cStr(), r.getPeerAddress().cStr(), r.getClientAddress().cStr(),
                                   r.getIncarnation(), r.getVersion(),
                                   static_cast<MemberState>(r.getState()), r.getJoining(),
                                   r.getLeaving(), r.getClusterId(), r.getForming()});
    }
    return true;
  });
}

}  // namespace lattice::gossip
