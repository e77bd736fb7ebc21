// Tensor: a handle to a view of a Storage (offset, shape, strides, dtype)
// plus autograd state. Copies of a handle share both, as torch::Tensor does;
// views (reshape, transpose, slice, detach) share the storage.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include "dtype.hpp"
#include "error.hpp"
#include "random.hpp"
#include "storage.hpp"
#include "strided.hpp"

namespace tg {

class Tensor;
using Strides = std::vector<std::ptrdiff_t>;  // in elements
using Axes = std::vector<std::ptrdiff_t>;     // negative axes count from the end

// Sizes given as a list ({3, -1}) or as a Shape: one parameter type, so that
// reshape(x, {3, 2}) and reshape(x, shape) both resolve.
class SizeList : public std::vector<std::int64_t> {
 public:
  SizeList(std::initializer_list<std::int64_t> sizes) : std::vector<std::int64_t>(sizes) {}
  SizeList(const std::vector<std::int64_t>& sizes) : std::vector<std::int64_t>(sizes) {}  // NOLINT
  SizeList(const Shape& shape) : std::vector<std::int64_t>(shape.begin(), shape.end()) {}  // NOLINT
};

// One entry of x.index({...}): an integer picks one position and removes the
// axis, a Slice keeps a range: x.index({tg::Slice(), 0}) is Python's x[:, 0].
struct Slice {
  Slice(std::optional<std::int64_t> start = std::nullopt, std::optional<std::int64_t> stop = std::nullopt,
        std::int64_t step = 1)
      : start(start), stop(stop), step(step) {}
  std::optional<std::int64_t> start, stop;  // Python's rules: negative counts from the end
  std::int64_t step;
};

class TensorIndex {
 public:
  TensorIndex(std::int64_t index) : index_(index) {}  // NOLINT: implicit on purpose
  TensorIndex(int index) : index_(index) {}           // NOLINT
  TensorIndex(Slice slice) : slice_(slice), is_slice_(true) {}  // NOLINT
  bool is_slice() const { return is_slice_; }
  std::int64_t index() const { return index_; }
  const Slice& slice() const { return slice_; }

 private:
  std::int64_t index_ = 0;
  Slice slice_;
  bool is_slice_ = false;
};

// Called with a tensor's gradient when backward computes it; returning a
// defined tensor replaces the gradient, an undefined one keeps it.
using Hook = std::function<Tensor(const Tensor&)>;

struct TensorImpl {
  // ---- the value: a view of a storage ----
  std::shared_ptr<Storage> storage;
  std::size_t offset = 0;  // of the first element, in elements
  Shape shape;
  Strides strides;
  Dtype dtype = kFloat32;

  // ---- autograd ----
  bool requires_grad = false;
  bool retains_grad = false;  // a non-leaf that keeps .grad (retain_grad())
  std::uint64_t creator = 0;  // id of the tape entry that produced it; 0 for a leaf
  std::string name;
  std::shared_ptr<TensorImpl> grad;     // accumulated .grad
  std::shared_ptr<TensorImpl> pending;  // gradient being summed during one backward pass
  std::vector<std::pair<std::uint64_t, Hook>> hooks;  // (handle id, hook)
  // How many tape entries hold this tensor as an input its gradient flows to
  // (InputHold). When the last Tensor handle goes and only they remain,
  // nothing can read the values any more.
  std::atomic<std::uint32_t> tape_refs{0};

  TensorImpl() = default;
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;
  ~TensorImpl();  // frees the recorded graph that only this tensor could use
};

// A nested list of numbers: Tensor{{1, 2}, {3, 4}}. Ragged lists throw.
class NestedList {
 public:
  NestedList(double value) : value_(value), is_number_(true) {}  // NOLINT: implicit on purpose
  NestedList(std::initializer_list<NestedList> items) : items_(items) {}

  Shape shape() const;                          // throws ValueError when ragged
  void flatten(std::vector<double>& out) const;  // row-major

