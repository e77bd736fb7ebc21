// A fresh directory under the system's temporary directory, removed with
// everything in it when the object goes away. For tests that write files.
#pragma once

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "tapegrad-test") {
    std::random_device rd;
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    for (int attempt = 0;; ++attempt) {
      path = std::filesystem::temp_directory_path() /
             (prefix + "-" + std::to_string(stamp) + "-" + std::to_string(rd()) + "-" + std::to_string(attempt));
      if (std::filesystem::create_directory(path)) break;
    }
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }

  std::filesystem::path path;
};
