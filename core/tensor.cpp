#include "tensor.hpp"

#include <atomic>
#include <cmath>
#include <numeric>
#include <ostream>

#include <xtensor/xio.hpp>

#include "autograd.hpp"
#include "parallel.hpp"

namespace tg {

// ---- dtype, errors ---------------------------------------------------------------

const char* dtype_name(Dtype dtype) {
  switch (dtype) {
    case kFloat32: return "float32";
    case kFloat64: return "float64";
    case kInt64: return "int64";
    case kBool: return "bool";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, Dtype dtype) { return os << dtype_name(dtype); }

std::size_t element_size(Dtype dtype) {
  return visit_dtype(dtype, [](auto tag) { return sizeof(typename decltype(tag)::type); });
}

std::ostream& operator<<(std::ostream& os, const Shape& shape) { return os << shape_str(shape); }

std::size_t checked_numel(const char* op, const Shape& shape) {
  std::size_t n = 1;
  bool overflow = false;
  for (auto d : shape) {
    if (d != 0 && n > kMaxElements / d) overflow = true;
    n *= d;
  }
  for (auto d : shape)
    if (d == 0) return 0;
  TG_CHECK(!overflow && n <= kMaxElements, ShapeError,
           op << ": shape " << shape_str(shape) << " has more elements than the limit of " << kMaxElements
              << " (a negative size converted to unsigned, or an overflowing product?)");
  return n;
}

std::size_t non_negative(const char* op, const char* what, std::int64_t value) {
  TG_CHECK(value >= 0, ValueError, op << ": " << what << " must not be negative, got " << value);
  return std::size_t(value);
}

// ---- TensorImpl, NestedList, hooks ---------------------------------------------------

TensorImpl::~TensorImpl() {
  if (creator) notify_output_died(creator);
}

Shape NestedList::shape() const {
  if (is_number_) return {};
  Shape inner = items_.empty() ? Shape{} : items_.front().shape();
  for (const auto& item : items_)
    TG_CHECK(item.shape() == inner, ValueError,
             "tensor: ragged nested list (an element of shape " << shape_str(item.shape())
                 << " beside one of shape " << shape_str(inner) << "); every row needs the same length");
  Shape s{items_.size()};
  s.insert(s.end(), inner.begin(), inner.end());
  return s;
}

void NestedList::flatten(std::vector<double>& out) const {
  if (is_number_) out.push_back(value_);
  for (const auto& item : items_) item.flatten(out);
}

void HookHandle::remove() {
  if (auto impl = impl_.lock()) {
    auto& hooks = impl->hooks;
    hooks.erase(std::remove_if(hooks.begin(), hooks.end(), [&](const auto& h) { return h.first == id_; }),
                hooks.end());
  }
}

// ---- Tensor: layout and access -----------------------------------------------------

Tensor::Tensor(std::initializer_list<NestedList> values) : Tensor(tensor(NestedList(values))) {}

TensorImpl& Tensor::checked() const {
  if (!impl_) throw Error("tensor: use of an undefined tensor (it holds no value)");
  return *impl_;
}

std::size_t Tensor::numel() const { return product(shape()); }

std::size_t Tensor::size(std::ptrdiff_t axis) const {
  const auto n = static_cast<std::ptrdiff_t>(dim());
  const auto a = axis < 0 ? axis + n : axis;
  TG_CHECK(a >= 0 && a < n, AxisError, "size: axis " << axis << " is out of range for shape " << shape_str(shape()));
  return shape()[static_cast<std::size_t>(a)];
}

bool Tensor::is_contiguous() const {
  const TensorImpl& t = checked();
  // contiguous_strides(t.shape), compared axis by axis from the last without
  // building it: this runs several times per op.
  std::ptrdiff_t want = 1;
  for (std::size_t i = t.shape.size(); i-- > 0;) {
    if (t.shape[i] != 1 && t.strides[i] != want) return false;
    want *= std::ptrdiff_t(t.shape[i]);
  }
  return true;
}

void* Tensor::first_element(const char* what, Dtype want, bool need_contiguous) const {
  const TensorImpl& t = checked();
  TG_CHECK(t.dtype == want, DtypeError,
           what << "<" << dtype_name(want) << ">: the tensor holds " << dtype_name(t.dtype) << " elements");
  TG_CHECK(!need_contiguous || is_contiguous(), ValueError,
           what << ": the tensor of shape " << shape_str(t.shape)
                << " is a strided view; call contiguous() first, or use value()");
  TG_CHECK(t.storage, AutogradError,
           what << ": the values of this tensor of shape " << shape_str(t.shape)
                << " were freed when its last handle went, as the tape keeps only its place in the graph;"
                   " a backward rule that reads them must save them (save, or saves_output)");
  return static_cast<char*>(t.storage->data()) + t.offset * element_size(t.dtype);
}

void Tensor::check_writable(const char* op) const {
  TG_CHECK(!requires_grad() || !grad_enabled(), AutogradError,
           op << ": the tensor of shape " << shape_str(shape())
              << " requires grad; change it in place only under NoGradGuard (as an optimizer does)");
}

void Tensor::bump_version() const { checked().storage->bump_version(); }

Tensor make_view(const Tensor& x, Shape shape, Strides strides, std::size_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = x.impl()->storage;
  impl->dtype = x.dtype();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Tensor(std::move(impl));
}

// ---- Tensor: conversion (recorded) -------------------------------------------------

namespace {

// dst[i] = src[i] for every index, converting the element type; src may be strided.
Tensor copy_to(const Tensor& src, Dtype dtype) {
  Tensor dst = empty(src.shape(), dtype);
  visit_dtype(src.dtype(), [&](auto from) {
    using S = typename decltype(from)::type;
    visit_dtype(dtype, [&](auto to) {
      using D = typename decltype(to)::type;
      const S* ps = static_cast<const S*>(src.impl()->storage->data()) + src.impl()->offset;
      D* pd = static_cast<D*>(dst.impl()->storage->data());
      const Strides none(src.dim(), 0);
      const std::size_t n = src.shape().empty() ? 1 : src.shape().back();
      const std::ptrdiff_t step = src.shape().empty() ? 0 : src.strides().back();
      parallel_rows(src.shape(), src.strides(), contiguous_strides(src.shape()), none,
                    [&](std::ptrdiff_t i, std::ptrdiff_t o, std::ptrdiff_t) {
                      for (std::size_t k = 0; k < n; ++k) pd[o + std::ptrdiff_t(k)] = static_cast<D>(ps[i + std::ptrdiff_t(k) * step]);
                    });
    });
  });
  return dst;
}

}  // namespace

// The gradient of a conversion is the conversion back.
Tensor Tensor::to(Dtype dtype) const {
  if (dtype == this->dtype()) return *this;
  return record("to", {*this}, copy_to(*this, dtype)).backward([](const GradContext& c) {
    return Grads{c.grad.to(c.input_dtype(0))};
  });
}

Tensor Tensor::contiguous() const {
  return is_contiguous() ? *this : clone();
}

Tensor Tensor::clone() const {
  return record("clone", {*this}, copy_to(*this, dtype())).backward([](const GradContext& c) {
    return Grads{c.grad};
  });
}

// ---- Tensor: autograd state ----------------------------------------------------------

Tensor& Tensor::requires_grad_(bool on) {
  if (!is_leaf())
    throw AutogradError("requires_grad_: only a leaf can change requires_grad; this tensor was"
                        " produced by a recorded op (use detach() for a new leaf)");
  TG_CHECK(!on || is_floating(dtype()), DtypeError,
           "requires_grad_: only float32 and float64 tensors can require grad, not " << dtype_name(dtype()));
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return Tensor(checked().grad); }

void Tensor::zero_grad(bool set_to_none) {
  TensorImpl& t = checked();
  if (set_to_none || !t.grad) {
    t.grad.reset();
    return;
  }
  Tensor(t.grad).detach().zero_();
}

void Tensor::retain_grad() {
  TG_CHECK(requires_grad(), AutogradError,
           "retain_grad: the tensor of shape " << shape_str(shape()) << " does not require grad");
  impl_->retains_grad = true;
}

Tensor Tensor::detach() const {
  Tensor out = make_view(*this, shape(), strides(), impl_->offset);
  out.impl_->name = impl_->name;
  return out;
}

void Tensor::set_data(const Tensor& value) {
  TensorImpl& t = checked();
  TG_CHECK(value.defined(), ValueError, "set_data: the new value is an undefined tensor");
  TG_CHECK(is_leaf(), AutogradError, "set_data: only a leaf's value can be replaced");
  TG_CHECK(!t.requires_grad || is_floating(value.dtype()), DtypeError,
           "set_data: a tensor that requires grad cannot hold " << dtype_name(value.dtype()) << " elements");
  const TensorImpl& v = *value.impl();
  t.storage = v.storage;
  t.offset = v.offset;
  t.shape = v.shape;
  t.strides = v.strides;
  t.dtype = v.dtype;
  t.grad.reset();
}

Tensor& Tensor::set_name(std::string name) {
  checked().name = std::move(name);
  return *this;
}

HookHandle Tensor::register_hook(Hook hook) {
  if (!requires_grad())
    throw AutogradError("register_hook: the tensor does not require grad, so no gradient"
                        " will ever be computed for it");
  static std::atomic<std::uint64_t> next_id{1};
  const std::uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  impl_->hooks.emplace_back(id, std::move(hook));
  return HookHandle(impl_, id);
}

void Tensor::backward(const Tensor& seed, bool retain_graph, bool create_graph) const {
  run_backward({*this}, {seed}, retain_graph, create_graph, /*accumulate_into_leaves=*/true, {}, nullptr);
}

// ---- creation ------------------------------------------------------------------------

namespace {

// An uninitialized tensor; huge shapes are refused naming `op`.
Tensor allocate(const char* op, const Shape& shape, Dtype dtype) {
  const std::size_t n = checked_numel(op, shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(n * element_size(dtype));
  impl->dtype = dtype;
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  return Tensor(std::move(impl));
}

Tensor filled(const char* op, const Shape& shape, double value, TensorOptions options) {
  Tensor t = allocate(op, shape, options.dtype());
  visit_dtype(options.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = static_cast<T*>(t.impl()->storage->data());
    parallel_for(t.numel(), t.numel(), [&](std::size_t first, std::size_t last) {
      std::fill(p + first, p + last, static_cast<T>(value));
    });
  });
  if (options.requires_grad()) t.requires_grad_(true);
  return t;
}

}  // namespace

Tensor empty(const Shape& shape, TensorOptions options) {
  Tensor t = allocate("empty", shape, options.dtype());
  if (options.requires_grad()) t.requires_grad_(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions options) { return filled("full", shape, value, options); }
Tensor zeros(const Shape& shape, TensorOptions options) { return filled("zeros", shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return filled("ones", shape, 1.0, options); }
Tensor scalar_tensor(double value, TensorOptions options) { return full(Shape{}, value, options); }
Tensor empty_like(const Tensor& x) { return empty(x.shape(), x.dtype()); }
Tensor zeros_like(const Tensor& x) { return zeros(x.shape(), x.dtype()); }
Tensor ones_like(const Tensor& x) { return ones(x.shape(), x.dtype()); }
Tensor full_like(const Tensor& x, double value) { return full(x.shape(), value, x.dtype()); }

Tensor tensor(const NestedList& values, TensorOptions options) {
  const Shape shape = values.shape();
  std::vector<double> flat;
  values.flatten(flat);
  Tensor t = empty(shape, options.dtype());
  visit_dtype(options.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    std::transform(flat.begin(), flat.end(), static_cast<T*>(t.impl()->storage->data()),
                   [](double v) { return static_cast<T>(v); });
  });
  if (options.requires_grad()) t.requires_grad_(true);
  return t;
}

namespace {

// A 1-d tensor whose element i is f(i).
template <class F>
Tensor generate(const char* op, std::size_t n, TensorOptions options, F&& f) {
  checked_numel(op, Shape{n});
  Tensor t = empty(Shape{n}, options.dtype());
  visit_dtype(options.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = static_cast<T*>(t.impl()->storage->data());
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<T>(f(i));
  });
  if (options.requires_grad()) t.requires_grad_(true);
  return t;
}

}  // namespace

Tensor arange(double start, double stop, double step, TensorOptions options) {
  TG_CHECK(step != 0.0, ValueError, "arange: step must not be zero");
  TG_CHECK(std::isfinite(start) && std::isfinite(stop) && std::isfinite(step), ValueError,
           "arange: start, stop and step must be finite");
  const double count = std::ceil((stop - start) / step);
  TG_CHECK(count <= double(kMaxElements), ShapeError, "arange: " << count << " elements is more than the limit");
  return generate("arange", count > 0 ? std::size_t(count) : 0, options,
                  [&](std::size_t i) { return start + double(i) * step; });
}

Tensor linspace(double start, double stop, std::size_t steps, TensorOptions options) {
  TG_CHECK(std::isfinite(start) && std::isfinite(stop), ValueError, "linspace: start and stop must be finite");
  const double delta = steps > 1 ? (stop - start) / double(steps - 1) : 0.0;
  return generate("linspace", steps, options, [&](std::size_t i) {
    return i + 1 == steps && steps > 1 ? stop : start + double(i) * delta;
  });
}

Tensor eye(std::size_t n, TensorOptions options) {
  Tensor t = zeros(Shape{n, n}, options.dtype());
  visit_dtype(options.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = static_cast<T*>(t.impl()->storage->data());
    for (std::size_t i = 0; i < n; ++i) p[i * n + i] = T(1);
  });
  if (options.requires_grad()) t.requires_grad_(true);
  return t;
}

namespace {

// A tensor of `shape` whose elements are draw() in row-major order.
template <class Draw>
Tensor random_tensor(const Shape& shape, TensorOptions options, Draw&& draw) {
  Tensor t = empty(shape, options.dtype());
  visit_dtype(options.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = static_cast<T*>(t.impl()->storage->data());
    for (std::size_t i = 0, n = t.numel(); i < n; ++i) p[i] = static_cast<T>(draw());
  });
  if (options.requires_grad()) t.requires_grad_(true);
  return t;
}

}  // namespace

