// lattice::Client: the C++ client of LatticeKV, over the text protocol.
//
// A Client talks to a list of nodes. It keeps a pool of connections per node
// (opened on first use), pipelines calls on them, and moves to the next node
// when a node cannot be reached or a connection drops. Every call completes
// exactly once, with a value or a typed Error; nothing throws except
// Result::value() on an error and the constructor on bad Options.
//
// Consistency: each call runs at the client's level (Options::level, QUORUM by
// default) unless the call says otherwise (`.At(Level::kAll)`).
//
// Sessions: a Client is one session. It reads its own writes and its writes
// follow what it read, on every node and at every level, also across
// failover: after each call it keeps the session's causal context for the
// call's keys (an opaque token from `SESSION KEYS`, fetched in the same
// pipeline) and hands it to any other connection before that connection
// touches those keys (`SESSION RESUME`). A read that no reachable replica can
// answer without going back in time fails with Errc::kStale instead.
//
// Retries: a call that has not been written to a connection, or an idempotent
// one, is retried on another node when its connection drops, until its
// deadline. Which commands are idempotent the nodes say (COMMAND INFO, asked
// by the client's first connection; until it answers, the client's own table:
// everything but the increments). A non-idempotent call (INCR, INCRBY, DECR,
// DECRBY, HINCRBY) that was already written is never sent again: it completes
// with Errc::kOutcomeUnknown, since the node may or may not have applied it.
//
// Threads: the Client runs its own I/O thread. Calls may be made from any
// thread. Op::Wait() blocks the calling thread (not allowed on the Client's
// own thread: subscription callbacks must not call Wait()); Op::Async(token)
// (in <lattice/client_async.h>) completes through an Asio completion token,
// e.g. asio::use_awaitable, on the token's executor.
//
// Usage:
//   lattice::Client client({.nodes = {"127.0.0.11:7379", "127.0.0.12:7379"}});
//   lattice::Counter hits(client, "hits");
//   auto n = hits.Increment(5).Wait();            // Result<std::int64_t>
//   if (!n) std::cerr << n.error().ToString();
//   auto all = hits.Get().At(lattice::Level::kAll).Wait();
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace lattice {

// How many of a key's replicas must answer: one, a majority, or all of them.
enum class Level { kOne, kQuorum, kAll };
std::string_view LevelName(Level level);                     // "ONE", "QUORUM", "ALL"
std::optional<Level> ParseLevel(std::string_view text);      // any case

enum class Errc {
  kUnavailable,      // fewer replicas reachable than the level needs (required, reachable)
  kTimeout,          // the deadline passed (acknowledged of required, when the node said so)
  kStale,            // no reachable replica covers what this session has seen of the key yet
  kWrongType,        // the key holds another type
  kOutcomeUnknown,   // an increment was sent and its connection dropped before the reply
  kNoNode,           // no node could be reached before the deadline
  kAuth,             // the password was refused or is missing
  kInvalidArgument,  // refused before sending, or the node said the arguments are wrong
  kProtocol,         // a reply this client could not understand
  kServer,           // any other error reply
  kClosed,           // the Client was destroyed before the call completed
};
std::string_view ErrcName(Errc code);

struct Error {
  Errc code = Errc::kServer;
  std::string message{};  // the node's error text, or the client's
  int acknowledged = -1;  // kTimeout: replicas that had answered (-1: not known)
  int required = -1;      // kTimeout, kUnavailable: replicas the level needs
  int reachable = -1;     // kUnavailable: replicas that were reachable
  std::string ToString() const;
};

class ResultError : public std::runtime_error {
 public:
  explicit ResultError(Error e) : std::runtime_error(e.ToString()), error_(std::move(e)) {}
  const Error& error() const { return error_; }

 private:
  Error error_;
};

// A value or an Error.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // The value; throws ResultError when this is an error.
  T& value() & { Check(); return std::get<0>(v_); }
  const T& value() const& { Check(); return std::get<0>(v_); }
  T value() && { Check(); return std::get<0>(std::move(v_)); }  // by value: safe on a temporary
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T operator*() && { return std::move(*this).value(); }
  // The error; only valid when !ok().
  const Error& error() const { return std::get<1>(v_); }

 private:
  void Check() const {
    if (!ok()) throw ResultError(std::get<1>(v_));
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}
  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  void value() const {
    if (error_) throw ResultError(*error_);
  }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

// One RESP2 reply, as the node sent it.
struct Reply {
  enum class Type { kStatus, kError, kInteger, kBulk, kNil, kArray };
  Type type = Type::kNil;
  std::string str{};            // kStatus, kError, kBulk
  std::int64_t integer = 0;     // kInteger
  std::vector<Reply> elements{};  // kArray
  // redis-cli style: "OK", "(error) ...", "(integer) 3", "\"bulk\"", "(nil)", numbered lines.
  std::string ToString() const;
};

struct Options {
  std::vector<std::string> nodes{};  // "host:port" (port 7379 if omitted); tried in this order
  Level level = Level::kQuorum;    // of calls that do not say
  std::chrono::milliseconds timeout{5000};          // a call's deadline, retries included
  std::chrono::milliseconds connect_timeout{1000};  // per connection attempt
  std::chrono::milliseconds node_backoff{1000};     // a node that failed is skipped this long
  // A connection on which calls wait but nothing arrives for this long is
  // treated as failed (its node may be hung); a node answers every data
  // command within its --request-timeout-ms (2 s by default), so keep this above it.
  std::chrono::milliseconds stall_timeout{3000};
  int pool_size = 4;        // connections per node; a key's calls use one of them
  std::string password{};   // AUTH, when the nodes run with --requirepass
  bool sessions = true;     // read-your-writes across connections and nodes (see above)
};

namespace detail {
class Core;
// What is sent: the command, the keys it touches, its level and deadline.
struct Call {
  std::vector<std::string> args{};
  std::vector<std::string> keys{};
  std::optional<Level> level{};
  std::optional<std::chrono::milliseconds> timeout{};
  bool idempotent = true;
  bool data = true;  // a command on keys (wrapped in CL <level>); false: PING, CLUSTER, ...
  std::string refused{};  // not empty: completes with kInvalidArgument and this text, unsent
};
using Callback = std::function<void(Result<Reply>)>;
// Runs `call`; `done` runs once, on the Client's I/O thread.
void Submit(const std::shared_ptr<Core>& core, Call call, Callback done);
// Runs `call` and waits for it.
Result<Reply> Run(const std::shared_ptr<Core>& core, Call call);
// The value of an error reply as a typed Error.
Error ErrorFromReply(const Reply& reply);
}  // namespace detail

// One call, not yet sent: set its level or deadline, then Wait() or Async().
template <class T>
class [[nodiscard]] Op {
 public:
  using Convert = Result<T> (*)(Reply&&);
  Op(std::shared_ptr<detail::Core> core, detail::Call call, Convert convert)
      : core_(std::move(core)), call_(std::move(call)), convert_(convert) {}

  Op At(Level level) && { call_.level = level; return std::move(*this); }
  Op Within(std::chrono::milliseconds timeout) && { call_.timeout = timeout; return std::move(*this); }

  // Sends the call and blocks until it completes.
  Result<T> Wait() && {
    Result<Reply> r = detail::Run(core_, std::move(call_));
    if (!r) return r.error();
    return convert_(std::move(*r));
  }
  // Sends the call; completes through an Asio completion token, e.g.
  // `co_await op.Async(asio::use_awaitable)` gives a Result<T>.
  // Defined in <lattice/client_async.h>.
  template <class Token>
  auto Async(Token&& token) &&;

  const detail::Call& call() const { return call_; }

 private:
  std::shared_ptr<detail::Core> core_;
  detail::Call call_;
  Convert convert_;
};

class Client;

// A subscription's message: the key's new value, rendered as in the text
// protocol (a string's bytes, a counter in decimal, a flag as 1/0, sets and
// MV registers as JSON arrays, maps as JSON objects, "" once deleted).
struct Message {
  std::string key{};
  std::string value{};
};
// Decodes a set's or MV register's value; nullopt if it is not a JSON array of strings.
std::optional<std::vector<std::string>> ParseList(std::string_view value);
// Decodes a map's value; nullopt if it is not a JSON object of strings.
std::optional<std::map<std::string, std::string>> ParseMap(std::string_view value);

// Stays subscribed while it lives (move-only). The callback runs on the
// Client's I/O thread, in the order the node sent the messages. After a
// failover the Client subscribes again on another node and, since changes may
// have happened meanwhile, delivers the key's current value first.
class Subscription {
 public:
  Subscription() = default;
  Subscription(Subscription&&) noexcept;
  Subscription& operator=(Subscription&&) noexcept;
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription();
  void Unsubscribe();
  // True once the node confirmed the subscription (waits up to `timeout`).
  bool WaitActive(std::chrono::milliseconds timeout);

 private:
  friend class Client;
  std::shared_ptr<detail::Core> core_;
  std::uint64_t id_ = 0;
};

class Client {
 public:
  // Starts the I/O thread; connects on the first call. Throws
  // std::invalid_argument if options.nodes is empty or an address is malformed.
  explicit Client(Options options);
  // Completes every call still pending with Errc::kClosed and stops the thread.
  // Must not run on the Client's own I/O thread (inside one of its callbacks).
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Any command, as redis-cli would send it. Keys and idempotence are known
  // for the data commands; other commands (PING, INFO, CLUSTER ...) are sent
  // as they are and not retried once written. Commands that change the state
  // of a pooled connection (SUBSCRIBE, QUIT, RESET, AUTH, HELLO, SESSION,
  // CLIENT REPLY, MONITOR, ...) are refused with kInvalidArgument: use
  // Subscribe() and Options instead.
  Op<Reply> Command(std::vector<std::string> args);
  // The same, parsed from a line ("SET k \"a b\""); kInvalidArgument on bad quoting.
  Op<Reply> CommandLine(std::string_view line);

  Subscription Subscribe(std::string key, std::function<void(const Message&)> on_message);

  Level level() const;
  void SetLevel(Level level);  // for calls made from now on
  // The node the next call goes to ("host:port").
  std::string CurrentNode() const;
  // Whether the nodes say `command` is idempotent (COMMAND INFO, asked by the
  // first connection): what decides if a call sent before its connection
  // dropped is resent or reported kOutcomeUnknown. nullopt until known.
  std::optional<bool> Idempotent(std::string_view command) const;

  const std::shared_ptr<detail::Core>& core() const { return core_; }

 private:
  std::shared_ptr<detail::Core> core_;
};

// Splits a command line the way redis-cli does: spaces separate arguments,
// "..." with \n \t \" \\ \xHH escapes and '...' quote. nullopt on an unclosed quote.
std::optional<std::vector<std::string>> SplitCommandLine(std::string_view line);

// ---- Typed handles: a key and the calls its type offers. Cheap to copy. ----

// What every key offers, whatever its type.
class Key {
 public:
  Key(Client& client, std::string key);
  const std::string& name() const { return key_; }
  Op<bool> Delete();                                         // true if it held something
  Op<bool> Exists();
  Op<bool> Expire(std::chrono::milliseconds ttl);            // false: no such key
  Op<std::optional<std::chrono::milliseconds>> Ttl();        // nullopt: no TTL or no key
  Op<bool> Persist();                                        // true if a TTL was removed
  Op<std::string> Type();                                    // "string", "set", "hash", "none", ...
  Op<std::string> Explain();                                 // causal context, dots, replicas...

 protected:
  template <class T>
  Op<T> Make(std::vector<std::string> args, typename Op<T>::Convert convert, bool idempotent = true) const;
  std::shared_ptr<detail::Core> core_;
  std::string key_;
};

// A PN-counter (INCRBY/DECRBY; GET reads it).
class Counter : public Key {
 public:
  using Key::Key;
  // Not idempotent: after a dropped connection it reports kOutcomeUnknown rather than retry.
  Op<std::int64_t> Increment(std::int64_t by = 1);
  Op<std::int64_t> Decrement(std::int64_t by = 1);
  Op<std::int64_t> Get();  // 0 when the key does not exist
};

// A last-writer-wins register (SET/GET). A write that saw another replaces it;
// only concurrent writes are ordered by their hybrid clock.
class Register : public Key {
 public:
  using Key::Key;
  Op<void> Set(std::string value, std::optional<std::chrono::milliseconds> ttl = std::nullopt);
  Op<std::optional<std::string>> Get();
};

// A multi-value register: concurrent writes are all kept (siblings).
class MultiValue : public Key {
 public:
  using Key::Key;
  Op<void> Set(std::string value);
  Op<std::vector<std::string>> Get();  // every concurrent value, sorted
};

// An add-wins observed-remove set.
class Set : public Key {
 public:
  using Key::Key;
  Op<std::int64_t> Add(std::vector<std::string> members);     // members newly added
  Op<std::int64_t> Remove(std::vector<std::string> members);  // members removed
  Op<std::vector<std::string>> Members();                     // sorted
  Op<bool> Contains(std::string member);
  Op<std::int64_t> Size();
};

// An observed-remove map whose fields are LWW registers (Set) or counters
// (Increment); a field's kind is fixed by its first write.
class Map : public Key {
 public:
  using Key::Key;
  Op<std::int64_t> Set(std::string field, std::string value);  // 1 if the field is new
  Op<std::int64_t> Set(std::vector<std::pair<std::string, std::string>> fields);
  Op<std::optional<std::string>> Get(std::string field);
  Op<std::int64_t> Remove(std::vector<std::string> fields);    // fields removed
  Op<std::map<std::string, std::string>> All();
  Op<std::vector<std::string>> Fields();
  Op<std::int64_t> Size();
  // Not idempotent (see Counter::Increment).
  Op<std::int64_t> Increment(std::string field, std::int64_t by = 1);
  // The field disappears `ttl` from now unless written again (HPEXPIRE).
  Op<bool> ExpireField(std::string field, std::chrono::milliseconds ttl);  // false: no field
  Op<std::optional<std::chrono::milliseconds>> FieldTtl(std::string field);
  Op<bool> PersistField(std::string field);
};

// An enable-wins flag: a concurrent enable and disable leave it enabled.
class Flag : public Key {
 public:
  using Key::Key;
  Op<void> Enable();
  Op<void> Disable();
  Op<bool> Get();
};

}  // namespace lattice
