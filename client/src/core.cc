// The client's engine (see core.h). Invariants:
// - Every member of CoreImpl and Conn is touched on the I/O thread only,
//   except `current` (atomic) and Subscriptions' active set (its own lock).
// - A Pending completes exactly once (Finish); its slots on a connection are
//   contiguous and in order: [SESSION RESUME] command [SESSION KEYS].
// - A connection that fails is never used again; what it carried is retried,
//   completed with the reply it already has, or reported as kOutcomeUnknown.
#include "client/src/core.h"

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "client/src/resp.h"
#include "client/src/session.h"
#include "client/src/subscriptions.h"

namespace lattice::detail {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

struct Pending {
  Call call;
  Callback done;
  Clock::time_point deadline;
  bool finished = false;
  bool written = false;                  // sent to some connection at least once
  std::optional<Result<Reply>> answer;   // the command's reply while its token is on the way
  std::multimap<Clock::time_point, Pending*>::iterator due;  // in CoreImpl::deadlines while live
  std::shared_ptr<asio::steady_timer> retry;  // while every node is backing off
  std::string last_failure;              // why the last connection it used failed
  // Per key, the session-token generation the connection held when the call
  // was sent: its token replaces the stored one only if nothing newer arrived.
  std::vector<std::uint64_t> sent_gen;
  bool busy = false;  // counted in CoreImpl::busy under call.keys.front()
};
using PendingPtr = std::shared_ptr<Pending>;

enum class Role { kAuth, kCommandInfo, kResume, kCommand, kToken };
struct Slot {
  PendingPtr p;  // null for kAuth and kCommandInfo
  Role role;
  std::string frame;  // the encoded command; dropped unsent if p finished meanwhile
};

std::string Describe(const asio::error_code& ec) { return ec.message(); }

}  // namespace

class Conn;

struct NodeState {
  std::string host;
  std::string port;
  std::string address;
  Clock::time_point down_until{};
  std::vector<std::shared_ptr<Conn>> pool;
  std::size_t next = 0;  // round robin for calls without keys
};

class CoreImpl {
 public:
  CoreImpl(Options options, std::atomic<Level>& level);
  ~CoreImpl();

  void Start(Call call, Callback done);
  void Dispatch(const PendingPtr& p);
  void Finish(const PendingPtr& p, Result<Reply> r);
  Error DeadlineError(const Pending& p) const;
  void NodeFailed(std::size_t node, const std::string& why);

  // Subscriptions.
  std::uint64_t AddSubscription(std::string key, std::function<void(const Message&)> cb);
  void RemoveSubscription(std::uint64_t id);
  void EnsureSubscriber();
  void SubscriberFailed();
  void OnPush(Reply& r);
  void ReadCurrent(const std::string& key, std::optional<std::uint64_t> only = std::nullopt);

  void Close();
  int PickNode(Clock::time_point now);
  std::shared_ptr<Conn>& Route(NodeState& node, const Pending& p);
  void Release(Pending& p);

  Options opt;
  std::atomic<Level>& level;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::vector<NodeState> nodes;
  std::atomic<std::size_t> current{0};
  bool closed = false;
  std::unordered_map<Pending*, std::weak_ptr<Pending>> live;
  // Deadlines of the live calls, checked every kSweep by one timer (cheaper
  // than a timer per call, whose cancellation runs a handler each time).
  std::multimap<Clock::time_point, Pending*> deadlines;
  std::unique_ptr<asio::steady_timer> sweeper;
  bool sweeping = false;
  void Sweep();
  // Keys with calls in flight, and the connection they are on: a key's next
  // call joins them there, so one key's calls are applied in the order made.
  struct Busy {
    std::weak_ptr<Conn> conn;
    int calls = 0;
  };
  std::unordered_map<std::string, Busy> busy;

  SessionTokens session;

