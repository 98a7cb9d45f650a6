// A pipelined batch on a single node, as one CommandGroup
// (node/command_group.h), which Session::Process runs through its Pipeline
// when the node alone replicates every key: the reads ahead of the first write run in one
// read view and see the state before the batch's writes; the commands behind
// a write run in the write job, after it; every reply lands in its slot.
#include <doctest/doctest.h>

#include <filesystem>
#include <future>
#include <random>

#include "node/command_group.h"
#include "node/commands_conn.h"
#include "node/resp.h"

namespace lattice::node {
namespace {

struct Node : ServerState {
  Node(storage::Store& s, Engine& e) : ServerState(Config{}, s, e) {}
  void Publish(const std::vector<std::string>&) override {}
  void RequestStop() override {}
};

struct Fixture {
  Fixture() {
    dir = std::filesystem::temp_directory_path() / ("lattice-batch-" + std::to_string(std::random_device{}()));
    storage::StoreOptions options;
    options.dir = dir.string();
    options.node_name = "batch";
    options.sync = storage::SyncMode::kNone;
    auto s = storage::Store::Open(options);
    REQUIRE_MESSAGE(s.ok(), s.status().ToString());
    store = std::move(s).value();
    engine = std::make_unique<Engine>(*store, clock);
    node = std::make_unique<Node>(*store, *engine);
    conn.authed = true;
  }
  ~Fixture() {
    node.reset();
    engine.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }

  // One batch, as Session::Process runs it on a single node (its data
  // commands as one CommandGroup); the replies.
  std::vector<std::string> Batch(std::vector<Args> commands) {
    std::vector<std::string> replies(commands.size());
    CommandGroup group;
    for (std::size_t i = 0; i < commands.size(); ++i) {
      Dispatch d = DispatchRequest(*node, conn, commands[i], replies[i]);
      if (d.kind == Dispatch::Kind::kData) group.items.push_back(CommandGroup::Item{i, d.spec, std::move(d.args), Level::kQuorum, {}});
    }
    std::promise<Status> done;  // a failed commit answers its writes an error (tested below)
    if (!RunGroupReads(*engine, group)) {
      RunGroupWrites(
          *engine, group,
          [this](storage::Store::Work work, std::function<void(Status)> committed) {
            store->Submit(std::move(work), std::move(committed));
          },
          [&](const Status& s) { done.set_value(s); });
      (void)done.get_future().get();
    }
    for (const CommandGroup::Item& item : group.items) AppendAnswer(replies[item.slot], item.answer);
    return replies;
  }

