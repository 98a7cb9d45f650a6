#include "crdt/codec.h"

#include <capnp/message.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>
#include <optional>
#include <tuple>
#include <vector>
#include <exception>
#include <new>

#include "crdt/state.capnp.h"

namespace lattice::crdt {

namespace {

// ---- encoding ----------------------------------------------------------------

capnp::Data::Reader AsData(const std::string& s) {
  return {reinterpret_cast<const kj::byte*>(s.data()), s.size()};
}

void Put(wire::Hlc::Builder b, const Hlc& h) {
  b.setWallMs(h.wall_ms);
  b.setLogical(h.logical);
}

void Put(wire::Dot::Builder b, const Dot& d) {
  b.setReplica(d.replica);
  b.setCounter(d.counter);
}

void Put(wire::DotContext::Builder b, const DotContext& ctx) {
  auto vv = b.initVv(ctx.vv().size());
  unsigned i = 0;
  for (const auto& [replica, counter] : ctx.vv()) Put(vv[i++], Dot{replica, counter});
  auto cloud = b.initCloud(ctx.cloud().size());
  i = 0;
  for (const Dot& d : ctx.cloud()) Put(cloud[i++], d);
}

void Put(capnp::List<wire::RegisterEntry>::Builder list, const RegisterStore& store) {
  unsigned i = 0;
  for (const auto& [dot, value] : store) {
    auto e = list[i++];
    Put(e.initDot(), dot);
    Put(e.initHlc(), value.hlc);
    e.setValue(AsData(value.bytes));
  }
}

void Put(capnp::List<wire::CounterEntry>::Builder list,
         const std::map<ReplicaId, CounterEntry>& entries) {
  unsigned i = 0;
  for (const auto& [replica, entry] : entries) {
    auto e = list[i++];
    e.setReplica(replica);
    e.setCounter(entry.counter);
    e.setTotal(entry.total);
    Put(e.initHlc(), entry.hlc);
  }
}

void Put(wire::CounterStore::Builder b, const CounterStore& s) {
  Put(b.initEntries(s.entries.size()), s.entries);
  Put(b.initFloors(s.floors.size()), s.floors);
}

void PutStore(wire::Variant::Store::Builder b, const PNCounter& v) {
  Put(b.initCounter(), v.state().store);
}
void PutStore(wire::Variant::Store::Builder b, const LWWRegister& v) {
  Put(b.initLww(v.state().store.size()), v.state().store);
}
void PutStore(wire::Variant::Store::Builder b, const MVRegister& v) {
  Put(b.initMv(v.state().store.size()), v.state().store);
}
void PutStore(wire::Variant::Store::Builder b, const ORSet& v) {
  auto list = b.initSet(v.state().store.size());
  unsigned i = 0;
  for (const auto& [element, dots] : v.state().store) {
    auto e = list[i++];
    e.setElement(AsData(element));
    auto dl = e.initDots(dots.size());
    unsigned j = 0;
    for (const auto& entry : dots) Put(dl[j++], entry.first);
  }
}
void PutStore(wire::Variant::Store::Builder b, const Flag& v) {
  auto list = b.initFlag(v.state().store.size());
  unsigned i = 0;
  for (const auto& [dot, enabled] : v.state().store) {
    Put(list[i].initDot(), dot);
    list[i++].setEnabled(enabled);
  }
}
void PutStore(wire::Variant::Store::Builder b, const ORMap& v) {
  auto list = b.initMap(v.state().store.size());
  unsigned i = 0;
  for (const auto& [name, field] : v.state().store) {
    auto f = list[i++];
    f.setName(AsData(name));
    Put(f.initRegister(field.reg.size()), field.reg);
    Put(f.initCounter(), field.counter);
    auto el = f.initExpiry(field.expiry.size());
    unsigned j = 0;
    for (const auto& [dot, e] : field.expiry) {
      auto eb = el[j++];
      Put(eb.initDot(), dot);
      Put(eb.initSet(), e.set);
      eb.setAtMs(e.at_ms);
      auto rd = eb.initRegDots(e.reg_dots.size());
      unsigned k = 0;
      for (const Dot& d : e.reg_dots) Put(rd[k++], d);
      Put(eb.initFloors(e.floors.size()), e.floors);
    }
  }
}

// ---- decoding ----------------------------------------------------------------

// Collects the first validation failure; every Get* returns false after one.
class Decoder {
 public:
  const std::string& error() const { return error_; }

