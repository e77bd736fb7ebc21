#include "tensor.hpp"

#include <algorithm>
#include <cmath>
#include <ostream>

#include <xtensor/xio.hpp>

#include "autograd.hpp"
#include "storage.hpp"

namespace tg {

template <class T>
TensorImpl<T>::~TensorImpl() {
  recycle(std::move(value));
}

template <class T>
BasicTensor<T>::BasicTensor(xt::xarray<T> value, bool requires_grad)
    : impl_(std::make_shared<TensorImpl<T>>()) {
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
}

template <class T>
TensorImpl<T>& BasicTensor<T>::checked() const {
  if (!impl_) throw Error("tensor: use of an undefined tensor (it holds no value)");
  return *impl_;
}

template <class T>
Shape BasicTensor<T>::shape() const {
  const auto& s = value().shape();
  return Shape(s.begin(), s.end());
}

template <class T>
std::size_t BasicTensor<T>::size(std::ptrdiff_t axis) const {
  const auto n = static_cast<std::ptrdiff_t>(dim());
  const auto a = axis < 0 ? axis + n : axis;
  if (a < 0 || a >= n)
    throw AxisError("size: axis " + std::to_string(axis) + " is out of range for shape " +
                    shape_str(value().shape()));
  return value().shape()[static_cast<std::size_t>(a)];
}

template <class T>
T BasicTensor<T>::item() const {
  if (numel() != 1)
    throw ShapeError("item: tensor of shape " + shape_str(value().shape()) +
                     " has " + std::to_string(numel()) + " elements, not 1");
  return *value().data();
}

template <class T>
BasicTensor<T>& BasicTensor<T>::requires_grad_(bool on) {
  if (!is_leaf())
    throw AutogradError("requires_grad_: only a leaf can change requires_grad; this tensor was"
                        " produced by a recorded op (use detach() for a new leaf)");
  impl_->requires_grad = on;
  return *this;
}

template <class T>
BasicTensor<T> BasicTensor<T>::grad() const {
  return BasicTensor<T>(checked().grad);
}

template <class T>
void BasicTensor<T>::zero_grad() {
  checked().grad.reset();
}

template <class T>
BasicTensor<T> BasicTensor<T>::detach() const {
  BasicTensor<T> out(value());
  out.impl_->name = impl_->name;
  return out;
}

template <class T>
BasicTensor<T>& BasicTensor<T>::set_name(std::string name) {
  checked().name = std::move(name);
  return *this;
}

template <class T>
void BasicTensor<T>::register_hook(Hook<T> hook) {
  if (!requires_grad())
    throw AutogradError("register_hook: the tensor does not require grad, so no gradient"
                        " will ever be computed for it");
  impl_->hooks.push_back(std::move(hook));
}

template <class T>
void BasicTensor<T>::backward(const BasicTensor& seed, bool retain_graph,
                              bool create_graph) const {
  run_backward<T>({*this}, {seed}, retain_graph, create_graph,
                  /*accumulate_into_leaves=*/true, {}, nullptr);
}

// ---- creation --------------------------------------------------------------

template <class T>
BasicTensor<T> zeros(const Shape& shape, bool requires_grad) {
  return full<T>(shape, T(0), requires_grad);
}

template <class T>
BasicTensor<T> ones(const Shape& shape, bool requires_grad) {
  return full<T>(shape, T(1), requires_grad);
}

template <class T>
BasicTensor<T> full(const Shape& shape, T fill, bool requires_grad) {
  xt::xarray<T> v = empty_array<T>(shape);
  std::fill(v.begin(), v.end(), fill);
  return BasicTensor<T>(std::move(v), requires_grad);
}

template <class T>
BasicTensor<T> arange(T start, T stop, T step) {
  if (step == T(0)) throw ValueError("arange: step must not be zero");
  if (!std::isfinite(double(start)) || !std::isfinite(double(stop)) || !std::isfinite(double(step)))
    throw ValueError("arange: start, stop and step must be finite");
  const double count = std::ceil((double(stop) - double(start)) / double(step));
  const std::size_t n = count > 0 ? static_cast<std::size_t>(count) : 0;
  xt::xarray<T> v(Shape{n});
  for (std::size_t i = 0; i < n; ++i) v(i) = static_cast<T>(start + T(i) * step);
  return BasicTensor<T>(std::move(v));
}

template <class T>
BasicTensor<T> rand(const Shape& shape, Generator& gen, T low, T high) {
  xt::xarray<T> v = empty_array<T>(shape);
  for (auto& e : v) e = static_cast<T>(gen.uniform(low, high));
  return BasicTensor<T>(std::move(v));
}

template <class T>
BasicTensor<T> randn(const Shape& shape, Generator& gen, T mean, T stddev) {
  xt::xarray<T> v = empty_array<T>(shape);
  for (auto& e : v) e = static_cast<T>(gen.normal(mean, stddev));
  return BasicTensor<T>(std::move(v));
}

template <class T>
std::ostream& operator<<(std::ostream& os, const BasicTensor<T>& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  os << "tensor(" << t.value();
  if (t.requires_grad()) os << ", requires_grad";
  return os << ')';
}

#define TG_INSTANTIATE(T)                                                     \
  template struct TensorImpl<T>;                                              \
  template class BasicTensor<T>;                                              \
  template BasicTensor<T> zeros<T>(const Shape&, bool);                       \
  template BasicTensor<T> ones<T>(const Shape&, bool);                        \
  template BasicTensor<T> full<T>(const Shape&, T, bool);                     \
  template BasicTensor<T> arange<T>(T, T, T);                                 \
  template BasicTensor<T> rand<T>(const Shape&, Generator&, T, T);            \
  template BasicTensor<T> randn<T>(const Shape&, Generator&, T, T);           \
  template std::ostream& operator<< <T>(std::ostream&, const BasicTensor<T>&);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg
