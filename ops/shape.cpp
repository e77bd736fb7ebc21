#include "shape.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "../core/autograd.hpp"
#include "elementwise.hpp"
#include "kernels/strided.hpp"

namespace tg {

std::size_t normalize_axis(const char* op, std::ptrdiff_t axis, std::size_t ndim, const Shape& shape) {
  const auto n = static_cast<std::ptrdiff_t>(ndim);
  const std::ptrdiff_t a = axis < 0 ? axis + n : axis;
  if (a < 0 || a >= n)
    throw AxisError(std::string(op) + ": axis " + std::to_string(axis) + " is out of range for shape " +
                    shape_str(shape) + " (" + std::to_string(ndim) + " dimensions)");
  return static_cast<std::size_t>(a);
}

namespace {

// A view of x with this layout, recorded with `rule`.
Tensor recorded_view(const char* op, const Tensor& x, Shape shape, Strides strides, std::size_t offset,
                     BackwardRule rule) {
  return record(op, {x}, make_view(x, std::move(shape), std::move(strides), offset)).backward(std::move(rule));
}

// The sizes of a reshape of x, with a -1 inferred.
Shape resolve_sizes(const char* op, const Tensor& x, const SizeList& sizes) {
  Shape resolved(sizes.size());
  std::size_t known = 1;
  std::ptrdiff_t inferred = -1;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == -1 && inferred < 0) {
      inferred = std::ptrdiff_t(i);
    } else {
      TG_CHECK(sizes[i] >= 0, ShapeError,
               op << ": invalid target size " << sizes[i] << " for tensor of shape " << shape_str(x.shape())
                  << " (at most one -1 is allowed)");
      resolved[i] = std::size_t(sizes[i]);
      known = resolved[i] == 0 || known <= kMaxElements / resolved[i] ? known * resolved[i] : kMaxElements + 1;
    }
  }
  if (inferred >= 0) {
    TG_CHECK(known != 0 && x.numel() % known == 0, ShapeError,
             op << ": cannot infer the -1 dimension to reshape tensor of shape " << shape_str(x.shape()) << " ("
                << x.numel() << " elements)");
    resolved[std::size_t(inferred)] = x.numel() / known;
  }
  const std::size_t count = known > kMaxElements ? kMaxElements + 1 : checked_numel(op, resolved);
  TG_CHECK(count == x.numel(), ShapeError,
           op << ": cannot reshape tensor of shape " << shape_str(x.shape()) << " (" << x.numel()
              << " elements) into " << shape_str(resolved) << " (" << count << " elements)");
  return resolved;
}

}  // namespace

// ============================================================================
// reshape / view / flatten / squeeze — the adjoint of a reshape is the reshape back
// ============================================================================

Tensor view(const Tensor& x, const SizeList& sizes) {
  const Shape shape = resolve_sizes("view", x, sizes);
  TG_CHECK(x.is_contiguous(), ValueError,
           "view: the tensor of shape " << shape_str(x.shape()) << " is a strided view; use reshape (which copies)");
  if (shape == x.shape()) return x;
  return recorded_view("reshape", x, shape, contiguous_strides(shape), x.impl()->offset,
                       [](const GradContext& c) { return Grads{reshape(c.grad, c.input_shape(0))}; });
}

Tensor reshape(const Tensor& x, const SizeList& sizes) {
  const Shape shape = resolve_sizes("reshape", x, sizes);
  return shape == x.shape() ? x : view(x.contiguous(), shape);
}

Tensor flatten(const Tensor& x, std::ptrdiff_t start_dim, std::ptrdiff_t end_dim) {
  const Shape& in_shape = x.shape();
  if (in_shape.empty()) return reshape(x, {1});
  const std::size_t start = normalize_axis("flatten", start_dim, in_shape.size(), in_shape);
  const std::size_t end = normalize_axis("flatten", end_dim, in_shape.size(), in_shape);
  TG_CHECK(start <= end, AxisError,
           "flatten: start_dim " << start_dim << " comes after end_dim " << end_dim << " for shape "
                                 << shape_str(in_shape));
  Shape shape(in_shape.begin(), in_shape.begin() + std::ptrdiff_t(start));
  std::size_t merged = 1;
  for (std::size_t i = start; i <= end; ++i) merged *= in_shape[i];
  shape.push_back(merged);
  shape.insert(shape.end(), in_shape.begin() + std::ptrdiff_t(end) + 1, in_shape.end());
  return reshape(x, shape);
}

