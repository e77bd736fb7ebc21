#include "reduce.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../core/autograd.hpp"
#include "elementwise.hpp"
#include "kernels/lane_sum.hpp"
#include "kernels/strided.hpp"
#include "shape.hpp"

namespace tg {

namespace {

// Where each input element lands when `axes` of `shape` are reduced.
struct Reduction {
  Shape keep_shape;             // reduced axes kept with size 1
  Shape drop_shape;             // reduced axes removed
  // The input's shape with neighbouring axes merged where both are reduced or
  // both kept (coalesce_axes): the same elements in the same order, walked in
  // longer runs ((N, C, H, W) over {0, 2, 3} is walked as (N, C, H·W)).
  Shape loop_shape;
  kernels::Strides out_strides; // loop_shape index -> output offset (0 along reduced axes)
  std::size_t count = 1;        // elements summed into each output
};

Reduction plan_reduction(const char* op, const Shape& shape, const Axes& axes) {
  std::vector<bool> reduced(shape.size(), false);
  for (auto a : axes) {
    const std::size_t i = normalize_axis(op, a, shape.size(), shape);
    if (reduced[i])
      throw AxisError(std::string(op) + ": axis " + std::to_string(a) + " is given twice for shape " +
                      shape_str(shape));
    reduced[i] = true;
  }
  Reduction r;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    r.keep_shape.push_back(reduced[i] ? 1 : shape[i]);
    if (reduced[i]) r.count *= shape[i];
    else r.drop_shape.push_back(shape[i]);
  }
  r.out_strides = kernels::contiguous_strides(r.keep_shape);
  for (std::size_t i = 0; i < shape.size(); ++i)
    if (reduced[i]) r.out_strides[i] = 0;
  r.loop_shape = shape;
  kernels::Strides in = kernels::contiguous_strides(shape), none(shape.size(), 0);
  coalesce_axes(r.loop_shape, in, r.out_strides, none);
  return r;
}

Axes all_axes(std::size_t ndim) {
  Axes axes(ndim);
  for (std::size_t i = 0; i < ndim; ++i) axes[i] = std::ptrdiff_t(i);
  return axes;
}

// Walks a tensor of `shape` row by row for a reduction: calls
// row(input offset, output offset, n) for each run of n elements along the
// last axis. When the last axis is reduced the whole run lands in output
// element o; otherwise element k of the run lands in output element o + k.
// Callers pick the matching tight loop.
template <class Row>
void for_each_reduced_row(const Reduction& r, Row&& row) {
  const Shape& shape = r.loop_shape;
  const std::size_t n = shape.empty() ? 1 : shape.back();
  const kernels::Strides none(shape.size(), 0);
  for_each_row(shape, kernels::contiguous_strides(shape), r.out_strides, none,
                        [&](std::ptrdiff_t i, std::ptrdiff_t o, std::ptrdiff_t) { row(i, o, n); });
}

// Whether the last axis of the walk is reduced under r.
bool last_axis_reduced(const Reduction& r) { return r.loop_shape.empty() || r.out_strides.back() == 0; }

// for_each_reduced_row with the outputs split over threads: part(lo, hi,
// walk) runs once per thread, and walk(row) walks every row but passes on
// only the elements of outputs [lo, hi), in the serial order. Every output
// sees the same operations in the same order with any thread count.
template <class Part>
void parallel_output_parts(const Reduction& r, Part&& part) {
  const std::size_t outputs = kernels::product(r.keep_shape);
  const bool whole_run = last_axis_reduced(r);
  kernels::parallel_for(outputs, kernels::product(r.loop_shape), [&](std::size_t lo, std::size_t hi) {
    part(lo, hi, [&](auto&& row) {
      if (lo == 0 && hi == outputs) return for_each_reduced_row(r, row);
      for_each_reduced_row(r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
        const auto first = std::size_t(o);
        if (whole_run) {
          if (first >= lo && first < hi) row(i, o, n);
          return;
        }
        const std::size_t k0 = lo > first ? lo - first : 0, k1 = std::min(n, hi > first ? hi - first : 0);
        if (k0 < k1) row(i + std::ptrdiff_t(k0), o + std::ptrdiff_t(k0), k1 - k0);
      });
    });
  });
}

