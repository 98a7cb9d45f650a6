#include "client/src/subscriptions.h"

namespace lattice::detail {

std::uint64_t Subscriptions::Add(std::string key, Callback cb, bool& first_for_key) {
  const std::uint64_t id = next_++;
  first_for_key = keys_[key]++ == 0;
  subs_.emplace(id, Sub{std::move(key), std::move(cb)});
  return id;
}

bool Subscriptions::Remove(std::uint64_t id, std::string& key) {
  auto it = subs_.find(id);
  if (it == subs_.end()) return false;
  key = it->second.key;
  subs_.erase(it);
  {
    std::lock_guard lock(active_mu_);
    active_.erase(id);
  }
  if (--keys_[key] > 0) return false;
  keys_.erase(key);
  confirmed_.erase(key);
  return true;
}

std::vector<std::string> Subscriptions::Keys() const {
  std::vector<std::string> out;
  for (const auto& [key, n] : keys_) out.push_back(key);
  return out;
}

void Subscriptions::Confirm(const std::string& key) {
  confirmed_.insert(key);
  {
    std::lock_guard lock(active_mu_);
    for (auto& [id, s] : subs_) {
      if (s.key == key) active_.insert(id);
    }
  }
  active_cv_.notify_all();
}

void Subscriptions::Activate(std::uint64_t id) {
  {
    std::lock_guard lock(active_mu_);
    active_.insert(id);
  }
  active_cv_.notify_all();
}

void Subscriptions::Lost() {
  confirmed_.clear();
  std::lock_guard lock(active_mu_);
  active_.clear();
}

bool Subscriptions::WaitActive(std::uint64_t id, std::chrono::milliseconds timeout) {
  std::unique_lock lock(active_mu_);
  return active_cv_.wait_for(lock, timeout, [&] { return active_.count(id) > 0; });
}

std::uint64_t Subscriptions::Messages(const std::string& key) const {
  auto it = messages_.find(key);
  return it == messages_.end() ? 0 : it->second;
}

void Subscriptions::OnMessage(const std::string& key, const std::string& value) {
  ++messages_[key];
  Deliver(key, value);
}

void Subscriptions::Deliver(const std::string& key, const std::string& value, std::optional<std::uint64_t> only) {
  const Message m{key, value};
  std::vector<Callback> cbs;
  for (auto& [id, s] : subs_) {
    if (s.key == key && (!only || *only == id)) cbs.push_back(s.cb);
  }
  for (auto& cb : cbs) {
    try {
      cb(m);
    } catch (...) {
      // A throwing callback must not stop the I/O thread.
    }
  }
}

}  // namespace lattice::detail
