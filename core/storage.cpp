#include "storage.hpp"

#ifdef __linux__
#include <sys/sysinfo.h>
#endif
#if __has_include(<sanitizer/asan_interface.h>)
#include <sanitizer/asan_interface.h>  // no-op macros outside AddressSanitizer builds
#else
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

#include <algorithm>
#include <cassert>
#include <limits>

#include <atomic>
#include <cstdlib>
#include <new>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tg {

namespace {

// Buffers of 64 KiB and more come from the block pool below; smaller ones
// from each thread's cache, one class per size (in 64-byte steps). Small
// buffers are kept too: a 64-byte-aligned allocation does not come from
// malloc's fast per-thread lists, and at batch 1 they cost 5 % of a step.
// The threshold is low because the pool shares memory between sizes and a
// class cache does not: at 1 MiB, LeNet-5's activations and gradients
// between 64 KiB and 1 MiB each kept their own peak.
constexpr std::size_t kPooledBytes = 64 * 1024;
constexpr std::size_t kSegmentStep = 64 * 1024;  // a new segment's size is a multiple of this
constexpr std::size_t kAlignment = 64;
std::atomic<std::size_t> cache_limit{std::size_t(1) << 30};

std::size_t round_up(std::size_t bytes, std::size_t step) {
  return (std::max<std::size_t>(bytes, 1) + step - 1) / step * step;
}
bool pooled(std::size_t bytes) { return round_up(bytes, kAlignment) >= kPooledBytes; }

// The bytes a small buffer takes, which is also its size class.
std::size_t capacity(std::size_t bytes) { return round_up(bytes, kAlignment); }

// Under AddressSanitizer the bytes no tensor may touch (a kept buffer, and a
// buffer's rest past what was asked for) are marked unaddressable, so that
// reuse does not hide a write past a tensor's end or into a dead tensor.
void expose(void* data, std::size_t bytes, std::size_t held) {
  ASAN_UNPOISON_MEMORY_REGION(data, bytes);
  ASAN_POISON_MEMORY_REGION(static_cast<char*>(data) + bytes, held - bytes);
}
void hide(void* data, std::size_t held) { ASAN_POISON_MEMORY_REGION(data, held); }

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
  ASAN_UNPOISON_MEMORY_REGION(buffer, size);
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

// Large buffers: one pool for all threads, in the manner of PyTorch's CUDA
// caching allocator. Each segment is one allocation from the system; a
// request takes the smallest free block that fits (best fit), split when at
// least kPooledBytes would be left over, and a freed block merges with its
// free neighbours. So a buffer one layer no longer needs serves the next
// layer's smaller arrays, where a cache of size classes would keep both: in
// a training step the im2col columns of a layer, dead once its backward is
// done, hold the gradients of the layer before it. Large allocations are few
// (tens per step), so one mutex costs nothing measurable, and a buffer freed
// on another thread is reused at once. The limit (cache_limit) is read under
// the mutex, so that a new limit applies to every free that follows it.
class BlockPool {
 public:
  // A block for `bytes`, counted: the smallest free one that fits, or a new
  // segment; nullptr when the system refuses.
  void* take(std::size_t bytes) {
    const std::size_t need = round_up(bytes, kAlignment);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto fit = free_.lower_bound({need, nullptr});
      if (cache_limit > 0 && fit != free_.end()) return claim(fit, bytes, need);
    }
    return add_segment(bytes, round_up(need, kSegmentStep));
  }

