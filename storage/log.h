// The node's write-ahead log (DESIGN §3): typed, checksummed records with
// consecutive sequence numbers in fixed-size, preallocated segment files.
// Store (store.h) writes it: one record per work item of a batch, then one
// Sync per batch.
//
// Files: `<dir>/wal-<generation, 16 hex digits>`, each `segment_bytes` long,
// zero-filled once when created (then synced, and the directory synced, so
// the file and its length are durable before any record goes in). A released
// segment is recycled: renamed to the next generation (directory synced) and
// overwritten from its start.
//
// Record: 32-byte header, then the payload, padded with zeroes to 8 bytes.
//   u64 checksum   xxh3_64 of the rest of the header and the payload
//   u64 sequence   the previous record's + 1
//   u64 generation of the segment it was written into
//   u32 length     of the payload
//   u8  type       RecordType
//   u8  flags      kFirstInBatch on the first record of each Sync's batch
//   u16 zero
// A segment ends with an end record (kSegmentEnd, naming the generation that
// follows, sequence = the next record's, not consumed); the reader moves to
// the next segment only through one, so it never guesses where a segment
// ends. Every generation is written by one writer, start to end, once: after a
// restart the writer ends the last segment where recovery stopped and goes on
// in a new one, so bytes a torn batch left behind are never read. Each Sync
// also writes a header's worth of zeroes after its last record (the next
// batch overwrites them), so a log that stopped cleanly ends in zeroes, also
// inside a recycled segment whose old records would otherwise follow.
//
// Recovery (ReadLog) follows the chain from the oldest segment file and stops
// at the first record that is zeroes, torn (length or checksum), of another
// generation (an older one: what a recycled segment held before) or whose
// sequence is not the previous + 1. So an old record of a recycled segment is
// never replayed, and nothing after a gap is.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/env.h"

namespace lattice::storage {

// Stored in every record: never renumber. The store's payloads are the
// records a work item changed (view.h, DecodeOps: table, key, new value or
// deletion), so the minted dot and the HLC are in the key states written; a
// record is typed by the first thing its item wrote. A state received from a
// peer is applied by the same Save as a local write and logged as kDelta:
// kRemoteState is reserved, not written.
enum class RecordType : std::uint8_t {
  kDelta = 1,        // a mutation of a key's records (local, or a peer's state joined in)
  kRemoteState = 2,  // reserved
  kRetire = 3,       // a collected tombstone
  kRequestId = 4,    // the remembered reply of a non-idempotent write
  kNodeRecord = 5,   // a small named record of the node's own (and each batch's HLC)
  kCheckpoint = 6,   // reserved: the checkpoint's sequence is kept in LMDB (meta checkpoint_seq)
  kSegmentEnd = 15,  // internal: written and consumed by the log only
};

struct LogOptions {
  std::string dir;                                  // created if missing
  std::uint64_t segment_bytes = std::uint64_t{64} << 20;  // a record must fit in one, with 40 to spare
  std::size_t max_free_segments = 4;                // released segments kept to recycle; more are removed
  // false skips the fdatasync of each batch (`--sync none`, benchmarks only):
  // a power cut then loses acknowledged records.
  bool sync_batches = true;
};

struct LogPosition {
  std::uint64_t generation = 0;
  std::uint64_t offset = 0;
  bool operator==(const LogPosition&) const = default;
};

// Why recovery stopped where it did.
enum class LogStop : std::uint8_t {
  kNoLog,           // no segment file: an empty log
  kZeroes,          // clean: zeroes where the next header would be
  kEndOfFile,       // clean: the segment file ends there (its zero-fill was cut short)
  kStaleRecord,     // torn: an intact record of an older generation (a recycled segment's
                    // past) where an unsynced batch's next record should have been
  kTornHeader,      // torn or corrupt: a header that cannot be (length past the file, unknown
                    // type, non-zero reserved bytes, a generation above its file's)
  kBadChecksum,     // torn or corrupt: the checksum does not match
  kSequenceGap,     // corrupt: an intact record whose sequence is not the previous + 1
  kMissingSegment,  // corrupt: an end record names a generation that has no file
  kStartsAfter,     // records from from_sequence on are gone (recycled while needed)
};
std::string_view LogStopName(LogStop stop);

struct LogRecord {
  RecordType type;
  std::uint64_t sequence;
  std::string_view payload;  // valid only during the callback
};

// One segment of the chain recovery walked.
struct LogSegment {
  std::uint64_t generation = 0;
  std::uint64_t first_sequence = 0;  // of its first record (its end record's, when it has none)
  std::uint64_t end_sequence = 0;    // one past its last record; valid when ended
  bool ended = false;                // has an end record
  std::uint64_t bytes = 0;           // file size
};

struct LogRecovery {
  std::uint64_t next_sequence = 1;  // what the next Append gets
  LogPosition end;                  // where the valid log ends
  LogStop stop = LogStop::kNoLog;
  std::string detail;               // the stop, for a log line
  // A record that opened a later batch lies past `end`: that batch was written
  // only after this one's Sync returned, so records that had been synced were
  // lost (corruption, not a torn tail).
  bool later_batch_found = false;
  std::vector<LogSegment> segments;   // the chain, oldest first
  std::vector<std::uint64_t> orphans; // segment files past the chain's end
  std::uint64_t max_generation = 0;   // of any segment file

