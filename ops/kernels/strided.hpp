// Plain loops over contiguous row-major buffers, with no tape: broadcasting
// elementwise maps. The strided walks themselves are in core/strided.hpp.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "../../core/parallel.hpp"
#include "../../core/strided.hpp"
#include "../../core/tensor.hpp"

namespace tg::kernels {

using tg::contiguous_strides;
using tg::for_each_offset;
using tg::for_each_row;
using tg::parallel_for;
using tg::parallel_rows;
using tg::product;
using tg::Strides;

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

// out[i] = f(x[i]) for a contiguous x; out has element type R.
template <class T, class R = T, class F>
Tensor map(const Tensor& x, F&& f) {
  Tensor out = empty(x.shape(), dtype_of<R>());
  const T* px = x.data<T>();
  R* po = static_cast<R*>(out.impl()->storage->data());
  const std::size_t n = x.numel();
  parallel_for(n, n, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) po[i] = f(px[i]);
  });
  return out;
}

// out = f(a, b) with broadcasting, for contiguous a and b of element type T;
// out has element type R. Equal shapes and a single-element operand take
// direct loops; anything else walks broadcast strides.
template <class T, class R = T, class F>
Tensor map(const char* op, const Tensor& a, const Tensor& b, F&& f) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  const bool same = a.shape() == b.shape();
  if (same || (b.numel() == 1 && b.dim() <= a.dim())) {
    Tensor out = empty(a.shape(), dtype_of<R>());
    R* po = static_cast<R*>(out.impl()->storage->data());
    const std::size_t n = a.numel();
    parallel_for(n, n, [&](std::size_t begin, std::size_t end) {
      if (same)
        for (std::size_t i = begin; i < end; ++i) po[i] = f(pa[i], pb[i]);
      else
        for (std::size_t i = begin; i < end; ++i) po[i] = f(pa[i], pb[0]);
    });
    return out;
  }
  if (a.numel() == 1 && a.dim() <= b.dim()) {
    Tensor out = empty(b.shape(), dtype_of<R>());
    R* po = static_cast<R*>(out.impl()->storage->data());
    const std::size_t n = b.numel();
    parallel_for(n, n, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) po[i] = f(pa[0], pb[i]);
    });
    return out;
  }
  const Shape out_shape = broadcast_shapes(op, a.shape(), b.shape());
  Tensor out = empty(out_shape, dtype_of<R>());
  R* po = static_cast<R*>(out.impl()->storage->data());
  Shape shape = out_shape;
  Strides sa = broadcast_strides(a.shape(), shape), sb = broadcast_strides(b.shape(), shape),
          so = contiguous_strides(shape);
  coalesce_axes(shape, sa, sb, so);
  const std::size_t n = shape.empty() ? 1 : shape.back();
  const std::ptrdiff_t da = shape.empty() ? 0 : sa.back(), db = shape.empty() ? 0 : sb.back();
  // Along the last axis each operand is either walked (stride 1) or repeated (stride 0).
  parallel_rows(shape, sa, sb, so, [&](std::ptrdiff_t ia, std::ptrdiff_t ib, std::ptrdiff_t io) {
    const T* x = pa + ia;
    const T* y = pb + ib;
    R* z = po + io;
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
