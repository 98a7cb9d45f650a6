// The codec's fast paths (crdt/codec.h): GET, SET and INCRBY over a key's
// encoded state, read and built as Cap'n Proto without a KeyState.
#include <kj/exception.h>

#include <optional>
#include <tuple>

#include "crdt/codec.h"
#include "crdt/codec_internal.h"

namespace lattice::crdt {

using namespace codec_internal;

namespace {

// The root of `bytes` read from an aligned copy in the thread's buffer (no
// validation beyond capnp's bounds checks, which throw). The reader and what
// it points to are valid until the thread's next fast path.
struct FastReader {
  explicit FastReader(std::string_view bytes) {
    std::vector<std::uint64_t>& buf = ThreadScratch().input;
    buf.resize(bytes.size() / sizeof(capnp::word));
    std::memcpy(buf.data(), bytes.data(), buf.size() * sizeof(capnp::word));
    segments[0] = kj::arrayPtr(static_cast<const capnp::word*>(AsWords(buf)), buf.size());
    capnp::ReaderOptions options;
    options.traversalLimitInWords = 2 * buf.size() + 16;
    reader.emplace(kj::arrayPtr(segments, 1), options);
  }
  wire::KeyState::Reader root() { return reader->getRoot<wire::KeyState>(); }
  kj::ArrayPtr<const capnp::word> segments[1];
  std::optional<capnp::SegmentArrayMessageReader> reader;
};

bool Encoded(std::string_view bytes) { return !bytes.empty() && bytes.size() % sizeof(capnp::word) == 0; }

}  // namespace


namespace {

// The dot DotContext::NextDot(replica) mints in `ctx`, when the general path
// would mint it the same way and nothing else: every dot of the replica is
// in the version vector (the new one is one above its entry, which then moves
// up by one), and there is one or no mint floor to raise the context to
// first (KeyState::Mutate does that only for a replica without dots). False
// otherwise.
bool NextVvDot(wire::DotContext::Reader ctx, ReplicaId replica, std::uint64_t floor, Dot& dot) {
  for (auto d : ctx.getCloud()) {
    if (d.getReplica() == replica) return false;
  }
  std::uint64_t counter = 0;
  for (auto d : ctx.getVv()) {
    if (d.getReplica() == replica) counter = d.getCounter();
  }
  if (counter == 0 && floor != 0) return false;
  dot = Dot{replica, counter + 1};
  return true;
}

// `ctx` with `dot` (from NextVvDot) recorded, into `out`.
void PutContextWith(wire::DotContext::Builder out, wire::DotContext::Reader ctx, const Dot& dot) {
  auto vv_in = ctx.getVv();
  auto vv = out.initVv(vv_in.size() + (dot.counter == 1 ? 1 : 0));
  unsigned i = 0;
  bool placed = false;
  for (auto d : vv_in) {
    if (!placed && d.getReplica() >= dot.replica) {
      placed = true;
      Put(vv[i++], dot);
      if (d.getReplica() == dot.replica) continue;
    }
    Put(vv[i++], Dot{d.getReplica(), d.getCounter()});
  }
  if (!placed) Put(vv[i++], dot);
  out.setCloud(ctx.getCloud());
}

// Runs fn(root, variant) on the state's single variant when the state has
// exactly one, of the store `which`, and no expiry; false otherwise or when
// the bytes do not read (fn's own false too).
template <class Fn>
bool OnSingleVariant(std::string_view encoded, wire::Variant::Store::Which which, Fn&& fn) {
  if (!Encoded(encoded)) return false;
  try {
    FastReader r(encoded);
    auto root = r.root();
    if (root.getVariants().size() != 1 || root.getExpiry().size() != 0) return false;
    auto v = root.getVariants()[0];
    if (v.getStore().which() != which) return false;
    return fn(root, v);
  } catch (const kj::Exception&) {
    return false;
  }
}

// The new state of a fast write: the one variant with `created`, the
// context `ctx` with `dot`, the store put by put_store(store builder), and
// the expiry context `expiry_ctx` (none: empty) without expiries.
template <class PutStore>
void EncodeSingleVariant(wire::Stamp::Reader* created, Stamp new_created, wire::DotContext::Reader* ctx,
                         const Dot& dot, wire::DotContext::Reader* expiry_ctx, PutStore&& put_store,
                         std::string& out) {
  EncodeWith(
      [&](wire::KeyState::Builder b) {
        auto variant = b.initVariants(1)[0];
        if (created != nullptr) {
          variant.setCreated(*created);
        } else {
          auto c = variant.initCreated();
          Put(c.initHlc(), new_created.hlc);
          c.setReplica(new_created.replica);
        }
        if (ctx != nullptr) {
          PutContextWith(variant.initContext(), *ctx, dot);
        } else {
          auto c = variant.initContext();
          Put(c.initVv(1)[0], dot);
          c.initCloud(0);
        }
        put_store(variant.initStore());
        if (expiry_ctx != nullptr) {
          b.setExpiryContext(*expiry_ctx);
        } else {
          auto e = b.initExpiryContext();
          e.initVv(0);
          e.initCloud(0);
        }
        b.initExpiry(0);
      },
      out);
}

capnp::Data::Reader DataOf(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

}  // namespace

std::optional<std::string_view> PeekRegister(std::string_view encoded) {
  std::optional<std::string_view> out;
  OnSingleVariant(encoded, wire::Variant::Store::LWW, [&](auto, wire::Variant::Reader v) {
    // RegisterWinner: the entry with the highest (hlc, replica).
    std::optional<wire::RegisterEntry::Reader> best;
    auto key = [](wire::RegisterEntry::Reader e) {
      return std::tuple(e.getHlc().getWallMs(), e.getHlc().getLogical(), e.getDot().getReplica());
    };
    for (auto e : v.getStore().getLww()) {
      if (!best || key(*best) < key(e)) best = e;
    }
    if (!best) return false;  // not live
    auto value = best->getValue();
    out = std::string_view(reinterpret_cast<const char*>(value.begin()), value.size());
    return true;
  });
  return out;
}

bool OverwriteRegister(std::string_view encoded, ReplicaId replica, Hlc hlc, std::uint64_t floor,
                       std::string_view value, std::string& out) {
  return OnSingleVariant(encoded, wire::Variant::Store::LWW, [&](auto root, wire::Variant::Reader v) {
    if (v.getStore().getLww().size() == 0) return false;  // not live: the general path re-creates it
    auto ctx = v.getContext();
    Dot dot;
    if (!NextVvDot(ctx, replica, floor, dot)) return false;
    auto created = v.getCreated();
    auto expiry_ctx = root.getExpiryContext();
    EncodeSingleVariant(&created, Stamp{}, &ctx, dot, &expiry_ctx, [&](wire::Variant::Store::Builder store) {
      auto entry = store.initLww(1)[0];
      Put(entry.initDot(), dot);
      Put(entry.initHlc(), hlc);
      entry.setValue(DataOf(value));
    }, out);
    return true;
  });
}

namespace {

// A counter's entries or floors, read.
using CounterList = capnp::List<wire::CounterEntry>::Reader;

const wire::CounterEntry::Reader* FindEntry(CounterList list, ReplicaId replica,
                                            std::optional<wire::CounterEntry::Reader>& slot) {
  for (auto e : list) {
    if (e.getReplica() == replica) return &slot.emplace(e);
  }
  return nullptr;
}

}  // namespace

bool IncrementCounter(std::string_view encoded, ReplicaId replica, Hlc hlc, std::uint64_t floor, std::int64_t by,
                      std::string& out, std::int64_t& value) {
  return OnSingleVariant(encoded, wire::Variant::Store::COUNTER, [&](auto root, wire::Variant::Reader v) {
    auto store = v.getStore().getCounter();
    auto entries = store.getEntries();
    auto floors = store.getFloors();
    // CounterSum and CounterLive over the encoded entries.
    __int128 exact = 0;
    bool live = false;
    for (auto e : entries) {
      std::optional<wire::CounterEntry::Reader> slot;
      const auto* f = FindEntry(floors, e.getReplica(), slot);
      if (f == nullptr) {
        exact += e.getTotal();
        live = true;
      } else if (e.getCounter() > f->getCounter()) {
        exact += static_cast<std::int64_t>(static_cast<std::uint64_t>(e.getTotal()) -
                                           static_cast<std::uint64_t>(f->getTotal()));
        live = true;
      }
    }
    if (!live) return false;  // not live: the general path re-creates it
    // A sum outside int64 (increments that overflowed only once merged) is
    // saturated by the general path, which answers the overflow error.
    if (exact > INT64_MAX || exact < INT64_MIN) return false;
    const auto sum = static_cast<std::uint64_t>(static_cast<std::int64_t>(exact));
    std::int64_t checked = 0;  // IncrBy's range check is on the value before
    if (__builtin_add_overflow(static_cast<std::int64_t>(sum), by, &checked)) return false;  // its error
    auto ctx = v.getContext();
    Dot dot;
    if (!NextVvDot(ctx, replica, floor, dot)) return false;
    // The value after: the replica's contribution counted anew (a floor a
    // DEL left under its old entry now lies below the new dot).
    std::optional<wire::CounterEntry::Reader> before_slot, floor_slot;
    const auto* before = FindEntry(entries, replica, before_slot);
    const auto* my_floor = FindEntry(floors, replica, floor_slot);
    auto contribution = [&](std::uint64_t counter, std::int64_t total) -> std::uint64_t {
      if (my_floor == nullptr) return static_cast<std::uint64_t>(total);
      if (counter <= my_floor->getCounter()) return 0;
      return static_cast<std::uint64_t>(total) - static_cast<std::uint64_t>(my_floor->getTotal());
    };
    const std::int64_t new_total = static_cast<std::int64_t>(
        static_cast<std::uint64_t>(before != nullptr ? before->getTotal() : 0) + static_cast<std::uint64_t>(by));
    std::uint64_t after = sum + contribution(dot.counter, new_total);
    if (before != nullptr) after -= contribution(before->getCounter(), before->getTotal());
    auto created = v.getCreated();
    auto expiry_ctx = root.getExpiryContext();
    EncodeSingleVariant(&created, Stamp{}, &ctx, dot, &expiry_ctx, [&](wire::Variant::Store::Builder b) {
      // CounterAdd: the replica's entry moves to the new dot and total.
      auto counter = b.initCounter();
      auto list = counter.initEntries(entries.size() + (before == nullptr ? 1 : 0));
      auto put_mine = [&](wire::CounterEntry::Builder e) {
        e.setReplica(replica);
        e.setCounter(dot.counter);
        e.setTotal(new_total);
        Put(e.initHlc(), hlc);
      };
      unsigned i = 0;
      bool placed = false;
      for (auto e : entries) {
        if (!placed && e.getReplica() >= replica) {
          placed = true;
          put_mine(list[i++]);
          if (e.getReplica() == replica) continue;
        }
        list.setWithCaveats(i++, e);
      }
      if (!placed) put_mine(list[i++]);
      counter.setFloors(floors);
    }, out);
    value = static_cast<std::int64_t>(after);
    return true;
  });
}

void CreateRegister(ReplicaId replica, Hlc hlc, std::string_view value, std::string& out) {
  const Dot dot{replica, 1};
  EncodeSingleVariant(nullptr, Stamp{hlc, replica}, nullptr, dot, nullptr, [&](wire::Variant::Store::Builder store) {
    auto entry = store.initLww(1)[0];
    Put(entry.initDot(), dot);
    Put(entry.initHlc(), hlc);
    entry.setValue(DataOf(value));
  }, out);
}

void CreateCounter(ReplicaId replica, Hlc hlc, std::int64_t by, std::string& out) {
  const Dot dot{replica, 1};
  EncodeSingleVariant(nullptr, Stamp{hlc, replica}, nullptr, dot, nullptr, [&](wire::Variant::Store::Builder store) {
    auto counter = store.initCounter();
    auto e = counter.initEntries(1)[0];
    e.setReplica(replica);
    e.setCounter(1);
    e.setTotal(by);
    Put(e.initHlc(), hlc);
    counter.initFloors(0);
  }, out);
}

}  // namespace lattice::crdt
