#include "storage.hpp"

#include <atomic>
#include <unordered_map>
#include <vector>

namespace tg {

namespace {

// Smaller buffers come cheaply from malloc's own free lists.
constexpr std::size_t kMinCachedBytes = 64 * 1024;
std::atomic<std::size_t> cache_limit{std::size_t(1) << 30};

template <class T>
struct BufferCache {
  std::unordered_map<std::size_t, std::vector<xt::xarray<T>>> by_size;  // element count -> arrays
  std::size_t bytes = 0;
};

// This thread's cache, or nullptr while the thread is exiting (a tensor with
// static storage may die after the thread's cache).
template <class T>
BufferCache<T>* cache() {
  static thread_local bool torn_down = false;  // trivially destructible: readable at exit
  if (torn_down) return nullptr;
  thread_local struct Holder {
    BufferCache<T> cache;
    ~Holder() { torn_down = true; }
  } holder;
  return &holder.cache;
}

}  // namespace

template <class T>
xt::xarray<T> empty_array(const Shape& shape) {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  BufferCache<T>* c = cache<T>();
  if (c && n * sizeof(T) >= kMinCachedBytes) {
    auto it = c->by_size.find(n);
    if (it != c->by_size.end() && !it->second.empty()) {
      xt::xarray<T> a = std::move(it->second.back());
      it->second.pop_back();
      c->bytes -= n * sizeof(T);
      a.resize(shape);  // same element count: keeps the buffer
      return a;
    }
  }
  return xt::xarray<T>(shape);
}

template <class T>
void recycle(xt::xarray<T>&& array) {
  const std::size_t n = array.size(), bytes = n * sizeof(T);
  BufferCache<T>* c = cache<T>();
  if (!c || bytes < kMinCachedBytes || c->bytes + bytes > cache_limit) return;
  c->bytes += bytes;
  c->by_size[n].push_back(std::move(array));
}

void set_buffer_cache_limit(std::size_t bytes) {
  cache_limit = bytes;
  if (buffer_cache_bytes() > bytes) clear_buffer_cache();
}

std::size_t buffer_cache_limit() { return cache_limit; }

std::size_t buffer_cache_bytes() {
  std::size_t bytes = 0;
  if (auto* c = cache<float>()) bytes += c->bytes;
  if (auto* c = cache<double>()) bytes += c->bytes;
  return bytes;
}

void clear_buffer_cache() {
  if (auto* c = cache<float>()) *c = {};
  if (auto* c = cache<double>()) *c = {};
}

template xt::xarray<float> empty_array<float>(const Shape&);
template xt::xarray<double> empty_array<double>(const Shape&);
template void recycle<float>(xt::xarray<float>&&);
template void recycle<double>(xt::xarray<double>&&);

}  // namespace tg
