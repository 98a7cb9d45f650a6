// Test harness: runs a real latticed on a loopback port and talks RESP to it
// over a plain socket. Every wait has a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace lattice::test {

// One parsed RESP2 reply.
struct Reply {
  char type = 0;  // '+', '-', ':', '$', '*'; 0 when the connection closed or timed out
  std::string str;
  std::int64_t num = 0;
  bool null = false;
  std::vector<Reply> elems;

  // "+OK" / "-ERR x" / ":3" / "\"bulk\"" / "(nil)" / "[a, b]": for assertions.
  std::string Show() const;
};

class Client {
 public:
  explicit Client(std::uint16_t port, const std::string& host = "127.0.0.1");
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Sends raw bytes.
  bool SendRaw(const std::string& bytes);
  // Sends one command as a RESP multibulk.
  bool Send(const std::vector<std::string>& args);
  // Reads one reply (type 0 on close or after `timeout`).
  Reply Read(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  // Send + Read.
  Reply Call(const std::vector<std::string>& args);
  // True once the server has closed the connection (waits up to `timeout`).
  bool WaitClosed(std::chrono::milliseconds timeout);

 private:
  bool Fill(std::chrono::steady_clock::time_point deadline);
  bool ReadLine(std::string& line, std::chrono::steady_clock::time_point deadline);
  bool ReadReply(Reply& r, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string buf_;
};

// A latticed process with its own data directory and ports.
class Node {
 public:
  explicit Node(std::vector<std::string> extra_args = {}, std::string name = "t1",
                std::string host = "127.0.0.1");
  ~Node();  // SIGKILL if still running; removes the data directory

  std::uint16_t port() const { return port_; }
  std::uint16_t peer_port() const { return peer_port_; }
  const std::string& host() const { return host_; }
  std::string peer_address() const { return host_ + ":" + std::to_string(peer_port_); }
  const std::string& data_dir() const { return dir_; }
  // Starts and waits until PING answers (false after 15 s).
  bool Start();
  // SIGTERM and wait for exit; returns the exit status (-1 on timeout).
  int Stop();
  // Waits for the process to exit on its own; its exit status (-1 on timeout).
  int WaitExit(std::chrono::milliseconds timeout);
  // SIGKILL and reap.
  void Kill();
  // SIGSTOP / SIGCONT: the process holds its connections but answers nothing.
  void Pause();
  void Continue();
  bool running() const { return pid_ > 0; }
  // More flags for the next Start (e.g. seeds known once every node has ports).
  void AddArgs(const std::vector<std::string>& args) { extra_.insert(extra_.end(), args.begin(), args.end()); }
  std::string Log() const;

 private:
  std::vector<std::string> extra_;
  std::string name_;
  std::string host_;
  std::string dir_;
  std::uint16_t port_ = 0;
  std::uint16_t peer_port_ = 0;
  int pid_ = -1;
  bool started_ = false;
  bool StartOnce();
};

// A redis-server (this machine's, from PATH) without persistence on a free
// loopback port, killed with the object: the comparison tests' reference.
class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  // Waits (10 s at most) until it answers PING.
  bool Ready();
  std::uint16_t port() const { return port_; }

 private:
  std::uint16_t port_;
  std::string dir_;
  int pid_ = -1;
};

// A free loopback TCP port.
std::uint16_t FreePort();
// Runs a shell command with a time limit; returns its stdout.
std::string Shell(const std::string& cmd);
// Runs a shell command with a time limit; its exit status (-1 when it could
// not run or was killed) and what it wrote to stdout and stderr.
struct ShellResult {
  int status = -1;
  std::string output;
};
ShellResult ShellRun(const std::string& cmd);

// Polls `fn` every 50 ms until it returns true or `timeout` passes.
bool WaitFor(const std::function<bool()>& fn, std::chrono::seconds timeout = std::chrono::seconds(20));
// True once CLUSTER NODES of `node` lists `state` `count` times (and no member "never" heard from).
bool WaitStates(const Node& node, const std::string& state, int count);
// Starts n nodes n1..n on subnet+(10+i) (e.g. 127.0.0.11), each seeded with all
// n (they found the cluster together), with short anti-entropy and request
// timeouts; REQUIREs all alive everywhere.
std::vector<std::unique_ptr<Node>> StartCluster(int n, const std::string& subnet,
                                                std::vector<std::string> extra_args = {});
// The node's INFO persistence merkle_roots: a digest of every partition's root.
std::string MerkleRoots(Client& c);
// True once every node of a cluster where each replicates every partition
// (N = 3, three nodes) has the same Merkle roots, within `timeout`.
bool WaitRootsEqual(std::vector<std::unique_ptr<Node>>& nodes,
                    std::chrono::seconds timeout = std::chrono::seconds(20));
// The peer addresses of `nodes`, comma-separated (a --seeds value).
std::string SeedList(const std::vector<std::unique_ptr<Node>>& nodes);
// iptables works here (root and the command present).
bool IptablesUsable();
// The first line of a test case that needs iptables. When iptables is
// unusable it never passes: under ctest (which sets LATTICE_IPTABLES_SKIP to
// the entry's SKIP_RETURN_CODE) the process exits with that code, so ctest
// reports the entry as skipped; otherwise the case fails.
void RequireIptables();

// Drops traffic between pairs of loopback addresses while it lives (its own
// iptables chain, removed by Heal() or the destructor). The constructor and
// Add() check that every rule is in place (iptables -C) and fail the test
// case (doctest FAIL) when one is not; Heal() checks that the chain is gone.
struct Partition {
  Partition(const std::string& a, const std::string& b);
  ~Partition();
  void Add(const std::string& a, const std::string& b);
  void Heal();
  std::string chain;
};

}  // namespace lattice::test
