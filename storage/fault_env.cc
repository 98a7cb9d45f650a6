#include "storage/fault_env.h"

#include <algorithm>
#include <vector>

namespace lattice::storage {

struct FaultEnv::Inode {
  // One change since the last Sync: bytes written at an offset, or emptying
  // the file (a truncating open of an existing file).
  struct Write {
    std::uint64_t offset = 0;
    std::string bytes;
    bool truncate = false;
  };
  std::string data;    // what readers see now
  std::string synced;  // what the disk holds
  std::vector<Write> unsynced;
};

namespace {

Status PowerOff(const std::string& what) { return Status::IOError(what + ": the power is off"); }

void Overwrite(std::string& data, std::uint64_t offset, std::string_view bytes) {
  if (data.size() < offset + bytes.size()) data.resize(offset + bytes.size(), '\0');
  std::copy(bytes.begin(), bytes.end(), data.begin() + static_cast<std::ptrdiff_t>(offset));
}

bool IsRoot(const std::string& dir) { return dir == "." || dir == "/"; }

}  // namespace

class FaultEnv::File final : public WritableFile {
 public:
  File(FaultEnv* env, std::string path, std::shared_ptr<Inode> inode)
      : env_(env), path_(std::move(path)), inode_(std::move(inode)), epoch_(env->epoch_) {}

  Status Append(std::string_view data) override {
    std::lock_guard lock(env_->mu_);
    return WriteLocked(inode_->data.size(), data);
  }
  Status WriteAt(std::uint64_t offset, std::string_view data) override {
    std::lock_guard lock(env_->mu_);
    return WriteLocked(offset, data);
  }
  Status ZeroFill(std::uint64_t size) override {
    std::lock_guard lock(env_->mu_);
    const std::uint64_t end = inode_->data.size();
    if (size <= end) return Usable("zero-fill");
    return WriteLocked(end, std::string(size - end, '\0'));
  }
  Status Sync() override {
    std::lock_guard lock(env_->mu_);
    if (Status s = Usable("sync"); !s.ok()) return s;
    if (env_->fail_syncs_) return Status::IOError("fdatasync " + path_ + ": injected failure");
    inode_->synced = inode_->data;
    inode_->unsynced.clear();
    ++env_->file_syncs_;
    return Status::Ok();
  }
  Status Close() override { return Status::Ok(); }

 private:
  // Requires mu_.
  Status Usable(const std::string& what) {
    if (epoch_ != env_->epoch_) return Status::IOError(what + " " + path_ + ": opened before a power cut");
    if (!env_->PowerOn()) return PowerOff(what + " " + path_);
    return Status::Ok();
  }
  Status WriteLocked(std::uint64_t offset, std::string_view data) {
    if (Status s = Usable("write"); !s.ok()) return s;
    Overwrite(inode_->data, offset, data);
    inode_->unsynced.push_back(Inode::Write{offset, std::string(data), false});
    return Status::Ok();
  }

  FaultEnv* env_;
  std::string path_;
  std::shared_ptr<Inode> inode_;
  std::uint64_t epoch_;
};

class FaultEnv::Reader final : public ReadableFile {
 public:
  Reader(std::mutex* mu, std::shared_ptr<Inode> inode) : mu_(mu), inode_(std::move(inode)) {}
  Result<std::size_t> ReadAt(std::uint64_t offset, std::size_t n, char* scratch) override {
    std::lock_guard lock(*mu_);
    const std::string& data = inode_->data;
    if (offset >= data.size()) return std::size_t{0};
    const std::size_t got = std::min<std::size_t>(n, data.size() - offset);
    std::copy_n(data.data() + offset, got, scratch);
    return got;
  }

