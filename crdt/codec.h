// Canonical Cap'n Proto encoding of key states and deltas (crdt/state.capnp).
//
// Encode: equal states give equal bytes (sorted entries, compacted contexts,
// capnp::canonicalize), so digests of encodings can be compared across replicas.
// The bytes are one canonical Cap'n Proto segment, a whole number of words.
//
// Decode: takes untrusted bytes (from disk or a peer). It validates everything
// the encoder guarantees — canonical layout (capnp's isCanonical, which does
// not look at unused padding bits), known types, sorted unique entries,
// non-zero dots, every stored dot inside its context — and returns Corruption
// otherwise. It never throws, asserts or allocates more than a constant times
// the input size.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "crdt/key_state.h"
#include "crdt/status.h"

namespace lattice::crdt {

struct DecodeLimits {
  std::size_t max_bytes = std::size_t{1} << 30;  // larger input is refused
  int max_nesting = 16;
};

std::string EncodeKeyState(const KeyState& state);
// The same appended to `out`. Built in the thread's reused buffers: no
// allocation beyond `out`'s growth for a state under 64 KiB.
void AppendKeyState(const KeyState& state, std::string& out);
Result<KeyState> DecodeKeyState(std::string_view bytes, const DecodeLimits& limits = {});

// Fast paths over an encoded state for the commonest requests, without a
// KeyState. Each handles one shape of state, a key whose only variant is a
// live LWW register (a live counter) and which has no expiry, or no state at
// all (the Create functions), and answers "not handled"
// (nullopt, false) for anything else, including bytes that do not read;
// the caller then takes the general path (decode, mutate, encode), which
// validates. What they give equals what the general path gives
// (tests/unit/codec_fast_test.cc compares them on random states). They use
// the thread's buffers and allocate nothing once those have grown.
//
// GET: the register's winning value. The view is valid until the thread's
// next fast path.
std::optional<std::string_view> PeekRegister(std::string_view encoded);
// SET without options by `replica` at `hlc` (KeyState::Persist, then
// Mutate<LWWRegister> writing `value`, with mint floor `floor`): appends the
// new state's encoding to `out`. Not handled either when the replica has
// context dots outside the version vector, or none while `floor` is set.
bool OverwriteRegister(std::string_view encoded, ReplicaId replica, Hlc hlc, std::uint64_t floor,
                       std::string_view value, std::string& out);
// SET of a key that has no state at all (no record, nothing retired) by
// `replica` at `hlc`, mint floor 0: appends the new state's encoding (what
// Mutate<LWWRegister> on an empty KeyState gives) to `out`.
void CreateRegister(ReplicaId replica, Hlc hlc, std::string_view value, std::string& out);
// INCRBY `by` of a key whose only variant is a live counter without expiry
// (KeyState::Mutate<PNCounter> Increment): appends the new state's encoding
// to `out` and sets `value` to the counter's new value. Not handled, beside
// the shapes above, when the sum would overflow (the general path answers
// that error).
bool IncrementCounter(std::string_view encoded, ReplicaId replica, Hlc hlc, std::uint64_t floor, std::int64_t by,
                      std::string& out, std::int64_t& value);
// INCRBY of a key that has no state at all, as CreateRegister.
void CreateCounter(ReplicaId replica, Hlc hlc, std::int64_t by, std::string& out);

}  // namespace lattice::crdt
