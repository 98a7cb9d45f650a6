#include "gossip/transport.h"

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <capnp/serialize.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "gossip/listen.h"
#include "gossip/peer.capnp.h"

namespace lattice::gossip {

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// A frame on the wire: a 4-byte big-endian length, then the message in
// Cap'n Proto's packed encoding (zero bytes run-length coded: canonical states
// and small integers shrink to about half).
std::string Encode(capnp::MessageBuilder& message) {
  kj::VectorOutputStream packed;
  capnp::writePackedMessage(packed, message);
  auto bytes = packed.getArray();
  std::string out(4, '\0');
  const auto n = static_cast<std::uint32_t>(bytes.size());
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>(n >> (8 * (3 - i)));
  out.append(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  return out;
}

void FillHello(wire::Hello::Builder h, const TransportOptions& o, std::uint16_t port, std::uint64_t cluster_id) {
  h.setCluster(o.cluster);
  h.setNode(o.node);
  h.setIncarnation(o.incarnation);
  h.setProtocol(kProtocolVersion);
  h.setProtocolMin(kProtocolMinVersion);
  h.setAddress(o.bind + ":" + std::to_string(port));
  h.setClusterId(cluster_id);
  auto enc = h.initEncodings(static_cast<unsigned>(o.encodings.size()));
  for (unsigned i = 0; i < o.encodings.size(); ++i) enc.set(i, o.encodings[i]);
}

PeerInfo InfoOf(wire::Hello::Reader h) {
  PeerInfo p{h.getNode().cStr(), h.getIncarnation(), h.getAddress().cStr(), h.getClusterId(), 0, {}};
  const std::uint32_t max = h.getProtocol();
  const std::uint32_t min = h.getProtocolMin() != 0 ? h.getProtocolMin() : max;
  if (min <= kProtocolVersion && max >= kProtocolMinVersion) p.protocol = std::min(max, kProtocolVersion);
  for (auto e : h.getEncodings()) p.encodings.emplace_back(e.cStr());
  return p;
}

// Why a peer whose handshake says `peer` may not link with us ("" = it may).
std::string Mismatch(wire::Hello::Reader h, const PeerInfo& peer, const TransportOptions& o, std::uint64_t our_id) {
  if (peer.protocol == 0) {
    const std::uint32_t min = h.getProtocolMin() != 0 ? h.getProtocolMin() : h.getProtocol();
    return "protocol versions " + std::to_string(min) + ".." + std::to_string(h.getProtocol()) +
           " do not overlap ours (" + std::to_string(kProtocolMinVersion) + ".." + std::to_string(kProtocolVersion) +
           ")";
  }
  if (std::string(h.getCluster().cStr()) != o.cluster) {
    return "cluster '" + std::string(h.getCluster().cStr()) + "' is not ours ('" + o.cluster + "')";
  }
  if (peer.cluster_id != 0 && our_id != 0 && peer.cluster_id != our_id) {
    return "cluster id " + std::to_string(peer.cluster_id) + " is not ours (" + std::to_string(our_id) +
           "): another cluster of the same name";
  }
  if (peer.node == o.node) return "node name '" + peer.node + "' is ours";
  return {};
}

// Reads one frame into `bytes`; false on error, oversize or timeout.
awaitable<bool> ReadFrame(tcp::socket& socket, std::size_t max_bytes, kj::Array<kj::byte>& bytes,
                          std::chrono::milliseconds timeout) {
  asio::steady_timer deadline(socket.get_executor());
  if (timeout.count() > 0) {
    deadline.expires_after(timeout);
    deadline.async_wait([&socket](asio::error_code ec) {
      if (!ec) {
        asio::error_code ignored;
        socket.close(ignored);
      }
    });
  }
  unsigned char len[4];
  asio::error_code ec;
  co_await asio::async_read(socket, asio::buffer(len), asio::redirect_error(use_awaitable, ec));
  std::uint32_t n = (std::uint32_t{len[0]} << 24) | (std::uint32_t{len[1]} << 16) |
                    (std::uint32_t{len[2]} << 8) | len[3];
  if (ec || n == 0 || n > max_bytes) {
    deadline.cancel();
    co_return false;
  }
  bytes = kj::heapArray<kj::byte>(n);
  co_await asio::async_read(socket, asio::buffer(bytes.begin(), n), asio::redirect_error(use_awaitable, ec));
  deadline.cancel();
  co_return !ec;
}

capnp::ReaderOptions Limits(std::size_t bytes) {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = bytes / sizeof(capnp::word) * 2 + 64;
  o.nestingLimit = 16;
  return o;
}

// A received frame, unpacked. The reader refuses a message that unpacks to
// more than `max_bytes` (twice, as the traversal limit), so a small packed
// frame cannot make us allocate without bound.
struct FrameReader {
  FrameReader(kj::ArrayPtr<const kj::byte> bytes, std::size_t max_bytes) : in(bytes), reader(in, Limits(max_bytes)) {}
  wire::Frame::Reader frame() { return reader.getRoot<wire::Frame>(); }
  kj::ArrayInputStream in;
  capnp::PackedMessageReader reader;
};

}  // namespace

struct Transport::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_, TransportOptions o) : io(io_), opt(std::move(o)), acceptor(io_) {}

  struct Link;

  asio::io_context& io;
  TransportOptions opt;
  tcp::acceptor acceptor;
  std::uint16_t bound_port = 0;
  std::atomic<bool> stopped{false};
  std::atomic<std::uint64_t> cluster_id{0};

  std::mutex mu;  // guards handler, link_handler, links, inbound
  Handler handler;
  LinkHandler link_handler;
  std::map<std::string, std::shared_ptr<Link>> links;
  std::set<std::shared_ptr<tcp::socket>> inbound;

  std::atomic<std::uint64_t> messages_sent{0}, frames_sent{0}, bytes_sent{0}, messages_received{0},
      dropped{0}, refused{0}, connects{0}, links_reset{0};

  void LinkChanged(const std::string& address, bool up) {
    LinkHandler h;
    {
      std::lock_guard lock(mu);
      h = link_handler;
    }
    if (h) h(address, up);
  }

  awaitable<void> Accept();
  awaitable<void> Serve(std::shared_ptr<tcp::socket> socket);
  void Deliver(const PeerInfo& from, std::string_view message) {
    Handler h;
    {
      std::lock_guard lock(mu);
      h = handler;
    }
    ++messages_received;
    if (h) h(from, message);
  }
};