Tensor unsqueeze(const Tensor& x, std::ptrdiff_t axis) {
  const std::size_t a = normalize_axis("unsqueeze", axis, x.dim() + 1, x.shape());
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape.insert(shape.begin() + std::ptrdiff_t(a), 1);
  strides.insert(strides.begin() + std::ptrdiff_t(a), a < x.dim() ? strides[a] * std::ptrdiff_t(x.shape()[a]) : 1);
  return recorded_view("unsqueeze", x, shape, strides, x.impl()->offset, [a](const GradContext& c) {
    return Grads{squeeze(c.grad, std::ptrdiff_t(a))};
  });
}

// As torch: an axis whose size is not 1 is left as it is.
Tensor squeeze(const Tensor& x, std::ptrdiff_t axis) {
  const std::size_t a = normalize_axis("squeeze", axis, x.dim(), x.shape());
  if (x.shape()[a] != 1) return x;
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape.erase(shape.begin() + std::ptrdiff_t(a));
  strides.erase(strides.begin() + std::ptrdiff_t(a));
  return recorded_view("squeeze", x, shape, strides, x.impl()->offset, [a](const GradContext& c) {
    return Grads{unsqueeze(c.grad, std::ptrdiff_t(a))};
  });
}

// ============================================================================
// permute / transpose — the adjoint of a permutation is its inverse
// ============================================================================

Tensor permute(const Tensor& x, const std::vector<std::ptrdiff_t>& dims) {
  const Shape& in_shape = x.shape();
  const std::size_t nd = in_shape.size();
  std::vector<std::ptrdiff_t> inverse(nd, -1);
  std::vector<std::size_t> source(nd);  // output axis i reads input axis source[i]
  bool ok = dims.size() == nd;
  for (std::size_t i = 0; ok && i < nd; ++i) {
    const std::ptrdiff_t d = dims[i] < 0 ? dims[i] + std::ptrdiff_t(nd) : dims[i];
    ok = d >= 0 && d < std::ptrdiff_t(nd) && inverse[std::size_t(d)] < 0;
    if (ok) {
      inverse[std::size_t(d)] = std::ptrdiff_t(i);
      source[i] = std::size_t(d);
    }
  }
  if (!ok) {
    std::string given;
    for (auto d : dims) given += (given.empty() ? "" : ", ") + std::to_string(d);
    throw AxisError("permute: dims (" + given + ") are not a permutation of the " + std::to_string(nd) +
                    " axes of shape " + shape_str(in_shape));
  }
  Shape shape(nd);
  Strides strides(nd);
  for (std::size_t i = 0; i < nd; ++i) {
    shape[i] = in_shape[source[i]];
    strides[i] = x.strides()[source[i]];
  }
  return recorded_view("permute", x, shape, strides, x.impl()->offset,
                       [inverse](const GradContext& c) { return Grads{permute(c.grad, inverse)}; });
}

Tensor transpose(const Tensor& x, std::ptrdiff_t dim0, std::ptrdiff_t dim1) {
  const Shape& shape = x.shape();
  const std::size_t a = normalize_axis("transpose", dim0, shape.size(), shape);
  const std::size_t b = normalize_axis("transpose", dim1, shape.size(), shape);
  std::vector<std::ptrdiff_t> dims(shape.size());
  for (std::size_t i = 0; i < dims.size(); ++i) dims[i] = std::ptrdiff_t(i);
  std::swap(dims[a], dims[b]);
  return permute(x, dims);
}

// ============================================================================
// slicing — the adjoint of a slice writes the gradient back into zeros
// ============================================================================

