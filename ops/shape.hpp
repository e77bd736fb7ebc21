// Ops that move elements without changing them. Views (reshape of a
// contiguous tensor, permute, transpose, slice, select, squeeze) share the
// input's storage; the gradient of a view is the inverse view.
#pragma once

#include <cstddef>
#include <vector>

#include "../core/tensor.hpp"

namespace tg {

// Same elements, new shape; one size may be -1 (inferred). A view when x is
// contiguous, a copy otherwise.
Tensor reshape(const Tensor& x, const SizeList& shape);
// reshape that refuses to copy: x must be contiguous.
Tensor view(const Tensor& x, const SizeList& shape);
// Axes start_dim..end_dim merged into one. NOTE: start_dim defaults to 1,
// keeping the batch axis (as nn::Flatten); the member x.flatten() starts at 0
// as torch's Tensor.flatten.
Tensor flatten(const Tensor& x, std::ptrdiff_t start_dim = 1, std::ptrdiff_t end_dim = -1);
// A new axis of size 1 at `axis`; squeeze removes one of size 1.
Tensor unsqueeze(const Tensor& x, std::ptrdiff_t axis);
Tensor squeeze(const Tensor& x, std::ptrdiff_t axis);
// Output axis i is input axis dims[i]: a strided view.
Tensor permute(const Tensor& x, const std::vector<std::ptrdiff_t>& dims);
// Swaps two axes (the last two by default).
Tensor transpose(const Tensor& x, std::ptrdiff_t dim0 = -2, std::ptrdiff_t dim1 = -1);

// ---- indexing --------------------------------------------------------------------
// Elements start, start + step, ... before stop along `axis`, with Python's
// rules for negative and out-of-range bounds; step >= 1. A view.
Tensor slice(const Tensor& x, std::ptrdiff_t axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1);
// length elements from start along axis (which must fit). A view.
Tensor narrow(const Tensor& x, std::ptrdiff_t axis, std::int64_t start, std::int64_t length);
// Position `index` along axis, which goes away (negative counts from the end). A view.
Tensor select(const Tensor& x, std::ptrdiff_t axis, std::int64_t index);
// Python indexing: index(x, {Slice(), 0}) is x[:, 0]. Missing trailing entries keep their axes.
Tensor index(const Tensor& x, const std::vector<TensorIndex>& indices);

// ---- joining and splitting -------------------------------------------------------
// Tensors joined along an existing axis (cat) or a new one (stack).
Tensor cat(const std::vector<Tensor>& tensors, std::ptrdiff_t axis = 0);
Tensor stack(const std::vector<Tensor>& tensors, std::ptrdiff_t axis = 0);
// Views of consecutive pieces of `size` elements along axis (the last may be shorter).
std::vector<Tensor> split(const Tensor& x, std::size_t size, std::ptrdiff_t axis = 0);
// `chunks` pieces as equal as torch.chunk makes them (fewer if the axis is short).
std::vector<Tensor> chunk(const Tensor& x, std::size_t chunks, std::ptrdiff_t axis = 0);

// ---- gathering by index (index tensors are int64) ------------------------------------
// The positions in the 1-d `index` along axis.
Tensor index_select(const Tensor& x, std::ptrdiff_t axis, const Tensor& index);
// Its adjoint: zeros of `shape` with grad's slices added at the positions
// `index` names along axis (repeats add up). Its own adjoint is index_select.
Tensor index_select_backward(const Tensor& grad, const Shape& shape, std::ptrdiff_t axis, const Tensor& index);
// out[i][j] = x[i][index[i][j]] for axis 1 (any axis likewise); index has x's
// rank and is no larger than x along the other axes.
Tensor gather(const Tensor& x, std::ptrdiff_t axis, const Tensor& index);
// x with src[i][j] added at x[i][index[i][j]] for axis 1; the adjoint of gather.
Tensor scatter_add(const Tensor& x, std::ptrdiff_t axis, const Tensor& index, const Tensor& src);

// Constant padding of the last axes: pads = {left, right} for the last axis,
// {left, right, top, bottom} for the last two, and so on. Sizes are >= 0.
Tensor pad(const Tensor& x, const std::vector<std::int64_t>& pads, double value = 0.0);

// An axis in [-ndim, ndim) as an index in [0, ndim); throws AxisError naming op.
std::size_t normalize_axis(const char* op, std::ptrdiff_t axis, std::size_t ndim, const Shape& shape);

}  // namespace tg
