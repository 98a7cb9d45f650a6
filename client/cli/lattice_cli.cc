// lattice-cli: one-shot commands and an interactive shell over lattice::Client.
//
//   lattice-cli -n 127.0.0.11:7379,127.0.0.12:7379 INCR hits     one command, then exit
//   lattice-cli -n 127.0.0.11:7379                                interactive shell
//   printf 'SET a 1\nGET a\n' | lattice-cli                        one command per input line
//
// The shell keeps a history (~/.lattice_cli_history; up/down arrows), shows
// the node in use and the consistency level in its prompt, and changes the
// level with `CONSISTENCY ONE|QUORUM|ALL` (for the calls of this shell) or
// `CL <level> <command>` for one call. EXPLAIN and CLUSTER NODES print as text.
// Exit status: 0, or 1 when the last command answered an error.
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include "lattice/client.h"

namespace {

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  return s;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

// CLUSTER NODES lines as aligned columns under a header.
std::string Table(const std::string& text) {
  std::vector<std::vector<std::string>> rows{{"NAME", "PEER", "CLIENT", "STATE", "LAST CONTACT"}};
  for (const auto& line : SplitLines(text)) {
    std::istringstream in(line);
    std::vector<std::string> cells;
    std::string cell;
    while (in >> cell) cells.push_back(cell);
    if (cells.size() > 5) {
      for (std::size_t i = 5; i < cells.size(); ++i) cells[4] += " " + cells[i];
      cells.resize(5);
    }
    if (!cells.empty()) rows.push_back(cells);
  }
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

// How a reply is shown: as redis-cli would, except EXPLAIN (its lines) and
// CLUSTER NODES (a table).
std::string Show(const std::vector<std::string>& args, const lattice::Reply& r) {
  std::size_t at = 0;
  if (!args.empty() && Upper(args[0]) == "CL" && args.size() > 2) at = 2;
  const std::string cmd = args.size() > at ? Upper(args[at]) : "";
  const std::string sub = args.size() > at + 1 ? Upper(args[at + 1]) : "";
  if (cmd == "EXPLAIN" && r.type == lattice::Reply::Type::kArray) {
    std::string out;
    for (const auto& e : r.elements) out += e.str + "\n";
    return out;
  }
  if (cmd == "EXPLAIN" && r.type == lattice::Reply::Type::kBulk) return r.str + (r.str.ends_with("\n") ? "" : "\n");
  if (cmd == "CLUSTER" && sub == "NODES" && r.type == lattice::Reply::Type::kBulk) return Table(r.str);
  if ((cmd == "CLUSTER" || cmd == "INFO") && r.type == lattice::Reply::Type::kBulk) {
    std::string out;
    for (const auto& l : SplitLines(r.str)) out += l + "\n";
    return out;
  }
  return r.ToString() + "\n";
}

// A minimal line editor for a terminal: left/right, home/end, backspace,
// up/down through the history, Ctrl-A/E/U/K/L, Ctrl-C (clears), Ctrl-D (on an
// empty line: quits).
class LineEditor {
 public:
  explicit LineEditor(std::string history_file) : file_(std::move(history_file)) {
    std::ifstream in(file_);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) history_.push_back(line);
    }
  }

