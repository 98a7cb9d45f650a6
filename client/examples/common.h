// What the demos share: their command line, narration, and waiting for a
// condition with a deadline. Header-only; the demos use only lattice::Client.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "lattice/client.h"

namespace demo {

struct Args {
  std::vector<std::string> nodes{"127.0.0.11:7379", "127.0.0.12:7379", "127.0.0.13:7379"};
  bool short_mode = false;    // fewer users and shorter waits (the test suite runs this)
  std::string partition_cmd;  // shell command that cuts the first node off from the others
  std::string heal_cmd;       // shell command that undoes it
};

// --nodes a,b,c --short --partition-cmd CMD --heal-cmd CMD. Exits 2 on bad usage.
inline Args Parse(int argc, char** argv, const char* what) {
  Args a;
  auto usage = [&](const std::string& why) {
    std::cerr << argv[0] << ": " << why << "\n"
              << what << "\nusage: " << argv[0]
              << " [--nodes host:port,host:port,host:port] [--short] [--partition-cmd CMD --heal-cmd CMD]\n";
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--nodes") {
      a.nodes.clear();
      std::stringstream in(value());
      std::string n;
      while (std::getline(in, n, ',')) {
        if (!n.empty()) a.nodes.push_back(n);
      }
    } else if (arg == "--short") {
      a.short_mode = true;
    } else if (arg == "--partition-cmd") {
      a.partition_cmd = value();
    } else if (arg == "--heal-cmd") {
      a.heal_cmd = value();
    } else if (arg == "-h" || arg == "--help") {
      usage("help");
    } else {
      usage("unknown argument " + arg);
    }
  }
  if (a.nodes.size() != 3) usage("--nodes needs three nodes");
  if (a.partition_cmd.empty() != a.heal_cmd.empty()) usage("--partition-cmd and --heal-cmd go together");
  return a;
}

inline void Say(const std::string& text) { std::cout << "\n\033[1m# " << text << "\033[0m" << std::endl; }
inline void Note(const std::string& text) { std::cout << "  " << text << std::endl; }

// Runs a shell command, showing it; false if it failed.
inline bool Shell(const std::string& cmd) {
  std::cout << "  $ " << cmd << std::endl;
  return std::system(cmd.c_str()) == 0;
}

// Polls `ready` every 50 ms until it is true or `timeout` passes.
inline bool WaitUntil(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ready();
}

inline std::string Show(const std::map<std::string, std::string>& m) {
  std::string out = "{";
  for (const auto& [k, v] : m) out += (out.size() > 1 ? ", " : "") + k + ": " + v;
  return out + "}";
}

// A client that talks to one node only (no failover): that node's own view.
inline lattice::Options OneNode(const std::string& node, lattice::Level level = lattice::Level::kOne) {
  lattice::Options o;
  o.nodes = {node};
  o.level = level;
  o.timeout = std::chrono::milliseconds(3000);
  o.pool_size = 1;
  return o;
}

}  // namespace demo
