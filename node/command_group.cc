// RunGroup (node/command_group.h).
#include "node/command_group.h"

#include <utility>

namespace lattice::node {

std::uint64_t WallMs();  // node/server.cc

bool RunGroupReads(Engine& engine, CommandGroup& group) {
  std::size_t first_write = 0;
  while (first_write < group.items.size() && !group.items[first_write].spec->write) ++first_write;
  for (CommandGroup::Item& item : group.items) item.answer = Answer{};
  group.changed.clear();
  if (first_write > 0) {
    // The callback captures one pointer, so std::function keeps it inline
    // instead of allocating.
    struct Reads {
      Engine& engine;
      CommandGroup& group;
      std::size_t end;
      std::uint64_t now;
    } reads{engine, group, first_write, WallMs()};
    Status s = engine.store().Read([&reads](storage::Txn& t) {
      for (std::size_t i = 0; i < reads.end; ++i) {
        CommandGroup::Item& item = reads.group.items[i];
        CommandContext ctx{t, false, reads.now, item.answer.reply, nullptr};
        reads.engine.Run(*item.spec, ctx, item.args);
        item.answer.outcome = ctx.failed ? Outcome::kRefused : Outcome::kReplied;
      }
      return Status::Ok();
    });
    if (!s.ok()) {
      for (std::size_t i = 0; i < first_write; ++i) group.items[i].answer = Answer::Of(Outcome::kError, s.message());
    }
  }
  group.first_write = first_write;
  return first_write == group.items.size();
}

void RunGroupWrites(Engine& engine, CommandGroup& group, const CommitFn& commit,
                    std::function<void(const Status&)> done) {
  const std::size_t first_write = group.first_write;
  group.engine = &engine;
  storage::Store::Work work = [g = &group, first_write](storage::Txn& t) {
    g->changed.clear();
    const std::uint64_t now = WallMs();
    std::vector<std::string>* changed = g->watched == nullptr || g->watched->load() > 0 ? &g->changed : nullptr;
    for (std::size_t i = first_write; i < g->items.size(); ++i) {
      CommandGroup::Item& item = g->items[i];
      item.answer.reply.clear();
      CommandContext ctx{t, true, now, item.answer.reply, changed};
      g->engine->Run(*item.spec, ctx, item.args);
      item.answer.outcome = ctx.failed ? Outcome::kRefused : Outcome::kReplied;
      item.answer.count = ctx.count;
    }
    return Status::Ok();
  };
  commit(std::move(work), [g = &group, first_write, done = std::move(done)](Status s) {
    if (!s.ok()) {
      for (std::size_t i = first_write; i < g->items.size(); ++i) {
        g->items[i].answer = Answer::Of(Outcome::kError, "write not committed: " + s.message());
      }
      g->changed.clear();
    }
    done(s);
  });
}

}  // namespace lattice::node
