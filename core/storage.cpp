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

// Below this, a buffer's size class is its size (in 64-byte steps). Small
// buffers are kept too: a 64-byte-aligned allocation does not come from
// malloc's fast per-thread lists, and at batch 1 they cost 5 % of a step.
constexpr std::size_t kSizeClassBytes = 64 * 1024;
constexpr std::size_t kAlignment = 64;
std::atomic<std::size_t> cache_limit{std::size_t(1) << 30};

// The bytes actually allocated for a request. Large buffers are kept by size
// class, the request rounded up to 1/16 of its power of two (at most 6.25 %
// more, and pages never touched cost nothing), so that tensors whose size
// changes a little from step to step (max's tied positions, a last batch)
// reuse each other's buffers instead of each leaving one behind.
std::size_t capacity(std::size_t bytes) {
  const std::size_t size = (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  if (size < kSizeClassBytes) return size;
  const std::size_t step = (std::size_t(1) << (std::numeric_limits<unsigned long long>::digits - 1 -
                                                __builtin_clzll(static_cast<unsigned long long>(size)))) / 16;
  return (size + step - 1) / step * step;
}

// The process-wide counts behind memory_stats(): bytes storages hold
// (allocated) and bytes taken from the system and not yet given back
// (reserved: allocated plus every cache). Each changes on its own events,
// so neither is ever read as a sum of two counts caught mid-move. Plain
// atomics, which need no destruction: storages may die during static
// destruction.
std::atomic<std::size_t> bytes_allocated{0}, bytes_reserved{0}, max_allocated{0}, max_reserved{0};

void raise_to(std::atomic<std::size_t>& max, std::size_t value) {
  std::size_t seen = max.load(std::memory_order_relaxed);
  while (value > seen && !max.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}
void add_allocated(std::size_t size) {
  raise_to(max_allocated, bytes_allocated.fetch_add(size, std::memory_order_relaxed) + size);
}
void add_reserved(std::size_t size) {
  raise_to(max_reserved, bytes_reserved.fetch_add(size, std::memory_order_relaxed) + size);
}
void release(void* buffer, std::size_t size) {  // back to the system
  std::free(buffer);
  bytes_reserved.fetch_sub(size, std::memory_order_relaxed);
}

struct SizeClass {
  std::vector<void*> buffers;
  std::uint64_t last_use = 0;
};

struct BufferCache {
  std::unordered_map<std::size_t, SizeClass> by_size;  // capacity -> buffers
  std::size_t bytes = 0;
  std::uint64_t clock = 0;

  // Frees the buffers of the classes used longest ago until `need` more
  // bytes fit under `limit`: a full cache keeps taking what the program
  // allocates now, rather than holding on to sizes it no longer uses.
  void make_room(std::size_t need, std::size_t limit) {
    while (bytes + need > limit && !by_size.empty()) {
      auto oldest = by_size.begin();
      for (auto it = by_size.begin(); it != by_size.end(); ++it)
        if (it->second.last_use < oldest->second.last_use) oldest = it;
      for (void* p : oldest->second.buffers) release(p, oldest->first);
      bytes -= oldest->first * oldest->second.buffers.size();
      by_size.erase(oldest);
    }
  }
  void clear() {
    for (auto& [size, kept] : by_size)
      for (void* p : kept.buffers) release(p, size);
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

}  // namespace

Storage::Storage(std::size_t bytes) : bytes_(bytes) {
  const std::size_t size = capacity(bytes);
  BufferCache* c = cache();
  if (c) {
    auto it = c->by_size.find(size);
    if (it != c->by_size.end() && !it->second.buffers.empty()) {
      data_ = it->second.buffers.back();
      it->second.buffers.pop_back();
      it->second.last_use = ++c->clock;
      c->bytes -= size;
      add_allocated(size);
      return;
    }
  }
  data_ = std::aligned_alloc(kAlignment, size);
  if (!data_)
    throw Error("tensor: out of memory allocating " + std::to_string(bytes) + " bytes");
  add_reserved(size);
  add_allocated(size);
}

Storage::~Storage() {
  const std::size_t size = capacity(bytes_);
  bytes_allocated.fetch_sub(size, std::memory_order_relaxed);
  BufferCache* c = cache();
  const std::size_t limit = cache_limit;
  if (c && size <= limit) {
    c->make_room(size, limit);
    SizeClass& kept = c->by_size[size];
    kept.buffers.push_back(data_);
    kept.last_use = ++c->clock;
    c->bytes += size;
    return;
  }
  release(data_, size);
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
  if (BufferCache* c = cache()) c->make_room(0, bytes);
}

std::size_t buffer_cache_limit() { return cache_limit; }

std::size_t buffer_cache_bytes() {
  const BufferCache* c = cache();
  return c ? c->bytes : 0;
}

void clear_buffer_cache() {
  if (BufferCache* c = cache()) c->clear();
}

MemoryStats memory_stats() {
  MemoryStats m;
  m.allocated = bytes_allocated.load(std::memory_order_relaxed);
  m.reserved = bytes_reserved.load(std::memory_order_relaxed);
  m.max_allocated = max_allocated.load(std::memory_order_relaxed);
  m.max_reserved = max_reserved.load(std::memory_order_relaxed);
  return m;
}

void reset_peak_memory() {
  max_allocated.store(bytes_allocated.load(std::memory_order_relaxed), std::memory_order_relaxed);
  max_reserved.store(bytes_reserved.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

}  // namespace tg
