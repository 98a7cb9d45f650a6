// Pipeline (node/pipeline.h).
#include "node/pipeline.h"

#include <utility>

namespace lattice::node {

void Pipeline::Add(std::size_t slot, const CommandSpec& spec, Args args, Level level) {
  if (slot == 0 && order_.Idle()) order_.Reset();
  if (waiting_.size() <= slot) waiting_.resize(slot + 1);
  Waiting& w = waiting_[slot];
  w.spec = &spec;
  w.level = level;
  w.keys = CommandKeys(spec, args);
  w.args = std::move(args);
  if (order_.Add(slot, w.keys)) Launch(slot);
}

void Pipeline::Launch(std::size_t slot) {
  Waiting& w = waiting_[slot];
  SessionContexts need;
  for (const auto& key : w.keys) {
    if (auto it = conn_.session.find(key); it != conn_.session.end()) need.insert(*it);
  }
  // The answer comes back on the connection's executor; `post` drops it once
  // the connection is gone, so `this` is used only while it lives.
  replicator_.Execute(*w.spec, std::move(w.args), w.level, std::move(need),
                      [post = post_, this, slot](Answer answer) {
                        post([this, slot, answer = std::move(answer)]() mutable { Answered(slot, std::move(answer)); });
                      });
}

void Pipeline::Answered(std::size_t slot, Answer answer) {
  conn_.Observe(std::move(answer.observed));
  answer.observed.clear();
  on_answer_(slot, std::move(answer));
  std::vector<std::size_t> ready;
  order_.Finished(slot, ready);
  for (std::size_t next : ready) Launch(next);
  if (order_.Idle() && drained_) std::exchange(drained_, nullptr)();
}

void Pipeline::Drain(std::function<void()> done) {
  if (order_.Idle()) return done();
  drained_ = std::move(done);
}

}  // namespace lattice::node
