// Env: the file system as the write-ahead log sees it (DESIGN §3), after
// LevelDB's Env but much smaller: only what a log of preallocated segments
// needs. PosixEnv() is the real one; storage/fault_env.h holds an in-memory one
// that loses every unsynced byte at a simulated power cut.
//
// Errors are Status values, never exceptions: NotFound when a path does not
// exist, IOError (with the path and the OS's reason) for everything else.
// Nothing here is durable until synced: file bytes by WritableFile::Sync, a
// directory entry (a creation, rename or removal) by Env::SyncDir on its
// directory.
//
// Threads: an Env may be used from any thread. A file object is used by one
// thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/status.h"

namespace lattice::storage {

// A file open for writing. Destroying it closes it (errors then are lost;
// call Close to see them).
class WritableFile {
 public:
  WritableFile() = default;
  WritableFile(const WritableFile&) = delete;
  WritableFile& operator=(const WritableFile&) = delete;
  virtual ~WritableFile() = default;

  // Writes at the end of the file.
  virtual Status Append(std::string_view data) = 0;
  // Writes at `offset`, overwriting what is there (the log writes into
  // segments that were zero-filled when created), extending the file when
  // the data reaches past its end.
  virtual Status WriteAt(std::uint64_t offset, std::string_view data) = 0;
  // Extends the file to `size` bytes of zeroes, with its blocks allocated and
  // written, so that later overwrites followed by Sync need no file-system
  // metadata change. No-op when the file is already that long.
  virtual Status ZeroFill(std::uint64_t size) = 0;
  // fdatasync: the bytes written so far (and the size) survive a power cut.
  // An error means written data may be lost; the log treats it as fatal.
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
};

// A file open for reading, by offset or sequentially from its start.
class ReadableFile {
 public:
  ReadableFile() = default;
  ReadableFile(const ReadableFile&) = delete;
  ReadableFile& operator=(const ReadableFile&) = delete;
  virtual ~ReadableFile() = default;

  // Reads up to `n` bytes at `offset` into `scratch`; fewer only at the end of
  // the file. Returns how many were read.
  virtual Result<std::size_t> ReadAt(std::uint64_t offset, std::size_t n, char* scratch) = 0;

  // Reads the next `n` bytes (fewer at the end), continuing where the last
  // Read stopped.
  Result<std::size_t> Read(std::size_t n, char* scratch) {
    auto got = ReadAt(position_, n, scratch);
    if (got.ok()) position_ += *got;
    return got;
  }

 private:
  std::uint64_t position_ = 0;
};

enum class OpenMode {
  kTruncate,  // create the file, or empty an existing one
  kReuse,     // open an existing file as it is (NotFound when missing)
};

class Env {
 public:
  Env() = default;
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  virtual ~Env() = default;

  virtual Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path, OpenMode mode) = 0;
  virtual Result<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) = 0;
  virtual Result<std::uint64_t> FileSize(const std::string& path) = 0;
  // Names (not paths) of the entries of `dir`, in no particular order.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  // Creates `dir` (not its parents); Ok when it already exists.
  virtual Status CreateDir(const std::string& dir) = 0;
  // Replaces `to` if it exists.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  // fsync on the directory: every creation, rename and removal in it so far
  // survives a power cut.
  virtual Status SyncDir(const std::string& dir) = 0;
};

// The process's POSIX file system. Never deleted.
Env* PosixEnv();

// "a/b/c" -> "a/b"; "c" -> ".".
std::string ParentDir(const std::string& path);

}  // namespace lattice::storage
