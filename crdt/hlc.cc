#include "crdt/hlc.h"

#include <chrono>
#include <string>

namespace lattice::crdt {

namespace {
std::uint64_t SystemMs() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}
}  // namespace

HlcClock::HlcClock(PhysicalClock physical, std::uint64_t max_offset_ms)
    : physical_(physical ? std::move(physical) : PhysicalClock(SystemMs)),
      max_offset_ms_(max_offset_ms) {}

Hlc HlcClock::Now() {
  std::uint64_t pt = physical_();
  if (pt > last_.wall_ms) {
    last_ = Hlc{pt, 0};
  } else {
    ++last_.logical;
  }
  return last_;
}

Status HlcClock::Observe(const Hlc& remote) {
  std::uint64_t pt = physical_();
  if (remote.wall_ms > pt + max_offset_ms_) {
    return Status::Refused("clock of peer runs " + std::to_string(remote.wall_ms - pt) +
                           " ms ahead of ours (limit " + std::to_string(max_offset_ms_) + " ms)");
  }
  Restore(remote);
  return Status::Ok();
}

void HlcClock::Restore(const Hlc& persisted) {
  if (persisted > last_) last_ = persisted;
}

}  // namespace lattice::crdt
