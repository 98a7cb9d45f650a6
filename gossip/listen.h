// Opening a listening TCP socket with a clear error, shared by the client
// server (node/) and the peer transport.
#pragma once

#include <asio/ip/tcp.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "crdt/status.h"

namespace lattice::gossip {

// Opens, binds (with SO_REUSEADDR) and listens on bind:port. `what` names the
// listener in errors ("clients", "peers").
inline Status OpenListener(asio::ip::tcp::acceptor& acceptor, const std::string& bind, std::uint16_t port,
                           std::string_view what) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(bind, ec);
  if (ec) return Status::InvalidArgument("bad bind address '" + bind + "' for " + std::string(what));
  asio::ip::tcp::endpoint ep(addr, port);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::IOError("cannot listen for " + std::string(what) + " on " + bind + ":" + std::to_string(port) +
                           ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace lattice::gossip
