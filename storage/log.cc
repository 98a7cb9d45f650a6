#include "storage/log.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "storage/log_format.h"

namespace lattice::storage {
namespace {

using namespace log_format;  // NOLINT: this file is the format's reader

constexpr std::size_t kWindowBytes = std::size_t{1} << 20;  // recovery reads this much at a time

// A segment file read through a window, so recovery holds a megabyte at a
// time, not a segment.
class SegmentCursor {
 public:
  static Result<SegmentCursor> Open(Env* env, const std::string& path) {
    auto size = env->FileSize(path);
    if (!size.ok()) return size.status();
    auto file = env->OpenReadable(path);
    if (!file.ok()) return file.status();
    return SegmentCursor(std::move(file).value(), *size);
  }
  std::uint64_t size() const { return size_; }
  // The `n` bytes at `offset`, fewer at the end of the file.
  Result<std::string_view> Fetch(std::uint64_t offset, std::size_t n) {
    if (offset >= size_) return std::string_view();
    n = static_cast<std::size_t>(std::min<std::uint64_t>(n, size_ - offset));
    if (offset < window_offset_ || offset + n > window_offset_ + window_.size()) {
      window_.resize(static_cast<std::size_t>(std::min<std::uint64_t>(std::max(n, kWindowBytes), size_ - offset)));
      auto got = file_->ReadAt(offset, window_.size(), window_.data());
      if (!got.ok()) return got.status();
      window_.resize(*got);
      window_offset_ = offset;
      if (*got < n) return std::string_view(window_);  // the file shrank under us
    }
    return std::string_view(window_).substr(offset - window_offset_, n);
  }

