// Hybrid logical clock (Kulkarni et al.): physical milliseconds plus a logical
// counter, so timestamps follow causality even when wall clocks disagree.
//
// The physical clock is injected so tests can run nodes whose clocks are skewed.
// Thread-safety: HlcClock is not synchronised; the owner serialises access.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

#include "crdt/status.h"

namespace lattice::crdt {

struct Hlc {
  std::uint64_t wall_ms = 0;
  std::uint32_t logical = 0;
  auto operator<=>(const Hlc&) const = default;
};

class HlcClock {
 public:
  using PhysicalClock = std::function<std::uint64_t()>;  // milliseconds since epoch

  static constexpr std::uint64_t kDefaultMaxOffsetMs = 500;

  // Uses the system clock when `physical` is empty.
  explicit HlcClock(PhysicalClock physical = {}, std::uint64_t max_offset_ms = kDefaultMaxOffsetMs);

  // A timestamp for a local event; strictly greater than every earlier one.
  Hlc Now();

  // Moves the clock past a timestamp received from a peer or carried by a
  // session. Refused (and the clock left alone) when `remote` runs more than the
  // maximum offset ahead of our physical clock, so one fast clock cannot drag
  // the cluster's time forward.
  Status Observe(const Hlc& remote);

  // Moves the clock past a persisted value on start, without the offset check:
  // our own earlier life is trusted.
  void Restore(const Hlc& persisted);

  // The last timestamp issued or observed.
  Hlc Last() const { return last_; }
  std::uint64_t PhysicalMs() const { return physical_(); }

 private:
  PhysicalClock physical_;
  std::uint64_t max_offset_ms_;
  Hlc last_;
};

}  // namespace lattice::crdt
