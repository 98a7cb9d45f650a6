#include "node/server.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "gossip/listen.h"
#include "node/await_callback.h"
#include "node/cluster.h"
#include "node/command_table.h"
#include "node/commands_conn.h"
#include "node/pipeline.h"
#include "node/replicator.h"

namespace lattice::node {

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

std::uint64_t WallMs() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

namespace {

// Runs `work` on the store's writer and resumes the coroutine after the commit.
awaitable<Status> Commit(storage::Store& store, storage::Store::Work work) {
  std::function<void(std::function<void(Status)>)> start = [&store, work = std::move(work)](auto done) {
    store.Submit(work, std::move(done));
  };
  Status s = co_await AwaitCallback<Status>(std::move(start));
  co_return s;
}

}  // namespace

class Session;

struct Server::Impl : ServerState {
  Impl(Config c, storage::Store& s, Engine& e) : ServerState{std::move(c), s, e} {}

  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  asio::signal_set signals{ioc, SIGINT, SIGTERM};
  asio::steady_timer sweeper{ioc};
  std::atomic<bool> stopping{false};

  std::mutex sessions_mu;
  std::map<Session*, std::weak_ptr<Session>> sessions;
  std::mutex subs_mu;
  std::unordered_map<std::string, std::map<Session*, std::weak_ptr<Session>>> subs;

  awaitable<void> Accept();
  awaitable<void> Sweep();
  void Publish(const std::vector<std::string>& changed) override;
  // Sends `value` to the subscribers of `key` (a change reported by a replica).
  void PublishValue(const std::string& key, const std::string& value);
  void RequestStop() override {
    asio::post(ioc, [this] { StopAll(); });
  }
  void Subscribe(Session* s, const std::string& key, bool on);
  void StopAll();
};

// One client connection.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl& srv, tcp::socket socket)
      : srv_(srv), socket_(std::move(socket)), out_timer_(socket_.get_executor()),
        idle_timer_(socket_.get_executor()) {
    out_timer_.expires_at(std::chrono::steady_clock::time_point::max());
    conn_.id = ++srv_.next_client_id;
    conn_.authed = srv_.config.requirepass.empty();
    conn_.consistency = srv_.config.consistency;
    asio::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) conn_.peer = ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  ~Session() { --srv_.clients; }

  void Start() {
    auto self = shared_from_this();
    asio::co_spawn(socket_.get_executor(), [self] { return self->Reader(); }, asio::detached);
    asio::co_spawn(socket_.get_executor(), [self] { return self->Writer(); }, asio::detached);
    if (srv_.config.idle_timeout_s > 0) {
      asio::co_spawn(socket_.get_executor(), [self] { return self->Watchdog(); }, asio::detached);
    }
  }

  // Queues bytes for the client; callable from any thread.
  // A subscription message: a push message for a RESP3 connection.
  void Deliver(std::string data) {
    asio::post(socket_.get_executor(), [self = shared_from_this(), data = std::move(data)]() mutable {
      self->QueueHere(self->conn_.protocol == 3 ? ToResp3(data, '>') : std::move(data));
    });
  }

