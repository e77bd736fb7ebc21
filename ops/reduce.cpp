#include "reduce.hpp"

#include <limits>

#include "../core/autograd.hpp"
#include "../core/storage.hpp"
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
  kernels::for_each_row(shape, kernels::contiguous_strides(shape), r.out_strides, none,
                        [&](std::ptrdiff_t i, std::ptrdiff_t o, std::ptrdiff_t) { row(i, o, n); });
}

// Whether the last axis of `shape` is reduced under r.
bool last_axis_reduced(const Shape& shape, const Reduction& r) {
  return shape.empty() || r.out_strides.back() == 0;
}

// acc[o] += x[i] for every element: a reduced run is summed in a register,
// a kept one is added as a vector.
template <class T>
void sum_into(const T* x, const Shape& shape, const Reduction& r, double* acc) {
  const bool whole_run = last_axis_reduced(shape, r);
  for_each_reduced_row(shape, r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
    const T* run = x + i;
    if (whole_run) {
      double s = 0.0;
      for (std::size_t k = 0; k < n; ++k) s += run[k];
      acc[o] += s;
    } else {
      double* a = acc + o;
      for (std::size_t k = 0; k < n; ++k) a[k] += run[k];
    }
  });
}

}  // namespace

// ============================================================================
// sum / mean — the adjoint of sum is broadcast_to
// ============================================================================

template <class T>
BasicTensor<T> sum(const BasicTensor<T>& x, const Axes& axes, bool keepdims) {
  const Shape in_shape = x.shape();
  const Reduction r = plan_reduction("sum", in_shape, axes);
  // Accumulate in double: a float sum of a million terms loses digits.
  std::vector<double> acc(kernels::product(r.keep_shape), 0.0);
  sum_into(x.data(), in_shape, r, acc.data());
  xt::xarray<T> out = empty_array<T>(keepdims ? r.keep_shape : r.drop_shape);
  std::copy(acc.begin(), acc.end(), out.data());
  return record("sum", {x}, std::move(out))
      .backward([keep = r.keep_shape](const GradContext<T>& c) {
        return Grads<T>{broadcast_to(reshape(c.grad, keep), c.input_shape(0))};
      });
}

template <class T>
BasicTensor<T> sum(const BasicTensor<T>& x) {
  return sum(x, all_axes(x.dim()));
}

template <class T>
BasicTensor<T> mean(const BasicTensor<T>& x, const Axes& axes, bool keepdims) {
  const std::size_t count = plan_reduction("mean", x.shape(), axes).count;
  return mul(sum(x, axes, keepdims), scalar<T>(1.0 / double(count)));
}

template <class T>
BasicTensor<T> mean(const BasicTensor<T>& x) {
  return mean(x, all_axes(x.dim()));
}

template <class T>
BasicTensor<T> broadcast_to(const BasicTensor<T>& x, const Shape& shape) {
  const Shape in_shape = x.shape();
  if (in_shape == shape) return x;
  if (in_shape.size() > shape.size() || kernels::broadcast_shapes("broadcast_to", in_shape, shape) != shape)
    throw ShapeError("broadcast_to: cannot broadcast shape " + shape_str(in_shape) + " to " +
                     shape_str(shape));
  xt::xarray<T> out = empty_array<T>(shape);
  const T* px = x.data();
  T* po = out.data();
  const std::size_t n = shape.back();  // shape has at least one axis: x's differs from it
  const kernels::Strides read = kernels::broadcast_strides(in_shape, shape), none(shape.size(), 0);
  const bool repeat = read.back() == 0;
  kernels::for_each_row(shape, read, kernels::contiguous_strides(shape), none,
                        [&](std::ptrdiff_t i, std::ptrdiff_t o, std::ptrdiff_t) {
                          if (repeat)
                            std::fill(po + o, po + o + std::ptrdiff_t(n), px[i]);
                          else
                            std::copy(px + i, px + i + std::ptrdiff_t(n), po + o);
                        });
  return record("broadcast_to", {x}, std::move(out)).backward([](const GradContext<T>& c) {
    return Grads<T>{sum_to(c.grad, c.input_shape(0))};
  });
}