 private:
  std::mutex* mu_;
  std::shared_ptr<Inode> inode_;
};

FaultEnv::FaultEnv(std::uint64_t seed, std::uint64_t sector_bytes)
    : rng_(seed), sector_bytes_(std::max<std::uint64_t>(sector_bytes, 1)) {}
FaultEnv::~FaultEnv() = default;

bool FaultEnv::PowerOn() {
  if (!power_) return false;
  if (ops_left_) {
    if (*ops_left_ == 0) {
      power_ = false;
      return false;
    }
    --*ops_left_;
  }
  return true;
}

bool FaultEnv::DirExists(const std::string& dir) const { return IsRoot(dir) || dirs_.count(dir) != 0; }

Result<std::unique_ptr<WritableFile>> FaultEnv::OpenWritable(const std::string& path, OpenMode mode) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (mode == OpenMode::kReuse) {
    if (it == files_.end()) return Status::NotFound("open " + path + ": no such file");
    return std::unique_ptr<WritableFile>(new File(this, path, it->second));
  }
  if (!PowerOn()) return PowerOff("open " + path);
  if (it == files_.end()) {
    if (!DirExists(ParentDir(path))) return Status::NotFound("open " + path + ": no such directory");
    it = files_.emplace(path, std::make_shared<Inode>()).first;
  } else {
    it->second->data.clear();
    it->second->unsynced.push_back(Inode::Write{0, {}, true});
  }
  return std::unique_ptr<WritableFile>(new File(this, path, it->second));
}

Result<std::unique_ptr<ReadableFile>> FaultEnv::OpenReadable(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::NotFound("open " + path + ": no such file");
  return std::unique_ptr<ReadableFile>(new Reader(&mu_, it->second));
}

Result<std::uint64_t> FaultEnv::FileSize(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::NotFound("stat " + path + ": no such file");
  return static_cast<std::uint64_t>(it->second->data.size());
}

Result<std::vector<std::string>> FaultEnv::ListDir(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (!DirExists(dir)) return Status::NotFound("opendir " + dir + ": no such directory");
  std::vector<std::string> names;
  auto add = [&](const std::string& path) {
    if (ParentDir(path) == dir) names.push_back(path.substr(path.find_last_of('/') + 1));
  };
  for (const auto& [path, inode] : files_) add(path);
  for (const auto& path : dirs_) add(path);
  return names;
}

Status FaultEnv::CreateDir(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (DirExists(dir)) return Status::Ok();
  if (!PowerOn()) return PowerOff("mkdir " + dir);
  if (!DirExists(ParentDir(dir))) return Status::NotFound("mkdir " + dir + ": no such directory");
  dirs_.insert(dir);
  return Status::Ok();
}

Status FaultEnv::CreateDirs(const std::string& dir) {
  std::size_t at = dir.find('/', 1);
  for (;;) {
    const std::string prefix = dir.substr(0, at);
    if (!prefix.empty() && !IsRoot(prefix)) {
      if (Status s = CreateDir(prefix); !s.ok()) return s;
      if (Status s = SyncDir(ParentDir(prefix)); !s.ok()) return s;
    }
    if (at == std::string::npos) return Status::Ok();
    at = dir.find('/', at + 1);
  }
}

Status FaultEnv::Rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mu_);
  if (!PowerOn()) return PowerOff("rename " + from);
  auto it = files_.find(from);
  if (it == files_.end()) return Status::NotFound("rename " + from + ": no such file");
  if (!DirExists(ParentDir(to))) return Status::NotFound("rename " + to + ": no such directory");
  std::shared_ptr<Inode> inode = it->second;
  files_.erase(it);
  files_[to] = std::move(inode);
  return Status::Ok();
}

Status FaultEnv::Remove(const std::string& path) {
  std::lock_guard lock(mu_);
  if (!PowerOn()) return PowerOff("unlink " + path);
  if (files_.erase(path) == 0) return Status::NotFound("unlink " + path + ": no such file");
  return Status::Ok();
}

Status FaultEnv::SyncDir(const std::string& dir) {
  std::lock_guard lock(mu_);
  if (!PowerOn()) return PowerOff("fsync " + dir);
  if (!DirExists(dir)) return Status::NotFound("fsync " + dir + ": no such directory");
  if (fail_syncs_) return Status::IOError("fsync " + dir + ": injected failure");
  std::erase_if(synced_files_, [&](const auto& entry) { return ParentDir(entry.first) == dir; });
  for (const auto& [path, inode] : files_) {
    if (ParentDir(path) == dir) synced_files_[path] = inode;
  }
  std::erase_if(synced_dirs_, [&](const std::string& d) { return ParentDir(d) == dir; });
  for (const auto& d : dirs_) {
    if (ParentDir(d) == dir) synced_dirs_.insert(d);
  }
  ++dir_syncs_;
  return Status::Ok();
}

