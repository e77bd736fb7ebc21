// The memory behind tensors. A Storage is one buffer of elements; a tensor
// is a view of it (offset, shape, strides), and views share it.
//
// Buffers are reused. A training step allocates the same large buffers every
// iteration (im2col columns, activations, their gradients). Fresh memory from
// the system costs a page fault per 4 KiB on first touch, which measured here
// at more than a third of a conv layer's time. So when a storage dies its
// buffer is kept for the next one. Buffers of 64 KiB and more go to one pool
// shared by all threads, which splits and merges blocks so that one layer's
// dead arrays serve another's of other sizes; smaller ones are kept per
// thread and per size class. Full caches drop what was used longest ago.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dtype.hpp"

namespace tg {

class Storage {
 public:
  // `bytes` uninitialized bytes, 64-byte aligned; a named Error (not a bare
  // bad_alloc) when the system refuses.
  explicit Storage(std::size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }

  // Bumped by every in-place write, so that backward can tell a saved tensor
  // that changed after it was saved.
  std::uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  std::uint64_t version_ = 0;
};

// The most memory this machine could give one allocation: its RAM and swap.
// Files that declare more are refused before anything is allocated (with
// overcommit such an allocation may succeed and fail only when touched).
std::uint64_t system_memory_bytes();

// The free bytes kept for reuse by each thread's cache of small buffers and
// by the pool of large ones (default 1 GiB each); 0 disables reuse. Lowering
// it frees this thread's and the pool's least recently used buffers down to
// it. The pool gives memory back to the system in whole segments, so it may
// keep more: free blocks of a segment still partly in use stay until the
// whole segment is free (and then go at the next free past the limit).
void set_buffer_cache_limit(std::size_t bytes);
std::size_t buffer_cache_limit();
std::size_t buffer_cache_bytes();  // kept now by this thread and the pool
// Frees this thread's small buffers and the pool's wholly free segments.
void clear_buffer_cache();

// Tensor memory in this process, in bytes as allocated (size classes and
// unsplit block remainders included), in PyTorch's terms for its caching
// allocator: `allocated` is what storages hold now, `reserved` that plus what
// the caches keep for reuse, and the max_ fields their largest values since
// the start or reset_peak_memory(). max_reserved estimates the resident
// memory a training step adds (it counts buffers whole, touched or not, and
// not what malloc keeps after a free); max_allocated is what its tensors
// needed at once.
struct MemoryStats {
  std::size_t allocated = 0, reserved = 0;
  std::size_t max_allocated = 0, max_reserved = 0;
};
MemoryStats memory_stats();
void reset_peak_memory();  // the max_ fields restart from the values now

}  // namespace tg