template <class T>
BasicTensor<T> sum_to(const BasicTensor<T>& x, const Shape& shape) {
  const Shape in_shape = x.shape();
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
  if (!ok)
    throw ShapeError("sum_to: shape " + shape_str(in_shape) + " does not reduce to " + shape_str(shape));
  const BasicTensor<T> kept = sum(x, axes, /*keepdims=*/true);
  return lead ? reshape(kept, shape) : kept;
}

// ============================================================================
// max
// ============================================================================

template <class T>
BasicTensor<T> max(const BasicTensor<T>& x, const Axes& axes, bool keepdims) {
  const Shape in_shape = x.shape();
  Reduction r = plan_reduction("max", in_shape, axes);
  if (r.count == 0 && kernels::product(r.keep_shape) > 0)
    throw ShapeError("max: cannot reduce over an axis of size 0 in shape " + shape_str(in_shape));
  xt::xarray<T> out = empty_array<T>(keepdims ? r.keep_shape : r.drop_shape);
  std::fill(out.begin(), out.end(), -std::numeric_limits<T>::infinity());
  const T* px = x.data();
  T* po = out.data();
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
  return record("max", {x}, std::move(out))
      .save({x})
      .saves_output()
      .backward([r = std::move(r)](const GradContext<T>& c) {
        // The gradient goes to the elements equal to the maximum, split among
        // ties; where the maximum is NaN, to the NaN elements.
        auto is_max = [](T v, T m) { return v == m || (v != v && m != m); };
        const BasicTensor<T>& x = c.saved[0];
        const Shape shape = x.shape();
        const T* px = x.data();
        const T* py = c.output.data();
        const bool whole_run = last_axis_reduced(shape, r);
        xt::xarray<T> ties = zeros_array<T>(r.keep_shape);  // elements equal to each maximum
        T* pt = ties.data();
        for_each_reduced_row(shape, r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
          for (std::size_t k = 0; k < n; ++k) {
            const std::size_t at = whole_run ? 0 : k;
            pt[o + std::ptrdiff_t(at)] += T(is_max(px[i + std::ptrdiff_t(k)], py[o + std::ptrdiff_t(at)]));
          }
        });
        xt::xarray<T> share = empty_array<T>(shape);
        T* ps = share.data();
        for_each_reduced_row(shape, r, [&](std::ptrdiff_t i, std::ptrdiff_t o, std::size_t n) {
          for (std::size_t k = 0; k < n; ++k) {
            const std::ptrdiff_t at = o + std::ptrdiff_t(whole_run ? 0 : k), ik = i + std::ptrdiff_t(k);
            ps[ik] = is_max(px[ik], py[at]) ? T(1) / pt[at] : T(0);
          }
        });
        return Grads<T>{mul(broadcast_to(reshape(c.grad, r.keep_shape), shape), BasicTensor<T>(std::move(share)))};
      });
}

template <class T>
BasicTensor<T> max(const BasicTensor<T>& x) {
  if (x.numel() == 0) throw ShapeError("max: tensor of shape " + shape_str(x.shape()) + " has no elements");
  return max(x, all_axes(x.dim()));
}

#define TG_INSTANTIATE(T)                                                      \
  template BasicTensor<T> sum(const BasicTensor<T>&);                          \
  template BasicTensor<T> sum(const BasicTensor<T>&, const Axes&, bool);       \
  template BasicTensor<T> mean(const BasicTensor<T>&);                         \
  template BasicTensor<T> mean(const BasicTensor<T>&, const Axes&, bool);      \
  template BasicTensor<T> max(const BasicTensor<T>&);                          \
  template BasicTensor<T> max(const BasicTensor<T>&, const Axes&, bool);       \
  template BasicTensor<T> broadcast_to(const BasicTensor<T>&, const Shape&);   \
  template BasicTensor<T> sum_to(const BasicTensor<T>&, const Shape&);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg
