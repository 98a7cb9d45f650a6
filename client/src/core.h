// The client's engine: nodes, connection pools, pipelining, failover,
// session tokens and subscriptions. Everything here runs on the Client's I/O
// thread (one thread, so no locks) except the few members marked otherwise.
// Asio is compiled in core.cc only.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "lattice/client.h"

namespace lattice::detail {

// The data commands this client knows: which arguments are keys, and whether
// sending one twice could apply it twice.
struct CommandInfo {
  enum class Keys { kNone, kFirst, kAll, kPairs };
  Keys keys = Keys::kFirst;
  bool idempotent = true;
};
// nullptr for a command that is not a data command (PING, INFO, CLUSTER ...).
const CommandInfo* FindCommand(std::string_view name);
// ASCII upper case (command names).
std::string Upper(std::string_view s);
// The idempotent / non_idempotent flags of a COMMAND INFO reply, by
// upper-case command name, into `out`.
void ReadIdempotence(const Reply& command_info, std::unordered_map<std::string, bool>& out);
// The call for `args`, keys and idempotence filled in from the table.
Call MakeCall(std::vector<std::string> args);

// A key's value read with the type's own read command (GET, SMEMBERS, HGETALL
// ...), rendered as a subscription message carries it.
std::string RenderValue(std::string_view type, const Reply& value);

class CoreImpl;

class Core {
 public:
  explicit Core(Options options);
  ~Core();
  void Submit(Call call, Callback done);
  bool OnIoThread() const;
  Level level() const { return level_.load(); }
  void SetLevel(Level level) { level_.store(level); }
  std::string CurrentNode() const;
  // What the nodes' COMMAND INFO said of a command (upper case); nullopt
  // until a connection has been answered, or for a command it did not list.
  std::optional<bool> ServerIdempotent(std::string_view upper_name) const;

  std::uint64_t Subscribe(std::string key, std::function<void(const Message&)> on_message);
  void Unsubscribe(std::uint64_t id);
  bool WaitActive(std::uint64_t id, std::chrono::milliseconds timeout);

  // Stops the I/O thread after completing what is pending with kClosed.
  void Close();

 private:
  std::atomic<Level> level_;
  std::mutex submit_mu_;
  bool closing_ = false;  // guarded by submit_mu_
  std::unique_ptr<CoreImpl> impl_;
};

}  // namespace lattice::detail
