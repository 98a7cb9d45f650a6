#include "crdt/codec.h"

#include <capnp/message.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>
#include <vector>
#include <exception>
#include <new>

#include "crdt/codec_internal.h"
#include "crdt/state.capnp.h"

namespace lattice::crdt {

namespace codec_internal {

void Put(wire::Hlc::Builder b, const Hlc& h) {
  b.setWallMs(h.wall_ms);
  b.setLogical(h.logical);
}

void Put(wire::Dot::Builder b, const Dot& d) {
  b.setReplica(d.replica);
  b.setCounter(d.counter);
}

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

void AppendCanonical(wire::KeyState::Reader root, std::string& out) {
  std::vector<std::uint64_t>& buf = ThreadScratch().canonical;
  const std::size_t words = root.totalSize().wordCount + 1;
  buf.assign(words, 0);
  capnp::FlatMessageBuilder flat(kj::arrayPtr(AsWords(buf), words));
  flat.initRoot<capnp::AnyPointer>().setCanonicalAs<wire::KeyState>(root);
  auto segment = flat.getSegmentsForOutput()[0];
  out.append(reinterpret_cast<const char*>(segment.begin()), segment.size() * sizeof(capnp::word));
}

}  // namespace codec_internal

using namespace codec_internal;

namespace {

// ---- encoding ----------------------------------------------------------------

using codec_internal::Put;  // beside the overloads below

capnp::Data::Reader AsData(const std::string& s) {
  return {reinterpret_cast<const kj::byte*>(s.data()), s.size()};
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
void PutStore(wire::Variant::Store::Builder b, const HyperLogLog& v) {
  auto list = b.initHll(static_cast<unsigned>(v.state().store.size()));
  unsigned i = 0;
  for (const auto& [dot, a] : v.state().store) {
    Put(list[i].initDot(), dot);
    list[i++].setRegisters(AsData(HyperLogLog::Sparse(a.registers)));
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

  bool GetHll(capnp::List<wire::HllEntry>::Reader list, const DotContext& ctx, DotFun<HllArray>& out) {
    for (auto e : list) {
      Dot d;
      if (!GetDot(e.getDot(), d)) return false;
      if (!out.empty() && !(out.rbegin()->first < d)) return Fail("hyperloglog entries not sorted");
      if (!ctx.Contains(d)) return Fail("hyperloglog dot outside its context");
      HllArray a;
      auto data = e.getRegisters();
      if (!HyperLogLog::FromSparse(std::string_view(reinterpret_cast<const char*>(data.begin()), data.size()),
                                   a.registers)) {
        return Fail("hyperloglog registers not canonical");
      }
      out.emplace_hint(out.end(), d, std::move(a));
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
      case wire::Variant::Store::HLL: {
        DotFun<HllArray> store;
        if (!GetHll(s.getHll(), ctx, store)) return false;
        out.value = Make<HyperLogLog>(std::move(store), std::move(ctx));
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


}  // namespace lattice::crdt