  // What the nodes' COMMAND INFO says of each data command (upper-case name):
  // idempotent or not. The first connection asks (once answered, no other
  // does); a written call whose connection fails is resent only if this (or,
  // before an answer, the client's own table) says it is idempotent.
  bool command_info_asked = false;  // I/O thread
  mutable std::mutex idempotent_mu;
  std::unordered_map<std::string, bool> server_idempotent;  // guarded by idempotent_mu
  bool Idempotent(const Call& c) const {
    if (!c.data || c.args.empty()) return c.idempotent;
    std::lock_guard lock(idempotent_mu);
    auto it = server_idempotent.find(Upper(c.args[0]));
    return it == server_idempotent.end() ? c.idempotent : it->second;
  }

  Subscriptions subs;
  std::shared_ptr<Conn> subscriber;
  bool sub_auth_failed = false;
  std::unique_ptr<asio::steady_timer> resubscribe;

  std::thread thread;
  std::thread::id io_id;
};

// One TCP connection to one node: pipelined calls, or (subscriber) push messages.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(CoreImpl& core, std::size_t node, bool subscriber)
      : core_(core), node_(node), subscriber_(subscriber), socket_(core.io), resolver_(core.io), timer_(core.io),
        stall_(core.io) {
    if (!core_.opt.password.empty()) {
      std::string frame;
      EncodeCommand(frame, {"AUTH", core_.opt.password}, {});
      if (subscriber_) {
        raw_ += frame;
      } else {
        queued_.push_back(Slot{nullptr, Role::kAuth, std::move(frame)});
      }
    }
    if (!subscriber_ && !core_.command_info_asked) {
      core_.command_info_asked = true;
      std::string frame;
      EncodeCommand(frame, {"COMMAND", "INFO"}, {});
      queued_.push_back(Slot{nullptr, Role::kCommandInfo, std::move(frame)});
    }
  }

  bool broken() const { return state_ == State::kBroken; }
  // Calls queued or in flight here.
  int load() const { return commands_; }
  std::size_t node() const { return node_; }

  void Start() {
    state_ = State::kConnecting;
    auto self = shared_from_this();
    timer_.expires_after(core_.opt.connect_timeout);
    timer_.async_wait([self](const asio::error_code& ec) {
      if (!ec && self->state_ == State::kConnecting) self->Fail("no connection within " + std::to_string(self->core_.opt.connect_timeout.count()) + " ms");
    });
    const NodeState& n = core_.nodes[node_];
    resolver_.async_resolve(n.host, n.port, [self](const asio::error_code& ec, tcp::resolver::results_type results) {
      if (self->state_ != State::kConnecting) return;
      if (ec) return self->Fail("cannot resolve: " + Describe(ec));
      asio::async_connect(self->socket_, results, [self](const asio::error_code& ec, const tcp::endpoint&) {
        if (self->state_ != State::kConnecting) return;
        if (ec) return self->Fail("cannot connect: " + Describe(ec));
        self->timer_.cancel();
        self->state_ = State::kReady;
        asio::error_code ignored;
        self->socket_.set_option(tcp::no_delay(true), ignored);
        self->last_read_ = Clock::now();
        self->Read();
        self->Flush();
        self->Watch();
      });
    });
  }

  // Queues a call: [SESSION RESUME tokens] CL <level> command [SESSION KEYS keys].
  void Send(const PendingPtr& p) {
    const Call& c = p->call;
    const bool session = core_.opt.sessions && c.data && !c.keys.empty();
    p->answer.reset();
    if (session) {
      std::vector<std::string> resume = core_.session.ToResume(c.keys, has_, p->sent_gen);
      if (!resume.empty()) {
        std::string frame;
        EncodeCommand(frame, {"SESSION", "RESUME"}, resume);
        queued_.push_back(Slot{p, Role::kResume, std::move(frame)});
      }
    }
    std::string frame;
    if (c.data) {
      EncodeCommand(frame, {"CL", LevelName(c.level.value_or(core_.level.load()))}, c.args);
    } else {
      EncodeCommand(frame, c.args);
    }
    queued_.push_back(Slot{p, Role::kCommand, std::move(frame)});
    ++commands_;
    if (session) {
      std::string keys;
      EncodeCommand(keys, {"SESSION", "KEYS"}, c.keys);
      queued_.push_back(Slot{p, Role::kToken, std::move(keys)});
    }
    Flush();
  }

  // Subscriber connections: raw commands whose replies arrive as pushes.
  void SendRaw(const std::vector<std::string>& args) {
    EncodeCommand(raw_, args);
    Flush();
  }

  void Close() {
    if (state_ == State::kBroken) return;
    state_ = State::kBroken;
    asio::error_code ignored;
    timer_.cancel();
    stall_.cancel();
    resolver_.cancel();
    socket_.close(ignored);
  }

  // Everything this connection carries, for Close on shutdown.
  std::vector<PendingPtr> TakePending() {
    commands_ = 0;
    std::vector<PendingPtr> out;
    for (auto* q : {&inflight_, &queued_}) {
      for (auto& s : *q) {
        if (s.p && (out.empty() || out.back() != s.p)) out.push_back(s.p);
      }
      q->clear();
    }
    return out;
  }

  void Fail(const std::string& why) {
    if (state_ == State::kBroken) return;
    // Which calls were written: their command is in flight.
    std::unordered_set<Pending*> written;
    for (auto& s : inflight_) {
      if (s.p && s.role == Role::kCommand) written.insert(s.p.get());
    }
    // COMMAND INFO lost unanswered: the next connection asks.
    for (auto* q : {&inflight_, &queued_}) {
      for (auto& s : *q) {
        if (s.role == Role::kCommandInfo) core_.command_info_asked = false;
      }
    }
    Close();
    std::vector<PendingPtr> carried = TakePending();
    const std::string reason = core_.nodes[node_].address + ": " + why;
    core_.NodeFailed(node_, reason);
    for (auto& p : carried) {
      if (p->finished) continue;
      if (p->answer) {
        // The call completed; only its session token was lost with the node.
        auto r = std::move(*p->answer);
        p->answer.reset();
        core_.Finish(p, std::move(r));
      } else if (written.count(p.get()) && !core_.Idempotent(p->call)) {
        core_.Finish(p, Error{Errc::kOutcomeUnknown,
                              "the connection to " + reason + " after '" + p->call.args[0] +
                                  "' was sent; it may or may not have been applied, and it is not retried"});
      } else {
        p->last_failure = reason;
        core_.Dispatch(p);
      }
    }
    if (subscriber_) core_.SubscriberFailed();
  }

 private:
  enum class State { kIdle, kConnecting, kReady, kBroken };

  void Flush() {
    if (state_ != State::kReady || writing_) return;
    // A call that completed before it was written (its deadline passed while
    // the connection was connecting) is never sent: it was reported as failed.
    wbuf_.swap(raw_);
    raw_.clear();
    for (auto& slot : queued_) {
      if (slot.p && slot.p->finished) {
        if (slot.role == Role::kCommand) --commands_;
        // has_ already counts this RESUME as done: it is not, so the next call resumes.
        if (slot.role == Role::kResume) {
          for (const auto& key : slot.p->call.keys) has_.erase(key);
        }
        continue;
      }
      wbuf_ += slot.frame;
      slot.frame.clear();
      if (slot.p) slot.p->written = true;
      inflight_.push_back(std::move(slot));
    }
    queued_.clear();
    if (wbuf_.empty()) return;
    writing_ = true;
    if (inflight_.empty() && !subscriber_) last_read_ = Clock::now();
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(wbuf_), [self](const asio::error_code& ec, std::size_t) {
      self->writing_ = false;
      self->wbuf_.clear();
      if (self->state_ == State::kBroken) return;
      if (ec) return self->Fail("write failed: " + Describe(ec));
      self->Flush();
    });
  }

  void Read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(rbuf_), [self](const asio::error_code& ec, std::size_t n) {
      if (self->state_ == State::kBroken) return;
      if (ec) return self->Fail(ec == asio::error::eof ? "connection closed by the node" : "read failed: " + Describe(ec));
      self->last_read_ = Clock::now();
      self->parser_.Feed(self->rbuf_.data(), n);
      Reply r;
      for (;;) {
        auto st = self->parser_.Next(r);
        if (st == ReplyParser::Status::kNeedMore) break;
        if (st == ReplyParser::Status::kBad) return self->Fail("the node sent something that is not RESP");
        self->OnReply(std::move(r));
        if (self->state_ == State::kBroken) return;
      }
      self->Read();
    });
  }

  // Every third of stall_timeout: a connection whose calls wait with nothing
  // received for stall_timeout has failed. A subscriber connection has no
  // calls, so it sends PING (answered in subscribe mode too) to find out.
  void Watch() {
    const auto stall = core_.opt.stall_timeout;
    auto self = shared_from_this();
    stall_.expires_after(std::max(stall / 3, milliseconds(10)));
    stall_.async_wait([self, stall](const asio::error_code& ec) {
      if (ec || self->state_ != State::kReady) return;
      const bool waiting = !self->inflight_.empty() || self->subscriber_;
      if (waiting && Clock::now() - self->last_read_ >= stall) {
        return self->Fail("nothing received for " + std::to_string(stall.count()) + " ms");
      }
      if (self->subscriber_) self->SendRaw({"PING"});
      self->Watch();
    });
  }

  void OnReply(Reply r) {
    if (subscriber_) {
      if (r.type == Reply::Type::kError && (r.str.rfind("WRONGPASS", 0) == 0 || r.str.rfind("NOAUTH", 0) == 0)) {
        // Every node has the same password: stop, without blaming this node.
        Close();
        core_.sub_auth_failed = true;
        return;
      }
      return core_.OnPush(r);
    }
    if (inflight_.empty()) return Fail("a reply nobody asked for");
    Slot s = std::move(inflight_.front());
    inflight_.pop_front();
    switch (s.role) {
      case Role::kAuth:
        if (r.type == Reply::Type::kError) {
          // Every node has the same password: these calls fail rather than move on.
          Close();
          for (auto& p : TakePending()) core_.Finish(p, Error{Errc::kAuth, r.str});
        }
        return;
      case Role::kCommandInfo: {
        std::lock_guard lock(core_.idempotent_mu);
        ReadIdempotence(r, core_.server_idempotent);
        return;
      }
      case Role::kResume:
        // A refused token (not expected: it came from a node): resend it next time.
        if (r.type == Reply::Type::kError) {
          for (const auto& key : s.p->call.keys) has_.erase(key);
          // The call runs without the session's context: its token must not
          // replace the stored ones, only join them.
          s.p->sent_gen.assign(s.p->call.keys.size(), std::numeric_limits<std::uint64_t>::max());
        }
        return;
      case Role::kCommand: {
        --commands_;
        Result<Reply> result = r.type == Reply::Type::kError ? Result<Reply>(ErrorFromReply(r)) : Result<Reply>(std::move(r));
        const bool token_follows = !inflight_.empty() && inflight_.front().p == s.p && inflight_.front().role == Role::kToken;
        if (token_follows) {
          s.p->answer = std::move(result);
        } else {
          core_.Finish(s.p, std::move(result));
        }
        return;
      }
      case Role::kToken:
        if (r.type == Reply::Type::kBulk) core_.session.Store(s.p->call.keys, s.p->sent_gen, std::move(r.str), has_);
        if (s.p->answer) {
          auto result = std::move(*s.p->answer);
          s.p->answer.reset();
          core_.Finish(s.p, std::move(result));
        }
        return;
    }
  }

  CoreImpl& core_;
  std::size_t node_;
  bool subscriber_;
  State state_ = State::kIdle;
  tcp::socket socket_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  asio::steady_timer stall_;
  Clock::time_point last_read_{};
  std::string raw_;   // subscriber commands (and its AUTH), not yet written
  std::string wbuf_;  // being written
  bool writing_ = false;
  std::deque<Slot> queued_;    // calls' frames, not yet written
  std::deque<Slot> inflight_;  // written, replies pending, in order
  std::array<char, 16384> rbuf_;
  ReplyParser parser_;
  SessionTokens::Held has_;  // what this connection's session on the node holds
  int commands_ = 0;  // kCommand slots in queued_ and inflight_
};

