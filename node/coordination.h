// Helpers the request coordinators' source files share (node/replicator*.cc,
// node/write_coordinator.cc): levels, the standard refusals, HLC packing and
// peer-message building. Included by .cc files only (it pulls in Cap'n Proto).
#pragma once

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/codec.h"
#include "crdt/hlc.h"
#include "gossip/wire.h"
#include "node/answer.h"
#include "node/replicator.h"

namespace lattice::node {

using gossip::Bytes;
using gossip::GetContext;
using gossip::PutContext;
using gossip::View;

inline std::uint64_t PackHlc(crdt::Hlc h) { return (h.wall_ms << 16) | std::min<std::uint32_t>(h.logical, 0xffff); }
inline crdt::Hlc UnpackHlc(std::uint64_t v) { return crdt::Hlc{v >> 16, static_cast<std::uint32_t>(v & 0xffff)}; }

// The members a command names (CommandSpec::first_member), or All.
inline storage::Members NamedMembers(const CommandSpec& spec, const Args& args) {
  if (spec.first_member == 0) return storage::Members::All();
  std::vector<std::string> names;
  for (std::size_t i = static_cast<std::size_t>(spec.first_member); i < args.size();
       i += static_cast<std::size_t>(spec.member_step)) {
    names.push_back(args[i]);
  }
  return storage::Members::Of(std::move(names));
}

inline std::uint32_t Required(Level level, std::size_t n) {
  switch (level) {
    case Level::kOne: return 1;
    case Level::kQuorum: return static_cast<std::uint32_t>(n / 2 + 1);
    case Level::kAll: return static_cast<std::uint32_t>(n);
  }
  return 1;
}

// Fills a List(Data) builder.
template <class ListBuilder>
inline void FillBytes(ListBuilder list, const std::vector<std::string>& values) {
  for (unsigned i = 0; i < values.size(); ++i) list.set(i, Bytes(values[i]));
}

inline Answer Stale(const std::string& key) {
  return Answer::Of(Outcome::kStale, "no reachable replica covers what this session has seen of '" + key +
                                         "' yet; retry, or resume the session where it wrote");
}

inline Answer Stopping() { return Answer::Of(Outcome::kError, "node shutting down"); }

inline bool Covers(const crdt::KeyState& state, const crdt::DotContext& need) {
  return need.Empty() || state.Context().Covers(need);
}

inline Answer Unavailable(std::uint32_t need, std::size_t n, std::size_t reachable) {
  return Answer::Of(Outcome::kUnavailable, "need " + std::to_string(need) + " of " + std::to_string(n) +
                                               " replicas, " + std::to_string(reachable) + " reachable");
}

template <class Fill>
inline std::string Build(std::uint64_t hlc, Fill&& fill) {
  return gossip::BuildPeerMessage(hlc, std::forward<Fill>(fill));
}

}  // namespace lattice::node
