// KeyOrder: the order of effects of one connection's pipelined data commands
// when they are coordinated concurrently (DESIGN §4, one request path).
//
// A command naming one key starts once the earlier commands of its batch
// that name that key have finished (so it carries the causal contexts they
// observed), and once the last barrier before it has. A barrier (a command
// with no key or several keys: SCAN, DBSIZE, MSET, DEL a b, ...) starts once
// everything before it has finished, and everything after it waits for it.
// Commands on different keys run at the same time; their replies are still
// written in the order they were sent (the caller's job: slots).
//
// Owns: the dependencies of the current batch's commands, by slot (their
// index in the batch). Pure bookkeeping, no I/O, no clock; one connection's
// strand uses it (not thread-safe).
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

namespace lattice::node {

class KeyOrder {
 public:
  // Adds command `slot` (slots increase within a batch) naming `keys`. True
  // when it may start now; otherwise Finished reports it once it may.
  bool Add(std::size_t slot, const std::vector<std::string>& keys);

  // Command `slot` (started) finished: appends to `ready`, in slot order,
  // the commands that may start now.
  void Finished(std::size_t slot, std::vector<std::size_t>& ready);

  // True when every command added has finished. Reset() then readies the
  // order for the next batch (it keeps its buffers).
  bool Idle() const { return unfinished_ == 0; }
  void Reset();

 private:
  struct Item {
    bool added = false, done = false;
    std::size_t waiting = 0;           // unfinished commands it waits for
    std::vector<std::size_t> then;     // commands waiting for it
  };
  void Depend(std::size_t slot, std::size_t on);

  std::vector<Item> items_;  // by slot
  std::vector<std::size_t> added_;
  std::unordered_map<std::string, std::size_t> last_;  // key -> last slot naming it since the barrier
  bool has_barrier_ = false;
  std::size_t barrier_ = 0;
  std::size_t unfinished_ = 0;
};

}  // namespace lattice::node