  bool Fail(std::string what) {
    if (error_.empty()) error_ = std::move(what);
    return false;
  }

  static Hlc GetHlc(wire::Hlc::Reader r) { return Hlc{r.getWallMs(), r.getLogical()}; }

  bool GetDot(wire::Dot::Reader r, Dot& out) {
    out = Dot{r.getReplica(), r.getCounter()};
    return out.counter != 0 || Fail("dot with counter 0");
  }

  bool GetContext(wire::DotContext::Reader r, DotContext& out) {
    DotContext::VersionVector vv;
    std::set<Dot> cloud;
    for (auto e : r.getVv()) {
      Dot d;
      if (!GetDot(e, d)) return false;
      if (!vv.empty() && vv.rbegin()->first >= d.replica) return Fail("version vector not sorted");
      vv.emplace_hint(vv.end(), d.replica, d.counter);
    }
    for (auto e : r.getCloud()) {
      Dot d;
      if (!GetDot(e, d)) return false;
      if (!cloud.empty() && !(*cloud.rbegin() < d)) return Fail("dot cloud not sorted");
      cloud.emplace_hint(cloud.end(), d);
    }
    return out.AssignCompacted(std::move(vv), std::move(cloud)) || Fail("context not compacted");
  }

  bool GetRegister(capnp::List<wire::RegisterEntry>::Reader list, const DotContext& ctx,
                   RegisterStore& out) {
    for (auto e : list) {
      Dot d;
      if (!GetDot(e.getDot(), d)) return false;
      if (!out.empty() && !(out.rbegin()->first < d)) return Fail("register entries not sorted");
      if (!ctx.Contains(d)) return Fail("register dot outside its context");
      auto value = e.getValue();
      out.emplace_hint(out.end(), d,
                       RegisterValue{std::string(value.asChars().begin(), value.size()),
                                     GetHlc(e.getHlc())});
    }
    return true;
  }

  bool GetEntries(capnp::List<wire::CounterEntry>::Reader list, const DotContext* ctx,
                  std::map<ReplicaId, CounterEntry>& out) {
    for (auto e : list) {
      if (e.getCounter() == 0) return Fail("counter entry with counter 0");
      if (!out.empty() && out.rbegin()->first >= e.getReplica()) {
        return Fail("counter entries not sorted");
      }
      if (ctx != nullptr && !ctx->Contains(Dot{e.getReplica(), e.getCounter()})) {
        return Fail("counter dot outside its context");
      }
      out.emplace_hint(out.end(), e.getReplica(),
                       CounterEntry{e.getCounter(), e.getTotal(), GetHlc(e.getHlc())});
    }
    return true;
  }

  bool GetCounter(wire::CounterStore::Reader r, const DotContext& ctx, CounterStore& out) {
    return GetEntries(r.getEntries(), &ctx, out.entries) &&
           GetEntries(r.getFloors(), nullptr, out.floors);
  }

  static std::string Text(capnp::Data::Reader d) {
    return std::string(d.asChars().begin(), d.size());
  }

  bool GetSet(capnp::List<wire::SetElement>::Reader list, const DotContext& ctx, SetStore& out) {
    for (auto e : list) {
      std::string element = Text(e.getElement());
      if (!out.empty() && out.rbegin()->first >= element) return Fail("set elements not sorted");
      DotFun<Unit> dots;
      for (auto dr : e.getDots()) {
        Dot d;
        if (!GetDot(dr, d)) return false;
        if (!dots.empty() && !(dots.rbegin()->first < d)) return Fail("set dots not sorted");
        if (!ctx.Contains(d)) return Fail("set dot outside its context");
        dots.emplace_hint(dots.end(), d, Unit{});
      }
      if (dots.empty()) return Fail("set element without dots");
      out.emplace_hint(out.end(), std::move(element), std::move(dots));
    }
    return true;
  }

