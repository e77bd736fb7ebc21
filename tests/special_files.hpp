// Helpers for tests of readers given files that are not what they seem: a
// FIFO that must be refused rather than waited on, and the growth of the
// process's peak memory while something runs.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

// A FIFO at `path`. While it lives, a thread keeps opening the FIFO for
// writing (without blocking) and closing it again, so a reader that wrongly
// opens it is released with end-of-file instead of hanging the test. (A
// writer that wrongly opens it is not released.)
class Fifo {
 public:
  explicit Fifo(const std::string& path) : path_(path) {
    ok_ = ::mkfifo(path.c_str(), 0600) == 0;
    if (ok_) releaser_ = std::thread([this] { release_readers(); });
  }
  ~Fifo() {
    stop_ = true;
    if (releaser_.joinable()) releaser_.join();
  }
  Fifo(const Fifo&) = delete;
  Fifo& operator=(const Fifo&) = delete;
  bool created() const { return ok_; }

 private:
  void release_readers() {
    while (!stop_) {
      // Fails with ENXIO while nobody has it open for reading: nothing to release.
      const int fd = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  std::string path_;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread releaser_;
};

// How much the process's peak resident memory grew while f() ran, in bytes
// (0 if it stayed below an earlier peak). An exception from f propagates.
template <class F>
std::uint64_t peak_memory_growth(F&& f) {
  auto peak = [] {
    struct rusage usage {};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<std::uint64_t>(usage.ru_maxrss) * 1024;  // kilobytes on Linux
  };
  const std::uint64_t before = peak();
  f();
  const std::uint64_t after = peak();
  return after > before ? after - before : 0;
}
