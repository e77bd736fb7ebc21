#include "storage.hpp"

#ifdef __linux__
#include <sys/sysinfo.h>
#endif

#include <algorithm>
#include <limits>

#include <atomic>
#include <cstdlib>
#include <new>
#include <unordered_map>
#include <vector>

namespace tg {

namespace {

// Smaller buffers come cheaply from malloc's own free lists.
constexpr std::size_t kMinCachedBytes = 64 * 1024;
constexpr std::size_t kAlignment = 64;
std::atomic<std::size_t> cache_limit{std::size_t(1) << 30};

struct BufferCache {
  std::unordered_map<std::size_t, std::vector<void*>> by_size;  // bytes -> buffers
  std::size_t bytes = 0;

  void clear() {
    for (auto& [size, buffers] : by_size)
      for (void* p : buffers) std::free(p);
    by_size.clear();
    bytes = 0;
  }
  ~BufferCache() { clear(); }
};

// This thread's cache, or nullptr while the thread is exiting (a tensor with
// static storage may die after the thread's cache).
BufferCache* cache() {
  static thread_local bool torn_down = false;  // trivially destructible: readable at exit
  if (torn_down) return nullptr;
  thread_local struct Holder {
    BufferCache cache;
    ~Holder() { torn_down = true; }
  } holder;
  return &holder.cache;
}

std::size_t rounded(std::size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

Storage::Storage(std::size_t bytes) : bytes_(bytes) {
  const std::size_t size = rounded(bytes == 0 ? 1 : bytes);
  BufferCache* c = cache();
  if (c && size >= kMinCachedBytes) {
    auto it = c->by_size.find(size);
    if (it != c->by_size.end() && !it->second.empty()) {
      data_ = it->second.back();
      it->second.pop_back();
      c->bytes -= size;
      return;
    }
  }
  data_ = std::aligned_alloc(kAlignment, size);
  if (!data_)
    throw Error("tensor: out of memory allocating " + std::to_string(bytes) + " bytes");
}

Storage::~Storage() {
  const std::size_t size = rounded(bytes_ == 0 ? 1 : bytes_);
  BufferCache* c = cache();
  if (c && size >= kMinCachedBytes && c->bytes + size <= cache_limit) {
    c->bytes += size;
    c->by_size[size].push_back(data_);
    return;
  }
  std::free(data_);
}

std::uint64_t system_memory_bytes() {
#ifdef __linux__
  struct sysinfo info {};
  if (::sysinfo(&info) == 0) {
    const std::uint64_t units = std::uint64_t{info.totalram} + std::uint64_t{info.totalswap};
    const std::uint64_t unit = std::max<std::uint64_t>(1, info.mem_unit);
    if (units <= std::numeric_limits<std::uint64_t>::max() / unit) return units * unit;
  }
#endif
  return std::numeric_limits<std::uint64_t>::max();
}

void set_buffer_cache_limit(std::size_t bytes) {
  cache_limit = bytes;
  if (buffer_cache_bytes() > bytes) clear_buffer_cache();
}

std::size_t buffer_cache_limit() { return cache_limit; }

std::size_t buffer_cache_bytes() {
  const BufferCache* c = cache();
  return c ? c->bytes : 0;
}

void clear_buffer_cache() {
  if (BufferCache* c = cache()) c->clear();
}

}  // namespace tg
