#include "node/commands_conn.h"

#include <chrono>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "node/cluster.h"
#include "node/replicator.h"
#include "node/resp.h"

namespace lattice::node {

namespace {

void UnknownCommand(std::string& reply, const Args& args) {
  std::string msg = "ERR unknown command '" + args[0] + "', with args beginning with: ";
  for (std::size_t i = 1; i < args.size() && i < 4; ++i) msg += "'" + args[i].substr(0, 128) + "' ";
  AppendError(reply, msg);
}

void WrongArity(std::string& reply, const std::string& name) {
  AppendError(reply, "ERR wrong number of arguments for '" + Lower(name) + "' command");
}

void ConfigGet(ServerState& srv, const Args& args, std::string& reply) {
  const Config& c = srv.config;
  const std::pair<std::string, std::string> params[] = {
      {"bind", c.bind},
      {"port", std::to_string(c.port)},
      {"maxclients", std::to_string(c.max_clients)},
      {"timeout", std::to_string(c.idle_timeout_s)},
      {"proto-max-bulk-len", std::to_string(c.limits.max_bulk)},
      {"databases", "1"},
      {"save", ""},
      {"appendonly", "no"},
      {"appendfsync", c.sync == "always" ? "always" : "no"},
      {"dir", c.data_dir},
      {"requirepass", c.requirepass.empty() ? "" : "********"},
      {"lattice-consistency", c.consistency},
      {"lattice-sync", c.sync},
      {"lattice-node-id", c.node_id},
  };
  std::vector<std::pair<std::string, std::string>> hits;
  for (std::size_t i = 2; i < args.size(); ++i) {
    for (const auto& p : params) {
      if (GlobMatch(args[i], p.first, true) &&
          std::find(hits.begin(), hits.end(), p) == hits.end()) {
        hits.push_back(p);
      }
    }
  }
  AppendArray(reply, hits.size() * 2);
  for (const auto& [k, v] : hits) {
    AppendBulk(reply, k);
    AppendBulk(reply, v);
  }
}

void Hello(ServerState& srv, ConnState& conn, const Args& args, std::string& reply) {
  std::size_t i = 1;
  if (i < args.size()) {
    if (args[i] != "2" && args[i] != "3") {
      std::int64_t v = 0;
      auto [p, ec] = std::from_chars(args[i].data(), args[i].data() + args[i].size(), v);
      if (ec == std::errc() && p == args[i].data() + args[i].size()) {
        return AppendError(reply, "NOPROTO unsupported protocol version");  // Redis's text
      }
      return AppendError(reply, "ERR Protocol version is not an integer or out of range");
    }
    ++i;
  }
  const int protocol = args.size() > 1 ? (args[1] == "3" ? 3 : 2) : conn.protocol;
  for (; i < args.size(); ++i) {
    std::string opt = Upper(args[i]);
    if (opt == "AUTH" && i + 2 < args.size()) {
      if (srv.config.requirepass.empty() || args[i + 2] != srv.config.requirepass) {
        return AppendError(reply, "WRONGPASS invalid username-password pair or user is disabled.");
      }
      conn.authed = true;
      i += 2;
    } else if (opt == "SETNAME" && i + 1 < args.size()) {
      conn.name = args[++i];
    } else {
      return AppendError(reply, "ERR Syntax error in HELLO option '" + args[i] + "'");
    }
  }
  if (!conn.authed) return AppendError(reply, "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
  conn.protocol = protocol;
  AppendArray(reply, 14);  // a map in RESP3 (the session converts it)
  const std::pair<const char*, std::string> fields[] = {
      {"server", "lattice"}, {"version", "7.0.0"}, {"proto", ""}, {"id", ""},
      {"mode", "standalone"}, {"role", "master"}, {"modules", ""}};
  for (const auto& [k, v] : fields) {
    AppendBulk(reply, k);
    if (std::string_view(k) == "proto") AppendInt(reply, protocol);
    else if (std::string_view(k) == "id") AppendInt(reply, static_cast<std::int64_t>(conn.id));
    else if (std::string_view(k) == "modules") AppendArray(reply, 0);
    else AppendBulk(reply, v);
  }
}

void Client(ConnState& conn, const Args& args, std::string& reply) {
  if (args.size() < 2) return WrongArity(reply, "client");
  std::string sub = Upper(args[1]);
  if (sub == "SETNAME" && args.size() == 3) {
    conn.name = args[2];
    return AppendSimple(reply, "OK");
  }
  if (sub == "GETNAME") return conn.name.empty() ? AppendNull(reply) : AppendBulk(reply, conn.name);
  if (sub == "ID") return AppendInt(reply, static_cast<std::int64_t>(conn.id));
  if (sub == "SETINFO" || sub == "NO-EVICT" || sub == "NO-TOUCH") return AppendSimple(reply, "OK");
  if (sub == "INFO" || sub == "LIST") {
    std::string line = "id=" + std::to_string(conn.id) + " addr=" + conn.peer + " name=" + conn.name +
                       " db=0 sub=" + std::to_string(conn.subscriptions.size()) + "\n";
    return AppendBulk(reply, line);
  }
  AppendError(reply, "ERR unknown subcommand '" + args[1] + "'. Try CLIENT HELP.");
}

void ClusterCommand(ServerState& srv, const Args& args, std::string& reply) {
  if (args.size() < 2) return WrongArity(reply, "cluster");
  std::string sub = Upper(args[1]);
  Cluster* c = srv.cluster;
  if (c == nullptr) return AppendError(reply, "ERR this node runs without a peer transport");
  if (sub == "NODES" && args.size() == 2) return AppendBulk(reply, c->Nodes());
  if (sub == "INFO" && args.size() == 2) return AppendBulk(reply, c->Info());
  if (sub == "JOIN" && args.size() == 3) {
    Status s = c->Join(args[2]);
    return s.ok() ? AppendSimple(reply, "OK") : AppendError(reply, "ERR " + s.message());
  }
  if (sub == "LEAVE" && args.size() == 2) {
    return AppendSimple(reply, "OK " + c->Leave());
  }
  if (sub == "FORGET" && args.size() == 3) {
    Status s = c->Forget(args[2]);
    return s.ok() ? AppendSimple(reply, "OK") : AppendError(reply, "ERR " + s.message());
  }
  if (sub == "REPLICAS" && args.size() == 3) {
    std::uint32_t partition = 0;
    auto replicas = c->Replicas(args[2], &partition);
    AppendArray(reply, replicas.size() + 1);
    AppendBulk(reply, "partition " + std::to_string(partition));
    for (const auto& r : replicas) AppendBulk(reply, r);
    return;
  }
  AppendError(reply, "ERR unknown subcommand or wrong number of arguments for 'cluster " + Lower(args[1]) +
                         "'. Try NODES, INFO, JOIN host:port, LEAVE, FORGET name, REPLICAS key.");
}

bool ValidLevel(const std::string& level) { return level == "one" || level == "quorum" || level == "all"; }

}  // namespace

namespace {

// ---- connection commands (the table's kConnection entries) ----------------------

void ConnPing(ServerState&, ConnState& conn, Args& args, std::string& reply, Dispatch&) {
  if (args.size() > 2) return WrongArity(reply, "PING");
  if (!conn.subscriptions.empty()) {
    AppendArray(reply, 2);
    AppendBulk(reply, "pong");
    AppendBulk(reply, args.size() == 2 ? args[1] : "");
  } else {
    args.size() == 2 ? AppendBulk(reply, args[1]) : AppendSimple(reply, "PONG");
  }
}

void ConnEcho(ServerState&, ConnState&, Args& args, std::string& reply, Dispatch&) { AppendBulk(reply, args[1]); }

// TIME: this node's clock, as Redis answers it (seconds, microseconds).
void ConnTime(ServerState&, ConnState&, Args&, std::string& reply, Dispatch&) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  AppendArray(reply, 2);
  AppendBulk(reply, std::to_string(us / 1000000));
  AppendBulk(reply, std::to_string(us % 1000000));
}

void ConnQuit(ServerState&, ConnState&, Args&, std::string& reply, Dispatch& d) {
  AppendSimple(reply, "OK");
  d.quit = true;
}

void ConnAuth(ServerState& srv, ConnState& conn, Args& args, std::string& reply, Dispatch&) {
  if (args.size() > 3) return WrongArity(reply, "AUTH");
  const std::string& pass = args.size() == 2 ? args[1] : args[2];
  if (srv.config.requirepass.empty()) {
    AppendError(reply, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
  } else if (pass != srv.config.requirepass || (args.size() == 3 && args[1] != "default")) {
    AppendError(reply, "WRONGPASS invalid username-password pair or user is disabled.");
  } else {
    conn.authed = true;
    AppendSimple(reply, "OK");
  }
}

void ConnHello(ServerState& srv, ConnState& conn, Args& args, std::string& reply, Dispatch&) {
  Hello(srv, conn, args, reply);
}

void ConnSelect(ServerState&, ConnState&, Args& args, std::string& reply, Dispatch&) {
  args[1] == "0" ? AppendSimple(reply, "OK") : AppendError(reply, "ERR DB index is out of range");
}

void ConnClient(ServerState&, ConnState& conn, Args& args, std::string& reply, Dispatch&) {
  Client(conn, args, reply);
}

// COMMAND [COUNT | LIST | DOCS | INFO [name ...]]: the table's offered commands.
void ConnCommand(ServerState&, ConnState&, Args& args, std::string& reply, Dispatch&) {
  const CommandTable& table = CommandTable::Get();
  const std::vector<const CommandSpec*> offered = table.Offered();
  std::string sub = args.size() > 1 ? Upper(args[1]) : "";
  if (sub == "COUNT") return AppendInt(reply, static_cast<std::int64_t>(offered.size()));
  if (sub == "LIST") {
    AppendArray(reply, offered.size());
    for (const CommandSpec* spec : offered) AppendBulk(reply, Lower(spec->name));
    return;
  }
  if (sub == "DOCS") return AppendArray(reply, 0);  // no command docs: clients fall back to plain mode
  if (sub != "INFO" && !sub.empty()) {
    return AppendError(reply, "ERR unknown subcommand '" + args[1] + "'. Try COMMAND HELP.");
  }
  // Redis 7's reply; the flags say "idempotent" or "non_idempotent" too,
  // so a client knows what it may resend after a dropped connection.
  std::vector<const CommandSpec*> specs;
  if (args.size() <= 2) {
    specs = offered;
  } else {
    for (std::size_t i = 2; i < args.size(); ++i) {
      const CommandSpec* spec = table.Find(Upper(args[i]));
      specs.push_back(spec != nullptr && spec->kind != CommandKind::kRefused ? spec : nullptr);
    }
  }
  AppendArray(reply, specs.size());
  for (const CommandSpec* spec : specs) {
    if (spec == nullptr) {
      AppendNullArray(reply);
      continue;
    }
    AppendArray(reply, 10);
    AppendBulk(reply, Lower(spec->name));
    AppendInt(reply, spec->arity);
    AppendArray(reply, 2);
    AppendSimple(reply, spec->kind == CommandKind::kConnection ? "connection" : spec->write ? "write" : "readonly");
    AppendSimple(reply, spec->idempotent ? "idempotent" : "non_idempotent");
    AppendInt(reply, spec->first_key);
    AppendInt(reply, spec->last_key);
    AppendInt(reply, spec->key_step);
    AppendArray(reply, 0);  // ACL categories
    AppendArray(reply, 0);  // tips
    AppendArray(reply, 0);  // key specs
    AppendArray(reply, 0);  // subcommands
  }
}

void ConnConfig(ServerState& srv, ConnState&, Args& args, std::string& reply, Dispatch&) {
  std::string sub = Upper(args[1]);
  if (sub == "GET" && args.size() >= 3) {
    ConfigGet(srv, args, reply);
  } else if (sub == "SET") {
    AppendError(reply, "ERR CONFIG SET is not supported: restart latticed with the new flag or config file");
  } else if (sub == "RESETSTAT") {
    AppendSimple(reply, "OK");
  } else {
    AppendError(reply, "ERR unknown subcommand or wrong number of arguments for 'config'");
  }
}

void ConnInfo(ServerState& srv, ConnState&, Args& args, std::string& reply, Dispatch&) {
  AppendBulk(reply, Info(srv, args.size() > 1 ? args[1] : ""));
}

void ConnConsistency(ServerState&, ConnState& conn, Args& args, std::string& reply, Dispatch&) {
  if (args.size() == 1) {
    AppendSimple(reply, Upper(conn.consistency));
  } else if (args.size() == 2 && ValidLevel(Lower(args[1]))) {
    conn.consistency = Lower(args[1]);
    AppendSimple(reply, "OK");
  } else {
    AppendError(reply, "ERR consistency level must be ONE, QUORUM or ALL");
  }
}

// SUBSCRIBE key... / UNSUBSCRIBE [key...]: watches keys (the session applies
// the changes the Dispatch lists).
void Subscription(ConnState& conn, Args& args, std::string& reply, Dispatch& d, bool on) {
  std::vector<std::string> keys(args.begin() + 1, args.end());
  if (!on && keys.empty()) keys.assign(conn.subscriptions.begin(), conn.subscriptions.end());
  if (!on && keys.empty()) {
    AppendArray(reply, 3);
    AppendBulk(reply, "unsubscribe");
    AppendNull(reply);
    AppendInt(reply, 0);
  }
  for (const auto& key : keys) {
    if (on ? conn.subscriptions.insert(key).second : conn.subscriptions.erase(key) > 0) {
      d.subscription_changes.emplace_back(key, on);
    }
    AppendArray(reply, 3);
    AppendBulk(reply, on ? "subscribe" : "unsubscribe");
    AppendBulk(reply, key);
    AppendInt(reply, static_cast<std::int64_t>(conn.subscriptions.size()));
  }
}
void ConnSubscribe(ServerState&, ConnState& conn, Args& args, std::string& reply, Dispatch& d) {
  Subscription(conn, args, reply, d, true);
}
void ConnUnsubscribe(ServerState&, ConnState& conn, Args& args, std::string& reply, Dispatch& d) {
  Subscription(conn, args, reply, d, false);
}

// Every write is already durable when acknowledged, so SAVE/NOSAVE make no
// difference; the node stops as on SIGTERM (the client sees the connection close).
void ConnShutdown(ServerState& srv, ConnState&, Args&, std::string&, Dispatch& d) {
  srv.RequestStop();
  d.quit = true;
}

void ConnCluster(ServerState& srv, ConnState&, Args& args, std::string& reply, Dispatch&) {
  ClusterCommand(srv, args, reply);
}

// SESSION: the whole session as a token. SESSION KEYS k...: the part for
// those keys only (what a client keeps after each call, so it can carry the
// session to another node if this one fails). SESSION RESUME t...: joins
// every token given into this connection's session.
void ConnSession(ServerState&, ConnState& conn, Args& args, std::string& reply, Dispatch&) {
  std::string sub = args.size() > 1 ? Upper(args[1]) : "";
  if (args.size() == 1) {
    AppendBulk(reply, EncodeSessionToken(conn.session));
  } else if (sub == "KEYS" && args.size() >= 3) {
    SessionContexts part;
    for (std::size_t i = 2; i < args.size(); ++i) {
      if (auto it = conn.session.find(args[i]); it != conn.session.end()) part.insert(*it);
    }
    AppendBulk(reply, EncodeSessionToken(part));
  } else if (sub == "RESUME" && args.size() >= 3) {
    SessionContexts joined;
    std::string error;
    for (std::size_t i = 2; i < args.size() && error.empty(); ++i) {
      auto contexts = DecodeSessionToken(args[i]);
      if (!contexts.ok()) {
        error = contexts.status().message();
        break;
      }
      for (auto& [key, ctx] : *contexts) joined[key].Join(ctx);
    }
    if (error.empty()) {
      conn.Observe(std::move(joined));
      AppendSimple(reply, "OK");
    } else {
      AppendError(reply, "ERR " + error);
    }
  } else if (sub == "RESET" && args.size() == 2) {
    conn.session.clear();
    conn.session_order.clear();
    AppendSimple(reply, "OK");
  } else {
    AppendError(reply, "ERR usage: SESSION | SESSION KEYS <key>... | SESSION RESUME <token>... | SESSION RESET");
  }
}

void ConnReset(ServerState& srv, ConnState& conn, Args&, std::string& reply, Dispatch& d) {
  for (const auto& key : conn.subscriptions) d.subscription_changes.emplace_back(key, false);
  conn.subscriptions.clear();
  conn.consistency = srv.config.consistency;
  conn.name.clear();
  AppendSimple(reply, "RESET");
}

// CL <level> <command...>: one command at an explicit level. A prefix: it
// sets the level, drops itself from the arguments and has the rest
// dispatched (once: a CL inside a CL is an unknown command).
void ConnCl(ServerState&, ConnState&, Args& args, std::string& reply, Dispatch& d) {
  if (!ValidLevel(Lower(args[1]))) {
    return AppendError(reply, "ERR consistency level must be ONE, QUORUM or ALL");
  }
  d.level = Lower(args[1]);
  args.erase(args.begin(), args.begin() + 2);
  d.redispatch = true;
}

CommandSpec Conn(const char* name, int arity, ConnHandler handler) {
  CommandSpec spec{name, arity};
  spec.kind = CommandKind::kConnection;
  spec.conn = handler;
  spec.first_key = spec.last_key = spec.key_step = 0;
  return spec;
}

CommandSpec Refused(const char* name, const char* why) {
  CommandSpec spec{name, -1};
  spec.kind = CommandKind::kRefused;
  spec.refused = why;
  spec.first_key = spec.last_key = spec.key_step = 0;
  return spec;
}

}  // namespace

void AddConnectionCommands(std::vector<CommandSpec>& table) {
  CommandSpec commands[] = {
      Conn("PING", -1, ConnPing),      Conn("ECHO", 2, ConnEcho),
      Conn("QUIT", -1, ConnQuit),      Conn("AUTH", -2, ConnAuth),
      Conn("HELLO", -1, ConnHello),    Conn("SELECT", 2, ConnSelect),
      Conn("CLIENT", -2, ConnClient),  Conn("COMMAND", -1, ConnCommand),
      Conn("CONFIG", -2, ConnConfig),  Conn("INFO", -1, ConnInfo),
      Conn("CONSISTENCY", -1, ConnConsistency),
      Conn("SUBSCRIBE", -2, ConnSubscribe), Conn("UNSUBSCRIBE", -1, ConnUnsubscribe),
      Conn("SHUTDOWN", -1, ConnShutdown), Conn("CLUSTER", -2, ConnCluster),
      Conn("SESSION", -1, ConnSession), Conn("RESET", -1, ConnReset),
      Conn("CL", -3, ConnCl),              Conn("TIME", 1, ConnTime),
  };
  for (CommandSpec& spec : commands) {
    const std::string_view n = spec.name;
    spec.before_auth = n == "AUTH" || n == "HELLO" || n == "QUIT";
    spec.subscribed = n == "SUBSCRIBE" || n == "UNSUBSCRIBE" || n == "PING" || n == "QUIT" || n == "RESET";
  }
  table.insert(table.end(), std::begin(commands), std::end(commands));
  // Commands that need consensus or a single owner, and why they are refused.
  static const std::pair<const char*, const char*> kRefused[] = {
      {"SETNX", "a conditional write needs consensus or a single owner of the key"},
      {"MSETNX", "a conditional write needs consensus or a single owner of the key"},
      {"MULTI", "transactions need a single owner of every key they touch"},
      {"EXEC", "transactions need a single owner of every key they touch"},
      {"DISCARD", "transactions need a single owner of every key they touch"},
      {"WATCH", "optimistic locking needs a single owner of the key"},
      {"UNWATCH", "optimistic locking needs a single owner of the key"},
      {"EVAL", "scripts need a single owner of every key they touch"},
      {"EVALSHA", "scripts need a single owner of every key they touch"},
      {"FCALL", "functions need a single owner of every key they touch"},
      {"FLUSHALL", "a cluster-wide wipe needs consensus; delete keys with DEL"},
      {"FLUSHDB", "a cluster-wide wipe needs consensus; delete keys with DEL"},
      {"RENAME", "moving a value between keys atomically needs a single owner of both"},
      {"RENAMENX", "moving a value between keys atomically needs a single owner of both"},
      {"MOVE", "there is one database"},
      {"SINTERSTORE", "it writes one key from others, whose states need not be on the destination's replicas; "
                      "read with SINTER, write with SADD"},
      {"SUNIONSTORE", "it writes one key from others, whose states need not be on the destination's replicas; "
                      "read with SUNION, write with SADD"},
      {"SDIFFSTORE", "it writes one key from others, whose states need not be on the destination's replicas; "
                     "read with SDIFF, write with SADD"},
      {"SMOVE", "moving a member between keys atomically needs a single owner of both"},
      {"PFMERGE", "it writes one key from others, whose states need not be on the destination's replicas; "
                  "count the union with PFCOUNT key key..."},
      {"BITOP", "it writes one key from others, whose states need not be on the destination's replicas"},
      {"BITFIELD", "its sub-commands read and write in one step, which needs a single owner of the key; "
                   "use GETBIT, SETBIT and BITCOUNT"},
      {"BITPOS", "not offered yet; read the value with GET"},
      {"LCS", "not offered yet; read both values with MGET"},
      {"COPY", "copying one key into another atomically needs a single owner of both"},
      {"DUMP", "a key's state is a CRDT, not Redis's serialization; read it with the type's commands"},
      {"RESTORE", "a key's state is a CRDT, not Redis's serialization; write it with the type's commands"},
      {"OBJECT", "there are no Redis encodings or access times; EXPLAIN key shows a key's state"},
      {"SORT", "not offered; read the members and sort them in the client"},
      {"SORT_RO", "not offered; read the members and sort them in the client"},
      {"WAIT", "replication is by level per request: use CL ALL (or CONSISTENCY ALL)"},
      {"MIGRATE", "keys live on their replicas by hash; there is nothing to move"},
      {"SWAPDB", "there is one database"},
  };
  for (const auto& [name, why] : kRefused) table.push_back(Refused(name, why));
}

Dispatch DispatchRequest(ServerState& srv, ConnState& conn, Args& args, std::string& reply) {
  return DispatchRequest(srv, conn, args, reply, CommandTable::Get().FindAnyCase(args[0]));
}

Dispatch DispatchRequest(ServerState& srv, ConnState& conn, Args& args, std::string& reply, const CommandSpec* spec) {
  Dispatch d;
  if (!conn.authed && (spec == nullptr || !spec->before_auth)) {
    AppendError(reply, "NOAUTH Authentication required.");
    return d;
  }
  if (!conn.subscriptions.empty() && (spec == nullptr || !spec->subscribed)) {
    AppendError(reply, "ERR Can't execute '" + Lower(args[0]) +
                           "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
    return d;
  }
  for (;;) {
    if (spec == nullptr) {
      UnknownCommand(reply, args);
      return d;
    }
    if (!ArityOk(spec->arity, args.size())) {
      WrongArity(reply, Upper(args[0]));
      return d;
    }
    switch (spec->kind) {
      case CommandKind::kRefused:
        AppendError(reply, "ERR " + Upper(args[0]) + " is not offered by LatticeKV: " + spec->refused + " (see README)");
        return d;
      case CommandKind::kData:
        d.kind = Dispatch::Kind::kData;
        if (d.level.empty()) d.level = conn.consistency;
        d.spec = spec;
        d.args = std::move(args);
        return d;
      case CommandKind::kConnection:
        spec->conn(srv, conn, args, reply, d);
        if (!d.redispatch) return d;
        break;
    }
    d.redispatch = false;
    spec = CommandTable::Get().FindAnyCase(args[0]);
    if (spec != nullptr && spec->conn == ConnCl) spec = nullptr;  // a CL inside a CL is unknown
  }
}

}  // namespace lattice::node
