#include "node/command_table.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace lattice::node {

CommandTable::CommandTable() {
  AddDataCommands(all_);
  AddConnectionCommands(all_);
  std::sort(all_.begin(), all_.end(),
            [](const CommandSpec& x, const CommandSpec& y) { return std::string_view(x.name) < y.name; });
  for (std::size_t i = 1; i < all_.size(); ++i) {
    if (std::string_view(all_[i - 1].name) == all_[i].name) {
      std::fprintf(stderr, "command table: %s is listed twice\n", all_[i].name);
      std::abort();  // a programming error, found by any test that starts a server
    }
  }
}

const CommandTable& CommandTable::Get() {
  static const CommandTable table;
  return table;
}

const CommandSpec* CommandTable::Find(std::string_view upper_name) const {
  auto it = std::lower_bound(all_.begin(), all_.end(), upper_name,
                             [](const CommandSpec& s, std::string_view n) { return std::string_view(s.name) < n; });
  return it != all_.end() && it->name == upper_name ? &*it : nullptr;
}

const CommandSpec* CommandTable::FindAnyCase(std::string_view name) const {
  char upper[32];
  if (name.size() > sizeof upper) return nullptr;  // longer than any command's name
  for (std::size_t i = 0; i < name.size(); ++i) {
    upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[i])));
  }
  return Find(std::string_view(upper, name.size()));
}

std::vector<const CommandSpec*> CommandTable::Offered() const {
  std::vector<const CommandSpec*> out;
  for (const CommandSpec& s : all_) {
    if (s.kind != CommandKind::kRefused) out.push_back(&s);
  }
  return out;
}

}  // namespace lattice::node