void FaultEnv::Rebuild(Inode& inode, Cut cut) {
  std::string data = inode.synced;
  std::uniform_int_distribution<int> coin(0, 1);
  if (cut == Cut::kScattered) {
    for (const Inode::Write& w : inode.unsynced) {
      if (w.truncate) {
        if (coin(rng_) != 0) data.clear();
        continue;
      }
      // Sectors are aligned to the file, as a disk's are.
      for (std::uint64_t at = w.offset; at < w.offset + w.bytes.size();) {
        const std::uint64_t end = std::min<std::uint64_t>((at / sector_bytes_ + 1) * sector_bytes_, w.offset + w.bytes.size());
        if (coin(rng_) != 0) Overwrite(data, at, std::string_view(w.bytes).substr(at - w.offset, end - at));
        at = end;
      }
    }
  } else if (cut != Cut::kDropUnsynced) {
    std::uint64_t total = 0;
    for (const Inode::Write& w : inode.unsynced) total += w.bytes.size();
    std::uint64_t budget = std::uniform_int_distribution<std::uint64_t>(0, total)(rng_);
    std::uint64_t kept_from = 0;  // the last applied write's surviving range
    std::uint64_t kept_to = 0;
    for (const Inode::Write& w : inode.unsynced) {
      if (budget == 0) break;
      if (w.truncate) {
        data.clear();
        continue;
      }
      const std::uint64_t n = std::min<std::uint64_t>(budget, w.bytes.size());
      Overwrite(data, w.offset, std::string_view(w.bytes).substr(0, n));
      budget -= n;
      kept_from = w.offset;
      kept_to = w.offset + n;
    }
    if (cut == Cut::kTornGarbled && kept_to > kept_from && kept_to <= data.size()) {
      const std::uint64_t len = std::min<std::uint64_t>(kept_to - kept_from, 1 + rng_() % 16);
      const std::uint64_t at = kept_to - len - rng_() % (kept_to - kept_from - len + 1);
      for (std::uint64_t i = at; i < at + len; ++i) data[i] = static_cast<char>(rng_());
    }
  }
  inode.data = data;
  inode.synced = std::move(data);
  inode.unsynced.clear();
}

void FaultEnv::PowerCut(Cut cut) {
  std::lock_guard lock(mu_);
  // A directory whose own entry was never synced is gone, and with it every
  // file in it.
  std::erase_if(synced_dirs_, [&](const std::string& d) { return !IsRoot(ParentDir(d)) && synced_dirs_.count(ParentDir(d)) == 0; });
  std::erase_if(synced_files_, [&](const auto& e) { return !IsRoot(ParentDir(e.first)) && synced_dirs_.count(ParentDir(e.first)) == 0; });
  std::set<Inode*> rebuilt;  // a file synced under two names (a rename synced in one directory only)
  for (auto& [path, inode] : synced_files_) {
    if (rebuilt.insert(inode.get()).second) Rebuild(*inode, cut);
  }
  files_ = synced_files_;
  dirs_ = synced_dirs_;
  ops_left_.reset();
  power_ = true;
  ++epoch_;
}

void FaultEnv::CutPowerAfter(std::uint64_t ops) {
  std::lock_guard lock(mu_);
  ops_left_ = ops;
}

void FaultEnv::FailSyncs(bool fail) {
  std::lock_guard lock(mu_);
  fail_syncs_ = fail;
}

Result<std::uint64_t> FaultEnv::SyncedSize(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::NotFound(path);
  return static_cast<std::uint64_t>(it->second->synced.size());
}

Result<std::uint64_t> FaultEnv::UnsyncedBytes(const std::string& path) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::NotFound(path);
  std::uint64_t n = 0;
  for (const Inode::Write& w : it->second->unsynced) n += w.bytes.size();
  return n;
}

Status FaultEnv::Corrupt(const std::string& path, std::uint64_t offset) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::NotFound(path);
  Inode& inode = *it->second;
  if (offset >= inode.data.size() || offset >= inode.synced.size()) return Status::InvalidArgument("offset past the end");
  inode.data[offset] = static_cast<char>(~inode.data[offset]);
  inode.synced[offset] = static_cast<char>(~inode.synced[offset]);
  return Status::Ok();
}

std::uint64_t FaultEnv::file_syncs() const {
  std::lock_guard lock(mu_);
  return file_syncs_;
}

std::uint64_t FaultEnv::dir_syncs() const {
  std::lock_guard lock(mu_);
  return dir_syncs_;
}

}  // namespace lattice::storage
