// The HyperLogLog commands (DESIGN §2, crdt/hll.h): PFADD raises this
// replica's own register array, PFCOUNT merges every array (and every key
// named) by max and answers Redis's estimate.
#include "node/engine_internal.h"

namespace lattice::node::detail {

namespace {

using crdt::CrdtType;
using crdt::HyperLogLog;
using storage::Members;

// Opens `key` as a HyperLogLog (absent is fine); false after Redis's WRONGTYPE reply.
bool OpenHll(Engine& e, CommandContext& ctx, std::string_view key, OpenKey& k) {
  if (!Open(e, ctx, key, Members::None(), k)) return false;
  if (auto t = TypeOf(k); t && crdt::StringHalf(*t)) {
    // Redis keeps a HyperLogLog in a string: another string is "not valid".
    Fail(ctx, "WRONGTYPE Key is not a valid HyperLogLog string value.");
    return false;
  }
  return !WrongType(ctx, k, {CrdtType::kHll});
}

// PFADD key [element...]: 1 when a register rose or the key is new, else 0.
void CmdPfAdd(Engine& e, CommandContext& ctx, const Args& a) {
  OpenKey k;
  if (!OpenHll(e, ctx, a[1], k)) return;
  const std::vector<std::string> elements(a.begin() + 2, a.end());
  bool changed = false;
  if (const HyperLogLog* h = k.state.Get<HyperLogLog>()) {
    // Would a register rise? (No write when nothing changes, as SADD.)
    HyperLogLog copy = *h;
    (void)copy.Add(e.replica(), elements, changed);
    if (!changed) return AppendInt(ctx.out, 0);
  }
  if (MutateAndSave<HyperLogLog>(e, ctx, k, [&](HyperLogLog& h) { return h.Add(e.replica(), elements, changed); })) {
    AppendInt(ctx.out, 1);
  }
}

// PFCOUNT key...: the estimate of the union (a missing key is empty).
void CmdPfCount(Engine& e, CommandContext& ctx, const Args& a) {
  std::string merged(HyperLogLog::kRegisters, '\0');
  for (std::size_t i = 1; i < a.size(); ++i) {
    OpenKey k;
    if (!OpenHll(e, ctx, a[i], k)) return;
    const HyperLogLog* h = k.state.Get<HyperLogLog>();
    if (h == nullptr) continue;
    const std::string registers = h->Merged();
    for (std::size_t j = 0; j < merged.size(); ++j) {
      if (static_cast<unsigned char>(registers[j]) > static_cast<unsigned char>(merged[j])) merged[j] = registers[j];
    }
  }
  AppendInt(ctx.out, static_cast<std::int64_t>(HyperLogLog::CountOf(merged)));
}

}  // namespace

void RegisterHllCommands(std::vector<CommandSpec>& t) {
  const CommandSpec more[] = {
      {"PFADD", -2, true, CmdPfAdd},
      {"PFCOUNT", -2, false, CmdPfCount},
  };
  t.insert(t.end(), std::begin(more), std::end(more));
}

}  // namespace lattice::node::detail
