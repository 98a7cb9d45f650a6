// Uses the installed client: a synchronous call and an awaitable one.
//   consumer host:port   exits 0 if both calls answer as expected
#include <lattice/client.h>
#include <lattice/client_async.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer host:port\n";
    return 2;
  }
  lattice::Client client({.nodes = {argv[1]}});
  lattice::Counter visits(client, "consumer:visits");
  auto first = visits.Increment(2).Wait();
  if (!first) {
    std::cerr << "increment failed: " << first.error().ToString() << "\n";
    return 1;
  }
  asio::io_context io;
  std::int64_t second = -1;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    auto r = co_await visits.Increment(3).Async(asio::use_awaitable);
    second = r ? *r : -1;
  }, asio::detached);
  io.run();
  std::cout << "consumer: " << *first << " then " << second << "\n";
  return second == *first + 3 ? 0 : 1;
}