  // Idempotent; callable from any thread.
  void Stop() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->StopHere(); });
  }

 private:
  // On the strand.
  void QueueHere(std::string data) {
    if (stopped_) return;
    outq_.push_back(std::move(data));
    out_timer_.cancel();
  }
  void CloseAfterFlush() {
    close_after_flush_ = true;
    out_timer_.cancel();
  }

  void StopHere() {
    if (stopped_) return;
    stopped_ = true;
    for (const auto& key : conn_.subscriptions) srv_.Subscribe(this, key, false);
    conn_.subscriptions.clear();
    asio::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    out_timer_.cancel();
    idle_timer_.cancel();
    std::lock_guard lock(srv_.sessions_mu);
    srv_.sessions.erase(this);
  }

  awaitable<void> Reader() {
    std::string buf;
    std::vector<char> chunk(16 * 1024);
    // The batch's requests: batch[0, n). Kept from batch to batch, so that
    // parsing into them reuses their argument buffers (Recycle returns them).
    std::vector<Request> batch;
    std::size_t n = 0;
    std::size_t pos = 0;
    while (!stopped_) {
      // Parse every complete request already buffered.
      n = 0;
      bool fatal = false;
      while (pos < buf.size()) {
        if (n == batch.size()) batch.emplace_back();
        Request& req = batch[n];
        req.protocol_error.clear();
        ParseResult r = ParseRequest(std::string_view(buf).substr(pos), srv_.config.limits, req.args);
        if (r.kind == ParseResult::Kind::kNeedMore) break;
        pos += r.consumed;
        if (r.kind == ParseResult::Kind::kError) {
          req.args.clear();
          req.protocol_error = "ERR " + r.error;
          ++n;
          if (r.fatal) {
            fatal = true;
            break;
          }
          continue;
        }
        if (!req.args.empty()) ++n;
      }
      if (pos == buf.size()) {
        buf.clear();
        pos = 0;
      } else if (pos > 64 * 1024) {
        buf.erase(0, pos);
        pos = 0;
      }
      if (n > 0) {
        std::string out;
        bool quit = co_await Process(std::span<Request>(batch.data(), n), out);
        if (!out.empty()) QueueHere(std::move(out));
        if (quit || fatal) {
          CloseAfterFlush();
          co_return;
        }
      }
      asio::error_code ec;
      // Back-pressure (DESIGN §3): while the storage overlay is nearly full,
      // clients are not read until the running checkpoint frees room; peers
      // go on into the reserve.
      if (srv_.store.Pressured()) {
        asio::steady_timer wait(socket_.get_executor());
        while (srv_.store.Pressured()) {
          wait.expires_after(std::chrono::milliseconds(2));
          co_await wait.async_wait(asio::redirect_error(use_awaitable, ec));
        }
      }
      std::size_t n = co_await socket_.async_read_some(asio::buffer(chunk), asio::redirect_error(use_awaitable, ec));
      if (ec) {
        // The client may half-close after its last request (nc does): answer
        // what was asked, then close.
        if (ec == asio::error::eof) {
          CloseAfterFlush();
        } else {
          StopHere();
        }
        co_return;
      }
      last_activity_ = std::chrono::steady_clock::now();
      srv_.net_input_bytes.fetch_add(n, std::memory_order_relaxed);
      buf.append(chunk.data(), n);
    }
  }

  awaitable<void> Writer() {
    std::string buf;
    while (!stopped_) {
      if (outq_.empty()) {
        if (close_after_flush_) break;
        asio::error_code ec;
        out_timer_.expires_at(std::chrono::steady_clock::time_point::max());
        co_await out_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
        continue;
      }
      buf.clear();
      for (auto& s : outq_) buf.append(s);
      outq_.clear();
      asio::error_code ec;
      co_await asio::async_write(socket_, asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
      if (ec) break;
      srv_.net_output_bytes.fetch_add(buf.size(), std::memory_order_relaxed);
    }
    StopHere();
  }

  awaitable<void> Watchdog() {
    const auto limit = std::chrono::seconds(srv_.config.idle_timeout_s);
    while (!stopped_) {
      idle_timer_.expires_after(std::min<std::chrono::steady_clock::duration>(limit, std::chrono::seconds(1)));
      asio::error_code ec;
      co_await idle_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
      if (stopped_) break;
      // Subscribers are never idle, as in Redis.
      if (conn_.subscriptions.empty() && std::chrono::steady_clock::now() - last_activity_ > limit) {
        spdlog::debug("closing idle client {}", conn_.peer);
        StopHere();
      }
    }
  }

  // Answers a batch of pipelined requests into `out`, in order. True when the
  // connection should close after the replies (QUIT). Every data command goes
  // through the connection's Pipeline (node/pipeline.h), the one request
  // path: on a node that alone replicates every key (N = 1) the batch's data
  // commands run together on this node (reads ahead of its first write in one
  // read view, the rest in one writer job); in a larger cluster each goes to
  // the coordinators, at once unless KeyOrder makes it wait for an earlier
  // one. A connection command waits for every data command before it
  // (Drain), and the batch answers once all have.
  awaitable<bool> Process(std::span<Request> batch, std::string& out) {
    // Kept across batches, so their buffers are reused (emptied after each).
    if (replies_.size() < batch.size()) replies_.resize(batch.size());
    std::span<std::string> replies(replies_.data(), batch.size());
    for (std::string& r : replies) r.clear();
    if (!pipeline_) {
      pipeline_.emplace(
          *srv_.replicator, conn_,
          [wk = weak_from_this(), ex = socket_.get_executor()](std::function<void()> fn) {
            asio::post(ex, [wk, fn = std::move(fn)] {
              if (auto self = wk.lock()) fn();
            });
          },
          [this](std::size_t slot, Answer& answer) {
            const auto usec = std::chrono::duration_cast<std::chrono::microseconds>(
                                  std::chrono::steady_clock::now() - started_[slot].second)
                                  .count();
            srv_.CountCommand(started_[slot].first, static_cast<std::uint64_t>(usec),
                              answer.outcome != Outcome::kReplied);
            if (answer.ran()) {
              replies_[slot] = std::move(answer.reply);
            } else {
              AppendAnswer(replies_[slot], answer);
            }
          });
      pipeline_->WatchCount(&srv_.watched_keys);
    }
    bool quit = false;
    if (started_.size() < batch.size()) started_.resize(batch.size());
    if (shapes_.size() < batch.size()) shapes_.resize(batch.size()), resp3_.resize(batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Request& req = batch[i];
      ++srv_.total_commands;
      resp3_[i] = false;  // errors read the same in both
      if (!req.protocol_error.empty()) {
        AppendError(replies[i], req.protocol_error);
        continue;
      }
      // A connection command (CONSISTENCY, AUTH, SUBSCRIBE, CL, ...) takes
      // effect after every earlier command of the connection.
      const CommandSpec* spec = CommandTable::Get().FindAnyCase(req.args[0]);
      if (spec != nullptr && spec->kind == CommandKind::kConnection && !pipeline_->Idle()) co_await Drain();
      const auto start = std::chrono::steady_clock::now();
      Dispatch d = DispatchRequest(srv_, conn_, req.args, replies[i], spec);
      resp3_[i] = conn_.protocol == 3;
      // The data command run (through CL: the inner one), or the connection command.
      if (resp3_[i]) shapes_[i] = Resp3Shape(d.kind == Dispatch::Kind::kDone ? spec : d.spec);
      if (d.kind == Dispatch::Kind::kDone) {
        srv_.CountCommand(spec, static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                               std::chrono::steady_clock::now() - start)
                                                               .count()),
                          !replies[i].empty() && replies[i][0] == '-');
        quit = quit || d.quit;
        for (const auto& [key, on] : d.subscription_changes) srv_.Subscribe(this, key, on);
        continue;
      }
      started_[i] = {d.spec, start};
      pipeline_->Add(i, *d.spec, std::move(d.args), ParseLevel(d.level).value_or(Level::kQuorum));
    }
    co_await Drain();
    pipeline_->ReturnArgs(batch);
    // Each reply in the protocol in effect when its command ran (a HELLO in
    // the batch changes it for the commands after it, and its own reply).
    for (std::size_t i = 0; i < replies.size(); ++i) {
      if (resp3_[i]) {
        out.append(ToResp3(replies[i], shapes_[i]));
      } else {
        out.append(replies[i]);
      }
    }
    co_return quit;
  }

  // Starts the batch's commands that wait for it and waits until every data
  // command of the batch has answered.
  awaitable<void> Drain() {
    pipeline_->Flush();
    if (pipeline_->Idle()) co_return;
    std::function<void(std::function<void(bool)>)> start = [this](std::function<void(bool)> done) {
      pipeline_->Drain([done = std::move(done)] { done(true); });
    };
    co_await AwaitCallback<bool>(std::move(start));
  }

  Server::Impl& srv_;
  tcp::socket socket_;
  asio::steady_timer out_timer_;
  asio::steady_timer idle_timer_;
  std::deque<std::string> outq_;
  bool stopped_ = false;
  bool close_after_flush_ = false;
  // The outermost type of a command's reply in RESP3 (ToResp3's `top`): maps,
  // sets and push messages where Redis 7 answers them.
  static char Resp3Shape(const CommandSpec* spec) {
    if (spec == nullptr) return 0;
    const std::string_view n = spec->name;
    if (n == "HGETALL" || n == "CONFIG" || n == "HELLO") return '%';
    if (n == "SMEMBERS" || n == "SINTER" || n == "SUNION" || n == "SDIFF") return '~';
    if (n == "SUBSCRIBE" || n == "UNSUBSCRIBE") return '>';
    return 0;
  }
  std::vector<char> shapes_;  // by slot: Resp3Shape of its command
  std::vector<char> resp3_;   // by slot: its reply goes out in RESP3
  // By slot of the batch: the data command and when it was dispatched (INFO commandstats).
  std::vector<std::pair<const CommandSpec*, std::chrono::steady_clock::time_point>> started_;
  std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
  ConnState conn_;
  std::vector<std::string> replies_;  // Process: one per request of the batch
  // Process: the connection's data commands in its order of effects (made
  // at its first batch).
  std::optional<Pipeline> pipeline_;

  friend struct Server::Impl;
};