  // False at end of input.
  bool Read(const std::string& prompt, std::string& line) {
    termios old{};
    if (tcgetattr(STDIN_FILENO, &old) != 0) return Plain(prompt, line);
    termios raw = old;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO | ISIG);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);  // keeps keys typed ahead
    bool ok = Edit(prompt, line);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    if (ok && !line.empty() && (history_.empty() || history_.back() != line)) {
      history_.push_back(line);
      std::ofstream(file_, std::ios::app) << line << "\n";
    }
    return ok;
  }

 private:
  static bool Plain(const std::string& prompt, std::string& line) {
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
    return static_cast<bool>(std::getline(std::cin, line));
  }

  void Redraw(const std::string& prompt, const std::string& buf, std::size_t pos) {
    std::string out = "\r" + prompt + buf + "\x1b[K";
    out += "\r\x1b[" + std::to_string(prompt.size() + pos) + "C";
    if (prompt.size() + pos == 0) out = "\r" + prompt + buf + "\x1b[K\r";
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }

  bool Edit(const std::string& prompt, std::string& line) {
    std::string buf;
    std::size_t pos = 0;
    std::size_t h = history_.size();
    std::string draft;
    Redraw(prompt, buf, pos);
    for (;;) {
      char c = 0;
      if (::read(STDIN_FILENO, &c, 1) != 1) return false;
      if (c == '\r' || c == '\n') break;
      if (c == 4) {  // Ctrl-D
        if (buf.empty()) return false;
        if (pos < buf.size()) buf.erase(pos, 1);
      } else if (c == 3) {  // Ctrl-C
        buf.clear();
        pos = 0;
      } else if (c == 127 || c == 8) {
        if (pos > 0) buf.erase(--pos, 1);
      } else if (c == 1) {
        pos = 0;
      } else if (c == 5) {
        pos = buf.size();
      } else if (c == 21) {
        buf.erase(0, pos);
        pos = 0;
      } else if (c == 11) {
        buf.erase(pos);
      } else if (c == 12) {
        std::fputs("\x1b[H\x1b[2J", stdout);
      } else if (c == 27) {
        char seq[2];
        if (::read(STDIN_FILENO, &seq[0], 1) != 1 || ::read(STDIN_FILENO, &seq[1], 1) != 1) continue;
        if (seq[0] != '[') continue;
        if (seq[1] == 'A' && h > 0) {
          if (h == history_.size()) draft = buf;
          buf = history_[--h];
          pos = buf.size();
        } else if (seq[1] == 'B' && h < history_.size()) {
          ++h;
          buf = h == history_.size() ? draft : history_[h];
          pos = buf.size();
        } else if (seq[1] == 'C' && pos < buf.size()) {
          ++pos;
        } else if (seq[1] == 'D' && pos > 0) {
          --pos;
        } else if (seq[1] == 'H') {
          pos = 0;
        } else if (seq[1] == 'F') {
          pos = buf.size();
        } else if (seq[1] == '3') {  // Delete: ESC [ 3 ~
          char tilde;
          if (::read(STDIN_FILENO, &tilde, 1) == 1 && pos < buf.size()) buf.erase(pos, 1);
        }
      } else if (static_cast<unsigned char>(c) >= 32) {
        buf.insert(pos++, 1, c);
      }
      Redraw(prompt, buf, pos);
    }
    line = buf;
    return true;
  }

  std::string file_;
  std::vector<std::string> history_;
};

const char* kHelp =
    "Commands are sent as typed (Redis syntax; \"quotes\" and \\x escapes work).\n"
    "  CONSISTENCY [ONE|QUORUM|ALL]  show or set the level of this shell's calls\n"
    "  CL <level> <command...>       one command at a level\n"
    "  EXPLAIN key                   a key's type, causal context, dots and replicas\n"
    "  CLUSTER NODES                 the members as this node sees them\n"
    "  help, quit\n";