// ---- CoreImpl ---------------------------------------------------------------------

namespace {

// "host:port", "host" (port 7379) or "[v6]:port".
bool ParseAddress(const std::string& text, std::string& host, std::string& port) {
  if (text.empty()) return false;
  std::size_t colon = std::string::npos;
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) return false;
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return false;
      colon = close + 1;
    }
  } else {
    colon = text.rfind(':');
    host = text.substr(0, colon);
  }
  port = colon == std::string::npos ? "7379" : text.substr(colon + 1);
  if (host.empty() || port.empty() || port.size() > 5) return false;
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  const long p = std::stol(port);
  return p > 0 && p < 65536;
}

}  // namespace

CoreImpl::CoreImpl(Options options, std::atomic<Level>& lvl)
    : opt(std::move(options)), level(lvl), work(asio::make_work_guard(io)) {
  if (opt.nodes.empty()) throw std::invalid_argument("lattice::Client: Options::nodes is empty");
  if (opt.pool_size < 1) throw std::invalid_argument("lattice::Client: Options::pool_size must be at least 1");
  for (const auto& a : opt.nodes) {
    NodeState n;
    if (!ParseAddress(a, n.host, n.port)) {
      throw std::invalid_argument("lattice::Client: '" + a + "' is not host:port");
    }
    n.address = a;
    n.pool.resize(static_cast<std::size_t>(opt.pool_size));
    nodes.push_back(std::move(n));
  }
  thread = std::thread([this] { io.run(); });
  io_id = thread.get_id();
}