 private:
  double value_ = 0.0;
  bool is_number_ = false;
  std::vector<NestedList> items_;
};

// What a creation function makes: tg::zeros({2, 3}, tg::kFloat64),
// tg::ones({4}, tg::TensorOptions(tg::kFloat64).requires_grad(true)).
class TensorOptions {
 public:
  TensorOptions(Dtype dtype = kFloat32) : dtype_(dtype) {}  // NOLINT: implicit on purpose
  Dtype dtype() const { return dtype_; }
  bool requires_grad() const { return requires_grad_; }
  TensorOptions dtype(Dtype d) const { TensorOptions o = *this; o.dtype_ = d; return o; }
  TensorOptions requires_grad(bool on) const { TensorOptions o = *this; o.requires_grad_ = on; return o; }

 private:
  Dtype dtype_ = kFloat32;
  bool requires_grad_ = false;
};

// tg::ones({3}, tg::requires_grad()): float32 options that require grad.
inline TensorOptions requires_grad(bool on = true) { return TensorOptions().requires_grad(on); }

// Returned by register_hook; remove() takes the hook off again.
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(std::weak_ptr<TensorImpl> impl, std::uint64_t id) : impl_(std::move(impl)), id_(id) {}
  void remove();

 private:
  std::weak_ptr<TensorImpl> impl_;
  std::uint64_t id_ = 0;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: no value, e.g. "no bias"
  // float32 from nested lists; tg::tensor(list, dtype) for other dtypes.
  explicit Tensor(std::initializer_list<NestedList> values);
  // A copy of an xtensor expression; the dtype follows its element type.
  template <class E>
  explicit Tensor(const xt::xexpression<E>& e, bool requires_grad = false);
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  Tensor(const Tensor&) = default;
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(const Tensor& other) {
    if (impl_ != other.impl_) {
      let_go();
      impl_ = other.impl_;
    }
    return *this;
  }
  Tensor& operator=(Tensor&& other) noexcept {
    if (this != &other) {
      let_go();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  ~Tensor() { let_go(); }

  bool defined() const { return impl_ != nullptr; }
  Dtype dtype() const { return checked().dtype; }
  const Shape& shape() const { return checked().shape; }
  const Strides& strides() const { return checked().strides; }
  std::size_t dim() const { return shape().size(); }
  std::size_t numel() const;
  std::size_t size(std::ptrdiff_t axis) const;
  bool is_contiguous() const;

  // ---- typed access ----
  // The elements of a contiguous tensor of element type T (DtypeError for
  // another dtype; call contiguous() first on a strided view).
  template <class T> const T* data() const { return typed<T>("data", true); }
  // The same for writing, under the in-place rules (NoGradGuard, or a tensor
  // that needs no grad); bumps the version that backward checks.
  template <class T> T* mutable_data() { return written(typed<T>("mutable_data", true)); }
  // The value as an xtensor view (any strides), read-only or writable; it
  // keeps the storage alive.
  template <class T> auto value() const { return adapted(typed<T>("value", false)); }
  template <class T> auto mutable_value() { return adapted(written(typed<T>("mutable_value", false))); }
  // A copy as an xtensor array.
  template <class T> xt::xarray<T> to_xarray() const { return xt::xarray<T>(value<T>()); }
  // The single element, converted to T; throws unless numel() == 1.
  template <class T = double> T item() const;

  // ---- conversion and layout (differentiable) ----
  Tensor to(Dtype dtype) const;  // the gradient comes back in this tensor's dtype
  Tensor contiguous() const;     // this tensor when already contiguous
  Tensor clone() const;          // a contiguous copy

  // ---- autograd ----
  bool requires_grad() const { return defined() && impl_->requires_grad; }
  Tensor& requires_grad_(bool on = true);  // leaves of a floating dtype only
  bool is_leaf() const { return checked().creator == 0; }
  // The accumulated gradient of a leaf (or of a tensor that called
  // retain_grad()); undefined before the first backward.
  Tensor grad() const;
  // Drops the gradient (set_to_none, as torch's default) or zeroes it in place.
  void zero_grad(bool set_to_none = true);
  void retain_grad();  // a non-leaf keeps its .grad too
  // The same storage as a new leaf outside any graph.
  Tensor detach() const;
  // Makes this leaf hold `value` (its storage, layout and dtype) in place, so
  // every handle to it sees the change: how module.to(dtype) converts
  // registered parameters. Drops the gradient.
  void set_data(const Tensor& value);

  const std::string& name() const { return checked().name; }
  Tensor& set_name(std::string name);

  HookHandle register_hook(Hook hook);

  // Backpropagates from this tensor. Without a seed the tensor must hold one
  // element; with one, the seed has this tensor's shape. retain_graph keeps
  // the recorded entries (and their saved tensors) for another backward;
  // create_graph records the backward pass so it can be differentiated again
  // (and implies retain_graph, since that graph reads the forward one).
  void backward(const Tensor& seed = {}, bool retain_graph = false, bool create_graph = false) const;

  // ---- in-place ops: no gradient flows through them, so they are allowed
  // on tensors that need no grad, or under NoGradGuard ----
  Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha · other
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double factor);
  Tensor& zero_();
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& source);  // source broadcasts to this shape
  Tensor& clamp_(double low, double high);

