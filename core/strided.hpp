// Walking a strided layout: the loops that every copy, broadcast and
// reduction kernel shares. Plain code over offsets; no tape, no dtype.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "error.hpp"

namespace tg {

using Strides = std::vector<std::ptrdiff_t>;  // in elements

template <class ShapeLike>
std::size_t product(const ShapeLike& shape) {
  std::size_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

// Row-major strides of a contiguous buffer of this shape.
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

// The rows for_each_row walks: one per index of shape[:-1], none if empty.
inline std::size_t row_count(const Shape& shape) {
  const std::size_t n = product(shape);
  return n == 0 ? 0 : n / (shape.empty() ? 1 : shape.back());
}

// Calls row(o0, o1, o2) for every index of shape[:-1] in row-major order,
// where ok is that row's first offset under strides sk; the caller walks the
// last axis (shape.back() elements, strides sk.back()) itself, so that it can
// pick a tight loop for the strides it sees. A 0-d shape is one row. Only
// rows [first, last) when given (a part of the walk, for parallel_rows).
template <class F>
void for_each_row(const Shape& shape, const Strides& s0, const Strides& s1, const Strides& s2, F&& row,
                  std::size_t first = 0, std::size_t last = std::size_t(-1)) {
  last = std::min(last, row_count(shape));
  if (first >= last) return;
  const std::size_t nd = shape.size();
  if (nd <= 1) {
    row(std::ptrdiff_t(0), std::ptrdiff_t(0), std::ptrdiff_t(0));
    return;
  }
  // The index and offsets of row `first`.
  std::vector<std::size_t> index(nd - 1, 0);
  std::ptrdiff_t o0 = 0, o1 = 0, o2 = 0;
  for (std::size_t d = nd - 1, rest = first; d-- > 0; rest /= shape[d]) {
    index[d] = rest % shape[d];
    const auto i = static_cast<std::ptrdiff_t>(index[d]);
    o0 += s0[d] * i;
    o1 += s1[d] * i;
    o2 += s2[d] * i;
  }
  for (std::size_t r = first; r < last; ++r) {
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

// Merges neighbouring axes that each of the three layouts walks as one axis
// (stride[i] == stride[i+1]·shape[i+1], which holds for contiguous and for
// broadcast axes alike): the same offsets in the same order, in fewer and
// longer rows. (N, C, H, W) against a (C, 1, 1) bias walks as (N, C, H·W).
inline void coalesce_axes(Shape& shape, Strides& s0, Strides& s1, Strides& s2) {
  if (shape.size() < 2) return;
  std::size_t kept = 0;  // the last axis written so far
  for (std::size_t i = 1; i < shape.size(); ++i) {
    const auto inner = static_cast<std::ptrdiff_t>(shape[i]);
    const bool joins = s0[kept] == s0[i] * inner && s1[kept] == s1[i] * inner && s2[kept] == s2[i] * inner;
    if (joins) {
      shape[kept] *= shape[i];
      s0[kept] = s0[i], s1[kept] = s1[i], s2[kept] = s2[i];
    } else {
      ++kept;
      shape[kept] = shape[i], s0[kept] = s0[i], s1[kept] = s1[i], s2[kept] = s2[i];
    }
  }
  for (auto* v : {&s0, &s1, &s2}) v->resize(kept + 1);
  shape.resize(kept + 1);
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

}  // namespace tg
