#include "node/watch_relay.h"

#include <algorithm>

#include "gossip/wire.h"
#include "node/engine.h"
#include "node/replicator.h"

namespace lattice::node {

WatchRelay::WatchRelay(ReplicaEnv& env, Engine& engine, std::string self, ReplicasOf replicas_of)
    : env_(env), engine_(engine), self_(std::move(self)), replicas_of_(std::move(replicas_of)) {}

void WatchRelay::SendWatch(const std::vector<std::string>& keys) {
  std::map<std::string, std::vector<std::string>> by_member;
  for (const auto& key : keys) {
    auto replicas = replicas_of_(key);
    if (std::find(replicas.begin(), replicas.end(), self_) != replicas.end()) continue;
    for (const auto& r : replicas) by_member[r].push_back(key);
  }
  for (const auto& [member, list] : by_member) {
    env_.Send(member, gossip::BuildPeerMessage(env_.WallHlc(), [&](auto root) {
                auto out = root.initWatch(static_cast<unsigned>(list.size()));
                for (unsigned i = 0; i < list.size(); ++i) out.set(i, gossip::Bytes(list[i]));
              }),
              false);
  }
}

void WatchRelay::Watch(const std::string& key, bool on) {
  {
    std::lock_guard lock(mu_);
    int& n = watched_[key];
    n += on ? 1 : -1;
    if (n <= 0) {
      watched_.erase(key);
      return;
    }
    if (!(on && n == 1)) return;
  }
  SendWatch({key});
}

void WatchRelay::Renew() {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, n] : watched_) keys.push_back(key);
  }
  if (!keys.empty()) SendWatch(keys);
}

void WatchRelay::OnWatch(const std::string& from, const std::vector<std::string>& keys) {
  const std::uint64_t until = env_.NowMs() + kLeaseMs;
  std::lock_guard lock(mu_);
  for (const auto& key : keys) watchers_[key][from] = until;
}

void WatchRelay::OnChanged(const std::string& key, const std::string& value) { env_.Notify(key, value); }

void WatchRelay::Changed(const std::string& key) {
  std::vector<std::string> to;
  const std::uint64_t now = env_.NowMs();
  {
    std::lock_guard lock(mu_);
    auto it = watchers_.find(key);
    if (it == watchers_.end()) return;
    for (auto w = it->second.begin(); w != it->second.end();) {
      if (w->second < now) {
        w = it->second.erase(w);
      } else {
        to.push_back(w->first);
        ++w;
      }
    }
    if (it->second.empty()) watchers_.erase(it);
  }
  if (to.empty()) return;
  std::string value;
  (void)engine_.store().Read([&](storage::Txn& t) {
    value = engine_.Render(t, key, now);
    return Status::Ok();
  });
  const std::string msg = gossip::BuildPeerMessage(env_.WallHlc(), [&](auto root) {
    auto c = root.initChanged();
    c.setKey(gossip::Bytes(key));
    c.setValue(gossip::Bytes(value));
  });
  for (const auto& member : to) env_.Send(member, msg, false);
}

}  // namespace lattice::node
