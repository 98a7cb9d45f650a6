// FaultEnv: an in-memory Env that knows what a power cut would keep, after
// LevelDB's db/fault_injection_test.cc. Test support (library
// lattice_storage_fault), for the log's power-cut tests and the simulation.
//
// What it remembers: per file, the bytes as of its last Sync and every write
// made since (in order); per directory, its entries as of its last SyncDir.
// PowerCut() then does what losing power does: every file falls back to its
// synced bytes plus, depending on the Cut, some of the unsynced writes (a
// torn tail), and every directory falls back to its synced entries (a file
// created, renamed or removed since is back as it was). Files are overwritten
// in place, so "synced" is kept as content, not as a length: an overwrite of
// an already synced range is as unsynced as an append.
//
// CutPowerAfter(n) lets the power fail in the middle of what the code under
// test is doing: the n-th mutating call from then on, and every later one,
// fails with IOError and changes nothing, until PowerCut().
//
// Randomness (which prefix survives, which bytes are garbled) comes from the
// seed alone, so a failing case replays exactly. Thread-safe: one mutex.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>

#include "storage/env.h"

namespace lattice::storage {

class FaultEnv final : public Env {
 public:
  // What survives of a file's unsynced writes at a power cut.
  enum class Cut {
    kDropUnsynced,  // nothing: each file is exactly as last synced
    kTornPrefix,    // a random prefix of its unsynced writes, in the order made
    kTornGarbled,   // as kTornPrefix, then up to 16 surviving unsynced bytes garbled
    kScattered,     // each sector of each unsynced write, or not, at random
  };

  // `sector_bytes`: the unit kScattered keeps or loses (disks: 512 or 4096;
  // smaller tears finer, which nothing forbids for unsynced writes).
  explicit FaultEnv(std::uint64_t seed, std::uint64_t sector_bytes = 512);
  ~FaultEnv() override;

  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path, OpenMode mode) override;
  Result<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) override;
  Result<std::uint64_t> FileSize(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override;
  Status CreateDir(const std::string& dir) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  // mkdir -p that a power cut keeps: `dir` and every missing parent are
  // created, each with its parent synced (tests give a store's real data
  // directory path to a FaultEnv that starts empty).
  Status CreateDirs(const std::string& dir);

  // Loses power and restores it: files and directories become what the disk
  // would hold. Writable files opened before fail from now on (the process
  // that held them is gone); reopen.
  void PowerCut(Cut cut);
  // The `ops`-th mutating call from now (0 = the next one) and all later ones
  // fail, as if the power went just before it.
  void CutPowerAfter(std::uint64_t ops);
  // While set, Sync and SyncDir fail with IOError and make nothing durable.
  void FailSyncs(bool fail);

  // Inspection. SyncedSize: the file's size as of its last Sync (NotFound
  // when there is no such file). UnsyncedBytes: bytes written since.
  Result<std::uint64_t> SyncedSize(const std::string& path);
  Result<std::uint64_t> UnsyncedBytes(const std::string& path);
  // Bit rot: flips the bits of one byte, synced, as a bad disk would.
  Status Corrupt(const std::string& path, std::uint64_t offset);
  std::uint64_t file_syncs() const;
  std::uint64_t dir_syncs() const;

  struct Inode;

 private:
  class File;
  class Reader;
  friend class File;

  // Whether a mutating call may go ahead (false once the power is off).
  bool PowerOn();
  bool DirExists(const std::string& dir) const;
  void Rebuild(Inode& inode, Cut cut);

  mutable std::mutex mu_;
  std::mt19937_64 rng_;
  const std::uint64_t sector_bytes_;
  std::map<std::string, std::shared_ptr<Inode>> files_;          // as the process sees them
  std::map<std::string, std::shared_ptr<Inode>> synced_files_;   // as the disk keeps them
  std::set<std::string> dirs_;
  std::set<std::string> synced_dirs_;
  std::optional<std::uint64_t> ops_left_;  // CutPowerAfter countdown
  bool power_ = true;
  bool fail_syncs_ = false;
  std::uint64_t epoch_ = 0;  // PowerCut count: files of an older epoch are dead
  std::uint64_t file_syncs_ = 0;
  std::uint64_t dir_syncs_ = 0;
};

}  // namespace lattice::storage
