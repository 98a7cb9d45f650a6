// PeerOutbox (gossip/outbox.h): coalescing per peer per turn.
#include "gossip/outbox.h"

#include <algorithm>

#include "gossip/wire.h"

namespace lattice::gossip {

template <class T>
void PeerOutbox::Coalesce(std::map<std::string, std::vector<T>>& queue, const std::string& to, T item,
                          void (PeerOutbox::*flush)(const std::string&)) {
  bool first = false;
  {
    std::lock_guard lock(mu_);
    auto& waiting = queue[to];
    first = waiting.empty();
    waiting.push_back(std::move(item));
  }
  if (!first) return;
  env_.Defer([wk = weak_from_this(), to, flush] {
    if (auto self = wk.lock()) ((*self).*flush)(to);
  });
}

template <class T>
std::vector<T> PeerOutbox::Take(std::map<std::string, std::vector<T>>& queue, const std::string& to) {
  std::vector<T> out;
  std::lock_guard lock(mu_);
  if (auto it = queue.find(to); it != queue.end()) {
    out.swap(it->second);
    queue.erase(it);
  }
  return out;
}

void PeerOutbox::Ack(const std::string& to, std::uint64_t id) {
  const bool batches = env_.Batches(to);
  {
    std::lock_guard lock(mu_);
    ++stats_.acks;
    if (!batches) ++stats_.ack_messages;
  }
  if (!batches) {
    env_.Send(to, BuildPeerMessage(env_.WallHlc(), [&](auto root) { root.initAck().setId(id); }), true);
    return;
  }
  Coalesce(acks_, to, id, &PeerOutbox::FlushAcks);
}

void PeerOutbox::FlushAcks(const std::string& to) {
  std::vector<std::uint64_t> ids = Take(acks_, to);
  if (ids.empty()) return;
  {
    std::lock_guard lock(mu_);
    ++stats_.ack_messages;
  }
  if (ids.size() == 1) {
    env_.Send(to, BuildPeerMessage(env_.WallHlc(), [&](auto root) { root.initAck().setId(ids[0]); }), true);
    return;
  }
  env_.Send(to, BuildPeerMessage(env_.WallHlc(), [&](auto root) {
              auto list = root.initAcks(static_cast<unsigned>(ids.size()));
              for (unsigned i = 0; i < ids.size(); ++i) list.set(i, ids[i]);
            }),
            true);
}

void PeerOutbox::Delta(const std::string& to, std::string message) {
  if (!env_.Batches(to)) {
    {
      std::lock_guard lock(mu_);
      ++stats_.delta_messages;
    }
    return env_.Send(to, std::move(message), true);
  }
  Coalesce(deltas_, to, std::move(message), &PeerOutbox::FlushDeltas);
}

void PeerOutbox::FlushDeltas(const std::string& to) {
  std::vector<std::string> messages = Take(deltas_, to);
  std::size_t begin = 0;
  while (begin < messages.size()) {
    std::size_t end = begin, bytes = 0;
    while (end < messages.size() && (end == begin || bytes + messages[end].size() <= kDeltaBatchBytes)) {
      bytes += messages[end++].size();
    }
    {
      std::lock_guard lock(mu_);
      ++stats_.delta_messages;
    }
    if (end - begin == 1) {
      env_.Send(to, std::move(messages[begin]), true);
    } else {
      capnp::MallocMessageBuilder mb;
      auto root = mb.initRoot<wire::PeerMessage>();
      auto list = root.initDeltas(static_cast<unsigned>(end - begin));
      std::uint64_t hlc = 0;
      for (std::size_t i = begin; i < end; ++i) {
        (void)ReadPeerMessage(messages[i], [&](wire::PeerMessage::Reader m) {
          hlc = std::max(hlc, m.getHlc());
          list.setWithCaveats(static_cast<unsigned>(i - begin), m.getDelta());
          return true;
        });
      }
      root.setHlc(hlc);
      env_.Send(to, ToBytes(mb), true);
    }
    begin = end;
  }
}

PeerOutbox::Stats PeerOutbox::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace lattice::gossip