CoreImpl::~CoreImpl() { Close(); }

void CoreImpl::Close() {
  if (!thread.joinable()) return;
  if (std::this_thread::get_id() == io_id) {
    // Its own thread cannot wait for itself to finish.
    std::fputs("lattice::Client destroyed from its own callback (I/O thread); that cannot work: aborting\n", stderr);
    std::abort();
  }
  std::promise<void> done;
  asio::post(io, [this, &done] {
    closed = true;
    std::vector<std::shared_ptr<Conn>> conns;
    for (auto& n : nodes) {
      for (auto& c : n.pool) {
        if (c) conns.push_back(std::move(c));
      }
    }
    if (subscriber) conns.push_back(std::move(subscriber));
    for (auto& c : conns) c->Close();
    std::vector<PendingPtr> pending;
    for (auto& [ptr, weak] : live) {
      if (auto p = weak.lock()) pending.push_back(std::move(p));
    }
    for (auto& p : pending) Finish(p, Error{Errc::kClosed, "the client was closed"});
    for (auto& c : conns) c->TakePending();
    if (resubscribe) resubscribe->cancel();
    if (sweeper) sweeper->cancel();
    work.reset();
    done.set_value();
  });
  done.get_future().wait();
  thread.join();
}

void CoreImpl::Start(Call call, Callback done) {
  auto p = std::make_shared<Pending>();
  p->call = std::move(call);
  p->done = std::move(done);
  p->deadline = Clock::now() + p->call.timeout.value_or(opt.timeout);
  if (closed) return Finish(p, Error{Errc::kClosed, "the client was closed"});
  if (p->call.args.empty()) return Finish(p, Error{Errc::kInvalidArgument, "empty command"});
  if (!p->call.refused.empty()) return Finish(p, Error{Errc::kInvalidArgument, p->call.refused});
  live.emplace(p.get(), p);
  p->due = deadlines.emplace(p->deadline, p.get());
  if (!sweeping) {
    sweeping = true;
    Sweep();
  }
  Dispatch(p);
}

