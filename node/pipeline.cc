// Pipeline (node/pipeline.h).
#include "node/pipeline.h"

#include <utility>

namespace lattice::node {

void ConnState::Observe(SessionContexts observed) {
  for (auto& [key, ctx] : observed) {
    auto [it, inserted] = session.try_emplace(key);
    it->second.Join(ctx);
    if (inserted) session_order.push_back(key);
  }
  while (session.size() > kSessionKeys) {
    session.erase(session_order.front());
    session_order.pop_front();
  }
}

void Pipeline::Add(std::size_t slot, const CommandSpec& spec, Args args, Level level) {
  if (Idle()) {
    // A new run of commands: grouped while this node alone replicates
    // every key (the replicator checks again when the group starts).
    grouped_ = replicator_.Alone();
    if (!grouped_) order_.Reset();
    group_->items.clear();
  }
  if (grouped_) {
    group_->items.emplace_back(slot, &spec, std::move(args), level);
    group_waiting_ = true;
    return;
  }
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
                        (*post)([this, slot, answer = std::move(answer)]() mutable { Answered(slot, std::move(answer)); });
                      });
}

void Pipeline::Answered(std::size_t slot, Answer answer) {
  conn_.Observe(std::move(answer.observed));
  answer.observed.clear();
  on_answer_(slot, answer);
  std::vector<std::size_t> ready;
  order_.Finished(slot, ready);
  for (std::size_t next : ready) Launch(next);
  if (Idle() && drained_) std::exchange(drained_, nullptr)();
}

void Pipeline::Flush() {
  if (!group_waiting_) return;
  group_waiting_ = false;
  group_running_ = true;
  // Reads only (alone): answered at once, nothing to post.
  if (replicator_.ExecuteGroup(group_, [post = post_, this] { (*post)([this] { GroupAnswered(); }); })) {
    GroupAnswered();
  }
}

void Pipeline::GroupAnswered() {
  group_running_ = false;
  for (CommandGroup::Item& item : group_->items) {
    if (!item.answer.observed.empty()) conn_.Observe(std::move(item.answer.observed));
    item.answer.observed.clear();
    on_answer_(item.slot, item.answer);
  }
  if (Idle() && drained_) std::exchange(drained_, nullptr)();
}

void Pipeline::Drain(std::function<void()> done) {
  Flush();
  if (Idle()) return done();
  drained_ = std::move(done);
}

void Pipeline::ReturnArgs(std::span<Request> batch) {
  if (group_running_ || group_waiting_) return;
  for (CommandGroup::Item& item : group_->items) {
    if (item.slot < batch.size() && batch[item.slot].args.empty()) batch[item.slot].args = std::move(item.args);
  }
  group_->items.clear();
}

}  // namespace lattice::node