namespace {

// A tensor of `shape` (zeros) holding g at positions start, start + step, ...
// along axis: slice's adjoint, whose own adjoint is that slice.
Tensor embed(const Tensor& g, const Shape& shape, std::size_t axis, std::int64_t start, std::int64_t step) {
  Tensor out = zeros(shape, g.dtype());
  {
    // out's slice, as a view outside the graph, receives g.
    Strides strides = out.strides();
    const std::size_t offset = std::size_t(start) * std::size_t(strides[axis]);
    strides[axis] *= step;
    NoGradGuard no_grad;
    make_view(out, g.shape(), strides, offset).copy_(g.detach());
  }
  const std::int64_t stop = start + std::int64_t(g.shape()[axis]) * step;
  return record("slice_backward", {g}, std::move(out)).backward([axis, start, stop, step](const GradContext& c) {
    return Grads{slice(c.grad, std::ptrdiff_t(axis), start, stop, step)};
  });
}

}  // namespace

Tensor slice(const Tensor& x, std::ptrdiff_t axis, std::int64_t start, std::int64_t stop, std::int64_t step) {
  const std::size_t a = normalize_axis("slice", axis, x.dim(), x.shape());
  TG_CHECK(step >= 1, ValueError, "slice: step must be at least 1, got " << step);
  const auto n = std::int64_t(x.shape()[a]);
  auto clamp_bound = [n](std::int64_t v) { return std::clamp<std::int64_t>(v < 0 ? v + n : v, 0, n); };
  const std::int64_t first = clamp_bound(start), last = std::max(first, clamp_bound(stop));
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape[a] = std::size_t((last - first + step - 1) / step);
  const std::size_t offset = x.impl()->offset + std::size_t(first * strides[a]);
  strides[a] *= step;
  return recorded_view("slice", x, shape, strides, offset, [a, first, step](const GradContext& c) {
    return Grads{embed(c.grad, c.input_shape(0), a, first, step)};
  });
}

Tensor narrow(const Tensor& x, std::ptrdiff_t axis, std::int64_t start, std::int64_t length) {
  const std::size_t a = normalize_axis("narrow", axis, x.dim(), x.shape());
  const auto n = std::int64_t(x.shape()[a]);
  const std::int64_t first = start < 0 ? start + n : start;
  TG_CHECK(first >= 0 && length >= 0 && first + length <= n, ValueError,
           "narrow: start " << start << " and length " << length << " do not fit axis " << axis << " of shape "
                            << shape_str(x.shape()));
  return slice(x, axis, first, first + length);
}

Tensor select(const Tensor& x, std::ptrdiff_t axis, std::int64_t index) {
  const std::size_t a = normalize_axis("select", axis, x.dim(), x.shape());
  const auto n = std::int64_t(x.shape()[a]);
  TG_CHECK(index >= -n && index < n, ValueError,
           "select: index " << index << " is out of range for axis " << axis << " of shape " << shape_str(x.shape()));
  const std::int64_t i = index < 0 ? index + n : index;
  return squeeze(slice(x, std::ptrdiff_t(a), i, i + 1), std::ptrdiff_t(a));
}

Tensor index(const Tensor& x, const std::vector<TensorIndex>& indices) {
  TG_CHECK(indices.size() <= x.dim(), AxisError,
           "index: " << indices.size() << " indices for a tensor of shape " << shape_str(x.shape()));
  Tensor out = x;
  std::ptrdiff_t axis = 0;  // of `out` that the next index applies to
  for (const TensorIndex& i : indices) {
    if (!i.is_slice()) {
      out = select(out, axis, i.index());
      continue;
    }
    const Slice& s = i.slice();
    out = slice(out, axis, s.start.value_or(0), s.stop.value_or(std::numeric_limits<std::int64_t>::max()), s.step);
    ++axis;
  }
  return out;
}

// ============================================================================
// joining and splitting
// ============================================================================

