// AntiEntropy: Merkle anti-entropy between two replicas (DESIGN §4). An
// exchange sends a peer this node's roots of the partitions both replicate;
// a partition whose roots differ twice (ae_confirm_ms apart: once is most
// often a delta in flight) is descended kAeStep tree levels per message
// (AeNodes) down to the leaves, whose key digests (AeKeys) say which states
// to send and which to ask for (AeWant). Join makes both directions safe.
// Whole states leave as Delta messages through PeerEnv::SendBulk, within a
// byte budget per second (a token bucket). Joins and hand-offs use the same
// roots (Roots::kSync asks, Roots::kAnswer answers): the replicator hears of
// a partition whose root equalled the peer's through Hooks::matched.
//
// Owns: the partitions that differed once per peer and when to look again,
// the byte budget, and the anti-entropy counts, under its own mutex (no lock
// shared with the replicator). Executor: whatever thread calls it (the
// daemon's io_context, the simulation's event loop); hooks and the
// environment are called outside its lock. Sends: AeRoots, AeNodes, AeKeys,
// AeWant, Delta (whole states). Receives: the same Ae* messages (OnRoots,
// OnNodes, OnKeys, OnWant: decoded by the replicator's dispatch), exchanges
// (Exchange) and sync asks (SendRoots) from the replicator, and Tick.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gossip/env.h"
#include "merkle/tree.h"

namespace lattice::gossip {

class AntiEntropy {
 public:
  enum class Roots { kRound, kSync, kAnswer, kConfirm };
  static constexpr int kAeStep = 5;  // tree levels descended per exchange

  struct Options {
    std::uint32_t partitions = 256;
    std::size_t max_keys = 2000;                 // keys (digests or states) per message
    std::uint64_t bytes_per_s = 64ull << 20;     // whole states read and sent per second (0: unlimited)
    std::uint64_t confirm_ms = 500;              // a difference seen once is looked at again this much later
  };
  struct Hooks {
    // True when `member` replicates partition p for writes or for reads (while
    // a node joins, an old replica stays a read replica and must answer it).
    std::function<bool(std::uint32_t p, const std::string& member)> replicates;
    // True when `member` is reachable (a confirmation goes only to those).
    std::function<bool(const std::string& member)> reachable;
    // The roots a join or hand-off asked for came back: the peer's root of p
    // equals this node's, `root`.
    std::function<void(std::uint32_t p, const std::string& from, const merkle::Digest& root)> matched;
  };
  struct Stats {
    std::uint64_t rounds = 0, partitions_differing = 0, keys_sent = 0, bytes_sent = 0, tree_bytes_sent = 0,
                  throttled = 0, queue_full = 0;
  };

  AntiEntropy(PeerEnv& env, storage::Store& store, std::string self, Options options, Hooks hooks);

  // One exchange with `peer` over `shared`, the partitions both replicate.
  void Exchange(const std::string& peer, const std::vector<std::uint32_t>& shared);
  // Sends `to` this node's roots of `parts`, as `kind`.
  void SendRoots(const std::string& to, const std::vector<std::uint32_t>& parts, Roots kind);
  // Sends the confirmations that are due.
  void Tick();
  void Stop();

  void OnRoots(const std::string& from, const std::vector<std::pair<std::uint32_t, merkle::Digest>>& roots,
               Roots kind);
  // The other side's hashes of some nodes: descends into those that differ
  // (answering the hashes of their children kAeStep levels down), and at the
  // leaves sends the states of leaves the other side has nothing in and the
  // key digests of the rest.
  void OnNodes(const std::string& from, std::uint32_t p, int level, const std::vector<std::uint32_t>& indices,
               const std::vector<merkle::Digest>& digests);
  // The other side's keys in leaves it found differing: sends the states it
  // lacks or holds otherwise, and asks for the ones this node lacks or holds
  // otherwise.
  void OnKeys(const std::string& from, std::uint32_t p, std::vector<std::uint32_t> leaves,
              const std::vector<std::pair<std::string, merkle::Digest>>& theirs);
  void OnWant(const std::string& from, std::uint32_t p, std::vector<std::string> keys);

  Stats stats() const;

 private:
  bool Shared(std::uint32_t p, const std::string& peer) const;
  void SendNodes(const std::string& to, std::uint32_t p, const merkle::Tree& tree, int level,
                 const std::vector<std::uint32_t>& indices);
  // Opens the descent into a partition whose roots differ: every node kAeStep
  // levels below the root (or the leaves, in a shallower tree).
  void StartDescent(const std::string& to, std::uint32_t p);
  // This node's keys (with their digests) in `leaves`, at most about
  // max_keys of them (whole leaves; `leaves` is cut to those listed).
  std::vector<std::pair<std::string, merkle::Digest>> KeyDigestsIn(const merkle::Tree& tree,
                                                                  std::vector<std::uint32_t>& leaves);
  void SendKeyDigests(const std::string& to, std::uint32_t p, const merkle::Tree& tree,
                      std::vector<std::uint32_t> leaves);
  // The keys stored in `leaves` of `tree`, at most about max_keys.
  std::vector<std::string> LeafKeys(const merkle::Tree& tree, const std::vector<std::uint32_t>& leaves);
  // Takes `bytes` from the budget (a token bucket holding at most one
  // second's worth); false once it is spent.
  bool Budget(std::size_t bytes);
  // Sends the whole state of each of `keys` this node holds, while the
  // budget lasts (the rest is found again by a later round).
  void SendStates(const std::string& to, const std::vector<std::string>& keys);
  void Count(std::uint64_t Stats::*field, std::uint64_t n);

  PeerEnv& env_;
  storage::Store& store_;
  const std::string self_;
  const Options opt_;
  const Hooks hooks_;

  mutable std::mutex mu_;  // everything below
  bool stopped_ = false;
  std::map<std::string, std::set<std::uint32_t>> differing_;  // peer -> partitions that differed last round
  // peer -> when to send it our roots of partitions that differed once (confirm)
  std::map<std::string, std::pair<std::uint64_t, std::vector<std::uint32_t>>> recheck_;
  double tokens_ = 0;  // the budget, bytes
  std::uint64_t refilled_ms_ = 0;
  Stats stats_;
};

}  // namespace lattice::gossip