void CoreImpl::Sweep() {
  constexpr milliseconds kSweep(10);
  const auto now = Clock::now();
  std::vector<PendingPtr> expired;
  for (auto it = deadlines.begin(); it != deadlines.end() && it->first <= now; ++it) {
    if (auto l = live.find(it->second); l != live.end()) {
      if (auto p = l->second.lock()) expired.push_back(std::move(p));
    }
  }
  for (auto& p : expired) Finish(p, DeadlineError(*p));
  if (deadlines.empty() || closed) {
    sweeping = false;
    return;
  }
  if (!sweeper) sweeper = std::make_unique<asio::steady_timer>(io);
  sweeper->expires_after(kSweep);
  sweeper->async_wait([this](const asio::error_code& ec) {
    if (ec) {
      sweeping = false;
      return;
    }
    Sweep();
  });
}

Error CoreImpl::DeadlineError(const Pending& p) const {
  const auto ms = std::to_string(p.call.timeout.value_or(opt.timeout).count());
  if (!p.written && !p.last_failure.empty()) {
    return Error{Errc::kNoNode, "no node reachable within " + ms + " ms (last: " + p.last_failure + ")"};
  }
  Error e{Errc::kTimeout, "no reply within " + ms + " ms"};
  if (p.written && !p.call.idempotent) e.message += "; the call may or may not have been applied";
  return e;
}

