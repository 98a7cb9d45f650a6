// The command table: every command a client may send, the data commands
// the engine runs, the connection commands the server answers itself and the
// commands refused by name, each with what dispatch, COMMAND COUNT/LIST/INFO
// and the coordinator (keys, members, removals, idempotency) need to know of
// it. Nothing else names commands.
//
// Owns: the one table, built on first use from what the engine
// (AddDataCommands, node/engine.cc and engine_collections.cc) and the
// connection layer (AddConnectionCommands, node/commands_conn.cc) contribute.
// Immutable once built: any thread reads it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lattice::node {

using Args = std::vector<std::string>;

class Engine;
struct CommandContext;
struct ServerState;
struct ConnState;
struct Dispatch;

// A data command: runs in a store transaction through the engine.
using Handler = void (*)(Engine&, CommandContext&, const Args&);
// A connection command: answers from the server's and the connection's own
// state into `reply`; `d` carries what the session must do after it (quit,
// subscription changes). `args` may be changed.
using ConnHandler = void (*)(ServerState& srv, ConnState& conn, Args& args, std::string& reply, Dispatch& d);

enum class CommandKind : std::uint8_t {
  kData,        // run by the engine (on one node or through the coordinator)
  kConnection,  // answered by the server (PING, AUTH, CLIENT, INFO, ...)
  kRefused,     // not offered: answered with `refused`, the reason
};

struct CommandSpec {
  const char* name;  // upper case
  int arity;         // Redis style: n = exactly n arguments (name included), -n = at least n
  bool write = false;
  Handler run = nullptr;  // kData
  // Removes what its minter observed (DEL, SREM, HDEL, SET over increments,
  // expiries, ...): at QUORUM and ALL it is minted on the join of L replicas'
  // states, so it removes every write acknowledged at QUORUM before it began.
  bool removes = false;
  // Applying it twice has the effect of applying it once. A non-idempotent
  // write (INCR ...) carries a request id that its minter remembers with its
  // reply, durably; COMMAND INFO shows the flag so clients know what they may
  // resend.
  bool idempotent = true;
  // Where its keys are (Redis's first key, last key, step; 0 0 0: no keys).
  int first_key = 1, last_key = 1, key_step = 1;
  // Not 0: argument numkeys_at holds the number of keys, which follow it
  // (SINTERCARD numkeys key... [LIMIT n]); last_key is then where they end.
  int numkeys_at = 0;
  // Where the set members or map fields it names are (first argument, step;
  // 0: it acts on the whole key). A removal's gather loads only those.
  int first_member = 0, member_step = 1;
  CommandKind kind = CommandKind::kData;
  ConnHandler conn = nullptr;  // kConnection
  bool before_auth = false;    // accepted before AUTH (AUTH, HELLO, QUIT)
  bool subscribed = false;     // accepted while the connection is subscribed
  const char* refused = nullptr;  // kRefused: why it is not offered
};

// `n` arguments (the name included) fit Redis-style `arity`.
inline bool ArityOk(int arity, std::size_t n) {
  return arity >= 0 ? n == static_cast<std::size_t>(arity) : n >= static_cast<std::size_t>(-arity);
}

class CommandTable {
 public:
  static const CommandTable& Get();
  // The command called `upper_name` (offered or refused), or nullptr.
  const CommandSpec* Find(std::string_view upper_name) const;
  // The same for a name in any case (as a client sent it).
  const CommandSpec* FindAnyCase(std::string_view name) const;
  // Every entry, sorted by name.
  const std::vector<CommandSpec>& All() const { return all_; }
  // The offered commands (data and connection), sorted by name: what
  // COMMAND COUNT, LIST and INFO show.
  std::vector<const CommandSpec*> Offered() const;

 private:
  CommandTable();
  std::vector<CommandSpec> all_;
};

// The contributions (each defined beside its handlers).
void AddDataCommands(std::vector<CommandSpec>& table);
void AddConnectionCommands(std::vector<CommandSpec>& table);

}  // namespace lattice::node