template <class Row>
void parallel_reduced_rows(const Reduction& r, Row&& row) {
  parallel_output_parts(r, [&](std::size_t, std::size_t, auto&& walk) { walk(row); });
}

// acc[o] += x[i] for every element: a reduced run is summed in registers
// (lane_sum), a kept one is added as a vector.
template <class T, class Acc>
void sum_into(const T* x, const Reduction& r, Acc* acc) {
  const bool whole_run = last_axis_reduced(r);
  parallel_reduced_rows(r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
    const T* run = x + i;
    if (whole_run) {
      acc[o] += kernels::lane_sum<Acc>(n, [run](std::size_t k) { return run[k]; });
    } else {
      Acc* a = acc + o;
      for (std::size_t k = 0; k < n; ++k) a[k] += run[k];
    }
  });
}

// Where max's gradient goes: every element equal to its output's maximum (a
// NaN maximum: every NaN), as flat positions into x. pos[o] is the first
// maximum of output o, for o < M = number of outputs; where outputs have
// ties, pos[M..P) are the other maxima and rows[p] the output each position
// belongs to (rows[o] = o for o < M), and share[o] = 1 / (number of maxima
// of output o). Without ties rows and share are undefined.
struct MaxPositions {
  Tensor pos, rows, share;
};

template <class T>
bool is_max(T v, T m) { return v == m || (v != v && m != m); }

// The positions of the maxima py of x's runs (the forward's result).
template <class T>
MaxPositions max_positions(const T* px, const T* py, const Reduction& r) {
  const std::size_t outputs = kernels::product(r.keep_shape);
  const bool whole_run = last_axis_reduced(r);
  Tensor first_pos = empty(Shape{outputs}, kInt64);
  std::int64_t* first = static_cast<std::int64_t*>(first_pos.impl()->storage->data());
  std::fill(first, first + outputs, std::int64_t(-1));
  std::vector<std::uint32_t> count(outputs, 0);
  // Counts the maxima of each output and keeps the first one's position.
  parallel_reduced_rows(r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
    const T* run = px + i;
    if (whole_run) {
      const T m = py[o];
      std::int64_t f = first[o];
      std::uint32_t c = count[std::size_t(o)];
      for (std::size_t k = 0; k < n; ++k) {
        const bool hit = is_max(run[k], m);
        c += hit;
        f = hit && f < 0 ? std::int64_t(i) + std::int64_t(k) : f;
      }
      first[o] = f;
      count[std::size_t(o)] = c;
    } else {
      const T* m = py + o;
      std::int64_t* f = first + o;
      std::uint32_t* c = count.data() + o;
      for (std::size_t k = 0; k < n; ++k) {
        const bool hit = is_max(run[k], m[k]);
        c[k] += hit;
        f[k] = hit && f[k] < 0 ? std::int64_t(i) + std::int64_t(k) : f[k];
      }
    }
  });
  std::size_t extra = 0;
  for (std::uint32_t c : count) extra += c - 1;
  MaxPositions where;
  if (extra == 0) {
    where.pos = std::move(first_pos);
    return where;
  }
  where.pos = empty(Shape{outputs + extra}, kInt64);
  where.rows = empty(Shape{outputs + extra}, kInt64);
  std::int64_t* pos = static_cast<std::int64_t*>(where.pos.impl()->storage->data());
  std::int64_t* rows = static_cast<std::int64_t*>(where.rows.impl()->storage->data());
  std::copy(first, first + outputs, pos);
  for (std::size_t o = 0; o < outputs; ++o) rows[o] = std::int64_t(o);
  // The other maxima of outputs [lo, hi) go after those of the outputs before
  // lo: each thread knows where its part starts.
  parallel_output_parts(r, [&](std::size_t lo, std::size_t, auto&& walk) {
    std::size_t next = outputs;
    for (std::size_t o = 0; o < lo; ++o) next += count[o] - 1;
    walk([&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t at = std::size_t(o) + (whole_run ? 0 : k);
        const std::int64_t ik = std::int64_t(i) + std::int64_t(k);
        if (count[at] > 1 && ik != first[at] && is_max(px[ik], py[at])) {
          pos[next] = ik;
          rows[next++] = std::int64_t(at);
        }
      }
    });
  });
  where.share = empty(Shape{outputs}, dtype_of<T>());
  T* share = static_cast<T*>(where.share.impl()->storage->data());
  for (std::size_t o = 0; o < outputs; ++o) share[o] = T(1) / T(count[o]);
  return where;
}