int CoreImpl::PickNode(Clock::time_point now) {
  const std::size_t n = nodes.size();
  const std::size_t from = current.load();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = (from + i) % n;
    if (nodes[k].down_until <= now) {
      current.store(k);
      return static_cast<int>(k);
    }
  }
  return -1;
}

void CoreImpl::Dispatch(const PendingPtr& p) {
  Release(*p);  // a call moving on from a failed connection
  if (p->finished) return;
  if (closed) return Finish(p, Error{Errc::kClosed, "the client was closed"});
  const auto now = Clock::now();
  if (now >= p->deadline) return Finish(p, DeadlineError(*p));
  const int k = PickNode(now);
  if (k < 0) {
    // Every node failed recently: try again when the first one's backoff ends.
    if (p->last_failure.empty()) p->last_failure = "every node failed within the last " + std::to_string(opt.node_backoff.count()) + " ms";
    auto soonest = Clock::time_point::max();
    for (auto& n : nodes) soonest = std::min(soonest, n.down_until);
    p->retry = std::make_shared<asio::steady_timer>(io, std::min(soonest, p->deadline));
    p->retry->async_wait([this, p](const asio::error_code& ec) {
      if (!ec) Dispatch(p);
    });
    return;
  }
  NodeState& node = nodes[static_cast<std::size_t>(k)];
  auto& conn = Route(node, *p);
  if (!conn || conn->broken()) {
    conn = std::make_shared<Conn>(*this, static_cast<std::size_t>(k), false);
    conn->Start();
  }
  if (!p->call.keys.empty()) {
    Busy& b = busy[p->call.keys.front()];
    b.conn = conn;
    ++b.calls;
    p->busy = true;
  }
  auto c = conn;  // the slot may be replaced if this connection fails
  c->Send(p);
}

// The pool slot for a call: where its key's calls already are; else the key's
// own slot when that connection is idle (its session is there already); else
// the least loaded connection, opening a new one rather than queueing behind
// another call.
std::shared_ptr<Conn>& CoreImpl::Route(NodeState& node, const Pending& p) {
  const std::size_t n = node.pool.size();
  if (!p.call.keys.empty()) {
    if (auto it = busy.find(p.call.keys.front()); it != busy.end()) {
      if (auto c = it->second.conn.lock(); c && !c->broken()) {
        for (auto& slot : node.pool) {
          if (slot == c) return slot;
        }
      }
    }
    auto& own = node.pool[std::hash<std::string>{}(p.call.keys.front()) % n];
    if (own && !own->broken() && own->load() == 0) return own;
  }
  std::size_t best = node.next++ % n;
  int best_load = std::numeric_limits<int>::max();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k = (best + i) % n;
    const auto& c = node.pool[k];
    const int load = !c || c->broken() ? 0 : c->load();
    if (load < best_load || (load == best_load && c && !c->broken() && !(node.pool[best] && !node.pool[best]->broken()))) {
      best = k;
      best_load = load;
    }
  }
  return node.pool[best];
}