void Server::Impl::Subscribe(Session* s, const std::string& key, bool on) {
  bool first = false, last = false;
  {
    std::lock_guard lock(subs_mu);
    if (on) {
      auto& set = subs[key];
      first = set.empty();
      set[s] = s->weak_from_this();
    } else if (auto it = subs.find(key); it != subs.end()) {
      if (it->second.erase(s) > 0 && it->second.empty()) {
        subs.erase(it);
        last = true;
      }
    }
    watched_keys = subs.size();
  }
  // In a cluster, the key's replicas report its changes to this node.
  if (replicator != nullptr && (first || last)) replicator->Watch(key, first);
}

void Server::Impl::PublishValue(const std::string& key, const std::string& value) {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard lock(subs_mu);
    auto it = subs.find(key);
    if (it == subs.end()) return;
    for (auto& [ptr, weak] : it->second) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  std::string msg;
  AppendArray(msg, 3);
  AppendBulk(msg, "message");
  AppendBulk(msg, key);
  AppendBulk(msg, value);
  for (auto& s : live) s->Deliver(msg);
}

void Server::Impl::Publish(const std::vector<std::string>& changed) {
  std::vector<std::pair<std::string, std::vector<std::shared_ptr<Session>>>> targets;
  {
    std::lock_guard lock(subs_mu);
    if (subs.empty()) return;
    std::set<std::string> seen;
    for (const auto& key : changed) {
      auto it = subs.find(key);
      if (it == subs.end() || !seen.insert(key).second) continue;
      std::vector<std::shared_ptr<Session>> live;
      for (auto& [ptr, weak] : it->second) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
      if (!live.empty()) targets.emplace_back(key, std::move(live));
    }
  }
  if (targets.empty()) return;
  const std::uint64_t now = WallMs();
  (void)store.Read([&](storage::Txn& t) {
    for (auto& [key, sessions] : targets) {
      std::string msg;
      AppendArray(msg, 3);
      AppendBulk(msg, "message");
      AppendBulk(msg, key);
      AppendBulk(msg, engine.Render(t, key, now));
      for (auto& s : sessions) s->Deliver(msg);
    }
    return Status::Ok();
  });
}