  std::filesystem::path dir;
  crdt::HlcClock clock;
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<Node> node;
  ConnState conn;
};

std::string Bulk(std::string_view s) {
  std::string out;
  AppendBulk(out, s);
  return out;
}

TEST_CASE("batch: reads ahead of the first write see the state before it, those behind it see it") {
  Fixture f;
  const std::string key = "key:000000000042";  // longer than std::string's inline buffer
  REQUIRE(f.Batch({{"SET", key, "v1"}, {"HSET", "h", "f", "x"}}) == std::vector<std::string>{"+OK\r\n", ":1\r\n"});
  auto replies = f.Batch({{"GET", key},
                          {"HGET", "h", "f"},
                          {"PING"},
                          {"GET", "absent"},
                          {"SET", key, "v2"},
                          {"GET", key},
                          {"MSET", "a:000000000000001", "1", "b:000000000000002", "2"},
                          {"MGET", "a:000000000000001", "b:000000000000002"},
                          {"INCR", "counter:0000000001"},
                          {"GET", "counter:0000000001"}});
  CHECK(replies == std::vector<std::string>{Bulk("v1"), Bulk("x"), "+PONG\r\n", "$-1\r\n", "+OK\r\n", Bulk("v2"),
                                            "+OK\r\n", "*2\r\n" + Bulk("1") + Bulk("2"), ":1\r\n", Bulk("1")});
  // Reads only: all in one view, each reply in its slot.
  replies = f.Batch({{"GET", key}, {"HGET", "h", "f"}, {"EXISTS", key, "a:000000000000001", "nope"}, {"GET", key}});
  CHECK(replies == std::vector<std::string>{Bulk("v2"), Bulk("x"), ":2\r\n", Bulk("v2")});
}

TEST_CASE("batch: a failed commit answers each write of the job an error") {
  Fixture f;
  f.store->Close();  // Submit now answers Unavailable (and the store can no longer be read)
  auto replies = f.Batch({{"SET", "k", "v"}, {"PING"}, {"GET", "k"}});
  REQUIRE(replies.size() == 3);
  CHECK(replies[0].rfind("-ERR write not committed: ", 0) == 0);
  CHECK(replies[1] == "+PONG\r\n");
  CHECK(replies[2].rfind("-ERR write not committed: ", 0) == 0);
}

// The command table (node/command_table.h) is what dispatch and COMMAND read.
TEST_CASE("commands: one table serves dispatch, COMMAND COUNT, LIST and INFO") {
  Fixture f;
  const CommandTable& table = CommandTable::Get();
  const auto offered = table.Offered();
  auto one = [&](Args args) { return f.Batch({std::move(args)})[0]; };
  // Data and connection commands alike are listed, refused ones are not.
  CHECK(one({"COMMAND", "COUNT"}) == ":" + std::to_string(offered.size()) + "\r\n");
  const std::string list = one({"COMMAND", "LIST"});
  for (const char* name : {"get", "sadd", "ping", "auth", "cluster", "cl"}) {
    CHECK_MESSAGE(list.find("\r\n" + std::string(name) + "\r\n") != std::string::npos, name);
  }
  CHECK(list.find("multi") == std::string::npos);
  CHECK(table.Find("MULTI") != nullptr);
  CHECK(table.Find("MULTI")->kind == CommandKind::kRefused);
  // INFO: arity, flags and key positions from the table; unknown and refused names give nil.
  const std::string info = one({"COMMAND", "INFO", "INCR", "PING", "MULTI", "NOSUCH"});
  CHECK(info.rfind("*4\r\n*10\r\n$4\r\nincr\r\n:2\r\n*2\r\n+write\r\n+non_idempotent\r\n:1\r\n:1\r\n:1\r\n", 0) == 0);
  CHECK(info.find("$4\r\nping\r\n:-1\r\n*2\r\n+connection\r\n+idempotent\r\n:0\r\n:0\r\n:0\r\n") != std::string::npos);
  CHECK(info.size() > 6);
  CHECK(info.substr(info.size() - 10) == "*-1\r\n*-1\r\n");
  // Dispatch: arity from the table, refused commands with their reason, CL as a prefix once.
  CHECK(one({"ECHO"}) == "-ERR wrong number of arguments for 'echo' command\r\n");
  CHECK(one({"GET"}) == "-ERR wrong number of arguments for 'get' command\r\n");
  CHECK(one({"MULTI"}).rfind("-ERR MULTI is not offered by LatticeKV: transactions", 0) == 0);
  CHECK(one({"CL", "one", "SET", "clk", "v"}) == "+OK\r\n");
  CHECK(one({"cl", "ALL", "GET", "clk"}) == Bulk("v"));
  CHECK(one({"CL", "one", "CL", "all", "GET", "clk"}).rfind("-ERR unknown command 'CL'", 0) == 0);
  CHECK(one({"CL", "some", "GET", "clk"}) == "-ERR consistency level must be ONE, QUORUM or ALL\r\n");
  CHECK(one({"NOSUCH", "x"}).rfind("-ERR unknown command 'NOSUCH'", 0) == 0);
  // Before AUTH only the table's before_auth commands run.
  f.conn.authed = false;
  CHECK(one({"PING"}) == "-NOAUTH Authentication required.\r\n");
  CHECK(one({"NOSUCH"}) == "-NOAUTH Authentication required.\r\n");
  CHECK(one({"AUTH", "x"}).rfind("-ERR AUTH <password> called without any password", 0) == 0);
  f.conn.authed = true;
  // Subscribed: only the table's subscribed commands run.
  CHECK(one({"SUBSCRIBE", "clk"}) == "*3\r\n$9\r\nsubscribe\r\n$3\r\nclk\r\n:1\r\n");
  CHECK(one({"GET", "clk"}).rfind("-ERR Can't execute 'get'", 0) == 0);
  CHECK(one({"PING"}) == "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
  CHECK(one({"RESET"}) == "+RESET\r\n");
  CHECK(one({"GET", "clk"}) == Bulk("v"));
  // Every entry is reachable and consistent: data commands have a handler,
  // connection commands theirs and no keys, refused ones a reason.
  for (const CommandSpec& spec : table.All()) {
    CAPTURE(spec.name);
    switch (spec.kind) {
      case CommandKind::kData: CHECK(bool(spec.run)); break;
      case CommandKind::kConnection: CHECK(bool(spec.conn)); CHECK(spec.first_key == 0); break;
      case CommandKind::kRefused: CHECK(spec.refused != nullptr); break;
    }
    CHECK(table.Find(spec.name) == &spec);
  }
}

}  // namespace
}  // namespace lattice::node
