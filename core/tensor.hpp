// BasicTensor<T>: a handle to a value (an xt::xarray<T>) plus autograd state.
// Copies of a handle share both, as torch::Tensor does.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "error.hpp"
#include "random.hpp"

namespace tg {

template <class T>
class BasicTensor;

// Called with a tensor's gradient when backward computes it; returning a
// defined tensor replaces the gradient, an undefined one keeps it.
template <class T>
using Hook = std::function<BasicTensor<T>(const BasicTensor<T>&)>;

template <class T>
struct TensorImpl {
  xt::xarray<T> value;
  bool requires_grad = false;
  std::uint64_t creator = 0;  // id of the tape entry that produced it; 0 for a leaf
  std::string name;
  std::shared_ptr<TensorImpl> grad;     // a leaf's accumulated .grad
  std::shared_ptr<TensorImpl> pending;  // gradient being summed during one backward pass
  std::vector<Hook<T>> hooks;

  TensorImpl() = default;
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;
  ~TensorImpl();  // hands a large value buffer on for reuse (storage.hpp)
};

template <class T>
class BasicTensor {
 public:
  using value_type = T;

  BasicTensor() = default;  // undefined: no value, e.g. "no bias"
  explicit BasicTensor(xt::xarray<T> value, bool requires_grad = false);
  BasicTensor(xt::nested_initializer_list_t<T, 1> values) : BasicTensor(xt::xarray<T>(values)) {}
  BasicTensor(xt::nested_initializer_list_t<T, 2> values) : BasicTensor(xt::xarray<T>(values)) {}
  BasicTensor(xt::nested_initializer_list_t<T, 3> values) : BasicTensor(xt::xarray<T>(values)) {}
  BasicTensor(xt::nested_initializer_list_t<T, 4> values) : BasicTensor(xt::xarray<T>(values)) {}
  explicit BasicTensor(std::shared_ptr<TensorImpl<T>> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const xt::xarray<T>& value() const { return checked().value; }
  // Mutable access for in-place updates (optimizers, initializers). Changing a
  // value that a recorded op saved makes that op's gradient wrong.
  xt::xarray<T>& value() { return checked().value; }
  const T* data() const { return checked().value.data(); }
  T* data() { return checked().value.data(); }

  Shape shape() const;
  std::size_t dim() const { return value().dimension(); }
  std::size_t numel() const { return value().size(); }
  std::size_t size(std::ptrdiff_t axis) const;
  T item() const;  // the single element; throws unless numel() == 1

  bool requires_grad() const { return defined() && impl_->requires_grad; }
  BasicTensor& requires_grad_(bool on = true);  // leaves only
  bool is_leaf() const { return checked().creator == 0; }

  // The accumulated gradient of a leaf; undefined before the first backward.
  BasicTensor grad() const;
  void zero_grad();  // drops the gradient (grad() is undefined afterwards)

  // A new leaf holding a copy of the value, outside any graph.
  BasicTensor detach() const;

  const std::string& name() const { return checked().name; }
  BasicTensor& set_name(std::string name);

  void register_hook(Hook<T> hook);

  // Backpropagates from this tensor. Without a seed the tensor must hold one
  // element; with one, the seed has this tensor's shape. retain_graph keeps
  // the recorded entries (and their saved tensors) for another backward;
  // create_graph records the backward pass so it can be differentiated again
  // (and implies retain_graph, since that graph reads the forward one).
  void backward(const BasicTensor& seed = {}, bool retain_graph = false,
                bool create_graph = false) const;

  const std::shared_ptr<TensorImpl<T>>& impl() const { return impl_; }
  bool same(const BasicTensor& other) const { return impl_ == other.impl_; }

 private:
  TensorImpl<T>& checked() const;
  std::shared_ptr<TensorImpl<T>> impl_;
};

using Tensor = BasicTensor<float>;
using DTensor = BasicTensor<double>;

// ---- creation --------------------------------------------------------------
// Every random creator takes its Generator explicitly: same seed, same tensor.

template <class T = float>
BasicTensor<T> zeros(const Shape& shape, bool requires_grad = false);
template <class T = float>
BasicTensor<T> ones(const Shape& shape, bool requires_grad = false);
template <class T = float>
BasicTensor<T> full(const Shape& shape, T fill, bool requires_grad = false);
// [start, stop) in steps of step, as a 1-d tensor.
template <class T = float>
BasicTensor<T> arange(T start, T stop, T step = T(1));
// Uniform in [low, high).
template <class T = float>
BasicTensor<T> rand(const Shape& shape, Generator& gen, T low = T(0), T high = T(1));
// Normal with the given mean and standard deviation.
template <class T = float>
BasicTensor<T> randn(const Shape& shape, Generator& gen, T mean = T(0), T stddev = T(1));

template <class T>
std::ostream& operator<<(std::ostream& os, const BasicTensor<T>& t);

}  // namespace tg
