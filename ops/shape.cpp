#include "shape.hpp"

#include <algorithm>

#include "../core/autograd.hpp"
#include "../core/storage.hpp"
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

// ============================================================================
// reshape / flatten — the adjoint of a reshape is the reshape back
// ============================================================================

template <class T>
BasicTensor<T> reshape(const BasicTensor<T>& x, const Shape& shape) {
  const Shape in_shape = x.shape();
  if (in_shape == shape) return x;
  if (kernels::product(shape) != x.numel())
    throw ShapeError("reshape: cannot reshape tensor of shape " + shape_str(in_shape) + " (" +
                     std::to_string(x.numel()) + " elements) into " + shape_str(shape) + " (" +
                     std::to_string(kernels::product(shape)) + " elements)");
  xt::xarray<T> out = empty_array<T>(shape);
  std::copy(x.data(), x.data() + x.numel(), out.data());
  return record("reshape", {x}, std::move(out)).backward([](const GradContext<T>& c) {
    return Grads<T>{reshape(c.grad, c.input_shape(0))};
  });
}

template <class T>
BasicTensor<T> reshape(const BasicTensor<T>& x, const std::vector<std::ptrdiff_t>& shape) {
  Shape resolved(shape.size());
  std::size_t known = 1;
  std::ptrdiff_t inferred = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1 && inferred < 0) {
      inferred = std::ptrdiff_t(i);
    } else if (shape[i] < 0) {
      throw ShapeError("reshape: invalid target size " + std::to_string(shape[i]) + " for tensor of shape " +
                       shape_str(x.shape()) + " (at most one -1 is allowed)");
    } else {
      resolved[i] = std::size_t(shape[i]);
      known *= resolved[i];
    }
  }
  if (inferred >= 0) {
    if (known == 0 || x.numel() % known != 0)
      throw ShapeError("reshape: cannot infer the -1 dimension to reshape tensor of shape " +
                       shape_str(x.shape()) + " (" + std::to_string(x.numel()) + " elements)");
    resolved[std::size_t(inferred)] = x.numel() / known;
  }
  return reshape(x, resolved);
}

template <class T>
BasicTensor<T> flatten(const BasicTensor<T>& x, std::ptrdiff_t start_dim, std::ptrdiff_t end_dim) {
  const Shape in_shape = x.shape();
  if (in_shape.empty()) return reshape(x, Shape{1});
  const std::size_t start = normalize_axis("flatten", start_dim, in_shape.size(), in_shape);
  const std::size_t end = normalize_axis("flatten", end_dim, in_shape.size(), in_shape);
  if (start > end)
    throw AxisError("flatten: start_dim " + std::to_string(start_dim) + " comes after end_dim " +
                    std::to_string(end_dim) + " for shape " + shape_str(in_shape));
  Shape shape(in_shape.begin(), in_shape.begin() + std::ptrdiff_t(start));
  std::size_t merged = 1;
  for (std::size_t i = start; i <= end; ++i) merged *= in_shape[i];
  shape.push_back(merged);
  shape.insert(shape.end(), in_shape.begin() + std::ptrdiff_t(end) + 1, in_shape.end());
  return reshape(x, shape);
}

// ============================================================================
// permute / transpose — the adjoint of a permutation is its inverse
// ============================================================================

template <class T>
BasicTensor<T> permute(const BasicTensor<T>& x, const std::vector<std::ptrdiff_t>& dims) {
  const Shape in_shape = x.shape();
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
  Shape out_shape(nd);
  const kernels::Strides in_strides = kernels::contiguous_strides(in_shape);
  kernels::Strides read(nd);  // output index -> input offset
  for (std::size_t i = 0; i < nd; ++i) {
    out_shape[i] = in_shape[source[i]];
    read[i] = in_strides[source[i]];
  }
  xt::xarray<T> out = empty_array<T>(out_shape);
  const T* px = x.data();
  T* po = out.data();
  const kernels::Strides none(nd, 0);
  kernels::for_each_offset(out_shape, read, kernels::contiguous_strides(out_shape), none,
                           [&](std::ptrdiff_t i, std::ptrdiff_t o, std::ptrdiff_t) { po[o] = px[i]; });
  return record("permute", {x}, std::move(out)).backward([inverse](const GradContext<T>& c) {
    return Grads<T>{permute(c.grad, inverse)};
  });
}

template <class T>
BasicTensor<T> transpose(const BasicTensor<T>& x, std::ptrdiff_t dim0, std::ptrdiff_t dim1) {
  const Shape shape = x.shape();
  const std::size_t a = normalize_axis("transpose", dim0, shape.size(), shape);
  const std::size_t b = normalize_axis("transpose", dim1, shape.size(), shape);
  std::vector<std::ptrdiff_t> dims(shape.size());
  for (std::size_t i = 0; i < dims.size(); ++i) dims[i] = std::ptrdiff_t(i);
  std::swap(dims[a], dims[b]);
  return permute(x, dims);
}

#define TG_INSTANTIATE(T)                                                                     \
  template BasicTensor<T> reshape(const BasicTensor<T>&, const Shape&);                       \
  template BasicTensor<T> reshape(const BasicTensor<T>&, const std::vector<std::ptrdiff_t>&); \
  template BasicTensor<T> flatten(const BasicTensor<T>&, std::ptrdiff_t, std::ptrdiff_t);     \
  template BasicTensor<T> permute(const BasicTensor<T>&, const std::vector<std::ptrdiff_t>&); \
  template BasicTensor<T> transpose(const BasicTensor<T>&, std::ptrdiff_t, std::ptrdiff_t);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg
