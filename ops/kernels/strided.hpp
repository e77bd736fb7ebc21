// Plain loops over contiguous row-major buffers, with no tape: broadcasting
// elementwise maps and strided walks used by reductions and permutes.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "../../core/error.hpp"
#include "../../core/storage.hpp"

namespace tg::kernels {

using Strides = std::vector<std::ptrdiff_t>;

template <class ShapeLike>
std::size_t product(const ShapeLike& shape) {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// Row-major strides (in elements) of a contiguous buffer of this shape.
template <class ShapeLike>
Strides contiguous_strides(const ShapeLike& shape) {
  Strides s(shape.size());
  std::ptrdiff_t step = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    s[i] = step;
    step *= static_cast<std::ptrdiff_t>(shape[i]);
  }
  return s;
}

// NumPy broadcasting of two shapes; throws ShapeError naming `op`.
template <class A, class B>
Shape broadcast_shapes(const char* op, const A& a, const B& b) {
  const std::size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const std::size_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ShapeError(std::string(op) + ": cannot broadcast shapes " + shape_str(a) + " and " +
                       shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides that read a contiguous `in` as if it had the broadcast shape `out`
// (0 along every broadcast axis). `in` must broadcast to `out`.
template <class In>
Strides broadcast_strides(const In& in, const Shape& out) {
  const Strides own = contiguous_strides(in);
  Strides s(out.size(), 0);
  const std::size_t lead = out.size() - in.size();
  for (std::size_t i = 0; i < in.size(); ++i) s[lead + i] = in[i] == 1 ? 0 : own[i];
  return s;
}

// Calls row(o0, o1, o2) for every index of shape[:-1] in row-major order,
// where ok is that row's first offset under strides sk; the caller walks the
// last axis (shape.back() elements, strides sk.back()) itself, so that it can
// pick a tight loop for the strides it sees. A 0-d shape is one row.
template <class F>
void for_each_row(const Shape& shape, const Strides& s0, const Strides& s1, const Strides& s2, F&& row) {
  if (product(shape) == 0) return;
  const std::size_t nd = shape.size();
  if (nd <= 1) {
    row(std::ptrdiff_t(0), std::ptrdiff_t(0), std::ptrdiff_t(0));
    return;
  }
  std::vector<std::size_t> index(nd - 1, 0);
  std::ptrdiff_t o0 = 0, o1 = 0, o2 = 0;
  for (std::size_t r = 0, rows = product(shape) / shape.back(); r < rows; ++r) {
    row(o0, o1, o2);
    for (std::size_t d = nd - 1; d-- > 0;) {
      if (++index[d] < shape[d]) {
        o0 += s0[d];
        o1 += s1[d];
        o2 += s2[d];
        break;
      }
      const auto back = static_cast<std::ptrdiff_t>(shape[d] - 1);
      o0 -= s0[d] * back;
      o1 -= s1[d] * back;
      o2 -= s2[d] * back;
      index[d] = 0;
    }
  }
}

// Calls f(o0, o1, o2) for every index of `shape`, with ok its offset under sk.
template <class F>
void for_each_offset(const Shape& shape, const Strides& s0, const Strides& s1, const Strides& s2, F&& f) {
  const std::size_t inner = shape.empty() ? 1 : shape.back();
  const std::ptrdiff_t d0 = shape.empty() ? 0 : s0.back(), d1 = shape.empty() ? 0 : s1.back(),
                       d2 = shape.empty() ? 0 : s2.back();
  for_each_row(shape, s0, s1, s2, [&](std::ptrdiff_t o0, std::ptrdiff_t o1, std::ptrdiff_t o2) {
    for (std::size_t i = 0; i < inner; ++i) {
      const auto k = static_cast<std::ptrdiff_t>(i);
      f(o0 + k * d0, o1 + k * d1, o2 + k * d2);
    }
  });
}

// out[i] = f(x[i]).
template <class T, class F>
xt::xarray<T> map(const xt::xarray<T>& x, F&& f) {
  xt::xarray<T> out = empty_array<T>(x.shape());
  const T* px = x.data();
  T* po = out.data();
  for (std::size_t i = 0, n = x.size(); i < n; ++i) po[i] = f(px[i]);
  return out;
}

// out = f(a, b) with broadcasting. Equal shapes and a single-element operand
// take direct loops; anything else walks broadcast strides.
template <class T, class F>
xt::xarray<T> map(const char* op, const xt::xarray<T>& a, const xt::xarray<T>& b, F&& f) {
  const T* pa = a.data();
  const T* pb = b.data();
  const bool same = a.shape() == b.shape();
  if (same || (b.size() == 1 && b.dimension() <= a.dimension())) {
    xt::xarray<T> out = empty_array<T>(a.shape());
    T* po = out.data();
    const std::size_t n = a.size();
    if (same)
      for (std::size_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
    else
      for (std::size_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[0]);
    return out;
  }
  if (a.size() == 1 && a.dimension() <= b.dimension()) {
    xt::xarray<T> out = empty_array<T>(b.shape());
    T* po = out.data();
    for (std::size_t i = 0, n = b.size(); i < n; ++i) po[i] = f(pa[0], pb[i]);
    return out;
  }
  const Shape shape = broadcast_shapes(op, a.shape(), b.shape());
  xt::xarray<T> out = empty_array<T>(shape);
  T* po = out.data();
  const Strides sa = broadcast_strides(a.shape(), shape), sb = broadcast_strides(b.shape(), shape);
  const std::size_t n = shape.empty() ? 1 : shape.back();
  const std::ptrdiff_t da = shape.empty() ? 0 : sa.back(), db = shape.empty() ? 0 : sb.back();
  // Along the last axis each operand is either walked (stride 1) or repeated (stride 0).
  for_each_row(shape, sa, sb, contiguous_strides(shape), [&](std::ptrdiff_t ia, std::ptrdiff_t ib, std::ptrdiff_t io) {
    const T* x = pa + ia;
    const T* y = pb + ib;
    T* z = po + io;
    if (da == 1 && db == 1)
      for (std::size_t i = 0; i < n; ++i) z[i] = f(x[i], y[i]);
    else if (da == 1)
      for (std::size_t i = 0; i < n; ++i) z[i] = f(x[i], y[0]);
    else if (db == 1)
      for (std::size_t i = 0; i < n; ++i) z[i] = f(x[0], y[i]);
    else
      for (std::size_t i = 0; i < n; ++i) z[i] = f(x[0], y[0]);
  });
  return out;
}

}  // namespace tg::kernels