void CoreImpl::Release(Pending& p) {
  if (!p.busy) return;
  p.busy = false;
  auto it = busy.find(p.call.keys.front());
  if (it != busy.end() && --it->second.calls <= 0) busy.erase(it);
}

void CoreImpl::Finish(const PendingPtr& p, Result<Reply> r) {
  if (p->finished) return;
  p->finished = true;
  Release(*p);
  if (live.erase(p.get()) > 0) deadlines.erase(p->due);
  if (p->retry) p->retry->cancel();
  auto done = std::move(p->done);
  try {
    done(std::move(r));
  } catch (...) {
    // A callback that throws must not stop the I/O thread.
  }
}

void CoreImpl::NodeFailed(std::size_t node, const std::string&) {
  nodes[node].down_until = Clock::now() + opt.node_backoff;
  if (current.load() == node) current.store((node + 1) % nodes.size());
}

// ---- subscriptions ----------------------------------------------------------------

std::uint64_t CoreImpl::AddSubscription(std::string key, std::function<void(const Message&)> cb) {
  bool first = false;
  const std::uint64_t id = subs.Add(key, std::move(cb), first);
  if (!subscriber || subscriber->broken()) {
    EnsureSubscriber();
  } else if (first) {
    subscriber->SendRaw({"SUBSCRIBE", key});
  } else if (subs.Confirmed(key)) {
    // The node already sends this key's changes: active now, with the current value.
    subs.Activate(id);
    ReadCurrent(key, id);
  }
  // Otherwise the key's confirmation is on its way and activates this one too.
  return id;
}

void CoreImpl::RemoveSubscription(std::uint64_t id) {
  std::string key;
  if (subs.Remove(id, key) && subscriber && !subscriber->broken()) subscriber->SendRaw({"UNSUBSCRIBE", key});
}

void CoreImpl::EnsureSubscriber() {
  if (closed || sub_auth_failed || subs.empty() || (subscriber && !subscriber->broken())) return;
  const int k = PickNode(Clock::now());
  if (k < 0) return SubscriberFailed();  // tries again shortly
  subscriber = std::make_shared<Conn>(*this, static_cast<std::size_t>(k), true);
  std::vector<std::string> args = subs.Keys();
  args.insert(args.begin(), "SUBSCRIBE");
  subscriber->SendRaw(args);
  subscriber->Start();
}

void CoreImpl::SubscriberFailed() {
  subs.Lost();
  if (closed) return;
  if (!resubscribe) resubscribe = std::make_unique<asio::steady_timer>(io);
  resubscribe->expires_after(milliseconds(100));
  resubscribe->async_wait([this](const asio::error_code& ec) {
    if (!ec) EnsureSubscriber();
  });
}

void CoreImpl::OnPush(Reply& r) {
  if (r.type != Reply::Type::kArray || r.elements.size() < 3) return;
  const std::string& kind = r.elements[0].str;
  const std::string& key = r.elements[1].str;
  if (kind == "message") {
    subs.OnMessage(key, r.elements[2].str);
  } else if (kind == "subscribe") {
    subs.Confirm(key);
    ReadCurrent(key);
  }
}

