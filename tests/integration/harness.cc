#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace lattice::test {

using Clock = std::chrono::steady_clock;

std::string Reply::Show() const {
  switch (type) {
    case '+': return "+" + str;
    case '-': return "-" + str;
    case ':': return ":" + std::to_string(num);
    case '$': return null ? "(nil)" : "\"" + str + "\"";
    case '*': {
      if (null) return "(nil array)";
      std::string out = "[";
      for (std::size_t i = 0; i < elems.size(); ++i) out += (i ? ", " : "") + elems[i].Show();
      return out + "]";
    }
    default: return "(closed)";
  }
}

Client::Client(std::uint16_t port, const std::string& host) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

bool Client::SendRaw(const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

bool Client::Send(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return SendRaw(out);
}

bool Client::Fill(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
  char chunk[65536];
  ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) return false;
  buf_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

bool Client::ReadLine(std::string& line, Clock::time_point deadline) {
  std::size_t pos;
  while ((pos = buf_.find("\r\n")) == std::string::npos) {
    if (!Fill(deadline)) return false;
  }
  line = buf_.substr(0, pos);
  buf_.erase(0, pos + 2);
  return true;
}

bool Client::ReadReply(Reply& r, Clock::time_point deadline) {
  std::string line;
  if (!ReadLine(line, deadline) || line.empty()) return false;
  r.type = line[0];
  std::string rest = line.substr(1);
  switch (r.type) {
    case '+':
    case '-':
      r.str = rest;
      return true;
    case ':':
      r.num = std::stoll(rest);
      return true;
    case '$': {
      long long len = std::stoll(rest);
      if (len < 0) {
        r.null = true;
        return true;
      }
      while (buf_.size() < static_cast<std::size_t>(len) + 2) {
        if (!Fill(deadline)) return false;
      }
      r.str = buf_.substr(0, static_cast<std::size_t>(len));
      buf_.erase(0, static_cast<std::size_t>(len) + 2);
      return true;
    }
    case '*': {
      long long n = std::stoll(rest);
      if (n < 0) {
        r.null = true;
        return true;
      }
      for (long long i = 0; i < n; ++i) {
        Reply e;
        if (!ReadReply(e, deadline)) return false;
        r.elems.push_back(std::move(e));
      }
      return true;
    }
    default:
      return false;
  }
}

Reply Client::Read(std::chrono::milliseconds timeout) {
  Reply r;
  if (fd_ < 0 || !ReadReply(r, Clock::now() + timeout)) return Reply{};
  return r;
}

Reply Client::Call(const std::vector<std::string>& args) {
  if (!Send(args)) return Reply{};
  return Read();
}

bool Client::WaitClosed(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      char c[4096];
      ssize_t n = ::recv(fd_, c, sizeof c, 0);
      if (n <= 0) return true;
      buf_.append(c, static_cast<std::size_t>(n));
    }
  }
  return false;
}

std::uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

namespace {
// `s` for use inside single quotes in sh.
std::string QuoteInner(const std::string& s) {
  std::string out;
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out;
}
}  // namespace

std::string Shell(const std::string& cmd) {
  std::string out;
  std::fflush(nullptr);
  FILE* f = ::popen(("timeout 30 " + cmd).c_str(), "r");
  if (f == nullptr) return out;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  ::pclose(f);
  return out;
}

