// AwaitCallback: a coroutine awaits an operation that reports through a
// callback, which may run on any thread; the coroutine resumes on its own
// executor. Used by the server's sessions (node/server.cc) to await commits and
// coordinated commands. Header-only (templates); included by .cc files only.
#pragma once

#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <functional>
#include <memory>

namespace lattice::node {

// `start(cb)` begins the operation; `cb(value)` may run on any thread. The
// coroutine resumes inside `cb` when that runs on its own executor after
// `start` returned (asio::dispatch: no second trip through the queue for an
// answer already posted there); otherwise it is posted.
// (Named locals rather than temporaries inside co_await expressions: GCC 12
// miscompiles some temporaries that live across a suspension.)
template <class T>
struct CallbackInitiation {
  std::function<void(std::function<void(T)>)> start;
  template <class Handler>
  void operator()(Handler handler) const {
    auto exec = asio::get_associated_executor(handler);
    struct Pending {
      Handler h;
      asio::executor_work_guard<decltype(exec)> guard;
      std::atomic<bool> starting{true};
    };
    auto p = std::make_shared<Pending>(std::move(handler), asio::make_work_guard(exec));
    start([p](T value) {
      auto ex = p->guard.get_executor();
      auto resume = [p, value = std::move(value)]() mutable { std::move(p->h)(std::move(value)); };
      if (p->starting.load()) {
        asio::post(ex, std::move(resume));
      } else {
        asio::dispatch(ex, std::move(resume));
      }
    });
    p->starting.store(false);
  }
};

template <class T>
asio::awaitable<T> AwaitCallback(std::function<void(std::function<void(T)>)> start) {
  CallbackInitiation<T> init{std::move(start)};
  T value = co_await asio::async_initiate<decltype(asio::use_awaitable), void(T)>(init, asio::use_awaitable);
  co_return value;
}

}  // namespace lattice::node