// Reads the key's value and delivers it rendered as a message would carry
// it, unless a message for the key arrives first (that one is newer).
void CoreImpl::ReadCurrent(const std::string& key, std::optional<std::uint64_t> only) {
  const std::uint64_t seen = subs.Messages(key);
  Start(MakeCall({"TYPE", key}), [this, key, seen, only](Result<Reply> type) {
    if (!type || closed) return;
    const std::string name = type->str;
    const char* read = name == "string" || name == "counter" ? "GET"
                       : name == "flag"                      ? "FLAG.GET"
                       : name == "set"                       ? "SMEMBERS"
                       : name == "mvregister"                ? "MV.GET"
                       : name == "hash"                      ? "HGETALL"
                                                             : nullptr;
    if (read == nullptr) {
      if (subs.Messages(key) == seen) subs.Deliver(key, "", only);
      return;
    }
    Start(MakeCall({read, key}), [this, key, seen, name, only](Result<Reply> value) {
      if (!value || closed || subs.Messages(key) != seen) return;
      subs.Deliver(key, RenderValue(name, *value), only);
    });
  });
}

// ---- Core -------------------------------------------------------------------------

Core::Core(Options options) : level_(options.level), impl_(std::make_unique<CoreImpl>(std::move(options), level_)) {}

Core::~Core() { Close(); }

void Core::Close() {
  {
    // After this, Submit completes calls itself: the I/O thread is going away.
    std::lock_guard lock(submit_mu_);
    closing_ = true;
  }
  impl_->Close();
}

void Core::Submit(Call call, Callback done) {
  {
    std::lock_guard lock(submit_mu_);
    if (!closing_) {
      asio::post(impl_->io, [impl = impl_.get(), call = std::move(call), done = std::move(done)]() mutable {
        impl->Start(std::move(call), std::move(done));
      });
      return;
    }
  }
  done(Error{Errc::kClosed, "the client was closed"});
}

bool Core::OnIoThread() const { return std::this_thread::get_id() == impl_->io_id; }

std::string Core::CurrentNode() const { return impl_->nodes[impl_->current.load()].address; }

std::optional<bool> Core::ServerIdempotent(std::string_view upper_name) const {
  std::lock_guard lock(impl_->idempotent_mu);
  auto it = impl_->server_idempotent.find(std::string(upper_name));
  if (it == impl_->server_idempotent.end()) return std::nullopt;
  return it->second;
}

std::uint64_t Core::Subscribe(std::string key, std::function<void(const Message&)> on_message) {
  if (OnIoThread()) return impl_->AddSubscription(std::move(key), std::move(on_message));
  std::promise<std::uint64_t> id;
  auto f = id.get_future();
  asio::post(impl_->io, [impl = impl_.get(), &id, key = std::move(key), cb = std::move(on_message)]() mutable {
    id.set_value(impl->AddSubscription(std::move(key), std::move(cb)));
  });
  return f.get();
}

void Core::Unsubscribe(std::uint64_t id) {
  // Waits, so that no callback runs once the Subscription is gone.
  if (OnIoThread()) return impl_->RemoveSubscription(id);
  std::promise<void> done;
  {
    std::lock_guard lock(submit_mu_);
    if (closing_) return;
    asio::post(impl_->io, [impl = impl_.get(), id, &done] {
      impl->RemoveSubscription(id);
      done.set_value();
    });
  }
  done.get_future().wait();
}

bool Core::WaitActive(std::uint64_t id, milliseconds timeout) { return impl_->subs.WaitActive(id, timeout); }

void Submit(const std::shared_ptr<Core>& core, Call call, Callback done) { core->Submit(std::move(call), std::move(done)); }

Result<Reply> Run(const std::shared_ptr<Core>& core, Call call) {
  if (core->OnIoThread()) {
    return Error{Errc::kInvalidArgument, "Wait() on the client's I/O thread (in a callback) would never return; use Async()"};
  }
  std::promise<Result<Reply>> promise;
  auto f = promise.get_future();
  core->Submit(std::move(call), [&promise](Result<Reply> r) { promise.set_value(std::move(r)); });
  return f.get();
}

}  // namespace lattice::detail