Tensor cat(const std::vector<Tensor>& tensors, std::ptrdiff_t axis) {
  TG_CHECK(!tensors.empty(), ValueError, "cat: no tensors to join");
  Dtype dtype = tensors[0].dtype();
  for (const auto& t : tensors) dtype = promote_types(dtype, t.dtype());
  const Shape& first = tensors[0].shape();
  const std::size_t a = normalize_axis("cat", axis, first.size(), first);
  Shape shape = first;
  shape[a] = 0;
  std::vector<Tensor> inputs;
  std::vector<std::int64_t> lengths;
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    const Shape& s = tensors[k].shape();
    bool ok = s.size() == first.size();
    for (std::size_t d = 0; ok && d < s.size(); ++d) ok = d == a || s[d] == first[d];
    TG_CHECK(ok, ShapeError,
             "cat: tensor " << k << " has shape " << shape_str(s) << ", which does not match " << shape_str(first)
                            << " except along axis " << axis);
    shape[a] += s[a];
    lengths.push_back(std::int64_t(s[a]));
    inputs.push_back(tensors[k].to(dtype).contiguous());
  }
  // Each input is `outer` blocks of s[a]·inner elements, laid side by side.
  const std::size_t inner = product(Shape(first.begin() + std::ptrdiff_t(a) + 1, first.end()));
  const std::size_t outer = product(Shape(first.begin(), first.begin() + std::ptrdiff_t(a)));
  Tensor out = empty(shape, dtype);
  char* po = static_cast<char*>(out.impl()->storage->data());
  const std::size_t item = element_size(dtype), row = shape[a] * inner * item;
  std::size_t at = 0;
  for (const auto& t : inputs) {
    const std::size_t block = t.shape()[a] * inner * item;
    const char* pt = static_cast<const char*>(t.impl()->storage->data()) + t.impl()->offset * item;
    for (std::size_t o = 0; o < outer && block > 0; ++o) std::memcpy(po + o * row + at, pt + o * block, block);
    at += block;
  }
  return record("cat", inputs, std::move(out)).backward([a, lengths](const GradContext& c) {
    Grads grads;
    std::int64_t start = 0;
    for (std::size_t k = 0; k < lengths.size(); ++k) {
      grads.push_back(c.needs_grad[k] ? narrow(c.grad, std::ptrdiff_t(a), start, lengths[k]) : Tensor());
      start += lengths[k];
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, std::ptrdiff_t axis) {
  TG_CHECK(!tensors.empty(), ValueError, "stack: no tensors to join");
  std::vector<Tensor> expanded;
  for (std::size_t k = 0; k < tensors.size(); ++k) {
    TG_CHECK(tensors[k].shape() == tensors[0].shape(), ShapeError,
             "stack: tensor " << k << " has shape " << shape_str(tensors[k].shape()) << ", tensor 0 "
                              << shape_str(tensors[0].shape()));
    expanded.push_back(unsqueeze(tensors[k], axis));
  }
  return cat(expanded, axis);
}

std::vector<Tensor> split(const Tensor& x, std::size_t size, std::ptrdiff_t axis) {
  const std::size_t a = normalize_axis("split", axis, x.dim(), x.shape());
  TG_CHECK(size > 0, ValueError, "split: size must be positive");
  std::vector<Tensor> pieces;
  for (std::size_t start = 0; start < x.shape()[a]; start += size)
    pieces.push_back(narrow(x, axis, std::int64_t(start), std::int64_t(std::min(size, x.shape()[a] - start))));
  return pieces;
}

std::vector<Tensor> chunk(const Tensor& x, std::size_t chunks, std::ptrdiff_t axis) {
  const std::size_t a = normalize_axis("chunk", axis, x.dim(), x.shape());
  TG_CHECK(chunks > 0, ValueError, "chunk: the number of chunks must be positive");
  const std::size_t n = x.shape()[a];
  return split(x, std::max<std::size_t>(1, (n + chunks - 1) / chunks), axis);
}

// ============================================================================
// gathering by index
// ============================================================================

namespace {

// The int64 values of `index`, each checked to lie in [0, n).
const std::int64_t* checked_indices(const char* op, const Tensor& index, std::size_t n) {
  TG_CHECK(index.dtype() == kInt64, DtypeError, op << ": indices must be int64, got " << dtype_name(index.dtype()));
  const std::int64_t* p = index.data<std::int64_t>();
  for (std::size_t i = 0, count = index.numel(); i < count; ++i)
    TG_CHECK(p[i] >= 0 && std::size_t(p[i]) < n, ValueError,
             op << ": index " << p[i] << " at position " << i << " is outside [0, " << n << ")");
  return p;
}

}  // namespace

Tensor index_select_backward(const Tensor& grad, const Shape& shape, std::ptrdiff_t axis, const Tensor& index0) {
  const char* op = "index_select_backward";
  const std::size_t a = normalize_axis(op, axis, shape.size(), shape);
  TG_CHECK(index0.dim() == 1, ShapeError, op << ": the index must be 1-d, got " << shape_str(index0.shape()));
  const Tensor index = index0.contiguous();
  const std::int64_t* idx = checked_indices(op, index, shape[a]);
  Shape picked_shape = shape;
  picked_shape[a] = index.numel();
  TG_CHECK(grad.shape() == picked_shape, ShapeError,
           op << ": the gradient must have shape " << shape_str(picked_shape) << " (" << shape_str(shape)
              << " with " << index.numel() << " picked along axis " << axis << "), got " << shape_str(grad.shape()));
  const Tensor src = grad.contiguous();
  Tensor out = zeros(shape, src.dtype());
  const std::size_t inner = product(Shape(shape.begin() + std::ptrdiff_t(a) + 1, shape.end()));
  const std::size_t outer = product(Shape(shape.begin(), shape.begin() + std::ptrdiff_t(a)));
  const std::size_t picked = index.numel();
  visit_floating(op, src.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* ps = src.data<T>();
    T* po = static_cast<T*>(out.impl()->storage->data());
    for (std::size_t o = 0; o < outer; ++o)
      for (std::size_t k = 0; k < picked; ++k) {
        T* to = po + (o * shape[a] + std::size_t(idx[k])) * inner;
        const T* from = ps + (o * picked + k) * inner;
        for (std::size_t i = 0; i < inner; ++i) to[i] += from[i];
      }
  });
  return record(op, {src}, std::move(out)).backward([a, index](const GradContext& c) {
    return Grads{index_select(c.grad, std::ptrdiff_t(a), index)};
  });
}

Tensor index_select(const Tensor& x0, std::ptrdiff_t axis, const Tensor& index0) {
  const std::size_t a = normalize_axis("index_select", axis, x0.dim(), x0.shape());
  TG_CHECK(index0.dim() == 1, ShapeError, "index_select: the index must be 1-d, got " << shape_str(index0.shape()));
  const Tensor x = x0.contiguous(), index = index0.contiguous();
  const std::int64_t* idx = checked_indices("index_select", index, x.shape()[a]);
  Shape shape = x.shape();
  shape[a] = index.numel();
  const std::size_t inner = product(Shape(shape.begin() + std::ptrdiff_t(a) + 1, shape.end()));
  const std::size_t outer = product(Shape(shape.begin(), shape.begin() + std::ptrdiff_t(a)));
  const std::size_t item = element_size(x.dtype()), n = x.shape()[a];
  Tensor out = empty(shape, x.dtype());
  const char* px = static_cast<const char*>(x.impl()->storage->data()) + x.impl()->offset * item;
  char* po = static_cast<char*>(out.impl()->storage->data());
  const std::size_t picked = index.numel();
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t k = 0; k < picked; ++k)
      std::memcpy(po + (o * picked + k) * inner * item, px + (o * n + std::size_t(idx[k])) * inner * item,
                  inner * item);
  return record("index_select", {x}, std::move(out)).backward([a, index](const GradContext& c) {
    return Grads{index_select_backward(c.grad, c.input_shape(0), std::ptrdiff_t(a), index)};
  });
}