// One outgoing link: a queue and a coroutine that dials, handshakes and sends.
struct Transport::Impl::Link : std::enable_shared_from_this<Link> {
  Link(std::shared_ptr<Impl> owner, std::string addr)
      : im(std::move(owner)), address(std::move(addr)), strand(asio::make_strand(im->io)), wake(strand) {}

  std::shared_ptr<Impl> im;
  std::string address;
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer wake;
  std::shared_ptr<tcp::socket> socket;

  std::mutex mu;  // guards queue, queued_bytes, closed
  std::deque<std::pair<std::string, bool>> queue;  // message, must_deliver
  std::size_t queued_bytes = 0;
  bool closed = false;
  bool up = false;  // on the strand: the state last reported

  void Report(bool now_up) {
    if (up == now_up) return;
    up = now_up;
    im->LinkChanged(address, now_up);
  }

  // A must-deliver message over the limit: drop the queue and the connection
  // (called with mu held); the strand reports the link down and redials.
  void ResetLocked() {
    queue.clear();
    queued_bytes = 0;
    ++im->links_reset;
    asio::post(strand, [self = shared_from_this()] {
      if (self->socket) {
        asio::error_code ignored;
        self->socket->close(ignored);
      }
      self->Report(false);
      self->wake.cancel();
    });
  }

