// Reuse of large value buffers. A training step allocates the same large
// arrays every iteration (im2col columns, activations, their gradients).
// Fresh memory from the system costs a page fault per 4 KiB on first touch,
// which measured here at more than a third of a conv layer's time. So when a
// tensor dies its large buffer is kept, per thread and per element count, and
// the next array of that many elements takes it instead of new memory.
#pragma once

#include <algorithm>
#include <cstddef>

#include <xtensor/xarray.hpp>

#include "error.hpp"

namespace tg {

// An array of this shape with uninitialized elements, reusing a kept buffer
// of the same element count when there is one.
template <class T>
xt::xarray<T> empty_array(const Shape& shape);

template <class T>
xt::xarray<T> empty_array(const typename xt::xarray<T>::shape_type& shape) {
  return empty_array<T>(Shape(shape.begin(), shape.end()));
}

// The same, filled with zeros.
template <class T>
xt::xarray<T> zeros_array(const Shape& shape) {
  xt::xarray<T> a = empty_array<T>(shape);
  std::fill(a.begin(), a.end(), T(0));
  return a;
}

// Hands a dying array's buffer to the cache (large buffers only, within the
// limit); the array is left empty.
template <class T>
void recycle(xt::xarray<T>&& array);

// Upper bound on the bytes kept per thread (default 1 GiB); 0 disables reuse.
void set_buffer_cache_limit(std::size_t bytes);
std::size_t buffer_cache_limit();
std::size_t buffer_cache_bytes();  // kept now on this thread
void clear_buffer_cache();         // frees what this thread keeps

}  // namespace tg
