#include "reduce.hpp"

#include <cmath>
#include <limits>
#include <type_traits>

#include "../core/autograd.hpp"
#include "elementwise.hpp"
#include "kernels/strided.hpp"
#include "shape.hpp"

namespace tg {

namespace {

// Where each input element lands when `axes` of `shape` are reduced.
struct Reduction {
  Shape keep_shape;             // reduced axes kept with size 1
  Shape drop_shape;             // reduced axes removed
  kernels::Strides out_strides; // input index -> output offset (0 along reduced axes)
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
void for_each_reduced_row(const Shape& shape, const Reduction& r, Row&& row) {
  const std::size_t n = shape.empty() ? 1 : shape.back();
  const kernels::Strides none(shape.size(), 0);
  for_each_row(shape, kernels::contiguous_strides(shape), r.out_strides, none,
                        [&](std::ptrdiff_t i, std::ptrdiff_t o, std::ptrdiff_t) { row(i, o, n); });
}

// Whether the last axis of `shape` is reduced under r.
bool last_axis_reduced(const Shape& shape, const Reduction& r) {
  return shape.empty() || r.out_strides.back() == 0;
}

// acc[o] += x[i] for every element: a reduced run is summed in a register,
// a kept one is added as a vector.
template <class T, class Acc>
void sum_into(const T* x, const Shape& shape, const Reduction& r, Acc* acc) {
  const bool whole_run = last_axis_reduced(shape, r);
  for_each_reduced_row(shape, r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
    const T* run = x + i;
    if (whole_run) {
      Acc s = 0;
      for (std::size_t k = 0; k < n; ++k) s += run[k];
      acc[o] += s;
    } else {
      Acc* a = acc + o;
      for (std::size_t k = 0; k < n; ++k) a[k] += run[k];
    }
  });
}

// For max's gradient: at each element equal to its window's maximum,
// 1 / (number of such elements); 0 elsewhere. Where the maximum is NaN, the
// NaN elements share it.
template <class T>
Tensor tie_shares(const T* px, const T* py, const Shape& shape, const Reduction& r) {
  auto is_max = [](T v, T m) { return v == m || (v != v && m != m); };
  const bool whole_run = last_axis_reduced(shape, r);
  std::vector<T> ties(kernels::product(r.keep_shape), T(0));  // elements equal to each maximum
  for_each_reduced_row(shape, r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) {
      const std::ptrdiff_t at = o + std::ptrdiff_t(whole_run ? 0 : k);
      ties[std::size_t(at)] += T(is_max(px[i + std::ptrdiff_t(k)], py[at]));
    }
  });
  Tensor share = empty(shape, dtype_of<T>());
  T* ps = static_cast<T*>(share.impl()->storage->data());
  for_each_reduced_row(shape, r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) {
      const std::ptrdiff_t at = o + std::ptrdiff_t(whole_run ? 0 : k), ik = i + std::ptrdiff_t(k);
      ps[ik] = is_max(px[ik], py[at]) ? T(1) / ties[std::size_t(at)] : T(0);
    }
  });
  return share;
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
      sum_into(x.data<T>(), in_shape, r, acc.data());
      Tensor result = empty(out_shape, x.dtype());
      std::copy(acc.begin(), acc.end(), static_cast<T*>(result.impl()->storage->data()));
      return result;
    } else {
      Tensor result = zeros(out_shape, kInt64);
      sum_into(x.data<T>(), in_shape, r, static_cast<std::int64_t*>(result.impl()->storage->data()));
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
    const std::size_t n = shape.back();  // shape has at least one axis: x's differs from it
    const kernels::Strides read = kernels::broadcast_strides(in_shape, shape), none(shape.size(), 0);
    const bool repeat = read.back() == 0;
    for_each_row(shape, read, kernels::contiguous_strides(shape), none,
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
  visit_numeric("max", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* po = static_cast<T*>(out.impl()->storage->data());
    std::fill(po, po + out.numel(), std::numeric_limits<T>::lowest());
    if constexpr (std::numeric_limits<T>::has_infinity)
      std::fill(po, po + out.numel(), -std::numeric_limits<T>::infinity());
    const T* px = x.data<T>();
    const bool whole_run = last_axis_reduced(in_shape, r);
    for_each_reduced_row(in_shape, r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
      const T* run = px + i;
      T* best = po + o;
      for (std::size_t k = 0; k < n; ++k) {
        T& b = whole_run ? best[0] : best[k];
        // A NaN wins and, as nothing compares greater than it, stays: NaN
        // propagates as in PyTorch.
        b = (run[k] > b || run[k] != run[k]) ? run[k] : b;
      }
    });
  });
  return record("max", {x}, std::move(out))
      .save({x})
      .saves_output()
      .backward([r = std::move(r)](const GradContext& c) {
        const Tensor& x = c.saved[0];
        const Tensor y = c.output.contiguous();
        Tensor share = visit_floating("max", x.dtype(), [&](auto tag) {
          using T = typename decltype(tag)::type;
          return tie_shares<T>(x.data<T>(), y.data<T>(), x.shape(), r);
        });
        return Grads{mul(broadcast_to(reshape(c.grad, r.keep_shape), x.shape()), share)};
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
