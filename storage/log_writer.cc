// LogWriter (storage/log.h). Invariants:
//  - live_ holds the chain oldest first; every segment but the last is ended.
//    free_ holds released segments, all older than live_.front(). So the
//    oldest file on disk always starts the chain; recycling and removal take
//    the oldest free segment first, each made durable (directory synced)
//    before the next, so a power cut can never leave a chain that names a
//    file already gone.
//  - An end record naming generation G is written only after G's file is
//    durable (created and zero-filled and synced, or renamed), in the same
//    Sync that prepares G.
//  - Generations only grow (max_generation_ counts every file ever seen), so
//    a recycled file holds only records of generations below its name.
#include <algorithm>

#include "storage/log.h"
#include "storage/log_format.h"

namespace lattice::storage {

using namespace log_format;  // NOLINT: this file is the format's writer

LogWriter::LogWriter(Env* env, LogOptions options) : env_(env), options_(std::move(options)) {}

LogWriter::~LogWriter() {
  for (auto& [generation, file] : files_) file->Close();  // nothing to report to: Sync reported
}

std::string LogWriter::PathOf(std::uint64_t generation) const {
  return options_.dir + "/" + SegmentName(generation);
}

Result<std::unique_ptr<LogWriter>> LogWriter::Open(Env* env, const LogOptions& options,
                                                   const LogRecovery& recovered) {
  if (recovered.stop == LogStop::kMissingSegment || recovered.stop == LogStop::kStartsAfter) {
    return Status::Corruption("log in " + options.dir + " has lost records (" + recovered.detail +
                              "); not appending to it");
  }
  if (options.segment_bytes < 4 * kEndRecordBytes) {
    return Status::InvalidArgument("segment_bytes " + std::to_string(options.segment_bytes) + " is too small");
  }
  std::unique_ptr<LogWriter> w(new LogWriter(env, options));
  // A new directory is durable only once its parent is synced.
  auto listing = env->ListDir(options.dir);
  if (listing.status().IsNotFound()) {
    if (Status s = env->CreateDir(options.dir); !s.ok()) return s;
    if (Status s = env->SyncDir(ParentDir(options.dir)); !s.ok()) return s;
  } else if (!listing.ok()) {
    return listing.status();
  }
  // Files past the chain's end hold only what an unfinished batch wrote.
  // They go before anything new is written, so none can ever be taken for
  // the chain's start.
  for (std::uint64_t g : recovered.orphans) {
    if (Status s = env->Remove(w->PathOf(g)); !s.ok() && !s.IsNotFound()) return s;
  }
  if (!recovered.orphans.empty()) {
    if (Status s = env->SyncDir(options.dir); !s.ok()) return s;
  }
  w->next_sequence_ = recovered.next_sequence;
  w->durable_sequence_ = recovered.next_sequence - 1;
  w->max_generation_ = recovered.max_generation;
  for (const LogSegment& s : recovered.segments) {
    w->live_.push_back(Segment{s.generation, s.bytes, s.end_sequence, s.ended, s.ended});
  }
  if (!w->live_.empty()) {
    // Whatever lies past the recovered end (a torn batch) must never be read
    // as part of the log, so the segment is ended right there and writing
    // goes on in a new generation.
    w->must_end_current_ = true;
    w->offset_ = recovered.end.offset;
  }
  return w;
}

Result<std::uint64_t> LogWriter::Append(RecordType type, std::string_view payload) {
  if (!failed_.ok()) return failed_;
  if (type == RecordType::kSegmentEnd || !KnownType(static_cast<std::uint8_t>(type))) {
    return Status::InvalidArgument("record type " + std::to_string(static_cast<int>(type)) + " cannot be appended");
  }
  const std::size_t need = Padded(kHeaderBytes + payload.size());
  if (need + kEndRecordBytes > options_.segment_bytes) {
    return Status::InvalidArgument("a record of " + std::to_string(payload.size()) +
                                   " bytes does not fit a log segment of " + std::to_string(options_.segment_bytes));
  }
  if (live_.empty() || must_end_current_ || offset_ + need + kEndRecordBytes > live_.back().bytes) Roll();
  const std::uint64_t sequence = next_sequence_++;
  Place(type, sequence, payload);
  return sequence;
}

void LogWriter::Place(RecordType type, std::uint64_t sequence, std::string_view payload) {
  const std::uint8_t flags = pieces_.empty() ? kFirstInBatch : 0;
  const std::uint64_t generation = live_.back().generation;
  if (pieces_.empty() || pieces_.back().generation != generation) {
    pieces_.push_back(Piece{generation, offset_, std::move(spare_)});
    pieces_.back().bytes.clear();
  }
  std::string& bytes = pieces_.back().bytes;
  const std::size_t before = bytes.size();
  EncodeRecord(bytes, type, flags, sequence, generation, payload);
  offset_ += bytes.size() - before;
}

// Ends the current segment (if any) and starts the next generation, recycled
// from the oldest free segment when there is one. Only bookkeeping: Sync
// does the I/O.
void LogWriter::Roll() {
  const std::uint64_t next = max_generation_ + 1;
  if (!live_.empty()) {
    char payload[8];
    PutU64(payload, next);
    Place(RecordType::kSegmentEnd, next_sequence_, std::string_view(payload, sizeof payload));
    live_.back().ended = true;
    live_.back().end_sequence = next_sequence_;
  }
  max_generation_ = next;
  NewSegment segment{next, 0};
  if (!free_.empty() && free_.front().bytes == options_.segment_bytes) {
    segment.source = free_.front().generation;
    free_.pop_front();
  }
  new_segments_.push_back(segment);
  live_.push_back(Segment{next, options_.segment_bytes, 0, false, false});
  offset_ = 0;
  must_end_current_ = false;
}

Status LogWriter::Prepare(const NewSegment& segment) {
  const std::string path = PathOf(segment.generation);
  if (segment.source == 0) {
    auto file = env_->OpenWritable(path, OpenMode::kTruncate);
    if (!file.ok()) return file.status();
    if (Status s = (*file)->ZeroFill(options_.segment_bytes); !s.ok()) return s;
    if (Status s = (*file)->Sync(); !s.ok()) return s;
    if (Status s = env_->SyncDir(options_.dir); !s.ok()) return s;
    files_[segment.generation] = std::move(file).value();
    ++stats_.segments_created;
    return Status::Ok();
  }
  if (Status s = env_->Rename(PathOf(segment.source), path); !s.ok()) return s;
  if (Status s = env_->SyncDir(options_.dir); !s.ok()) return s;
  auto file = env_->OpenWritable(path, OpenMode::kReuse);
  if (!file.ok()) return file.status();
  files_[segment.generation] = std::move(file).value();
  ++stats_.segments_recycled;
  return Status::Ok();
}

Result<WritableFile*> LogWriter::FileOf(std::uint64_t generation) {
  auto it = files_.find(generation);
  if (it != files_.end()) return it->second.get();
  auto file = env_->OpenWritable(PathOf(generation), OpenMode::kReuse);  // the recovered last segment
  if (!file.ok()) return file.status();
  WritableFile* raw = file->get();
  files_[generation] = std::move(file).value();
  return raw;
}

Status LogWriter::Fail(Status s) {
  failed_ = s;
  return s;
}

Status LogWriter::Sync() {
  if (!failed_.ok()) return failed_;
  if (pieces_.empty()) return Status::Ok();
  for (const NewSegment& segment : new_segments_) {
    if (Status s = Prepare(segment); !s.ok()) return Fail(s);
  }
  new_segments_.clear();
  // Zeroes where the next header goes: the clean end recovery will find,
  // even over a recycled segment's old records (Append always leaves room).
  if (offset_ + kHeaderBytes <= live_.back().bytes) pieces_.back().bytes.append(kHeaderBytes, '\0');
  // Trim the free pool, oldest first, each removal durable before the next.
  while (!free_.empty() && (free_.size() > options_.max_free_segments ||
                            free_.front().bytes != options_.segment_bytes)) {
    if (Status s = env_->Remove(PathOf(free_.front().generation)); !s.ok()) return Fail(s);
    if (Status s = env_->SyncDir(options_.dir); !s.ok()) return Fail(s);
    free_.pop_front();
    ++stats_.segments_removed;
  }
  for (const Piece& piece : pieces_) {
    auto file = FileOf(piece.generation);
    if (!file.ok()) return Fail(file.status());
    if (Status s = (*file)->WriteAt(piece.offset, piece.bytes); !s.ok()) return Fail(s);
    stats_.bytes_written += piece.bytes.size();
  }
  if (options_.sync_batches) {
    for (const Piece& piece : pieces_) {
      if (Status s = files_[piece.generation]->Sync(); !s.ok()) return Fail(s);
      ++stats_.syncs;
    }
  }
  spare_ = std::move(pieces_.front().bytes);  // a batch's buffer is large: keep it, not malloc it anew
  pieces_.clear();
  ++stats_.batches;
  durable_sequence_ = next_sequence_ - 1;
  for (Segment& segment : live_) segment.end_durable = segment.ended;
  // Only the segment being written needs a file open.
  for (auto it = files_.begin(); it != files_.end();) {
    if (it->first == live_.back().generation) {
      ++it;
      continue;
    }
    it->second->Close();
    it = files_.erase(it);
  }
  return Status::Ok();
}

Status LogWriter::Release(std::uint64_t up_to) {
  if (!failed_.ok()) return failed_;
  while (live_.size() > 1 && live_.front().end_durable && live_.front().end_sequence <= up_to + 1) {
    free_.push_back(Free{live_.front().generation, live_.front().bytes});
    live_.pop_front();
  }
  return Status::Ok();
}

}  // namespace lattice::storage