// A zero vector of `numel` elements with src[rows[p]] added at pos[p] for
// each p (src[p] when rows is undefined): max's gradient in x's flat layout.
// Its adjoint reads the positions back and sums them per row:
// scatter_add(zeros, 0, rows, index_select(g, 0, pos)), so a max
// differentiates twice.
Tensor scatter_positions(const Tensor& src0, const Tensor& pos, const Tensor& rows, std::size_t numel) {
  const Tensor src = src0.contiguous();
  Tensor out = zeros(Shape{numel}, src.dtype());
  const std::size_t count = pos.numel();
  visit_floating("scatter_positions", src.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* ps = src.data<T>();
    const std::int64_t* pp = pos.data<std::int64_t>();
    T* po = static_cast<T*>(out.impl()->storage->data());
    const std::int64_t* pr = rows.defined() ? rows.data<std::int64_t>() : nullptr;
    // The positions are distinct: the parts write distinct elements.
    kernels::parallel_for(count, count, [&](std::size_t first, std::size_t last) {
      if (pr)
        for (std::size_t p = first; p < last; ++p) po[pp[p]] += ps[pr[p]];
      else
        for (std::size_t p = first; p < last; ++p) po[pp[p]] += ps[p];
    });
  });
  return record("scatter_positions", {src}, std::move(out)).backward([pos, rows](const GradContext& c) {
    const Tensor picked = index_select(c.grad, 0, pos);
    if (!rows.defined()) return Grads{picked};
    return Grads{scatter_add(zeros(c.input_shape(0), c.input_dtype(0)), 0, rows, picked)};
  });
}

}  // namespace

// ============================================================================
// sum / mean — the adjoint of sum is broadcast_to
// ============================================================================

Tensor sum(const Tensor& x0, const Axes& axes, bool keepdims) {
  const Tensor x = x0.contiguous();
  const Shape& in_shape = x.shape();
  const Reduction r = plan_reduction("sum", in_shape, axes);
  const Shape& out_shape = keepdims ? r.keep_shape : r.drop_shape;
  Tensor out = visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<T>) {
      // Accumulate in double: a float sum of a million terms loses digits.
      std::vector<double> acc(kernels::product(r.keep_shape), 0.0);
      sum_into(x.data<T>(), r, acc.data());
      Tensor result = empty(out_shape, x.dtype());
      std::copy(acc.begin(), acc.end(), static_cast<T*>(result.impl()->storage->data()));
      return result;
    } else {
      Tensor result = zeros(out_shape, kInt64);
      sum_into(x.data<T>(), r, static_cast<std::int64_t*>(result.impl()->storage->data()));
      return result;
    }
  });
  return record("sum", {x}, std::move(out)).backward([keep = r.keep_shape](const GradContext& c) {
    return Grads{broadcast_to(reshape(c.grad, keep), c.input_shape(0))};
  });
}

Tensor sum(const Tensor& x) { return sum(x, all_axes(x.dim())); }

