// Replicator::Impl::OnMessage: decodes one peer message (gossip/peer.capnp),
// checks the sender's clock and hands the message to the part of the
// replicator it is for. The shared state is declared in
// node/replicator_internal.h.
#include "node/replicator_internal.h"

namespace lattice::node {

bool Replicator::Impl::OnDelta(gossip::wire::Delta::Reader d, std::uint64_t hlc) {
  auto state = crdt::DecodeKeyState(View(d.getState()));
  if (!state.ok()) return false;
  KeyDelta kd{std::string(View(d.getKey())), std::move(*state),
              d.getTouchedAll() ? storage::Members::All() : storage::Members::None()};
  for (auto t : d.getTouched()) kd.touched.names.emplace_back(View(t));
  replica->Apply(std::move(kd), hlc, d.getAckTo().cStr(), d.getAckId());
  return true;
}

bool Replicator::Impl::OnMessage(const std::string& from, std::string_view bytes) {
  bool mine = true;
  bool ok = gossip::ReadPeerMessage(bytes, [&](gossip::wire::PeerMessage::Reader msg) {
    using W = gossip::wire::PeerMessage;
    if (msg.which() == W::MEMBERS) {
      mine = false;
      return true;
    }
    const std::uint64_t hlc = msg.getHlc();
    const std::uint64_t now = env.NowMs();
    if ((hlc >> 16) > now + opt.max_clock_offset_ms) {
      std::lock_guard lock(mu);
      ++stats.clock_refused;
      auto& last = clock_warned[from];
      if (now >= last + 10000) {
        last = now;
        spdlog::warn("refusing messages from {}: its clock runs {} ms ahead (more than --max-clock-offset {} ms)",
                     from, (hlc >> 16) - now, opt.max_clock_offset_ms);
      }
      return true;
    }
    switch (msg.which()) {
      case W::FORWARD: {
        auto f = msg.getForward();
        Args args;
        for (auto a : f.getArgs()) args.emplace_back(View(a));
        crdt::DotContext need;
        if (f.hasNeed() && !GetContext(f.getNeed(), need)) return false;
        replica->Mint(from, f.getId(), args, need, std::string(View(f.getBase())), f.getBasePartial());
        return true;
      }
      case W::FORWARD_REPLY: {
        auto r = msg.getForwardReply();
        crdt::DotContext written;
        if (r.hasContext() && !GetContext(r.getContext(), written)) return false;
        std::optional<Answer> answer = GetAnswer(r);
        if (!answer) return false;
        wc->OnReply(from, r.getId(), std::move(*answer), r.getReplicated(), r.getUncovered(), std::move(written));
        return true;
      }
      case W::DELTA:
        return OnDelta(msg.getDelta(), hlc);
      case W::DELTAS:
        for (auto d : msg.getDeltas()) {
          if (!OnDelta(d, hlc)) return false;
        }
        return true;
      case W::ACK:
        wc->OnAck(from, msg.getAck().getId());
        return true;
      case W::ACKS:
        for (std::uint64_t id : msg.getAcks()) wc->OnAck(from, id);
        return true;
      case W::READ: {
        auto r = msg.getRead();
        std::vector<std::string> keys;
        for (auto k : r.getKeys()) keys.emplace_back(View(k));
        storage::Members select = storage::Members::All();
        if (r.getSelected()) {
          std::vector<std::string> names;
          for (auto m : r.getMembers()) names.emplace_back(View(m));
          select = storage::Members::Of(std::move(names));
        }
        bool joining = false;
        {
          std::lock_guard lock(mu);
          joining = view.joining.count(self) > 0;
          for (const auto& k : keys) joining = joining || sync->Pulling(ring.PartitionOf(k));
        }
        // A joining node does not answer reads: what it holds may be partial
        // (nor does one that still pulls the keys' partition).
        std::vector<std::string> states;
        if (!joining) states = LoadEncoded(keys, select);
        const std::uint64_t id = r.getId();
        env.Send(from, Build(env.WallHlc(), [&](auto root) {
                   auto rr = root.initReadReply();
                   rr.setId(id);
                   rr.setRefused(joining);
                   FillBytes(rr.initStates(static_cast<unsigned>(states.size())), states);
                 }),
                 true);
        return true;
      }
      case W::READ_REPLY: {
        auto r = msg.getReadReply();
        std::vector<std::string> states;
        for (auto s : r.getStates()) states.emplace_back(View(s));
        if (r.getRefused()) {
          rc->OnRefused(from, r.getId());
        } else {
          rc->OnReply(from, r.getId(), std::move(states));
        }
        return true;
      }
      case W::AE_ROOTS: {
        std::vector<std::pair<std::uint32_t, merkle::Digest>> roots;
        for (auto r : msg.getAeRoots().getRoots()) {
          roots.emplace_back(r.getPartition(), merkle::Digest{r.getHi(), r.getLo()});
        }
        auto m = msg.getAeRoots();
        using Roots = gossip::AntiEntropy::Roots;
        const Roots kind = m.getSync()      ? Roots::kSync
                           : m.getAnswer()  ? Roots::kAnswer
                           : m.getConfirm() ? Roots::kConfirm
                                            : Roots::kRound;
        ae->OnRoots(from, roots, kind);
        return true;
      }
      case W::AE_NODES: {
        auto m = msg.getAeNodes();
        std::vector<std::uint32_t> indices;
        for (auto i : m.getIndices()) indices.push_back(i);
        auto list = m.getDigests();
        std::vector<merkle::Digest> digests;
        for (unsigned i = 0; i + 1 < list.size(); i += 2) digests.push_back(merkle::Digest{list[i], list[i + 1]});
        ae->OnNodes(from, m.getPartition(), m.getLevel(), indices, digests);
        return true;
      }
      case W::AE_KEYS: {
        auto m = msg.getAeKeys();
        std::vector<std::uint32_t> leaves;
        for (auto l : m.getLeaves()) leaves.push_back(l);
        std::vector<std::pair<std::string, merkle::Digest>> keys;
        for (auto k : m.getKeys()) keys.emplace_back(std::string(View(k.getKey())), merkle::Digest{k.getHi(), k.getLo()});
        ae->OnKeys(from, m.getPartition(), std::move(leaves), keys);
        return true;
      }
      case W::AE_WANT: {
        auto m = msg.getAeWant();
        std::vector<std::string> keys;
        for (auto k : m.getKeys()) keys.emplace_back(View(k));
        ae->OnWant(from, m.getPartition(), std::move(keys));
        return true;
      }
      case W::GC_QUERY: {
        auto q = msg.getGcQuery();
        std::vector<std::pair<std::string, crdt::DotContext>> tombstones;
        for (auto kc : q.getTombstones()) {
          crdt::DotContext ctx;
          if (!GetContext(kc, ctx)) return false;
          tombstones.emplace_back(std::string(View(kc.getKey())), std::move(ctx));
        }
        collector->OnQuery(from, q.getId(), tombstones);
        return true;
      }
      case W::GC_REPLY: {
        auto r = msg.getGcReply();
        std::vector<bool> held;
        for (bool b : r.getHeld()) held.push_back(b);
        collector->OnReply(from, r.getId(), held);
        return true;
      }
      case W::WATCH: {
        std::vector<std::string> keys;
        for (auto k : msg.getWatch()) keys.emplace_back(View(k));
        watch.OnWatch(from, keys);
        return true;
      }
      case W::CHANGED: {
        auto c = msg.getChanged();
        watch.OnChanged(std::string(View(c.getKey())), std::string(View(c.getValue())));
        return true;
      }
      default:
        return false;
    }
  });
  if (!ok) {
    std::lock_guard lock(mu);
    ++stats.malformed;
    spdlog::warn("malformed replication message from {}", from);
  }
  return mine;
}

}  // namespace lattice::node