  // Frees the block at `data` (merged with its free neighbours) and gives
  // whole free segments back to the system past the limit.
  void give_back(void* data) {
    std::vector<std::pair<char*, std::size_t>> unused;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto block = blocks_.find(static_cast<char*>(data));
      assert(block != blocks_.end() && !block->second.free);
      bytes_allocated.fetch_sub(block->second.size, std::memory_order_relaxed);
      hide(data, block->second.size);
      block->second.free = true;
      free_bytes_ += block->second.size;
      segments_.at(block->second.segment).last_use = ++clock_;
      const auto next = std::next(block);
      if (next != blocks_.end() && mergeable(block->second, next->second)) merge(block, next);
      if (block != blocks_.begin() && mergeable(std::prev(block)->second, block->second))
        block = merge(std::prev(block), block);
      free_.insert({block->second.size, block->first});
      unused = trim_locked(cache_limit);
    }
    for (const auto& [at, size] : unused) release(at, size);
  }

  // Gives whole free segments back to the system, least recently used first,
  // until at most `limit` free bytes are kept or none is wholly free.
  void trim(std::size_t limit) {
    std::vector<std::pair<char*, std::size_t>> unused;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      unused = trim_locked(limit);
    }
    for (const auto& [at, size] : unused) release(at, size);
  }
  std::size_t free_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return free_bytes_;
  }

 private:
  struct Block {
    std::size_t size;
    bool free;
    char* segment;  // the address of the segment it lies in
  };
  struct Segment {
    std::size_t size;
    std::uint64_t last_use;
  };
  using Blocks = std::map<char*, Block>;  // by address: neighbours are adjacent entries
  using Segments = std::map<char*, Segment>;
  using FreeIndex = std::set<std::pair<std::size_t, char*>>;  // free blocks by size, then address

  // Hands out the free block at `fit` for `bytes` (`need` rounded), its rest
  // split off as a free block of its own when at least kPooledBytes.
  void* claim(FreeIndex::iterator fit, std::size_t bytes, std::size_t need) {
    char* at = fit->second;
    Block& block = blocks_.at(at);
    if (block.size - need >= kPooledBytes) {  // the rest filed first: a failed insert changes nothing
      const auto rest = blocks_.emplace(at + need, Block{block.size - need, true, block.segment}).first;
      try {
        free_.insert({block.size - need, at + need});
      } catch (...) {
        blocks_.erase(rest);
        throw;
      }
      block.size = need;
    }
    free_.erase(fit);
    block.free = false;
    free_bytes_ -= block.size;
    segments_.at(block.segment).last_use = ++clock_;
    add_allocated(block.size);
    expose(at, bytes, block.size);
    return at;
  }

  // A new segment of `segment_size` bytes, in use as one block for `bytes`.
  void* add_segment(std::size_t bytes, std::size_t segment_size) {
    char* at = static_cast<char*>(std::aligned_alloc(kAlignment, segment_size));
    if (!at) return nullptr;
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      segments_.emplace(at, Segment{segment_size, ++clock_});
      blocks_.emplace(at, Block{segment_size, false, at});
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      segments_.erase(at);
      std::free(at);
      throw;
    }
    add_reserved(segment_size);
    add_allocated(segment_size);
    expose(at, bytes, segment_size);
    return at;
  }

  // Takes the wholly free segments out of the pool, least recently used
  // first, until at most `limit` free bytes are kept; the caller releases
  // them after unlocking.
  std::vector<std::pair<char*, std::size_t>> trim_locked(std::size_t limit) {
    std::vector<std::pair<char*, std::size_t>> unused;
    while (free_bytes_ > limit) {
      const auto oldest = oldest_free_segment();
      if (oldest == segments_.end()) break;  // the free bytes lie in segments in use
      free_.erase({oldest->second.size, oldest->first});
      blocks_.erase(oldest->first);
      free_bytes_ -= oldest->second.size;
      unused.emplace_back(oldest->first, oldest->second.size);
      segments_.erase(oldest);
    }
    return unused;
  }

  static bool mergeable(const Block& a, const Block& b) { return a.free && b.free && a.segment == b.segment; }
  // Merges the block `second` into its neighbour `first`, both free; the
  // result is out of the free index for the caller to file.
  Blocks::iterator merge(Blocks::iterator first, Blocks::iterator second) {
    free_.erase({first->second.size, first->first});
    free_.erase({second->second.size, second->first});  // one of the two was just freed, not yet filed
    first->second.size += second->second.size;
    blocks_.erase(second);
    return first;
  }
  // The wholly free segment used longest ago, or end().
  Segments::iterator oldest_free_segment() {
    auto oldest = segments_.end();
    for (auto it = segments_.begin(); it != segments_.end(); ++it) {
      const Block& first = blocks_.at(it->first);
      const bool whole_and_free = first.free && first.size == it->second.size;
      if (whole_and_free && (oldest == segments_.end() || it->second.last_use < oldest->second.last_use)) oldest = it;
    }
    return oldest;
  }

  std::mutex mutex_;
  Blocks blocks_;
  FreeIndex free_;
  Segments segments_;
  std::size_t free_bytes_ = 0;
  std::uint64_t clock_ = 0;
};