  // ---- the common ops as members; the free functions are the same ops ----
  Tensor sum() const;
  Tensor sum(const Axes& axes, bool keepdims = false) const;
  Tensor mean() const;
  Tensor mean(const Axes& axes, bool keepdims = false) const;
  Tensor max() const;
  Tensor max(const Axes& axes, bool keepdims = false) const;
  Tensor min() const;
  Tensor argmax(std::ptrdiff_t axis, bool keepdims = false) const;
  Tensor argmin(std::ptrdiff_t axis, bool keepdims = false) const;
  Tensor reshape(const SizeList& shape) const;
  Tensor view(const SizeList& shape) const;
  Tensor flatten(std::ptrdiff_t start_dim = 0, std::ptrdiff_t end_dim = -1) const;
  Tensor permute(const std::vector<std::ptrdiff_t>& dims) const;
  Tensor transpose(std::ptrdiff_t dim0, std::ptrdiff_t dim1) const;
  Tensor t() const;  // a 2-d tensor's transpose
  Tensor slice(std::ptrdiff_t axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1) const;
  Tensor narrow(std::ptrdiff_t axis, std::int64_t start, std::int64_t length) const;
  Tensor select(std::ptrdiff_t axis, std::int64_t index) const;
  Tensor index(const std::vector<TensorIndex>& indices) const;
  Tensor unsqueeze(std::ptrdiff_t axis) const;
  Tensor squeeze(std::ptrdiff_t axis) const;
  Tensor matmul(const Tensor& other) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor abs() const;
  Tensor sqrt() const;
  Tensor relu() const;
  Tensor pow(double exponent) const;

  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  TensorImpl& checked() const;
  void* first_element(const char* what, Dtype want, bool need_contiguous) const;
  template <class T> T* typed(const char* what, bool need_contiguous) const {
    return static_cast<T*>(first_element(what, dtype_of<T>(), need_contiguous));
  }
  template <class T> T* written(T* p) { check_writable("in-place write"); bump_version(); return p; }
  void check_writable(const char* op) const;
  void bump_version() const;
  // An xtensor view of the elements that shares ownership of the storage, so
  // it stays valid even when taken from a temporary: (a + b).value<float>().
  // (xtensor sizes an adaptor's buffer by its element count, whatever the strides.)
  template <class T> auto adapted(T* p) const {
    using Buffer = xt::xbuffer_adaptor<T*, xt::smart_ownership, std::shared_ptr<Storage>>;
    return xt::xarray_adaptor<Buffer, xt::layout_type::dynamic, std::vector<std::size_t>>(
        Buffer(p, numel(), checked().storage), std::vector<std::size_t>(shape()), strides());
  }
  // As a handle lets go: a recorded result that only tape entries still hold
  // (to route its gradient) frees its values now, not when backward reaches
  // the op that read it. What a rule reads, the rule saved.
  void let_go() noexcept {
    if (impl_ && impl_->tape_refs.load(std::memory_order_relaxed) != 0 &&
        impl_.use_count() == long(impl_->tape_refs.load(std::memory_order_relaxed)) + 1)
      impl_->storage.reset();
  }