awaitable<void> Server::Impl::Accept() {
  while (!stopping) {
    asio::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::make_strand(ioc), asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (stopping || ec == asio::error::operation_aborted) co_return;
      spdlog::warn("accept failed: {}", ec.message());
      continue;
    }
    ++total_connections;
    socket.set_option(tcp::no_delay(true), ec);
    if (clients.load() >= config.max_clients) {
      ++rejected_connections;
      auto s = std::make_shared<tcp::socket>(std::move(socket));
      static const std::string kFull = "-ERR max number of clients reached\r\n";
      asio::async_write(*s, asio::buffer(kFull), [s](asio::error_code, std::size_t) {
        asio::error_code ignored;
        s->close(ignored);
      });
      continue;
    }
    ++clients;
    auto session = std::make_shared<Session>(*this, std::move(socket));
    {
      std::lock_guard lock(sessions_mu);
      sessions[session.get()] = session;
    }
    session->Start();
  }
}

// Applies due expiries every 100 ms, so subscribers hear of them and the
// storage shrinks even for keys nobody reads.
awaitable<void> Server::Impl::Sweep() {
  while (!stopping) {
    sweeper.expires_after(std::chrono::milliseconds(100));
    asio::error_code ec;
    co_await sweeper.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopping) co_return;
    std::vector<std::string> due;
    const std::uint64_t now = WallMs();
    Status s = store.Read([&](storage::Txn& t) {
      auto keys = t.DueKeys(now, 256);
      if (!keys.ok()) return keys.status();
      due = std::move(keys).value();
      return Status::Ok();
    });
    if (!s.ok()) {
      spdlog::error("expiry sweep: {}", s.ToString());
      continue;
    }
    if (due.empty()) continue;
    auto changed = std::make_shared<std::vector<std::string>>();
    Engine& e = engine;
    storage::Store::Work work = [due, changed, &e](storage::Txn& t) {
      changed->clear();
      const std::uint64_t at = WallMs();
      for (const auto& key : due) {
        if (Status st = e.Sweep(t, key, at, *changed); !st.ok()) {
          spdlog::error("expiry of key '{}': {}", key, st.ToString());
        }
      }
      return Status::Ok();
    };
    s = co_await Commit(store, std::move(work));
    if (s.ok()) {
      Publish(*changed);
      if (replicator != nullptr) replicator->Swept(*changed);
    }
  }
}

