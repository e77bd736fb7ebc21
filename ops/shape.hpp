// Ops that move elements without changing them.
#pragma once

#include <cstddef>
#include <vector>

#include "../core/tensor.hpp"

namespace tg {

// Same elements, new shape; one dimension may be -1 (inferred).
template <class T> BasicTensor<T> reshape(const BasicTensor<T>& x, const std::vector<std::ptrdiff_t>& shape);
template <class T> BasicTensor<T> reshape(const BasicTensor<T>& x, const Shape& shape);
// Axes start_dim..end_dim merged into one, as torch.flatten.
template <class T> BasicTensor<T> flatten(const BasicTensor<T>& x, std::ptrdiff_t start_dim = 1,
                                          std::ptrdiff_t end_dim = -1);
// Output axis i is input axis dims[i].
template <class T> BasicTensor<T> permute(const BasicTensor<T>& x, const std::vector<std::ptrdiff_t>& dims);
// Swaps two axes (the last two by default).
template <class T> BasicTensor<T> transpose(const BasicTensor<T>& x, std::ptrdiff_t dim0 = -2,
                                            std::ptrdiff_t dim1 = -1);

// An axis in [-ndim, ndim) as an index in [0, ndim); throws AxisError naming op.
std::size_t normalize_axis(const char* op, std::ptrdiff_t axis, std::size_t ndim, const Shape& shape);

}  // namespace tg
