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
Result<KeyState> DecodeKeyState(std::string_view bytes, const DecodeLimits& limits = {});

}  // namespace lattice::crdt