  void Notify() {
    asio::post(strand, [self = shared_from_this()] { self->wake.cancel(); });
  }

  void Close() {
    asio::post(strand, [self = shared_from_this()] {
      {
        std::lock_guard lock(self->mu);
        self->closed = true;
      }
      self->wake.cancel();
      if (self->socket) {
        asio::error_code ignored;
        self->socket->close(ignored);
      }
    });
  }

  bool Closed() {
    std::lock_guard lock(mu);
    return closed;
  }

  awaitable<void> Sleep(std::chrono::milliseconds d) {
    wake.expires_after(d);
    asio::error_code ec;
    co_await wake.async_wait(asio::redirect_error(use_awaitable, ec));
  }

  // Dials and completes the handshake; false (after logging) on failure.
  awaitable<bool> Connect() {
    auto colon = address.rfind(':');
    asio::error_code ec;
    auto ip = asio::ip::make_address(address.substr(0, colon), ec);
    if (ec || colon == std::string::npos) {
      spdlog::error("peer address '{}' is not host:port", address);
      co_return false;
    }
    tcp::endpoint to(ip, static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
    socket = std::make_shared<tcp::socket>(strand);
    socket->open(to.protocol(), ec);
    // Dial from our own address, so per-address firewall rules cut exactly one pair.
    if (!ec) socket->bind(tcp::endpoint(asio::ip::make_address(im->opt.bind, ec), 0), ec);
    if (ec) co_return false;
    co_await socket->async_connect(to, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return false;
    socket->set_option(tcp::no_delay(true), ec);
    capnp::MallocMessageBuilder hello;
    FillHello(hello.initRoot<wire::Frame>().initHello(), im->opt, im->bound_port, im->cluster_id);
    std::string frame = Encode(hello);
    co_await asio::async_write(*socket, asio::buffer(frame), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return false;
    kj::Array<kj::byte> bytes;
    if (!co_await ReadFrame(*socket, 1 << 16, bytes, 5000ms)) co_return false;
    try {
      FrameReader reader(bytes, 1 << 16);
      auto f = reader.frame();
      if (f.isRefuse()) {
        ++im->refused;
        spdlog::warn("peer {} refused our connection: {}", address, f.getRefuse().cStr());
        co_return false;
      }
      if (!f.isWelcome()) co_return false;
      PeerInfo peer = InfoOf(f.getWelcome());
      if (std::string why = Mismatch(f.getWelcome(), peer, im->opt, im->cluster_id); !why.empty()) {
        ++im->refused;
        spdlog::warn("not linking to peer {} at {}: {}", peer.node, address, why);
        co_return false;
      }
      spdlog::info("linked to peer {} at {} (protocol {})", peer.node, address, peer.protocol);
    } catch (const kj::Exception& e) {
      spdlog::warn("bad handshake reply from {}: {}", address, e.getDescription().cStr());
      co_return false;
    }
    ++im->connects;
    // The peer never sends on this connection: a completed read means its end
    // closed (a crash closes it at once), so the link goes down now rather
    // than at the next write.
    auto watched = socket;
    auto byte = std::make_shared<char>();
    watched->async_read_some(asio::buffer(byte.get(), 1), [self = shared_from_this(), watched, byte](
                                                              asio::error_code, std::size_t) {
      if (self->socket != watched) return;  // an earlier connection's
      asio::error_code ignored;
      watched->close(ignored);
      self->Report(false);  // now, before the send loop unwinds
      self->wake.cancel();
    });
    co_return true;
  }

  awaitable<void> Run() {
    auto backoff = std::chrono::milliseconds(im->opt.backoff_initial_ms);
    while (!Closed() && !im->stopped) {
      if (!co_await Connect()) {
        if (socket) {
          asio::error_code ignored;
          socket->close(ignored);
        }
        Report(false);
        co_await Sleep(backoff);
        backoff = std::min(backoff * 2, std::chrono::milliseconds(im->opt.backoff_max_ms));
        continue;
      }
      backoff = std::chrono::milliseconds(im->opt.backoff_initial_ms);
      Report(true);
      co_await SendLoop();
      asio::error_code ignored;
      socket->close(ignored);
      Report(false);
    }
  }

  // Sends batches until the connection fails or the link closes.
  awaitable<void> SendLoop() {
    while (!Closed() && socket->is_open()) {
      std::vector<std::pair<std::string, bool>> batch;
      std::size_t bytes = 0;
      {
        std::lock_guard lock(mu);
        while (!queue.empty() && (batch.empty() || bytes + queue.front().first.size() <= im->opt.max_frame_bytes)) {
          bytes += queue.front().first.size();
          queued_bytes -= queue.front().first.size();
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
      }
      if (batch.empty()) {
        co_await Sleep(1h);
        continue;
      }
      capnp::MallocMessageBuilder message;
      auto list = message.initRoot<wire::Frame>().initBatch(static_cast<unsigned>(batch.size()));
      for (unsigned i = 0; i < batch.size(); ++i) {
        list.set(i, capnp::Data::Reader(reinterpret_cast<const kj::byte*>(batch[i].first.data()),
                                        batch[i].first.size()));
      }
      std::string frame = Encode(message);
      asio::error_code ec;
      co_await asio::async_write(*socket, asio::buffer(frame), asio::redirect_error(use_awaitable, ec));
      if (ec) {
        // Back to the front of the queue: resent after reconnecting (duplicates
        // are harmless; every message is idempotent or de-duplicated above).
        std::lock_guard lock(mu);
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          queued_bytes += it->first.size();
          queue.push_front(std::move(*it));
        }
        co_return;
      }
      ++im->frames_sent;
      im->messages_sent += batch.size();
      im->bytes_sent += frame.size();
    }
  }
};

awaitable<void> Transport::Impl::Accept() {
  auto self = shared_from_this();
  while (!stopped) {
    auto socket = std::make_shared<tcp::socket>(asio::make_strand(io));
    asio::error_code ec;
    co_await acceptor.async_accept(*socket, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (stopped) co_return;
      continue;
    }
    {
      std::lock_guard lock(mu);
      inbound.insert(socket);
    }
    asio::co_spawn(socket->get_executor(), Serve(socket), asio::detached);
  }
}

awaitable<void> Transport::Impl::Serve(std::shared_ptr<tcp::socket> socket) {
  auto self = shared_from_this();
  kj::Array<kj::byte> words;
  PeerInfo from;
  std::string refusal;
  if (co_await ReadFrame(*socket, 1 << 16, words, 5000ms)) {
    try {
      FrameReader reader(words, 1 << 16);
      auto f = reader.frame();
      if (!f.isHello()) {
        refusal = "expected a Hello frame";
      } else {
        auto h = f.getHello();
        from = InfoOf(h);
        refusal = Mismatch(h, from, opt, cluster_id);
      }
    } catch (const kj::Exception& e) {
      refusal = std::string("malformed Hello: ") + e.getDescription().cStr();
    }
    capnp::MallocMessageBuilder reply;
    auto frame = reply.initRoot<wire::Frame>();
    if (refusal.empty()) {
      FillHello(frame.initWelcome(), opt, bound_port, cluster_id);
    } else {
      ++refused;
      spdlog::warn("refused peer connection from {} ({}): {}", from.node, from.address, refusal);
      frame.setRefuse(refusal);
    }
    std::string bytes = Encode(reply);
    asio::error_code ec;
    co_await asio::async_write(*socket, asio::buffer(bytes), asio::redirect_error(use_awaitable, ec));
    while (refusal.empty() && !ec && !stopped) {
      if (!co_await ReadFrame(*socket, opt.max_inbound_frame_bytes, words, 0ms)) break;
      try {
        FrameReader reader(words, opt.max_inbound_frame_bytes);
        auto f = reader.frame();
        if (!f.isBatch()) break;
        for (auto m : f.getBatch()) Deliver(from, std::string_view(m.asChars().begin(), m.size()));
      } catch (const kj::Exception& e) {
        spdlog::warn("malformed frame from peer {}: {}", from.node, e.getDescription().cStr());
        break;
      }
    }
  }
  asio::error_code ignored;
  socket->close(ignored);
  std::lock_guard lock(mu);
  inbound.erase(socket);
}

Transport::Transport(asio::io_context& io, TransportOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {
  impl_->cluster_id = impl_->opt.cluster_id;
}

void Transport::OnLinkChange(LinkHandler handler) {
  std::lock_guard lock(impl_->mu);
  impl_->link_handler = std::move(handler);
}

void Transport::SetClusterId(std::uint64_t id) { impl_->cluster_id = id; }

Transport::~Transport() { Stop(); }

Status Transport::Listen() {
  Impl& im = *impl_;
  if (Status s = OpenListener(im.acceptor, im.opt.bind, im.opt.port, "peers"); !s.ok()) return s;
  im.bound_port = im.acceptor.local_endpoint().port();
  asio::co_spawn(im.io, im.Accept(), asio::detached);
  return Status::Ok();
}

std::uint16_t Transport::port() const { return impl_->bound_port; }

void Transport::OnMessage(Handler handler) {
  std::lock_guard lock(impl_->mu);
  impl_->handler = std::move(handler);
}

bool Transport::Send(const std::string& address, std::string message, bool must_deliver, std::size_t max_fill) {
  Impl& im = *impl_;
  if (im.stopped) return false;
  std::shared_ptr<Impl::Link> link;
  {
    std::lock_guard lock(im.mu);
    auto& slot = im.links[address];
    if (!slot) {
      slot = std::make_shared<Impl::Link>(impl_, address);
      asio::co_spawn(slot->strand, [l = slot] { return l->Run(); }, asio::detached);
    }
    link = slot;
  }
  {
    std::lock_guard lock(link->mu);
    const std::size_t limit = max_fill == 0 ? im.opt.max_queue_bytes : std::min(max_fill, im.opt.max_queue_bytes);
    if (link->queued_bytes + message.size() > limit) {
      if (!must_deliver) {
        ++im.dropped;
        return false;
      }
      // A request waits on it: rather than grow without bound, reset the link
      // (DESIGN §4); the waiting requests learn it from the link going down.
      if (link->queued_bytes + message.size() > im.opt.max_queue_bytes) {
        spdlog::warn("peer link to {} over its queue limit ({} bytes): reset", address, link->queued_bytes);
        link->ResetLocked();
        ++im.dropped;
        return false;
      }
    }
    link->queued_bytes += message.size();
    link->queue.emplace_back(std::move(message), must_deliver);
  }
  link->Notify();
  return true;
}

void Transport::Stop() {
  Impl& im = *impl_;
  if (im.stopped.exchange(true)) return;
  std::vector<std::shared_ptr<Impl::Link>> links;
  std::vector<std::shared_ptr<tcp::socket>> inbound;
  {
    std::lock_guard lock(im.mu);
    for (auto& [a, l] : im.links) links.push_back(l);
    inbound.assign(im.inbound.begin(), im.inbound.end());
  }
  asio::post(im.io, [self = impl_] {
    asio::error_code ignored;
    self->acceptor.close(ignored);
  });
  for (auto& l : links) l->Close();
  for (auto& s : inbound) {
    asio::post(s->get_executor(), [s] {
      asio::error_code ignored;
      s->close(ignored);
    });
  }
}

Transport::Stats Transport::stats() const {
  const Impl& im = *impl_;
  return Stats{im.messages_sent, im.frames_sent, im.bytes_sent, im.messages_received,
               im.dropped,       im.refused,     im.connects,       im.links_reset};
}

}  // namespace lattice::gossip