Tensor mean(const Tensor& x, const Axes& axes, bool keepdims) {
  TG_CHECK(is_floating(x.dtype()), DtypeError,
           "mean: expected a float32 or float64 tensor, got " << dtype_name(x.dtype()) << " (convert it with to())");
  const std::size_t count = plan_reduction("mean", x.shape(), axes).count;
  return mul(sum(x, axes, keepdims), 1.0 / double(count));
}

Tensor mean(const Tensor& x) { return mean(x, all_axes(x.dim())); }

Tensor broadcast_to(const Tensor& x0, const Shape& shape) {
  const Shape& in_shape = x0.shape();
  if (in_shape == shape) return x0;
  if (in_shape.size() > shape.size() || kernels::broadcast_shapes("broadcast_to", in_shape, shape) != shape)
    throw ShapeError("broadcast_to: cannot broadcast shape " + shape_str(in_shape) + " to " + shape_str(shape));
  const Tensor x = x0.contiguous();
  Tensor out = empty(shape, x.dtype());
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* po = static_cast<T*>(out.impl()->storage->data());
    Shape walk = shape;  // at least one axis: x's shape differs from it
    kernels::Strides read = kernels::broadcast_strides(in_shape, shape), write = kernels::contiguous_strides(shape),
                     none(shape.size(), 0);
    coalesce_axes(walk, read, write, none);
    const std::size_t n = walk.back();
    const bool repeat = read.back() == 0;
    kernels::parallel_rows(walk, read, write, none,
                 [&](std::ptrdiff_t i, std::ptrdiff_t o, std::ptrdiff_t) {
                   if (repeat)
                     std::fill(po + o, po + o + std::ptrdiff_t(n), px[i]);
                   else
                     std::copy(px + i, px + i + std::ptrdiff_t(n), po + o);
                 });
  });
  return record("broadcast_to", {x}, std::move(out)).backward([](const GradContext& c) {
    return Grads{sum_to(c.grad, c.input_shape(0))};
  });
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  const Shape& in_shape = x.shape();
  if (in_shape == shape) return x;
  const std::size_t lead = in_shape.size() >= shape.size() ? in_shape.size() - shape.size() : 0;
  bool ok = in_shape.size() >= shape.size();
  Axes axes;
  for (std::size_t i = 0; ok && i < in_shape.size(); ++i) {
    if (i < lead) {
      axes.push_back(std::ptrdiff_t(i));
    } else if (shape[i - lead] != in_shape[i]) {
      ok = shape[i - lead] == 1;
      axes.push_back(std::ptrdiff_t(i));
    }
  }
  if (!ok) throw ShapeError("sum_to: shape " + shape_str(in_shape) + " does not reduce to " + shape_str(shape));
  const Tensor kept = sum(x, axes, /*keepdims=*/true);
  return lead ? reshape(kept, shape) : kept;
}

// ============================================================================
// max
// ============================================================================