Tensor rand(const Shape& shape, Generator& gen, double low, double high, TensorOptions options) {
  TG_CHECK(std::isfinite(low) && std::isfinite(high) && low <= high, ValueError,
           "rand: need finite low <= high, got [" << low << ", " << high << ")");
  return random_tensor(shape, options, [&] { return gen.uniform(low, high); });
}

Tensor randn(const Shape& shape, Generator& gen, double mean, double stddev, TensorOptions options) {
  TG_CHECK(std::isfinite(mean) && std::isfinite(stddev) && stddev >= 0, ValueError,
           "randn: need a finite mean and a finite stddev >= 0, got " << mean << " and " << stddev);
  return random_tensor(shape, options, [&] { return gen.normal(mean, stddev); });
}

Tensor rand_like(const Tensor& x, Generator& gen) { return rand(x.shape(), gen, 0.0, 1.0, x.dtype()); }
Tensor randn_like(const Tensor& x, Generator& gen) { return randn(x.shape(), gen, 0.0, 1.0, x.dtype()); }

Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, Generator& gen, TensorOptions options) {
  TG_CHECK(low < high, ValueError, "randint: low (" << low << ") must be less than high (" << high << ")");
  const auto range = std::uint64_t(high) - std::uint64_t(low);
  return random_tensor(shape, options, [&] { return double(std::int64_t(std::uint64_t(low) + gen.below(range))); });
}

