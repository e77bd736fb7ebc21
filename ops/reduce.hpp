// Reductions and their adjoint, broadcast_to. sum_to is the one helper every
// broadcasting op uses to bring a gradient back to its input's shape.
#pragma once

#include <cstddef>
#include <vector>

#include "../core/tensor.hpp"

namespace tg {

// Σ over all elements (a 0-d tensor) or over `axes`. Integer and bool
// tensors sum to int64.
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const Axes& axes, bool keepdims = false);
// Σ / count (floating tensors).
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Axes& axes, bool keepdims = false);
// Largest element. NOTE: where several elements tie for the maximum, the
// gradient is split equally between them (as torch.amax); NaN wins.
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, const Axes& axes, bool keepdims = false);
// Smallest element, as -max(-x).
Tensor min(const Tensor& x);
Tensor min(const Tensor& x, const Axes& axes, bool keepdims = false);
// Index of the largest (smallest) element along `axis`, int64; the first one
// on ties, and a NaN counts as the largest (as torch).
Tensor argmax(const Tensor& x, std::ptrdiff_t axis, bool keepdims = false);
Tensor argmin(const Tensor& x, std::ptrdiff_t axis, bool keepdims = false);
// Σ (x - mean)² / (count - correction): correction 1 is the unbiased estimate.
Tensor var(const Tensor& x, const Axes& axes, double correction = 1.0, bool keepdims = false);
Tensor std(const Tensor& x, const Axes& axes, double correction = 1.0, bool keepdims = false);
// log Σ e^x, computed as m + log Σ e^(x - m) with m the maximum, so nothing overflows.
Tensor logsumexp(const Tensor& x, const Axes& axes, bool keepdims = false);
// (Σ |x|^p)^(1/p) over all elements or `axes`, p >= 1. NOTE: the gradient at
// the zero vector is taken as 0, as torch.
Tensor norm(const Tensor& x, double p = 2.0);
Tensor norm(const Tensor& x, double p, const Axes& axes, bool keepdims = false);
// Running sums along `axis`.
Tensor cumsum(const Tensor& x, std::ptrdiff_t axis);

// x repeated along broadcast axes to `shape`; the adjoint of sum.
Tensor broadcast_to(const Tensor& x, const Shape& shape);
// Sums x over the axes along which `shape` was broadcast to x's shape, so the
// result has `shape`: the gradient rule of every broadcasting op.
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace tg