Tensor max(const Tensor& x0, const Axes& axes, bool keepdims) {
  const Tensor x = x0.contiguous();
  const Shape& in_shape = x.shape();
  Reduction r = plan_reduction("max", in_shape, axes);
  if (r.count == 0 && kernels::product(r.keep_shape) > 0)
    throw ShapeError("max: cannot reduce over an axis of size 0 in shape " + shape_str(in_shape));
  Tensor out = empty(keepdims ? r.keep_shape : r.drop_shape, x.dtype());
  MaxPositions where_max;
  const bool recording = should_record({x});
  visit_numeric("max", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* po = static_cast<T*>(out.impl()->storage->data());
    std::fill(po, po + out.numel(), std::numeric_limits<T>::lowest());
    if constexpr (std::numeric_limits<T>::has_infinity)
      std::fill(po, po + out.numel(), -std::numeric_limits<T>::infinity());
    const T* px = x.data<T>();
    const bool whole_run = last_axis_reduced(r);
    parallel_reduced_rows(r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
      const T* run = px + i;
      T* best = po + o;
      for (std::size_t k = 0; k < n; ++k) {
        T& b = whole_run ? best[0] : best[k];
        // A NaN wins and, as nothing compares greater than it, stays: NaN
        // propagates as in PyTorch.
        b = (run[k] > b || run[k] != run[k]) ? run[k] : b;
      }
    });
    if constexpr (std::is_floating_point_v<T>)
      if (recording) where_max = max_positions(px, po, r);
  });
  // dx: each output's gradient at its maximum's position, split equally
  // between tied maxima, zero elsewhere. The forward saves those positions
  // (int64), not x.
  return record("max", {x}, std::move(out))
      .save({where_max.pos, where_max.rows, where_max.share})
      .backward([outputs = kernels::product(r.keep_shape), numel = x.numel()](const GradContext& c) {
        const Tensor& pos = c.saved[0];
        const Tensor& rows = c.saved[1];
        Tensor g = reshape(c.grad, Shape{outputs});
        if (rows.defined()) g = mul(g, c.saved[2]);
        return Grads{reshape(scatter_positions(g, pos, rows, numel), c.input_shape(0))};
      });
}

Tensor max(const Tensor& x) {
  if (x.numel() == 0) throw ShapeError("max: tensor of shape " + shape_str(x.shape()) + " has no elements");
  return max(x, all_axes(x.dim()));
}

Tensor min(const Tensor& x, const Axes& axes, bool keepdims) { return neg(max(neg(x), axes, keepdims)); }

Tensor min(const Tensor& x) {
  if (x.numel() == 0) throw ShapeError("min: tensor of shape " + shape_str(x.shape()) + " has no elements");
  return neg(max(neg(x)));
}

// ============================================================================
// argmax / argmin — indices, no gradient
// ============================================================================

Tensor argmax(const Tensor& x0, std::ptrdiff_t axis, bool keepdims) {
  const Tensor x = x0.contiguous();
  const Shape& shape = x.shape();
  const std::size_t a = normalize_axis("argmax", axis, shape.size(), shape);
  TG_CHECK(shape[a] > 0, ShapeError, "argmax: axis " << axis << " of shape " << shape_str(shape) << " is empty");
  const Reduction r = plan_reduction("argmax", shape, {axis});
  Tensor out = empty(keepdims ? r.keep_shape : r.drop_shape, kInt64);
  // shape = (outer, n, inner): the index runs along n.
  const std::size_t n = shape[a], inner = kernels::product(Shape(shape.begin() + std::ptrdiff_t(a) + 1, shape.end()));
  const std::size_t outer = x.numel() / (n * inner);
  visit_numeric("argmax", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    std::int64_t* po = static_cast<std::int64_t*>(out.impl()->storage->data());
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t i = 0; i < inner; ++i) {
        const T* column = px + o * n * inner + i;
        std::size_t best = 0;
        for (std::size_t k = 1; k < n && column[best * inner] == column[best * inner]; ++k)
          if (column[k * inner] > column[best * inner] || column[k * inner] != column[k * inner]) best = k;
        po[o * inner + i] = std::int64_t(best);
      }
  });
  return out;
}

Tensor argmin(const Tensor& x, std::ptrdiff_t axis, bool keepdims) {
  NoGradGuard no_grad;
  return argmax(neg(x), axis, keepdims);
}

// ============================================================================
// statistics, compositions
// ============================================================================

Tensor var(const Tensor& x, const Axes& axes, double correction, bool keepdims) {
  const std::size_t count = plan_reduction("var", x.shape(), axes).count;
  TG_CHECK(double(count) > correction, ValueError,
           "var: " << count << " elements per reduction is not more than the correction " << correction);
  const Tensor centered = sub(x, mean(x, axes, /*keepdims=*/true));
  return mul(sum(mul(centered, centered), axes, keepdims), 1.0 / (double(count) - correction));
}

