// Encoding helpers for peer messages (gossip/peer.capnp): one place that turns
// a message builder into bytes and untrusted bytes back into a reader.
// Included by .cc files only (it pulls in Cap'n Proto).
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <string_view>

#include "crdt/dot_context.h"
#include "gossip/peer.capnp.h"

namespace lattice::gossip {

inline std::string ToBytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Parses `bytes` (from a peer: untrusted) as a PeerMessage and calls
// fn(wire::PeerMessage::Reader). False when the bytes are not a well-formed
// message or reading it throws (a field out of bounds); fn's own return value
// (bool) is passed on otherwise.
template <class F>
bool ReadPeerMessage(std::string_view bytes, F&& fn) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) return false;
  try {
    // An aligned copy: the transport's buffers carry no alignment guarantee.
    auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(words.begin(), bytes.data(), bytes.size());
    capnp::ReaderOptions limits;
    limits.traversalLimitInWords = words.size() * 2 + 64;
    capnp::FlatArrayMessageReader reader(words.asPtr(), limits);
    return fn(reader.getRoot<wire::PeerMessage>());
  } catch (const kj::Exception&) {
    return false;
  }
}

// A PeerMessage stamped with `hlc`, filled by fill(wire::PeerMessage::Builder).
template <class Fill>
std::string BuildPeerMessage(std::uint64_t hlc, Fill&& fill) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<wire::PeerMessage>();
  root.setHlc(hlc);
  fill(root);
  return ToBytes(mb);
}

inline std::string_view View(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}
inline kj::ArrayPtr<const kj::byte> Bytes(std::string_view s) {
  return kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// A key's causal context, compacted (peer.capnp KeyContext).
inline void PutContext(wire::KeyContext::Builder b, std::string_view key, const crdt::DotContext& c) {
  b.setKey(Bytes(key));
  auto vv = b.initVv(static_cast<unsigned>(c.vv().size()));
  unsigned i = 0;
  for (const auto& [replica, counter] : c.vv()) {
    vv[i].setReplica(replica);
    vv[i++].setCounter(counter);
  }
  auto cloud = b.initCloud(static_cast<unsigned>(c.cloud().size()));
  i = 0;
  for (const auto& dot : c.cloud()) {
    cloud[i].setReplica(dot.replica);
    cloud[i++].setCounter(dot.counter);
  }
}

// False when the parts are not a compacted context (untrusted input).
inline bool GetContext(wire::KeyContext::Reader r, crdt::DotContext& out) {
  crdt::DotContext::VersionVector vv;
  std::set<crdt::Dot> cloud;
  for (auto e : r.getVv()) {
    if (!vv.emplace(e.getReplica(), e.getCounter()).second) return false;
  }
  for (auto e : r.getCloud()) cloud.insert(crdt::Dot{e.getReplica(), e.getCounter()});
  if (cloud.size() != r.getCloud().size()) return false;
  return out.AssignCompacted(std::move(vv), std::move(cloud));
}

}  // namespace lattice::gossip
