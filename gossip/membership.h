// Membership: who is in the cluster, as a state that merges like a CRDT
// (DESIGN §4), plus phi-accrual failure detection.
//
// Each member record carries (incarnation, version, state). Records of one
// member merge by a total order, so any two nodes that have exchanged their
// views hold the same records:
//   - a higher incarnation wins (a node rebuilt on an empty data directory
//     replaces its earlier life);
//   - within an incarnation, `left` is final;
//   - otherwise the higher version wins, and at equal versions the worse state
//     (alive < suspect < dead).
// Only a member raises its own version (each gossip round, and to refute a
// suspicion), so "alive" news from the member itself overrides an older
// suspicion, while others' suspicion overrides stale "alive" news.
//
// Failure detection is local: heartbeat arrival times per peer give phi (the
// accrual detector of Hayashibara et al., with an exponential model);
// phi above the threshold marks the member suspect (version unchanged, so the
// member's next heartbeat refutes it), and suspect for longer than dead_after_ms
// marks it dead. A dead member stays a replica (quorums are strict) until
// CLUSTER FORGET marks it left.
//
// Pure: the caller passes the time. Thread-safety: a plain value.
#pragma once

#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lattice::gossip {

// A member not heard from directly for this long is unreachable for requests
// (Membership::Reachable) and does not count towards formation.
constexpr std::uint64_t kReachableMs = 2000;

enum class MemberState : std::uint8_t { kAlive = 0, kSuspect = 1, kDead = 2, kLeft = 3 };

const char* StateName(MemberState s);

struct Member {
  std::string name;
  std::string peer_address;    // host:port of its peer transport
  std::string client_address;  // host:port of its RESP port
  std::uint64_t incarnation = 0;
  std::uint64_t version = 0;
  MemberState state = MemberState::kAlive;
  // Still pulling the partitions it replicates (DESIGN §4 membership epochs):
  // it receives writes, but reads use the replicas without it.
  bool joining = false;
  // Handing its partitions off (CLUSTER LEAVE): still a replica, while the
  // replicas that follow it receive its data and every write; left after.
  bool leaving = false;
  // The cluster the member belongs to (DESIGN §4 formation): a hash of the
  // founders' (name, incarnation); 0 while it waits to found or join one.
  std::uint64_t cluster_id = 0;
  // While it waits to found: a digest of the set of fresh nodes it hears from
  // (node/cluster.h). Founders found once each of them reports the same set.
  std::uint64_t forming = 0;
  bool operator==(const Member&) const = default;
};

// The membership gossip message (gossip/peer.capnp PeerMessage.members): the
// sender's view, its own record first, stamped with `hlc`; and its reading
// (false when malformed: untrusted bytes).
std::string EncodeMembers(const std::vector<Member>& view, std::uint64_t hlc);
bool DecodeMembers(std::string_view bytes, std::vector<Member>& out);

// True when `a` supersedes `b` (same member) under the merge order above.
bool Supersedes(const Member& a, const Member& b);

struct DetectorOptions {
  double phi_suspect = 8.0;
  std::uint64_t dead_after_ms = 10000;       // suspect this long -> dead
  std::uint64_t min_interval_ms = 100;       // floor for the mean heartbeat interval
  std::size_t window = 64;                   // heartbeat intervals remembered
};

class Membership {
 public:
  Membership(Member self, DetectorOptions options = {});

  const std::string& self() const { return self_; }
  const std::map<std::string, Member>& members() const { return members_; }
  const Member* Find(const std::string& name) const;

  // Our own record for the next gossip round (its version raised).
  const Member& Tick();

  // Merges records received from a peer; returns true if anything changed. A
  // record that says we are not alive is refuted by raising our version.
  bool Merge(const std::vector<Member>& records);

  // A heartbeat (any message) from `name` arrived at `now_ms`.
  void Heard(const std::string& name, std::uint64_t now_ms);
  // Milliseconds since we last heard from `name` (nullopt: never).
  std::optional<std::uint64_t> SinceLastContact(const std::string& name, std::uint64_t now_ms) const;
  // The detector's phi for `name` at `now_ms` (0 when never heard).
  double Phi(const std::string& name, std::uint64_t now_ms) const;
  // Applies the detector: alive -> suspect -> dead. Returns the names whose
  // state this changed.
  std::vector<std::string> Detect(std::uint64_t now_ms);

  // CLUSTER LEAVE (ourselves) and CLUSTER FORGET (another member).
  void Leave();
  // Our own joining flag (raises our version so that it spreads).
  void SetJoining(bool joining);
  // Our own leaving flag (likewise).
  void SetLeaving(bool leaving);
  // Our own cluster id and forming digest (likewise).
  void SetCluster(std::uint64_t cluster_id, std::uint64_t forming);
  bool Forget(const std::string& name);

  // Members that count for partitioning: every one that has not left.
  std::vector<std::string> NotLeft() const;

  // Every record, this node's first (what a gossip round sends).
  std::vector<Member> View() const;
  // The peer addresses of every member that has not left (this node's
  // excepted), then each of `seeds` that no member has.
  std::vector<std::string> GossipTargets(const std::set<std::string>& seeds) const;

  // The members requests may use at `now_ms`: this node, and every alive
  // member heard from directly within kReachableMs whose link is not in
  // `link_down` (closed, or its port refused us). A member that others still
  // report alive but that this node cannot reach (a partition between two
  // nodes only) is unreachable here.
  std::set<std::string> Reachable(const std::set<std::string>& link_down, std::uint64_t now_ms) const;

 private:
  struct Contact {
    std::uint64_t last_ms = 0;
    std::deque<std::uint64_t> intervals;
    std::uint64_t suspect_since_ms = 0;
  };

  std::string self_;
  DetectorOptions opt_;
  std::map<std::string, Member> members_;
  std::map<std::string, Contact> contacts_;
};

}  // namespace lattice::gossip
