// PosixEnv: Env on open/pread/pwrite/fdatasync, and fsync on a directory's fd
// for its entries.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "storage/env.h"

namespace lattice::storage {
namespace {

Status PosixError(const std::string& what, const std::string& path, int err) {
  std::string message = what + " " + path + ": " + std::strerror(err);
  if (err == ENOENT) return Status::NotFound(std::move(message));
  return Status::IOError(std::move(message));
}

// pwrite until everything is written (short writes and EINTR are retried).
Status WriteFully(int fd, const std::string& path, std::uint64_t offset, const char* data, std::size_t n) {
  while (n > 0) {
    const ssize_t done = ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (done < 0) {
      if (errno == EINTR) continue;
      return PosixError("write", path, errno);
    }
    data += done;
    n -= static_cast<std::size_t>(done);
    offset += static_cast<std::uint64_t>(done);
  }
  return Status::Ok();
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd, std::uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixWritableFile() override { Close(); }

  Status Append(std::string_view data) override { return WriteAt(size_, data); }

  Status WriteAt(std::uint64_t offset, std::string_view data) override {
    if (fd_ < 0) return Status::IOError("write " + path_ + ": file is closed");
    Status s = WriteFully(fd_, path_, offset, data.data(), data.size());
    if (s.ok()) size_ = std::max<std::uint64_t>(size_, offset + data.size());
    return s;
  }

  Status ZeroFill(std::uint64_t size) override {
    if (fd_ < 0) return Status::IOError("zero-fill " + path_ + ": file is closed");
    if (size <= size_) return Status::Ok();
    // fallocate first, so that a full disk is reported now and not at some
    // later write; then real zeroes, because fallocated blocks are
    // "unwritten" extents and the first write to each would make every later
    // fdatasync journal an extent conversion.
    if (int err = ::posix_fallocate(fd_, static_cast<off_t>(size_), static_cast<off_t>(size - size_));
        err != 0 && err != EOPNOTSUPP) {
      return PosixError("fallocate", path_, err);
    }
    static const std::string kZeroes(std::size_t{1} << 20, '\0');
    for (std::uint64_t at = size_; at < size;) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kZeroes.size(), size - at));
      if (Status s = WriteFully(fd_, path_, at, kZeroes.data(), n); !s.ok()) return s;
      at += n;
    }
    size_ = size;
    return Status::Ok();
  }

  Status Sync() override {
    if (fd_ < 0) return Status::IOError("sync " + path_ + ": file is closed");
    if (::fdatasync(fd_) != 0) return PosixError("fdatasync", path_, errno);
    return Status::Ok();
  }

  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return PosixError("close", path_, errno);
    return Status::Ok();
  }

 private:
  std::string path_;
  int fd_;
  std::uint64_t size_;  // where Append writes
};

class PosixReadableFile final : public ReadableFile {
 public:
  PosixReadableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixReadableFile() override { ::close(fd_); }

  Result<std::size_t> ReadAt(std::uint64_t offset, std::size_t n, char* scratch) override {
    std::size_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd_, scratch + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return PosixError("read", path_, errno);
      }
      if (r == 0) break;  // end of file
      got += static_cast<std::size_t>(r);
    }
    return got;
  }

 private:
  std::string path_;
  int fd_;
};

class PosixEnvImpl final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path, OpenMode mode) override {
    const int flags = O_WRONLY | O_CLOEXEC | (mode == OpenMode::kTruncate ? O_CREAT | O_TRUNC : 0);
    const int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return PosixError("open", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      Status s = PosixError("stat", path, errno);
      ::close(fd);
      return s;
    }
    return std::unique_ptr<WritableFile>(
        new PosixWritableFile(path, fd, static_cast<std::uint64_t>(st.st_size)));
  }

  Result<std::unique_ptr<ReadableFile>> OpenReadable(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return PosixError("open", path, errno);
    return std::unique_ptr<ReadableFile>(new PosixReadableFile(path, fd));
  }

  Result<std::uint64_t> FileSize(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return PosixError("stat", path, errno);
    return static_cast<std::uint64_t>(st.st_size);
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return PosixError("opendir", dir, errno);
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* e = ::readdir(d)) {
      const std::string_view name = e->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0) return PosixError("readdir", dir, err);
    return names;
  }

  Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) == 0) return Status::Ok();
    const int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
    return PosixError("mkdir", dir, err);
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return PosixError("rename", from + " -> " + to, errno);
    return Status::Ok();
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return PosixError("unlink", path, errno);
    return Status::Ok();
  }

  Status SyncDir(const std::string& dir) override {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PosixError("open", dir, errno);
    Status s;
    if (::fsync(fd) != 0) s = PosixError("fsync", dir, errno);
    ::close(fd);
    return s;
  }
};

}  // namespace

Env* PosixEnv() {
  static PosixEnvImpl* env = new PosixEnvImpl;  // never deleted: usable until exit
  return env;
}

std::string ParentDir(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace lattice::storage
