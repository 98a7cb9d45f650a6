// What crdt/codec.cc (the general encoder and decoder) and crdt/codec_fast.cc
// (the fast paths over an encoded state) share: builder helpers and each
// thread's reused buffers. Internal to crdt/: include it nowhere else.
#pragma once

#include <capnp/message.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "crdt/dot.h"
#include "crdt/hlc.h"
#include "crdt/state.capnp.h"

namespace lattice::crdt::codec_internal {

void Put(wire::Hlc::Builder b, const Hlc& h);
void Put(wire::Dot::Builder b, const Dot& d);

// Words of each thread's first builder segment: states up to 64 KiB are
// built without a heap segment. capnp wants the segment zeroed; what a build
// used is zeroed again after it.
constexpr std::size_t kBuildWords = 8192;

// The thread's scratch: the builder's first segment, the canonical copy's
// buffer and an aligned copy of a fast path's input. Reused from call to
// call, so an encoding costs no allocation once they have grown.
struct Scratch {
  std::vector<std::uint64_t> first = std::vector<std::uint64_t>(kBuildWords, 0);
  std::vector<std::uint64_t> canonical;
  std::vector<std::uint64_t> input;
};
Scratch& ThreadScratch();

inline capnp::word* AsWords(std::vector<std::uint64_t>& v) { return reinterpret_cast<capnp::word*>(v.data()); }

// Appends the canonical form of `root` to `out`: what capnp::canonicalize
// gives (the same FlatMessageBuilder and canonical copy), into the thread's
// buffer instead of two new arrays.
void AppendCanonical(wire::KeyState::Reader root, std::string& out);

// Runs build(root) in a builder on the thread's first segment and appends
// the canonical bytes of the result to `out`.
template <class BuildFn>
void EncodeWith(BuildFn&& build, std::string& out) {
  std::vector<std::uint64_t>& first = ThreadScratch().first;
  // Zeroes what the build used however it ends (a throw included), after
  // the builder is gone.
  struct Rezero {
    std::vector<std::uint64_t>& words;
    std::size_t used = 0;
    ~Rezero() { std::memset(words.data(), 0, used * sizeof(capnp::word)); }
  } rezero{first};
  capnp::MallocMessageBuilder message(kj::arrayPtr(AsWords(first), first.size()));
  auto root = message.initRoot<wire::KeyState>();
  // Until the build is done, how much of the segment it used is unknown.
  rezero.used = first.size();
  build(root);
  AppendCanonical(root.asReader(), out);
  rezero.used = message.getSegmentsForOutput()[0].size();
}

}  // namespace lattice::crdt::codec_internal
