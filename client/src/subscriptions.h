// The subscriptions of one Client: who wants which key, which keys the
// subscriber connection has confirmed, and delivery. Runs on the I/O thread,
// except WaitActive (any thread; the active set has its own lock). No I/O.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lattice/client.h"

namespace lattice::detail {

class Subscriptions {
 public:
  using Callback = std::function<void(const Message&)>;

  // A new subscription's id, and whether its key is new here (to SUBSCRIBE).
  std::uint64_t Add(std::string key, Callback cb, bool& first_for_key);
  // Removes `id`; true (and `key`) if it was its key's last one (to UNSUBSCRIBE).
  bool Remove(std::uint64_t id, std::string& key);
  bool empty() const { return keys_.empty(); }
  std::vector<std::string> Keys() const;

  // The node confirmed `key`: its subscriptions are active.
  void Confirm(const std::string& key);
  bool Confirmed(const std::string& key) const { return confirmed_.count(key) > 0; }
  void Activate(std::uint64_t id);
  // The subscriber connection failed: nothing is active until confirmed again.
  void Lost();
  bool WaitActive(std::uint64_t id, std::chrono::milliseconds timeout);

  // Messages received for `key` so far (a read of the current value is
  // delivered only if none arrived meanwhile).
  std::uint64_t Messages(const std::string& key) const;
  // A message from the node: counted and delivered.
  void OnMessage(const std::string& key, const std::string& value);
  // Runs the callbacks of `key` (only `only`'s, if given); a throwing callback is ignored.
  void Deliver(const std::string& key, const std::string& value, std::optional<std::uint64_t> only = std::nullopt);

 private:
  struct Sub {
    std::string key;
    Callback cb;
  };
  std::map<std::uint64_t, Sub> subs_;
  std::map<std::string, int> keys_;  // key -> subscriptions
  std::set<std::string> confirmed_;
  std::map<std::string, std::uint64_t> messages_;
  std::uint64_t next_ = 1;
  std::mutex active_mu_;
  std::condition_variable active_cv_;
  std::set<std::uint64_t> active_;  // guarded by active_mu_
};

}  // namespace lattice::detail