  std::shared_ptr<TensorImpl> impl_;
};

// ---- creation ----------------------------------------------------------------

Tensor empty(const Shape& shape, TensorOptions options = {});  // uninitialized
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor scalar_tensor(double value, TensorOptions options = {});  // 0-d
// From nested lists with a dtype, as torch::tensor: tg::tensor({{1, 2}}, tg::kInt64).
Tensor tensor(const NestedList& values, TensorOptions options = {});
Tensor empty_like(const Tensor& x);
Tensor zeros_like(const Tensor& x);
Tensor ones_like(const Tensor& x);
Tensor full_like(const Tensor& x, double value);
// [start, stop) in steps of step, as a 1-d tensor.
Tensor arange(double start, double stop, double step = 1.0, TensorOptions options = {});
Tensor linspace(double start, double stop, std::size_t steps, TensorOptions options = {});
Tensor eye(std::size_t n, TensorOptions options = {});
// Random tensors draw from the Generator given: same seed, same tensor.
Tensor rand(const Shape& shape, Generator& gen, double low = 0.0, double high = 1.0, TensorOptions options = {});
Tensor randn(const Shape& shape, Generator& gen, double mean = 0.0, double stddev = 1.0, TensorOptions options = {});
Tensor rand_like(const Tensor& x, Generator& gen);
Tensor randn_like(const Tensor& x, Generator& gen);
// Integers uniform in [low, high), int64 by default.
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen,
               TensorOptions options = kInt64);
// A random permutation of 0 .. n-1 (int64).
Tensor randperm(std::size_t n, Generator& gen);
// The same without a Generator: they draw from this thread's
// default_generator(), which tg::manual_seed(s) reseeds.
Tensor rand(const Shape& shape, double low = 0.0, double high = 1.0, TensorOptions options = {});
Tensor randn(const Shape& shape, double mean = 0.0, double stddev = 1.0, TensorOptions options = {});
Tensor rand_like(const Tensor& x);
Tensor randn_like(const Tensor& x);
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, TensorOptions options = kInt64);
Tensor randperm(std::size_t n);

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// A view of x's storage with this layout, outside any graph: how view ops
// build their result before recording it.
Tensor make_view(const Tensor& x, Shape shape, Strides strides, std::size_t offset);

// ---- template definitions ----------------------------------------------------

template <class E>
Tensor::Tensor(const xt::xexpression<E>& e, bool requires_grad) {
  using V = typename E::value_type;
  using Stored = std::conditional_t<std::is_integral_v<V> && !std::is_same_v<V, bool>, std::int64_t, V>;
  const auto& expr = e.derived_cast();
  const auto& s = expr.shape();
  Tensor t = empty(Shape(s.begin(), s.end()), dtype_of<Stored>());
  std::copy(expr.begin(), expr.end(), t.typed<Stored>("tensor", true));
  impl_ = std::move(t.impl_);
  if (requires_grad) requires_grad_(true);
}

template <class T>
T Tensor::item() const {
  TG_CHECK(numel() == 1, ShapeError,
           "item: tensor of shape " << shape_str(shape()) << " has " << numel() << " elements, not 1");
  return visit_dtype(dtype(), [&](auto tag) {
    using S = typename decltype(tag)::type;
    return static_cast<T>(*typed<S>("item", false));
  });
}

}  // namespace tg
