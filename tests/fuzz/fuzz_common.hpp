// What the fuzz targets share: the input written to a file of this process's
// own, since the readers take a path.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzz {

// A path under $TMPDIR (or /tmp) unique to this process and `suffix`.
inline std::string scratch_path(const std::string& suffix) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/tapegrad-fuzz-" + std::to_string(::getpid()) + "-" + suffix;
}

// Writes the bytes to `path`, replacing it; aborts if that fails, since a
// target that cannot write its input tests nothing.
inline void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
}

}  // namespace fuzz