// Runs one command line. Returns false when the reply was an error.
bool RunOne(lattice::Client& client, std::vector<std::string> args, std::ostream& out) {
  if (args.empty()) return true;
  const std::string cmd = Upper(args[0]);
  if (cmd == "CONSISTENCY") {
    if (args.size() == 1) {
      out << lattice::LevelName(client.level()) << "\n";
      return true;
    }
    auto level = lattice::ParseLevel(args[1]);
    if (!level || args.size() > 2) {
      out << "(error) ERR consistency level must be ONE, QUORUM or ALL\n";
      return false;
    }
    client.SetLevel(*level);
    out << "OK\n";
    return true;
  }
  if (cmd == "SUBSCRIBE") {
    out << "(error) use `lattice-cli ... --subscribe key` to follow a key\n";
    return false;
  }
  auto r = client.Command(args).Wait();
  if (!r) {
    out << "(error) " << r.error().message << "\n";
    return false;
  }
  out << Show(args, *r);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lattice-cli: commands to a LatticeKV cluster, one-shot or interactive"};
  std::string nodes = "127.0.0.1:7379";
  std::string host;
  int port = 0;
  std::string level_text = "quorum";
  std::string password;
  int timeout_ms = 5000;
  std::string subscribe;
  int subscribe_seconds = 0;
  std::vector<std::string> command;
  app.add_option("-n,--nodes", nodes, "nodes to use, host:port,... (tried in order; failover to the next)");
  app.add_option("-H,--host", host, "one node's host (with --port; instead of --nodes)");
  app.add_option("-p,--port", port, "that node's port");
  app.add_option("-l,--level", level_text, "consistency level: one, quorum or all");
  app.add_option("-a,--password", password, "password (latticed --requirepass)");
  app.add_option("-t,--timeout-ms", timeout_ms, "deadline of each command");
  app.add_option("--subscribe", subscribe, "print every change of this key (with its current value first)");
  app.add_option("--for", subscribe_seconds, "with --subscribe: stop after this many seconds (0: until Ctrl-C)");
  app.add_option("command", command, "a command to run once (else: a shell, or one command per stdin line)");
  app.prefix_command();  // everything after the first positional belongs to the command
  CLI11_PARSE(app, argc, argv);

  auto level = lattice::ParseLevel(level_text);
  if (!level) {
    std::cerr << "lattice-cli: --level must be one, quorum or all\n";
    return 2;
  }
  lattice::Options opt;
  if (!host.empty() || port != 0) {
    opt.nodes = {(host.empty() ? std::string("127.0.0.1") : host) + ":" + std::to_string(port == 0 ? 7379 : port)};
  } else {
    std::stringstream in(nodes);
    std::string n;
    while (std::getline(in, n, ',')) {
      if (!n.empty()) opt.nodes.push_back(n);
    }
  }
  opt.level = *level;
  opt.password = password;
  opt.timeout = std::chrono::milliseconds(timeout_ms);
  opt.pool_size = 1;
  std::unique_ptr<lattice::Client> client;
  try {
    client = std::make_unique<lattice::Client>(opt);
  } catch (const std::exception& e) {
    std::cerr << "lattice-cli: " << e.what() << "\n";
    return 2;
  }

  if (!subscribe.empty()) {
    auto sub = client->Subscribe(subscribe, [](const lattice::Message& m) {
      std::cout << m.key << " = " << m.value << std::endl;
    });
    if (!sub.WaitActive(std::chrono::milliseconds(timeout_ms))) {
      std::cerr << "lattice-cli: could not subscribe within " << timeout_ms << " ms\n";
      return 1;
    }
    std::this_thread::sleep_for(subscribe_seconds > 0 ? std::chrono::seconds(subscribe_seconds) : std::chrono::hours(24 * 365));
    return 0;
  }

  // The remaining arguments are one command, sent as given (no re-quoting).
  std::vector<std::string> rest = app.remaining();
  command.insert(command.end(), rest.begin(), rest.end());
  if (!command.empty()) return RunOne(*client, command, std::cout) ? 0 : 1;

  const bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
  if (!tty) {
    bool ok = true;
    std::string line;
    while (std::getline(std::cin, line)) {
      auto args = lattice::SplitCommandLine(line);
      if (!args) {
        std::cout << "(error) unbalanced quotes\n";
        ok = false;
        continue;
      }
      ok = RunOne(*client, *args, std::cout);
    }
    return ok ? 0 : 1;
  }

  const char* home = std::getenv("HOME");
  LineEditor editor(std::string(home ? home : ".") + "/.lattice_cli_history");
  std::cout << "lattice-cli: connected to " << client->CurrentNode() << " (failover: " << nodes
            << "). Type help for help.\n";
  std::string line;
  for (;;) {
    const std::string prompt = client->CurrentNode() + " [" + std::string(lattice::LevelName(client->level())) + "]> ";
    if (!editor.Read(prompt, line)) break;
    auto args = lattice::SplitCommandLine(line);
    if (!args) {
      std::cout << "(error) unbalanced quotes\n";
      continue;
    }
    if (args->empty()) continue;
    const std::string cmd = Upper((*args)[0]);
    if (cmd == "QUIT" || cmd == "EXIT") break;
    if (cmd == "HELP") {
      std::cout << kHelp;
      continue;
    }
    RunOne(*client, *args, std::cout);
  }
  return 0;
}
