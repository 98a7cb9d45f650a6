# Encodings of CRDT states and deltas (a delta is a state of the same type).
#
# Canonical: the encoder writes every list sorted (by dot, replica, element or
# field name, as the in-memory maps are) with no duplicates, contexts compacted,
# and the message is passed through capnp::canonicalize. Equal states therefore
# give equal bytes; Merkle digests and tests depend on it (DESIGN §2).
# Decoders reject anything the encoder would not write (crdt/codec.h).
@0xfeb2dc923f87eb49;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("lattice::crdt::wire");

struct Hlc {
  wallMs @0 :UInt64;
  logical @1 :UInt32;
}

struct Dot {
  replica @0 :UInt64;
  counter @1 :UInt64;
}

# Compact version vector (replica -> highest contiguous counter, as Dots) plus
# the cloud of dots beyond it.
struct DotContext {
  vv @0 :List(Dot);
  cloud @1 :List(Dot);
}

struct RegisterEntry {
  dot @0 :Dot;
  hlc @1 :Hlc;
  value @2 :Data;
}

struct CounterEntry {
  replica @0 :UInt64;
  counter @1 :UInt64;   # dot counter of the replica's latest increment
  total @2 :Int64;      # the replica's cumulative sum up to it
  hlc @3 :Hlc;
}

struct CounterStore {
  entries @0 :List(CounterEntry);
  floors @1 :List(CounterEntry);
}

struct SetElement {
  element @0 :Data;
  dots @1 :List(Dot);
}

struct FlagEntry {
  dot @0 :Dot;
  enabled @1 :Bool;
}

# A scheduled removal of what a map field held when HEXPIRE was set.
struct FieldExpiry {
  dot @0 :Dot;
  set @1 :Hlc;
  atMs @2 :UInt64;
  regDots @3 :List(Dot);
  floors @4 :List(CounterEntry);
}

struct MapField {
  name @0 :Data;
  register @1 :List(RegisterEntry);
  counter @2 :CounterStore;
  expiry @3 :List(FieldExpiry);
}

# One replica's HyperLogLog registers: its nonzero registers as (index: 2
# bytes big-endian, value: 1 byte) triples, by index.
struct HllEntry {
  dot @0 :Dot;
  registers @1 :Data;
}

struct Stamp {
  hlc @0 :Hlc;
  replica @1 :UInt64;
}

struct Variant {
  created @0 :Stamp;
  context @1 :DotContext;
  store :union {
    counter @2 :CounterStore;
    lww @3 :List(RegisterEntry);
    mv @4 :List(RegisterEntry);
    set @5 :List(SetElement);
    flag @6 :List(FlagEntry);
    map @7 :List(MapField);
    hll @8 :List(HllEntry);
  }
}

# A scheduled removal of everything a key held when EXPIRE was set; `removal`
# is the canonical encoding of a KeyState without expiries.
struct KeyExpiry {
  dot @0 :Dot;
  set @1 :Hlc;
  atMs @2 :UInt64;
  removal @3 :Data;
}

# One key's state: a variant per type ever written to it (crdt/key_state.h),
# sorted by type, and the key's expiries with their own context.
struct KeyState {
  variants @0 :List(Variant);
  expiryContext @1 :DotContext;
  expiry @2 :List(KeyExpiry);
}
