// A pipelined batch on a single node (node/commands_conn.h): its reads in one
// read view, its writes in one writer job, each reply in its slot; and a
// connection's session contexts.
#include "node/commands_conn.h"
#include "node/resp.h"

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

storage::Store::Work WriteWork(WriteJob& job_ref, ServerState& srv) {
  job_ref.engine = &srv.engine;
  job_ref.watched_keys = &srv.watched_keys;
  return [job = &job_ref](storage::Txn& t) {
    job->changed.clear();
    const std::uint64_t now = WallMs();
    // A SUBSCRIBE answered before this work runs is counted by now.
    std::vector<std::string>* changed = job->watched_keys->load() > 0 ? &job->changed : nullptr;
    for (WriteJob::Item& item : job->items) {
      item.reply.clear();
      CommandContext ctx{t, true, now, item.reply, changed};
      job->engine->Run(*item.spec, ctx, item.args);
    }
    return Status::Ok();
  };
}

void QueueData(Dispatch& d, std::size_t slot, std::vector<ReadItem>& reads, std::shared_ptr<WriteJob>& job,
               std::shared_ptr<WriteJob>* spare) {
  if (!d.spec->write && job == nullptr) {
    reads.push_back(ReadItem{slot, d.spec, std::move(d.args)});
    return;
  }
  if (job == nullptr) {
    if (spare != nullptr && *spare != nullptr && spare->use_count() == 1) {
      job = std::move(*spare);
      job->items.clear();
      job->changed.clear();
    } else {
      job = std::make_shared<WriteJob>();
    }
  }
  job->items.push_back(WriteJob::Item{slot, d.spec, std::move(d.args), {}});
}

void Recycle(std::span<Request> batch, std::vector<ReadItem>& reads, std::shared_ptr<WriteJob>& job,
             std::shared_ptr<WriteJob>& spare) {
  for (ReadItem& r : reads) {
    if (r.slot < batch.size() && batch[r.slot].args.empty()) batch[r.slot].args = std::move(r.args);
  }
  reads.clear();
  if (job == nullptr) return;
  for (WriteJob::Item& item : job->items) {
    if (item.slot < batch.size() && batch[item.slot].args.empty()) batch[item.slot].args = std::move(item.args);
  }
  spare = std::move(job);
}

void TakeReplies(WriteJob& job, const Status& committed, std::span<std::string> replies) {
  for (WriteJob::Item& item : job.items) {
    std::string& r = replies[item.slot];
    if (committed.ok()) {
      r = std::move(item.reply);
    } else {
      AppendError(r, "ERR write not committed: " + committed.message());
    }
  }
}

void RunReads(ServerState& srv, const std::vector<ReadItem>& reads, std::span<std::string> replies) {
  if (reads.empty()) return;
  // The callback captures one pointer, so std::function keeps it inline
  // instead of allocating.
  struct Batch {
    Engine& engine;
    const std::vector<ReadItem>& reads;
    std::span<std::string> replies;
    std::uint64_t now;
  } batch{srv.engine, reads, replies, WallMs()};
  Status s = srv.store.Read([&batch](storage::Txn& t) {
    for (const ReadItem& r : batch.reads) {
      CommandContext ctx{t, false, batch.now, batch.replies[r.slot], nullptr};
      batch.engine.Run(*r.spec, ctx, r.args);
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    for (const ReadItem& r : reads) AppendError(replies[r.slot], "ERR " + s.message());
  }
}

}  // namespace lattice::node