namespace {

// Checks gather/scatter_add's index against x and returns the axis.
std::size_t check_scatter_index(const char* op, const Tensor& x, std::ptrdiff_t axis, const Tensor& index) {
  const std::size_t a = normalize_axis(op, axis, x.dim(), x.shape());
  bool ok = index.dim() == x.dim();
  for (std::size_t d = 0; ok && d < x.dim(); ++d) ok = d == a || index.shape()[d] <= x.shape()[d];
  TG_CHECK(ok, ShapeError,
           op << ": index of shape " << shape_str(index.shape()) << " does not fit input " << shape_str(x.shape())
              << " (same rank, no larger except along axis " << axis << ")");
  return a;
}

// Calls f(x offset, index offset (= the position in index order)) for every
// element of index, where the x offset has the index value along `axis`.
template <class F>
void for_each_scattered(const char* op, const Tensor& x, std::size_t axis, const Tensor& index, F&& f) {
  const std::int64_t* idx = checked_indices(op, index, x.shape()[axis]);
  Strides xs = contiguous_strides(x.shape());
  const std::ptrdiff_t along = xs[axis];
  xs[axis] = 0;
  std::ptrdiff_t k = 0;
  const Strides none(index.dim(), 0);
  for_each_offset(index.shape(), xs, none, none, [&](std::ptrdiff_t ox, std::ptrdiff_t, std::ptrdiff_t) {
    f(ox + idx[k] * along, k);
    ++k;
  });
}

}  // namespace

