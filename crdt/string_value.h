// The value of a string (DESIGN §2), a key's or a map field's: an LWW base
// (SET, HSET: a register) plus the increments made since that base (INCR,
// HINCRBY: a causal counter whose reset is observed-remove). GET reads
// base + increments; a base that is not an integer reads as itself, and its
// concurrent increments are kept (EXPLAIN shows them) until a SET removes
// them. A sum outside int64 (increments that overflowed only once merged)
// saturates; INCR then answers Redis's overflow error.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "crdt/counter.h"
#include "crdt/register.h"

namespace lattice::crdt {

// A whole decimal int64 as Redis's string2ll reads one: an optional '-', no
// '+', no leading zeros or spaces, at most 20 characters.
std::optional<std::int64_t> ParseStringInteger(std::string_view s);

struct StringValue {
  std::optional<std::string> base;  // the register's winning value, when it holds one
  bool counted = false;             // increments since the base are live
  std::int64_t increments = 0;      // their sum (saturated)
  bool overflow = false;            // base + increments left int64 (the value is saturated)
  std::int64_t total = 0;           // base + increments, saturated (an integer base or none)

  bool Live() const { return base.has_value() || counted; }
  // What GET shows: the base when it is not an integer, else base + increments.
  std::string Text() const;
  // The integer INCR adds to (base + increments, saturated); nullopt when the
  // base is not an integer.
  std::optional<std::int64_t> Integer() const;
  // The encoded length of Text() without building it where it can.
  std::size_t Size() const;
};

// The string of a base register and an increments counter (either may be null).
StringValue ReadString(const RegisterStore* base, const CounterStore* increments);

}  // namespace lattice::crdt
