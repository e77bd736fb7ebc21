// Tensor's member functions for the common ops: each is the free function of
// the same name, so that x.sum() and tg::sum(x) are one op.
#include "elementwise.hpp"
#include "linalg.hpp"
#include "reduce.hpp"
#include "shape.hpp"

namespace tg {

Tensor Tensor::sum() const { return tg::sum(*this); }
Tensor Tensor::sum(const Axes& axes, bool keepdims) const { return tg::sum(*this, axes, keepdims); }
Tensor Tensor::mean() const { return tg::mean(*this); }
Tensor Tensor::mean(const Axes& axes, bool keepdims) const { return tg::mean(*this, axes, keepdims); }
Tensor Tensor::max() const { return tg::max(*this); }
Tensor Tensor::max(const Axes& axes, bool keepdims) const { return tg::max(*this, axes, keepdims); }
Tensor Tensor::min() const { return tg::min(*this); }
Tensor Tensor::argmax(std::ptrdiff_t axis, bool keepdims) const { return tg::argmax(*this, axis, keepdims); }
Tensor Tensor::argmin(std::ptrdiff_t axis, bool keepdims) const { return tg::argmin(*this, axis, keepdims); }
Tensor Tensor::reshape(const SizeList& shape) const { return tg::reshape(*this, shape); }
Tensor Tensor::view(const SizeList& shape) const { return tg::view(*this, shape); }
Tensor Tensor::flatten(std::ptrdiff_t start_dim, std::ptrdiff_t end_dim) const {
  return tg::flatten(*this, start_dim, end_dim);
}
Tensor Tensor::permute(const std::vector<std::ptrdiff_t>& dims) const { return tg::permute(*this, dims); }
Tensor Tensor::transpose(std::ptrdiff_t dim0, std::ptrdiff_t dim1) const { return tg::transpose(*this, dim0, dim1); }
Tensor Tensor::t() const {
  TG_CHECK(dim() == 2, ShapeError, "t: expected a 2-d tensor, got shape " << shape_str(shape()));
  return tg::transpose(*this, 0, 1);
}
Tensor Tensor::slice(std::ptrdiff_t axis, std::int64_t start, std::int64_t stop, std::int64_t step) const {
  return tg::slice(*this, axis, start, stop, step);
}
Tensor Tensor::narrow(std::ptrdiff_t axis, std::int64_t start, std::int64_t length) const {
  return tg::narrow(*this, axis, start, length);
}
Tensor Tensor::select(std::ptrdiff_t axis, std::int64_t index) const { return tg::select(*this, axis, index); }
Tensor Tensor::index(const std::vector<TensorIndex>& indices) const { return tg::index(*this, indices); }
Tensor Tensor::unsqueeze(std::ptrdiff_t axis) const { return tg::unsqueeze(*this, axis); }
Tensor Tensor::squeeze(std::ptrdiff_t axis) const { return tg::squeeze(*this, axis); }
Tensor Tensor::matmul(const Tensor& other) const { return tg::matmul(*this, other); }
Tensor Tensor::exp() const { return tg::exp(*this); }
Tensor Tensor::log() const { return tg::log(*this); }
Tensor Tensor::abs() const { return tg::abs(*this); }
Tensor Tensor::sqrt() const { return tg::sqrt(*this); }
Tensor Tensor::relu() const { return tg::relu(*this); }
Tensor Tensor::pow(double exponent) const { return tg::pow(*this, exponent); }

}  // namespace tg