Tensor std(const Tensor& x, const Axes& axes, double correction, bool keepdims) {
  return sqrt(var(x, axes, correction, keepdims));
}

Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdims) {
  Tensor m;
  {
    // A constant shift: it cancels, so no gradient flows through it. An
    // infinite maximum (all -inf) shifts by 0 instead, giving -inf, not NaN.
    NoGradGuard no_grad;
    const Tensor raw = max(x, axes, /*keepdims=*/true);
    m = where(eq(abs(raw), full_like(raw, std::numeric_limits<double>::infinity())), zeros_like(raw), raw);
  }
  const Tensor shifted = log(sum(exp(sub(x, m)), axes, /*keepdims=*/true));
  const Tensor result = add(shifted, m);
  return keepdims ? result : reshape(result, plan_reduction("logsumexp", x.shape(), axes).drop_shape);
}

Tensor norm(const Tensor& x0, double p, const Axes& axes, bool keepdims) {
  TG_CHECK(p >= 1.0 && std::isfinite(p), ValueError, "norm: p must be finite and at least 1, got " << p);
  const Tensor x = x0.to(is_floating(x0.dtype()) ? x0.dtype() : kFloat32);
  const Reduction r = plan_reduction("norm", x.shape(), axes);
  Tensor value;
  {
    NoGradGuard no_grad;
    value = pow(sum(pow(abs(x), p), axes, keepdims), 1.0 / p);
  }
  // d‖x‖/dx = sign(x)·|x|^(p-1) / ‖x‖^(p-1), taken as 0 where ‖x‖ = 0.
  return record("norm", {x}, value.detach())
      .save({x})
      .saves_output()
      .backward([p, keep = r.keep_shape](const GradContext& c) {
        const Tensor& x = c.saved[0];
        const Tensor y = reshape(c.output, keep);
        const Tensor safe_y = where(eq(y, zeros_like(y)), ones_like(y), y);
        const Tensor scale = div(reshape(c.grad, keep), pow(safe_y, p - 1.0));
        return Grads{mul(broadcast_to(scale, x.shape()), mul(sign(x), pow(abs(x), p - 1.0)))};
      });
}

Tensor norm(const Tensor& x, double p) { return norm(x, p, all_axes(x.dim())); }

namespace {

// Running sums along `axis`, from the front or (reverse) from the back. The
// gradient of a running sum is the running sum of the gradient the other way.
Tensor running_sum(const Tensor& x0, std::ptrdiff_t axis, bool reverse) {
  const Tensor x = x0.contiguous();
  const Shape& shape = x.shape();
  const std::size_t a = normalize_axis("cumsum", axis, shape.size(), shape);
  const std::size_t n = shape[a], inner = kernels::product(Shape(shape.begin() + std::ptrdiff_t(a) + 1, shape.end()));
  const std::size_t outer = n * inner == 0 ? 0 : x.numel() / (n * inner);
  Tensor out = empty(shape, x.dtype() == kBool ? kInt64 : x.dtype());
  visit_numeric("cumsum", out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Tensor in = x.to(out.dtype());
    const T* px = in.data<T>();
    T* po = static_cast<T*>(out.impl()->storage->data());
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t i = 0; i < inner; ++i) {
        T total = 0;
        for (std::size_t step = 0; step < n; ++step) {
          const std::size_t k = reverse ? n - 1 - step : step;
          const std::size_t at = (o * n + k) * inner + i;
          total += px[at];
          po[at] = total;
        }
      }
  });
  return record("cumsum", {x}, std::move(out)).backward([axis, reverse](const GradContext& c) {
    return Grads{running_sum(c.grad, axis, !reverse)};
  });
}

}  // namespace

Tensor cumsum(const Tensor& x, std::ptrdiff_t axis) {
  TG_CHECK(x.dim() > 0, AxisError, "cumsum: a 0-d tensor has no axis " << axis);
  return running_sum(x, axis, false);
}

}  // namespace tg