void Server::Impl::StopAll() {
  if (stopping.exchange(true)) return;
  spdlog::info("shutting down: closing clients, completing queued commits");
  if (cluster != nullptr) cluster->Stop();
  asio::error_code ec;
  acceptor.close(ec);
  sweeper.cancel();
  signals.cancel();
  std::vector<std::shared_ptr<Session>> all;
  {
    std::lock_guard lock(sessions_mu);
    for (auto& [p, w] : sessions) {
      if (auto s = w.lock()) all.push_back(std::move(s));
    }
  }
  for (auto& s : all) s->Stop();
}

Server::Server(Config config, storage::Store& store, Engine& engine)
    : impl_(std::make_unique<Impl>(std::move(config), store, engine)) {}

Server::~Server() = default;

asio::io_context& Server::io() { return impl_->ioc; }

void Server::SetCluster(Cluster* cluster) {
  impl_->cluster = cluster;
  impl_->replicator = &cluster->replicator();
  cluster->OnChanged([im = impl_.get()](const std::vector<std::string>& keys) { im->Publish(keys); });
  cluster->OnNotify([im = impl_.get()](const std::string& key, const std::string& value) {
    im->PublishValue(key, value);
  });
}

Status Server::Start() {
  Impl& im = *impl_;
  if (Status s = gossip::OpenListener(im.acceptor, im.config.bind, im.config.port, "clients"); !s.ok()) return s;
  im.started = std::chrono::steady_clock::now();
  asio::co_spawn(im.ioc, im.Accept(), asio::detached);
  asio::co_spawn(im.ioc, im.Sweep(), asio::detached);
  im.signals.async_wait([&im](asio::error_code ec, int sig) {
    if (!ec) {
      spdlog::info("received signal {}", sig);
      im.StopAll();
    }
  });
  spdlog::info("node {} serving RESP on {}:{}", im.store.identity().name, im.config.bind, im.config.port);
  return Status::Ok();
}

void Server::Run() {
  Impl& im = *impl_;
  std::vector<std::thread> threads;
  for (int i = 1; i < im.config.threads; ++i) threads.emplace_back([&im] { im.ioc.run(); });
  im.ioc.run();
  for (auto& t : threads) t.join();
}

void Server::Stop() {
  asio::post(impl_->ioc, [im = impl_.get()] { im->StopAll(); });
}

}  // namespace lattice::node