// Never destroyed: storages may die during static destruction.
BlockPool& block_pool() {
  static BlockPool* pool = new BlockPool;
  return *pool;
}

// A buffer of `bytes` from this thread's cache or the system, counted.
void* take_small(std::size_t bytes) {
  const std::size_t size = capacity(bytes);
  BufferCache* c = cache();
  if (c) {
    auto it = c->by_size.find(size);
    if (it != c->by_size.end() && !it->second.buffers.empty()) {
      void* data = it->second.buffers.back();
      it->second.buffers.pop_back();
      it->second.last_use = ++c->clock;
      c->bytes -= size;
      add_allocated(size);
      expose(data, bytes, size);
      return data;
    }
  }
  void* data = std::aligned_alloc(kAlignment, size);
  if (data) {
    add_reserved(size);
    add_allocated(size);
    expose(data, bytes, size);
  }
  return data;
}

void keep_small(void* data, std::size_t bytes) {
  const std::size_t size = capacity(bytes);
  bytes_allocated.fetch_sub(size, std::memory_order_relaxed);
  BufferCache* c = cache();
  const std::size_t limit = cache_limit;
  if (c && size <= limit) {
    hide(data, size);
    c->make_room(size, limit);
    SizeClass& kept = c->by_size[size];
    kept.buffers.push_back(data);
    kept.last_use = ++c->clock;
    c->bytes += size;
    return;
  }
  release(data, size);
}

}  // namespace

Storage::Storage(std::size_t bytes) : bytes_(bytes) {
  data_ = pooled(bytes) ? block_pool().take(bytes) : take_small(bytes);
  if (!data_) throw Error("tensor: out of memory allocating " + std::to_string(bytes) + " bytes");
}

Storage::~Storage() {
  if (pooled(bytes_))
    block_pool().give_back(data_);
  else
    keep_small(data_, bytes_);
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
  block_pool().trim(bytes);
}

std::size_t buffer_cache_limit() { return cache_limit; }

std::size_t buffer_cache_bytes() {
  const BufferCache* c = cache();
  return (c ? c->bytes : 0) + block_pool().free_bytes();
}

void clear_buffer_cache() {
  if (BufferCache* c = cache()) c->clear();
  block_pool().trim(0);
}

MemoryStats memory_stats() {
  MemoryStats m;
  // Two loads, not one snapshot: a free and release on another thread
  // between them could show more allocated than reserved.
  m.reserved = bytes_reserved.load(std::memory_order_relaxed);
  m.allocated = std::min(bytes_allocated.load(std::memory_order_relaxed), m.reserved);
  m.max_allocated = max_allocated.load(std::memory_order_relaxed);
  m.max_reserved = max_reserved.load(std::memory_order_relaxed);
  return m;
}

void reset_peak_memory() {
  max_allocated.store(bytes_allocated.load(std::memory_order_relaxed), std::memory_order_relaxed);
  max_reserved.store(bytes_reserved.load(std::memory_order_relaxed), std::memory_order_relaxed);
  // A peak another thread reached between a load and its store stays counted.
  raise_to(max_allocated, bytes_allocated.load(std::memory_order_relaxed));
  raise_to(max_reserved, bytes_reserved.load(std::memory_order_relaxed));
}

}  // namespace tg
