// WatchRelay: SUBSCRIBE across nodes (DESIGN §5), for keys this node does not
// replicate. While a key has local subscribers, its replicas are asked (a
// Watch message, renewed every second, a lease of kLeaseMs) to report its
// changes; a replica that changes a watched key (or applies its expiry) sends
// the new value (Changed) to every member holding a lease, where it reaches
// the subscribers through ReplicaEnv::Notify.
//
// Owns: the local subscription counts per key and the leases peers hold on
// this node's keys, under its own mutex (no lock shared with the
// Replicator). Executor: whatever thread calls it (the daemon's io_context,
// the simulation's event loop); callbacks into the Replicator (replicas_of)
// and the environment run outside its lock. Sends: Watch (keys) to a key's
// replicas, Changed (key, value) to watchers. Receives: Watch and Changed
// from peers (OnWatch, OnChanged), local subscription changes (Watch), and
// the keys this node changed (Changed).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace lattice::node {

class Engine;
class ReplicaEnv;

class WatchRelay {
 public:
  // `replicas_of(key)`: the key's replicas, best first (the Replicator's ring).
  using ReplicasOf = std::function<std::vector<std::string>(std::string_view key)>;
  WatchRelay(ReplicaEnv& env, Engine& engine, std::string self, ReplicasOf replicas_of);

  static constexpr std::uint64_t kLeaseMs = 5000;

  // A local subscription to `key` began (on) or ended; the first asks the
  // key's replicas at once.
  void Watch(const std::string& key, bool on);
  // Renews the leases of every watched key (called every second).
  void Renew();
  // Peer `from` watches `keys`.
  void OnWatch(const std::string& from, const std::vector<std::string>& keys);
  // A watched key's new value from a replica.
  void OnChanged(const std::string& key, const std::string& value);
  // This node changed `key` (a write it minted, or an expiry it applied):
  // sends its value to the members watching it.
  void Changed(const std::string& key);

 private:
  // Asks the replicas of `keys` (those this node does not replicate itself).
  void SendWatch(const std::vector<std::string>& keys);

  ReplicaEnv& env_;
  Engine& engine_;
  const std::string self_;
  const ReplicasOf replicas_of_;
  std::mutex mu_;
  std::map<std::string, int> watched_;                                    // key -> local subscriptions
  std::map<std::string, std::map<std::string, std::uint64_t>> watchers_;  // key -> member -> lease end (ms)
};

}  // namespace lattice::node