 private:
  SegmentCursor(std::unique_ptr<ReadableFile> file, std::uint64_t size) : file_(std::move(file)), size_(size) {}
  std::unique_ptr<ReadableFile> file_;
  std::uint64_t size_;
  std::string window_;
  std::uint64_t window_offset_ = 0;
};

// What lies at one offset of a segment: an intact record of the segment's
// generation, or the reason there is none.
struct Probe {
  std::optional<LogStop> stop;
  std::string detail;
  Header header{};
  std::string_view payload;
};

Result<Probe> ProbeAt(SegmentCursor& cursor, std::uint64_t generation, std::uint64_t offset) {
  Probe p;
  auto head = cursor.Fetch(offset, kHeaderBytes);
  if (!head.ok()) return head.status();
  const bool zero = std::all_of(head->begin(), head->end(), [](char c) { return c == 0; });
  if (head->size() < kHeaderBytes) {
    p.stop = zero ? LogStop::kEndOfFile : LogStop::kTornHeader;
    p.detail = zero ? "the file ends" : "a partial header at the end of the file";
    return p;
  }
  if (zero) {
    p.stop = LogStop::kZeroes;
    p.detail = "zeroes";
    return p;
  }
  p.header = DecodeHeader(head->data());
  const Header& h = p.header;
  if (h.reserved != 0 || !KnownType(h.type) || h.length > cursor.size() - offset - kHeaderBytes) {
    p.stop = LogStop::kTornHeader;
    p.detail = "a header with length " + std::to_string(h.length) + ", type " + std::to_string(h.type);
    return p;
  }
  auto whole = cursor.Fetch(offset, kHeaderBytes + h.length);
  if (!whole.ok()) return whole.status();
  if (whole->size() < kHeaderBytes + h.length ||
      XXH3_64bits(whole->data() + 8, kHeaderBytes - 8 + h.length) != h.checksum) {
    p.stop = LogStop::kBadChecksum;
    p.detail = "a record whose checksum does not match";
    return p;
  }
  if (h.generation != generation) {
    p.stop = h.generation < generation ? LogStop::kStaleRecord : LogStop::kTornHeader;
    p.detail = "a record of generation " + std::to_string(h.generation);
    return p;
  }
  p.payload = whole->substr(kHeaderBytes);
  return p;
}

// True when an intact record that opened a batch after the one holding
// `expected` lies at or after `offset` in `generation`'s file: its sequence is
// above `expected` (an end record never closes a batch, so a batch that
// follows one starts after it too). Records are 8-byte aligned, so every
// aligned offset is tried.
Result<bool> LaterBatchIn(Env* env, const std::string& path, std::uint64_t generation, std::uint64_t offset,
                          std::uint64_t expected) {
  auto cursor = SegmentCursor::Open(env, path);
  if (!cursor.ok()) return cursor.status();
  for (std::uint64_t at = offset; at + kHeaderBytes <= cursor->size(); at += 8) {
    auto head = cursor->Fetch(at, kHeaderBytes);
    if (!head.ok()) return head.status();
    const Header h = DecodeHeader(head->data());
    if (h.generation != generation || (h.flags & kFirstInBatch) == 0 || h.sequence <= expected) continue;
    auto p = ProbeAt(*cursor, generation, at);
    if (!p.ok()) return p.status();
    if (!p->stop) return true;
  }
  return false;
}

}  // namespace

std::string_view LogStopName(LogStop stop) {
  switch (stop) {
    case LogStop::kNoLog: return "no log";
    case LogStop::kZeroes: return "zeroes";
    case LogStop::kEndOfFile: return "end of file";
    case LogStop::kStaleRecord: return "stale record";
    case LogStop::kTornHeader: return "torn header";
    case LogStop::kBadChecksum: return "bad checksum";
    case LogStop::kSequenceGap: return "sequence gap";
    case LogStop::kMissingSegment: return "missing segment";
    case LogStop::kStartsAfter: return "starts after";
  }
  return "?";
}

Result<LogRecovery> ReadLog(Env* env, const std::string& dir, std::uint64_t from_sequence,
                            const std::function<Status(const LogRecord&)>& fn) {
  LogRecovery r;
  const bool from_oldest = from_sequence == 0;
  r.next_sequence = std::max<std::uint64_t>(from_sequence, 1);
  r.detail = "no segment file in " + dir;
  auto names = env->ListDir(dir);
  if (names.status().IsNotFound()) return r;
  if (!names.ok()) return names.status();
  std::map<std::uint64_t, std::string> files;  // generation -> path
  for (const std::string& name : *names) {
    if (auto g = ParseSegmentName(name)) files.emplace(*g, dir + "/" + name);
  }
  if (files.empty()) return r;
  r.max_generation = files.rbegin()->first;

  std::uint64_t expected = 0;  // the next record's sequence; 0 until the first record
  std::uint64_t generation = files.begin()->first;
  std::optional<LogStop> stop;
  while (!stop) {
    auto cursor = SegmentCursor::Open(env, files[generation]);
    if (!cursor.ok()) return cursor.status();
    LogSegment& segment = r.segments.emplace_back();
    segment.generation = generation;
    segment.bytes = cursor->size();
    std::uint64_t offset = 0;
    while (true) {
      auto p = ProbeAt(*cursor, generation, offset);
      if (!p.ok()) return p.status();
      const Header& h = p->header;
      if (!p->stop && expected == 0 && !from_oldest && h.sequence > from_sequence) {
        p->stop = LogStop::kStartsAfter;
        p->detail = "the oldest record is " + std::to_string(h.sequence) + ", recovery needs " +
                    std::to_string(from_sequence);
      } else if (!p->stop && expected != 0 && h.sequence != expected) {
        p->stop = LogStop::kSequenceGap;
        p->detail = "sequence " + std::to_string(h.sequence) + " where " + std::to_string(expected) + " was due";
      }
      const bool is_end = !p->stop && h.type == static_cast<std::uint8_t>(RecordType::kSegmentEnd);
      std::uint64_t next_generation = 0;
      if (is_end) {
        next_generation = h.length == 8 ? GetU64(p->payload.data()) : 0;
        if (next_generation <= generation || files.count(next_generation) == 0) {
          p->stop = LogStop::kMissingSegment;
          p->detail = "the segment ends naming generation " + std::to_string(next_generation) + ", which has no file";
        }
      }
      if (p->stop) {
        stop = p->stop;
        r.detail = std::string(p->detail);
        r.end = LogPosition{generation, offset};
        break;
      }
      if (expected == 0) expected = h.sequence;
      if (offset == 0) segment.first_sequence = h.sequence;
      offset += Padded(kHeaderBytes + h.length);
      if (is_end) {
        segment.ended = true;
        segment.end_sequence = h.sequence;
        generation = next_generation;
        break;
      }
      if (h.sequence >= from_sequence) {
        if (Status s = fn(LogRecord{static_cast<RecordType>(h.type), h.sequence, p->payload}); !s.ok()) return s;
      }
      ++expected;
    }
  }
  r.stop = *stop;
  if (expected != 0) r.next_sequence = expected;
  if (r.segments.back().first_sequence == 0) r.segments.back().first_sequence = r.next_sequence;
  for (const auto& [g, path] : files) {
    const bool in_chain = std::any_of(r.segments.begin(), r.segments.end(),
                                      [&](const LogSegment& s) { return s.generation == g; });
    if (!in_chain) r.orphans.push_back(g);
  }
  if (r.stop != LogStop::kMissingSegment && r.stop != LogStop::kStartsAfter) {
    // Past a torn tail there may be only what the same unfinished batch
    // wrote; a record that began a later batch means the damage is in data
    // that was synced.
    for (auto it = files.find(r.end.generation); it != files.end() && !r.later_batch_found; ++it) {
      auto found = LaterBatchIn(env, it->second, it->first, it->first == r.end.generation ? r.end.offset : 0,
                                r.next_sequence);
      if (!found.ok()) return found.status();
      r.later_batch_found = *found;
    }
  }
  r.detail = std::string(LogStopName(r.stop)) + " at generation " + std::to_string(r.end.generation) +
             " offset " + std::to_string(r.end.offset) + ": " + r.detail;
  return r;
}

}  // namespace lattice::storage