  // Stopped at the end of what was written, not at damage.
  bool clean() const {
    return stop == LogStop::kNoLog || stop == LogStop::kZeroes || stop == LogStop::kEndOfFile;
  }
};

// Reads the log in `dir` in sequence order and calls `fn` for every record
// with sequence >= from_sequence (end records are not passed); 0 reads from
// the oldest record there is. Stops as described above and says where and
// why; it never skips damage to look further. A log with no record continues
// at from_sequence; a next_sequence below from_sequence means the log lost
// records the caller's checkpoint covers, which the caller judges. An error
// from the Env or from `fn` is returned as is. Reads only; call before
// LogWriter::Open. Any thread.
Result<LogRecovery> ReadLog(Env* env, const std::string& dir, std::uint64_t from_sequence,
                            const std::function<Status(const LogRecord&)>& fn);

// Appends records. Owns the segment files in options.dir while open (nothing
// locks the directory: one writer per directory is the caller's rule). Not
// thread-safe: one thread (the store's writer) calls everything. Records
// appended since the last Sync are dropped when it is destroyed.
//
// Failure: an error from Sync (a failed write, fdatasync, rename, removal or
// directory sync) leaves the writer failed: every later call returns that
// error. The caller treats it as fatal (stop; a restart replays), since after
// a failed fdatasync nobody knows what reached the disk.
class LogWriter {
 public:
  // Opens the log for appending after `recovered`, the ReadLog of the same
  // directory. Removes orphan segments. Refuses (Corruption) a recovery that
  // stopped at kMissingSegment or kStartsAfter: the caller must decide what a
  // log with lost records means before writing more.
  static Result<std::unique_ptr<LogWriter>> Open(Env* env, const LogOptions& options,
                                                 const LogRecovery& recovered);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Buffers a record and returns its sequence number; nothing is written
  // until Sync. InvalidArgument for kSegmentEnd or a payload that cannot fit
  // in a segment.
  Result<std::uint64_t> Append(RecordType type, std::string_view payload);

  // Writes the buffered batch and makes it durable with one fdatasync (two
  // when the batch reached into a new segment, which is first created or
  // recycled, durably). When it returns Ok every record appended so far
  // survives a power cut.
  Status Sync();

  // The caller has made everything up to `up_to` durable elsewhere (a
  // checkpoint): segments all of whose records are <= up_to may be recycled.
  // Only ended segments whose end record is durable go, the oldest first.
  // Bookkeeping only: the next roll recycles them, the next Sync removes
  // those beyond max_free_segments. Fails only when the writer has failed.
  Status Release(std::uint64_t up_to);

  std::uint64_t next_sequence() const { return next_sequence_; }
  std::uint64_t durable_sequence() const { return durable_sequence_; }  // last record synced (0: none)

  struct Stats {
    std::uint64_t batches = 0;
    std::uint64_t syncs = 0;  // fdatasyncs of batches
    std::uint64_t bytes_written = 0;
    std::uint64_t segments_created = 0;
    std::uint64_t segments_recycled = 0;
    std::uint64_t segments_removed = 0;
  };
  const Stats& stats() const { return stats_; }
  std::size_t live_segments() const { return live_.size(); }
  std::size_t free_segments() const { return free_.size(); }

 private:
  struct Segment {
    std::uint64_t generation = 0;
    std::uint64_t bytes = 0;
    std::uint64_t end_sequence = 0;
    bool ended = false;         // its end record is placed
    bool end_durable = false;   // ... and synced
  };
  // A segment the current batch begins: created, or recycled from `source`.
  struct NewSegment {
    std::uint64_t generation = 0;
    std::uint64_t source = 0;  // 0: create
  };
  struct Piece {
    std::uint64_t generation = 0;
    std::uint64_t offset = 0;
    std::string bytes;
  };

  LogWriter(Env* env, LogOptions options);
  void Place(RecordType type, std::uint64_t sequence, std::string_view payload);
  void Roll();
  Status Prepare(const NewSegment& segment);
  Result<WritableFile*> FileOf(std::uint64_t generation);
  Status Fail(Status s);
  std::string PathOf(std::uint64_t generation) const;

  Env* env_;
  LogOptions options_;
  Status failed_;
  std::uint64_t next_sequence_ = 1;
  std::uint64_t durable_sequence_ = 0;
  std::uint64_t max_generation_ = 0;
  std::uint64_t offset_ = 0;           // in the last live segment, buffered bytes included
  bool must_end_current_ = false;      // recovered: end the last segment before writing to it
  std::deque<Segment> live_;           // oldest first; the last one is written to
  struct Free {
    std::uint64_t generation;
    std::uint64_t bytes;
  };
  std::deque<Free> free_;              // released, oldest first
  std::vector<NewSegment> new_segments_;
  std::vector<Piece> pieces_;          // the batch
  std::string spare_;                  // the last batch's buffer, for the next
  std::map<std::uint64_t, std::unique_ptr<WritableFile>> files_;
  Stats stats_;
};

}  // namespace lattice::storage