ShellResult ShellRun(const std::string& cmd) {
  ShellResult r;
  std::fflush(nullptr);
  FILE* f = ::popen(("timeout 30 sh -c '" + QuoteInner(cmd) + "' 2>&1").c_str(), "r");
  if (f == nullptr) return r;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(f);
  r.status = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Node::Node(std::vector<std::string> extra_args, std::string name, std::string host)
    : extra_(std::move(extra_args)), name_(std::move(name)), host_(std::move(host)) {
  dir_ = (std::filesystem::temp_directory_path() / ("latticed-test-" + std::to_string(std::random_device{}()))).string();
  port_ = FreePort();
  peer_port_ = FreePort();
}

Node::~Node() {
  Kill();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool Node::Start() {
  // A node's first start may find its port taken after all: FreePort's ports
  // come from the ephemeral range, which outgoing peer connections (bound to
  // the same loopback address) also draw from. It then gets new ports.
  for (int attempt = 0;; ++attempt) {
    if (StartOnce()) {
      started_ = true;
      return true;
    }
    const std::string log = Log();
    if (started_ || attempt == 2 || log.find("in use") == std::string::npos) {
      std::fprintf(stderr, "harness: %s did not start; its log ends with:\n%s\n", name_.c_str(),
                   log.substr(log.size() > 2000 ? log.size() - 2000 : 0).c_str());
      return false;
    }
    port_ = FreePort();
    peer_port_ = FreePort();
  }
}

bool Node::StartOnce() {
  std::vector<std::string> args = {LATTICED_PATH, "--node-id", name_, "--bind", host_, "--port",
                                   std::to_string(port_), "--peer-port", std::to_string(peer_port_),
                                   "--data-dir", dir_, "--log-level", "info"};
  args.insert(args.end(), extra_.begin(), extra_.end());
  std::filesystem::create_directories(dir_);
  std::fflush(nullptr);  // the child must not flush our buffered output again
  pid_ = ::fork();
  if (pid_ == 0) {
    std::string log = dir_ + "/latticed.log";
    FILE* f = std::freopen(log.c_str(), "a", stdout);
    (void)f;
    ::dup2(::fileno(stdout), 2);
    // Every write checks that its delta reproduces its state (node/engine.cc).
    ::setenv("LATTICE_CHECK_DELTAS", "1", 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::_Exit(127);
  }
  auto deadline = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    Client c(port_, host_);
    // Any reply means the node serves (with --requirepass, PING answers NOAUTH).
    if (c.connected() && c.Call({"PING"}).type != 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int Node::Stop() {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  return WaitExit(std::chrono::seconds(20));
}

int Node::WaitExit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
  return -1;
}

void Node::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void Node::Pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void Node::Continue() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

std::string Node::Log() const {
  std::ifstream f(dir_ + "/latticed.log");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool WaitFor(const std::function<bool()>& fn, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool WaitStates(const Node& node, const std::string& state, int count) {
  Client c(node.port(), node.host());
  return WaitFor([&] {
    std::string text = c.Call({"CLUSTER", "NODES"}).str;
    int n = 0;
    for (std::size_t pos = 0; (pos = text.find(" " + state + " ", pos)) != std::string::npos; ++pos) ++n;
    // "never": known through others' gossip but not heard from directly yet,
    // so not yet reachable for requests.
    return n == count && text.find(" never") == std::string::npos;
  });
}

std::vector<std::unique_ptr<Node>> StartCluster(int n, const std::string& subnet, std::vector<std::string> extra_args) {
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 1; i <= n; ++i) {
    std::vector<std::string> args;
    // The defaults below, unless extra_args gives the flag itself.
    for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
             {"--ae-interval-ms", "500"}, {"--request-timeout-ms", "1500"}, {"--tombstone-grace-ms", "1000"}}) {
      if (std::find(extra_args.begin(), extra_args.end(), flag) == extra_args.end()) {
        args.push_back(flag);
        args.push_back(value);
      }
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    nodes.push_back(std::make_unique<Node>(args, "n" + std::to_string(i), subnet + std::to_string(10 + i)));
  }
  const std::string seeds = SeedList(nodes);
  for (auto& node : nodes) {
    node->AddArgs({"--seeds", seeds});
    REQUIRE(node->Start());
  }
  for (auto& node : nodes) REQUIRE(WaitStates(*node, "alive", n));
  return nodes;
}

std::string MerkleRoots(Client& c) {
  const std::string info = c.Call({"INFO", "persistence"}).str;
  const std::size_t at = info.find("merkle_roots:");
  return at == std::string::npos ? std::string() : info.substr(at + 13, 32);
}

bool WaitRootsEqual(std::vector<std::unique_ptr<Node>>& nodes, std::chrono::seconds timeout) {
  return WaitFor([&] {
    std::set<std::string> roots;
    for (auto& node : nodes) {
      Client c(node->port(), node->host());
      roots.insert(MerkleRoots(c));
    }
    return roots.size() == 1 && !roots.begin()->empty();
  }, timeout);
}

std::string SeedList(const std::vector<std::unique_ptr<Node>>& nodes) {
  std::string seeds;
  for (const auto& node : nodes) seeds += (seeds.empty() ? "" : ",") + node->peer_address();
  return seeds;
}

bool IptablesUsable() {
  return ::geteuid() == 0 && Shell("iptables -w -L -n >/dev/null 2>&1 && echo yes").find("yes") != std::string::npos;
}

void RequireIptables() {
  if (IptablesUsable()) return;
  const std::string why = ::geteuid() != 0 ? "not root" : "'iptables -w -L -n' failed";
  if (const char* code = std::getenv("LATTICE_IPTABLES_SKIP"); code != nullptr && *code != '\0') {
    std::fprintf(stderr, "SKIP: this test needs iptables (%s); exiting with %s so that ctest reports it skipped\n",
                 why.c_str(), code);
    std::fflush(nullptr);
    std::_Exit(std::atoi(code));
  }
  FAIL("this test needs iptables (" << why << "); run it as root with iptables, or through ctest, which "
       "reports it skipped where iptables is unusable");
}

namespace {
// Runs an iptables command that must succeed; otherwise removes the chain
// and fails the test case.
void MustRun(Partition& p, const std::string& cmd, const std::string& what) {
  const ShellResult r = ShellRun(cmd);
  if (r.status == 0) return;
  p.Heal();
  FAIL("partition: " << what << " failed (exit " << r.status << "): " << cmd << "\n" << r.output);
}
}  // namespace

Partition::Partition(const std::string& a, const std::string& b) {
  static int next = 0;
  chain = "LATTICE_TEST_" + std::to_string(::getpid()) + "_" + std::to_string(next++);
  MustRun(*this, "iptables -w -N " + chain, "creating the chain");
  MustRun(*this, "iptables -w -I INPUT -j " + chain, "jumping to the chain from INPUT");
  MustRun(*this, "iptables -w -C INPUT -j " + chain, "checking the jump from INPUT");
  Add(a, b);
}

Partition::~Partition() { Heal(); }

void Partition::Add(const std::string& a, const std::string& b) {
  for (const auto& [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
    const std::string rule = chain + " -s " + from + " -d " + to + " -j DROP";
    MustRun(*this, "iptables -w -A " + rule, "adding a rule");
    MustRun(*this, "iptables -w -C " + rule, "checking a rule");
  }
}

void Partition::Heal() {
  Shell("iptables -w -D INPUT -j " + chain + " 2>/dev/null; iptables -w -F " + chain + " 2>/dev/null; iptables -w -X " +
        chain + " 2>/dev/null; true");
  // Neither the jump nor the chain may remain (-C and -L fail once both are gone).
  const ShellResult jump = ShellRun("iptables -w -C INPUT -j " + chain);
  const ShellResult list = ShellRun("iptables -w -L " + chain + " -n");
  CHECK_MESSAGE(jump.status != 0, "partition: the jump to " << chain << " is still in INPUT after healing");
  CHECK_MESSAGE(list.status != 0, "partition: chain " << chain << " still exists after healing:\n" << list.output);
}


RedisServer::RedisServer() : port_(FreePort()) {
  dir_ = (std::filesystem::temp_directory_path() / ("lattice-redis-" + std::to_string(port_))).string();
  std::filesystem::create_directories(dir_);
  pid_ = fork();
  if (pid_ == 0) {
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) dup2(null, STDOUT_FILENO);
    const std::string port = std::to_string(port_);
    execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port.c_str(), "--save", "",
           "--appendonly", "no", "--dir", dir_.c_str(), "--logfile", "", static_cast<char*>(nullptr));
    _exit(127);
  }
}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

bool RedisServer::Ready() {
  return WaitFor([&] {
    Client c(port_);
    return c.connected() && c.Call({"PING"}).str == "PONG";
  }, std::chrono::seconds(10));
}

}  // namespace lattice::test