  bool GetFlag(capnp::List<wire::FlagEntry>::Reader list, const DotContext& ctx,
               DotFun<bool>& out) {
    for (auto e : list) {
      Dot d;
      if (!GetDot(e.getDot(), d)) return false;
      if (!out.empty() && !(out.rbegin()->first < d)) return Fail("flag entries not sorted");
      if (!ctx.Contains(d)) return Fail("flag dot outside its context");
      out.emplace_hint(out.end(), d, e.getEnabled());
    }
    return true;
  }

  bool GetMap(capnp::List<wire::MapField>::Reader list, const DotContext& ctx, MapStore& out) {
    for (auto f : list) {
      std::string name = Text(f.getName());
      if (!out.empty() && out.rbegin()->first >= name) return Fail("map fields not sorted");
      FieldStore field;
      if (!GetRegister(f.getRegister(), ctx, field.reg)) return false;
      if (!GetCounter(f.getCounter(), ctx, field.counter)) return false;
      for (auto er : f.getExpiry()) {
        Dot d;
        if (!GetDot(er.getDot(), d)) return false;
        if (!field.expiry.empty() && !(field.expiry.rbegin()->first < d)) {
          return Fail("field expiries not sorted");
        }
        if (!ctx.Contains(d)) return Fail("field expiry dot outside its context");
        FieldExpiry e{GetHlc(er.getSet()), er.getAtMs(), {}, {}};
        for (auto rd : er.getRegDots()) {
          Dot r;
          if (!GetDot(rd, r)) return false;
          if (!e.reg_dots.empty() && !(*e.reg_dots.rbegin() < r)) {
            return Fail("expiry dots not sorted");
          }
          e.reg_dots.emplace_hint(e.reg_dots.end(), r);
        }
        if (!GetEntries(er.getFloors(), nullptr, e.floors)) return false;
        field.expiry.emplace_hint(field.expiry.end(), d, std::move(e));
      }
      if (IsBottom(field)) return Fail("empty map field");
      out.emplace_hint(out.end(), std::move(name), std::move(field));
    }
    return true;
  }

  template <class T, class Store>
  static CrdtValue Make(Store store, DotContext ctx) {
    T value;
    value.mutable_state().store = std::move(store);
    value.mutable_state().ctx = std::move(ctx);
    return value;
  }

  bool GetVariant(wire::Variant::Reader r, Variant& out) {
    out.created = Stamp{GetHlc(r.getCreated().getHlc()), r.getCreated().getReplica()};
    DotContext ctx;
    if (!GetContext(r.getContext(), ctx)) return false;
    auto s = r.getStore();
    switch (s.which()) {
      case wire::Variant::Store::COUNTER: {
        CounterStore store;
        if (!GetCounter(s.getCounter(), ctx, store)) return false;
        out.value = Make<PNCounter>(std::move(store), std::move(ctx));
        return true;
      }
      case wire::Variant::Store::LWW:
      case wire::Variant::Store::MV: {
        bool lww = s.which() == wire::Variant::Store::LWW;
        RegisterStore store;
        if (!GetRegister(lww ? s.getLww() : s.getMv(), ctx, store)) return false;
        out.value = lww ? Make<LWWRegister>(std::move(store), std::move(ctx))
                        : Make<MVRegister>(std::move(store), std::move(ctx));
        return true;
      }
      case wire::Variant::Store::SET: {
        SetStore store;
        if (!GetSet(s.getSet(), ctx, store)) return false;
        out.value = Make<ORSet>(std::move(store), std::move(ctx));
        return true;
      }
      case wire::Variant::Store::FLAG: {
        DotFun<bool> store;
        if (!GetFlag(s.getFlag(), ctx, store)) return false;
        out.value = Make<Flag>(std::move(store), std::move(ctx));
        return true;
      }
      case wire::Variant::Store::MAP: {
        MapStore store;
        if (!GetMap(s.getMap(), ctx, store)) return false;
        out.value = Make<ORMap>(std::move(store), std::move(ctx));
        return true;
      }
    }
    return Fail("unknown CRDT type " + std::to_string(static_cast<unsigned>(s.which())));
  }

