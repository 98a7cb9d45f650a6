// Asynchronous calls for lattice::Op: completion-token based, so they work
// with asio::use_awaitable (C++20 coroutines), asio::use_future or a plain
// callback. Include this header only where Async() is used: it brings in Asio
// (standalone, header-only, as the including file is compiled).
//
//   asio::awaitable<void> Shop(lattice::Client& client) {
//     lattice::Map cart(client, "cart:ann");
//     auto added = co_await cart.Increment("apples", 2).Async(asio::use_awaitable);
//     if (!added) co_return;  // added.error() says why
//   }
//
// The completion runs on the token's associated executor (the coroutine's,
// for use_awaitable), never inline on the Client's I/O thread.
#pragma once

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <memory>
#include <utility>

#include "lattice/client.h"

namespace lattice {

template <class T>
template <class Token>
auto Op<T>::Async(Token&& token) && {
  return asio::async_initiate<Token, void(Result<T>)>(
      [](auto handler, std::shared_ptr<detail::Core> core, detail::Call call, Convert convert) {
        using Handler = decltype(handler);
        auto work = asio::make_work_guard(asio::get_associated_executor(handler));
        // std::function needs a copyable callable: the handler lives behind a shared_ptr.
        auto state = std::make_shared<std::pair<Handler, decltype(work)>>(std::move(handler), std::move(work));
        detail::Submit(core, std::move(call), [state, convert](Result<Reply> r) {
          auto out = std::make_shared<Result<T>>(r ? convert(std::move(*r)) : Result<T>(r.error()));
          auto ex = state->second.get_executor();
          asio::post(ex, [state, out]() mutable {
            state->second.reset();
            std::move(state->first)(std::move(*out));
          });
        });
      },
      token, std::move(core_), std::move(call_), convert_);
}

}  // namespace lattice