Tensor randperm(std::size_t n, Generator& gen) {
  Tensor t = arange(0.0, double(n), 1.0, kInt64);
  std::int64_t* p = static_cast<std::int64_t*>(t.impl()->storage->data());
  for (std::size_t i = n; i > 1; --i) std::swap(p[i - 1], p[gen.below(i)]);  // Fisher-Yates
  return t;
}

Tensor rand(const Shape& shape, double low, double high, TensorOptions options) {
  return rand(shape, default_generator(), low, high, options);
}
Tensor randn(const Shape& shape, double mean, double stddev, TensorOptions options) {
  return randn(shape, default_generator(), mean, stddev, options);
}
Tensor rand_like(const Tensor& x) { return rand_like(x, default_generator()); }
Tensor randn_like(const Tensor& x) { return randn_like(x, default_generator()); }
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape, TensorOptions options) {
  return randint(low, high, shape, default_generator(), options);
}
Tensor randperm(std::size_t n) { return randperm(n, default_generator()); }

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  os << "tensor(";
  visit_dtype(t.dtype(), [&](auto tag) { os << t.value<typename decltype(tag)::type>(); });
  if (t.dtype() != kFloat32) os << ", dtype=" << t.dtype();
  if (t.requires_grad()) os << ", requires_grad";
  return os << ')';
}

}  // namespace tg