 private:
  std::string error_;
};

}  // namespace

// Words of the decoder's stack buffer: a register, a counter, a collection's
// header or one member fits, so decoding it takes no heap copy; larger
// states are copied to the heap.
constexpr std::size_t kStackWords = 128;

namespace {

// Words of each thread's first builder segment: states up to 64 KiB are
// built without a heap segment. capnp wants the segment zeroed; what a build
// used is zeroed again after it.
constexpr std::size_t kBuildWords = 8192;

capnp::word* AsWords(std::vector<std::uint64_t>& v) { return reinterpret_cast<capnp::word*>(v.data()); }

// The thread's scratch: the builder's first segment, the canonical copy's
// buffer and an aligned copy of a fast path's input. Reused from call to
// call, so an encoding costs no allocation once they have grown.
struct Scratch {
  std::vector<std::uint64_t> first = std::vector<std::uint64_t>(kBuildWords, 0);
  std::vector<std::uint64_t> canonical;
  std::vector<std::uint64_t> input;
};
Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

// Builds `state` into `root` (lists sorted as the in-memory maps are).
void Build(wire::KeyState::Builder root, const KeyState& state) {
  auto list = root.initVariants(state.variants().size());
  unsigned i = 0;
  for (const auto& [type, v] : state.variants()) {
    auto b = list[i++];
    auto created = b.initCreated();
    Put(created.initHlc(), v.created.hlc);
    created.setReplica(v.created.replica);
    Put(b.initContext(), ContextOf(v.value));
    std::visit([&](const auto& value) { PutStore(b.initStore(), value); }, v.value);
  }
  Put(root.initExpiryContext(), state.expiry().ctx);
  auto el = root.initExpiry(state.expiry().store.size());
  i = 0;
  for (const auto& [dot, e] : state.expiry().store) {
    auto eb = el[i++];
    Put(eb.initDot(), dot);
    Put(eb.initSet(), e.set);
    eb.setAtMs(e.at_ms);
    eb.setRemoval(AsData(e.removal));
  }
}

// Appends the canonical form of `root` to `out`: what capnp::canonicalize
// gives (the same FlatMessageBuilder and canonical copy), into the thread's
// buffer instead of two new arrays.
void AppendCanonical(wire::KeyState::Reader root, std::string& out) {
  std::vector<std::uint64_t>& buf = ThreadScratch().canonical;
  const std::size_t words = root.totalSize().wordCount + 1;
  buf.assign(words, 0);
  capnp::FlatMessageBuilder flat(kj::arrayPtr(AsWords(buf), words));
  flat.initRoot<capnp::AnyPointer>().setCanonicalAs<wire::KeyState>(root);
  auto segment = flat.getSegmentsForOutput()[0];
  out.append(reinterpret_cast<const char*>(segment.begin()), segment.size() * sizeof(capnp::word));
}

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

}  // namespace

void AppendKeyState(const KeyState& state, std::string& out) {
  EncodeWith([&](wire::KeyState::Builder root) { Build(root, state); }, out);
}

std::string EncodeKeyState(const KeyState& state) {
  std::string out;
  AppendKeyState(state, out);
  return out;
}

namespace {

Result<KeyState> Decode(std::string_view bytes, const DecodeLimits& limits, bool nested) {
  if (bytes.size() > limits.max_bytes) {
    return Status::Corruption("state of " + std::to_string(bytes.size()) +
                              " bytes exceeds the limit of " + std::to_string(limits.max_bytes));
  }
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return Status::Corruption("state encoding is not a whole number of words (" +
                              std::to_string(bytes.size()) + " bytes)");
  }
  try {
    // Copy for alignment: LMDB and network buffers do not guarantee 8 bytes.
    // A small state is copied to the stack, a larger one to the heap.
    const std::size_t n = bytes.size() / sizeof(capnp::word);
    capnp::word stack[kStackWords];
    kj::Array<capnp::word> heap;
    capnp::word* words = stack;
    if (n > kStackWords) {
      heap = kj::heapArray<capnp::word>(n);
      words = heap.begin();
    }
    std::memcpy(words, bytes.data(), bytes.size());
    kj::ArrayPtr<const capnp::word> segments[1] = {kj::arrayPtr(static_cast<const capnp::word*>(words), n)};
    capnp::ReaderOptions options;
    // Canonical messages are read once; twice the size leaves room and still
    // bounds what a hostile message can make us traverse.
    options.traversalLimitInWords = 2 * n + 16;
    options.nestingLimit = limits.max_nesting;
    capnp::SegmentArrayMessageReader reader(kj::arrayPtr(segments, 1), options);
    if (!reader.isCanonical()) return Status::Corruption("state encoding is not canonical");
    auto root = reader.getRoot<wire::KeyState>();
    Decoder decoder;
    KeyState state;
    bool first = true;
    CrdtType last{};
    for (auto vr : root.getVariants()) {
      Variant v;
      if (!decoder.GetVariant(vr, v)) return Status::Corruption(decoder.error());
      CrdtType type = TypeOfValue(v.value);
      if (!first && type <= last) return Status::Corruption("variants not sorted by type");
      first = false;
      last = type;
      state.PutVariant(std::move(v));
    }
    Causal<ExpiryStore> expiry;
    if (!decoder.GetContext(root.getExpiryContext(), expiry.ctx)) {
      return Status::Corruption(decoder.error());
    }
    for (auto er : root.getExpiry()) {
      Dot d;
      if (!decoder.GetDot(er.getDot(), d)) return Status::Corruption(decoder.error());
      if (!expiry.store.empty() && !(expiry.store.rbegin()->first < d)) {
        return Status::Corruption("key expiries not sorted");
      }
      if (!expiry.ctx.Contains(d)) return Status::Corruption("key expiry dot outside its context");
      std::string removal = Decoder::Text(er.getRemoval());
      // The removal is itself a state, one level deep and without expiries.
      if (nested) return Status::Corruption("nested key expiry");
      Result<KeyState> inner = Decode(removal, limits, true);
      if (!inner.ok()) return Status::Corruption("key expiry: " + inner.status().message());
      if (!inner->expiry().ctx.Empty()) return Status::Corruption("nested key expiry");
      expiry.store.emplace_hint(expiry.store.end(), d,
                                KeyExpiry{Decoder::GetHlc(er.getSet()), er.getAtMs(),
                                          std::move(removal)});
    }
    state.PutExpiry(std::move(expiry));
    return state;
  } catch (const kj::Exception& e) {
    return Status::Corruption("malformed state encoding: " +
                              std::string(e.getDescription().cStr()));
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory decoding a state");
  }
}

}  // namespace