Tensor gather(const Tensor& x0, std::ptrdiff_t axis, const Tensor& index0) {
  const Tensor x = x0.contiguous(), index = index0.contiguous();
  const std::size_t a = check_scatter_index("gather", x, axis, index);
  Tensor out = empty(index.shape(), x.dtype());
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* po = static_cast<T*>(out.impl()->storage->data());
    for_each_scattered("gather", x, a, index, [&](std::ptrdiff_t ox, std::ptrdiff_t k) { po[k] = px[ox]; });
  });
  return record("gather", {x}, std::move(out)).backward([a, index](const GradContext& c) {
    return Grads{scatter_add(zeros(c.input_shape(0), c.input_dtype(0)), std::ptrdiff_t(a), index, c.grad)};
  });
}

Tensor scatter_add(const Tensor& x0, std::ptrdiff_t axis, const Tensor& index0, const Tensor& src0) {
  const Tensor index = index0.contiguous();
  TG_CHECK(src0.shape() == index.shape(), ShapeError,
           "scatter_add: src of shape " << shape_str(src0.shape()) << " must have the index's shape "
                                        << shape_str(index.shape()));
  const Dtype dtype = promote_types(x0.dtype(), src0.dtype());
  const Tensor x = x0.to(dtype).contiguous(), src = src0.to(dtype).contiguous();
  const std::size_t a = check_scatter_index("scatter_add", x, axis, index);
  Tensor out = x.detach().clone();
  visit_numeric("scatter_add", dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* ps = src.data<T>();
    T* po = static_cast<T*>(out.impl()->storage->data());
    for_each_scattered("scatter_add", x, a, index, [&](std::ptrdiff_t ox, std::ptrdiff_t k) { po[ox] += ps[k]; });
  });
  return record("scatter_add", {x, src}, std::move(out)).backward([a, index](const GradContext& c) {
    return Grads{c.needs_grad[0] ? c.grad : Tensor(),
                 c.needs_grad[1] ? gather(c.grad, std::ptrdiff_t(a), index) : Tensor()};
  });
}

// ============================================================================
// padding — the adjoint is the slice of the interior
// ============================================================================

Tensor pad(const Tensor& x, const std::vector<std::int64_t>& pads, double value) {
  TG_CHECK(pads.size() % 2 == 0 && pads.size() / 2 <= x.dim(), ValueError,
           "pad: " << pads.size() << " padding sizes for a tensor of shape " << shape_str(x.shape())
                   << " (need a left and right size for each of the last axes)");
  Shape shape = x.shape();
  std::vector<std::int64_t> left(x.dim(), 0);
  for (std::size_t k = 0; k < pads.size(); ++k) {
    TG_CHECK(pads[k] >= 0, ValueError, "pad: padding sizes must not be negative, got " << pads[k]);
    const std::size_t axis = x.dim() - 1 - k / 2;
    if (k % 2 == 0) left[axis] = pads[k];
    shape[axis] += std::size_t(pads[k]);
  }
  checked_numel("pad", shape);
  Tensor out = full(shape, value, x.dtype());
  {
    // The interior of out, as a view outside the graph, receives x.
    std::size_t offset = 0;
    for (std::size_t d = 0; d < x.dim(); ++d) offset += std::size_t(left[d]) * std::size_t(out.strides()[d]);
    NoGradGuard no_grad;
    make_view(out, x.shape(), out.strides(), offset).copy_(x.detach());
  }
  return record("pad", {x}, std::move(out)).backward([left](const GradContext& c) {
    Tensor g = c.grad;
    for (std::size_t d = 0; d < left.size(); ++d)
      if (g.shape()[d] != c.input_shape(0)[d]) g = narrow(g, std::ptrdiff_t(d), left[d], std::int64_t(c.input_shape(0)[d]));
    return Grads{g};
  });
}

}  // namespace tg
