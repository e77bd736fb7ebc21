// Reductions and their adjoint, broadcast_to. sum_to is the one helper every
// broadcasting op uses to bring a gradient back to its input's shape.
#pragma once

#include <cstddef>
#include <vector>

#include "../core/tensor.hpp"

namespace tg {

using Axes = std::vector<std::ptrdiff_t>;  // negative axes count from the end

// Σ over all elements (a 0-d tensor) or over `axes`.
template <class T> BasicTensor<T> sum(const BasicTensor<T>& x);
template <class T> BasicTensor<T> sum(const BasicTensor<T>& x, const Axes& axes, bool keepdims = false);
// Σ / count.
template <class T> BasicTensor<T> mean(const BasicTensor<T>& x);
template <class T> BasicTensor<T> mean(const BasicTensor<T>& x, const Axes& axes, bool keepdims = false);
// Largest element. NOTE: where several elements tie for the maximum, the
// gradient is split equally between them (as torch.amax).
template <class T> BasicTensor<T> max(const BasicTensor<T>& x);
template <class T> BasicTensor<T> max(const BasicTensor<T>& x, const Axes& axes, bool keepdims = false);

// x repeated along broadcast axes to `shape`; the adjoint of sum.
template <class T> BasicTensor<T> broadcast_to(const BasicTensor<T>& x, const Shape& shape);
// Sums x over the axes along which `shape` was broadcast to x's shape, so the
// result has `shape`: the gradient rule of every broadcasting op.
template <class T> BasicTensor<T> sum_to(const BasicTensor<T>& x, const Shape& shape);

}  // namespace tg
