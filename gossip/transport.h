// Transport: peer links over TCP carrying Cap'n Proto frames (DESIGN §4).
//
// Every connection starts with a handshake: the dialling node sends Hello
// (cluster name and id, node name, incarnation, the range of protocol versions
// it speaks, the state encodings it decodes, its peer address); the accepting
// node answers Welcome (the same about itself) or Refuse(reason) and closes on
// a mismatch: another cluster name, two different non-zero cluster ids (two
// clusters never merge silently; 0 is a node that has not formed or joined
// one yet), or protocol ranges that do not overlap. Both sides log the reason.
// The link then speaks the highest version both support (PeerInfo::protocol). After the handshake, messages travel in
// Batch frames: everything queued for a peer goes out in one frame (bounded by
// max_frame_bytes), so under load many messages share one frame and one write.
// Frames travel in Cap'n Proto's packed encoding behind a 4-byte length.
//
// Outgoing links dial lazily on the first Send to an address, bind to this
// node's own address (so a firewall rule between two loopback addresses cuts
// exactly that pair), and reconnect with capped exponential backoff. Each
// outgoing queue is bounded in bytes: a message that does not fit is dropped
// and counted, and anti-entropy repairs what it carried — unless it was sent
// with `must_deliver` (a delta that a pending request waits on), which is never
// dropped from a queue: when one does not fit, the link is reset instead (its
// queue dropped, the connection closed and dialled again) and reported down,
// so the requests waiting on it answer at once instead of stalling.
//
// Link state: a link is reported down (OnLinkChange) when its connection
// closes (the peer's end closed: a crash closes it at once) or a dial fails,
// and up after each successful handshake, so a peer that died is known
// unreachable within a round trip, not after a heartbeat timeout.
//
// Messages are opaque bytes here; their schemas belong to the layers above.
// Owns: the listener, the outgoing links (each its queue, socket and
// backoff) and the inbound connections. Executor: the io_context given at
// construction, each link on its own strand; every public method may be
// called from any thread and handlers run on that io_context. Sends: Hello,
// then Batch frames of queued messages. Receives: Welcome/Refuse, and Batch
// frames whose messages go to the OnMessage handler.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace asio {
class io_context;
}

namespace lattice::gossip {

// Peer protocol versions this build speaks (4: cluster ids, formation and
// encodings in the handshake; 5: typed forward replies, node/answer.h).
constexpr std::uint32_t kProtocolVersion = 5;
constexpr std::uint32_t kProtocolMinVersion = 4;

struct TransportOptions {
  std::string cluster = "lattice";
  std::string node;                // this node's name
  std::uint64_t incarnation = 0;
  std::uint64_t cluster_id = 0;    // initial; SetClusterId changes it
  std::vector<std::string> encodings;  // state types this node decodes
  std::string bind = "127.0.0.1";  // listen and dial-from address
  std::uint16_t port = 0;          // 0: pick a free port (tests)
  std::size_t max_queue_bytes = 8 << 20;  // per outgoing link
  std::size_t max_frame_bytes = 1 << 20;  // a batch frame (one message may exceed it)
  std::size_t max_inbound_frame_bytes = 64 << 20;
  int backoff_initial_ms = 50;
  int backoff_max_ms = 2000;
};

// Who sent a message (from the handshake).
struct PeerInfo {
  std::string node;
  std::uint64_t incarnation = 0;
  std::string address;  // the peer's listening address, host:port
  std::uint64_t cluster_id = 0;  // as of the handshake (0: none yet)
  std::uint32_t protocol = 0;    // the version negotiated for the link
  std::vector<std::string> encodings;  // the state types it decodes
};

class Transport {
 public:
  using Handler = std::function<void(const PeerInfo& from, std::string_view message)>;
  // (address, up): see "Link state" above. Runs on the transport's threads.
  using LinkHandler = std::function<void(const std::string& address, bool up)>;

  Transport(asio::io_context& io, TransportOptions options);
  ~Transport();  // Stop()

  // Starts listening; the port actually bound is port().
  Status Listen();
  std::uint16_t port() const;

  // Called for every message received, in the order each peer sent them.
  void OnMessage(Handler handler);
  void OnLinkChange(LinkHandler handler);

  // The cluster id this node announces in later handshakes (formation, joining).
  void SetClusterId(std::uint64_t id);

  // Queues `message` for the peer listening at `address` (host:port). False
  // when it was dropped because the queue is full (counted in stats).
  // `max_fill` (0: max_queue_bytes) queues it only while the link's queue
  // stays within that many bytes, leaving the rest of the queue to others.
  bool Send(const std::string& address, std::string message, bool must_deliver = false,
            std::size_t max_fill = 0);

  // Closes the listener and every link.
  void Stop();

  struct Stats {
    std::uint64_t messages_sent = 0;
    std::uint64_t frames_sent = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t messages_received = 0;
    std::uint64_t dropped = 0;            // queue overflow
    std::uint64_t handshakes_refused = 0; // either side
    std::uint64_t connects = 0;           // successful outgoing handshakes
    std::uint64_t links_reset = 0;        // must-deliver messages over the queue limit
  };
  Stats stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace lattice::gossip
