// A fresh directory under the system's temporary directory, removed with
// everything in it when the test is done.
#pragma once

#include <filesystem>
#include <random>
#include <string>

namespace lattice::test {

struct TempDir {
  explicit TempDir(const std::string& prefix = "lattice-test") {
    path = std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path path;
};

}  // namespace lattice::test