Result<KeyState> DecodeKeyState(std::string_view bytes, const DecodeLimits& limits) {
  return Decode(bytes, limits, false);
}


// ---- fast paths ------------------------------------------------------------------

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

// The single live LWW register variant of a state with no expiry, or false.
bool SimpleRegister(wire::KeyState::Reader root, wire::Variant::Reader& out) {
  if (root.getVariants().size() != 1 || root.getExpiry().size() != 0) return false;
  out = root.getVariants()[0];
  return out.getStore().isLww() && out.getStore().getLww().size() != 0;
}

}  // namespace

std::optional<std::string_view> PeekRegister(std::string_view encoded) {
  if (!Encoded(encoded)) return std::nullopt;
  try {
    FastReader r(encoded);
    wire::Variant::Reader v;
    if (!SimpleRegister(r.root(), v)) return std::nullopt;
    // RegisterWinner: the entry with the highest (hlc, replica).
    std::optional<wire::RegisterEntry::Reader> best;
    auto key = [](wire::RegisterEntry::Reader e) {
      return std::tuple(e.getHlc().getWallMs(), e.getHlc().getLogical(), e.getDot().getReplica());
    };
    for (auto e : v.getStore().getLww()) {
      if (!best || key(*best) < key(e)) best = e;
    }
    auto value = best->getValue();
    return std::string_view(reinterpret_cast<const char*>(value.begin()), value.size());
  } catch (const kj::Exception&) {
    return std::nullopt;
  }
}


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
    // CounterValue and CounterLive over the encoded entries.
    std::uint64_t sum = 0;
    bool live = false;
    for (auto e : entries) {
      std::optional<wire::CounterEntry::Reader> slot;
      const auto* f = FindEntry(floors, e.getReplica(), slot);
      if (f == nullptr) {
        sum += static_cast<std::uint64_t>(e.getTotal());
        live = true;
      } else if (e.getCounter() > f->getCounter()) {
        sum += static_cast<std::uint64_t>(e.getTotal()) - static_cast<std::uint64_t>(f->getTotal());
        live = true;
      }
    }
    if (!live) return false;  // not live: the general path re-creates it
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
