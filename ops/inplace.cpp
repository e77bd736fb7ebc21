// In-place ops: Tensor::add_, mul_, zero_, fill_, copy_, clamp_. They write
// through any strides (a slice, a transposed view) and bump the storage's
// version, so that backward through an op that saved the old values refuses
// instead of returning a wrong gradient.
#include <cmath>
#include <type_traits>

#include "../core/autograd.hpp"
#include "kernels/strided.hpp"

namespace tg {

namespace {

// Calls f(self element, source element) for every element of self, with
// source (if given) broadcast to self's shape and converted to its dtype.
template <class F>
void update_each(const char* op, Tensor& self, const Tensor* source, F f) {
  const Tensor& t = self;
  const Shape& shape = t.shape();
  Tensor src;
  if (source) {
    TG_CHECK(source->defined(), ValueError, op << ": the source is an undefined tensor");
    if (source->dtype() == t.dtype() && source->shape() == shape && source->is_contiguous()) {
      src = *source;  // read as it is: nothing to convert or broadcast
    } else {
      TG_CHECK(kernels::broadcast_shapes(op, source->shape(), shape) == shape, ShapeError,
               op << ": a source of shape " << shape_str(source->shape()) << " does not broadcast to "
                  << shape_str(shape));
      src = source->detach().to(t.dtype()).contiguous();
    }
  }
  visit_dtype(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* dst = static_cast<T*>(t.impl()->storage->data()) + t.impl()->offset;
    const T* from = src.defined() ? src.data<T>() : nullptr;
    const std::size_t numel = t.numel();
    if (t.is_contiguous() && (!from || src.numel() == 1 || src.shape() == shape)) {
      // The common cases (an optimizer's p += a·g, v *= m) as one flat loop
      // the compiler vectorizes: no source, a source of self's shape, or one value.
      const bool whole = from && src.numel() > 1;
      const T one = from ? from[0] : T(0);
      return kernels::parallel_for(numel, numel, [&](std::size_t first, std::size_t last) {
        if (whole)
          for (std::size_t k = first; k < last; ++k) f(dst[k], from[k]);
        else
          for (std::size_t k = first; k < last; ++k) f(dst[k], one);
      });
    }
    const Strides read = from ? kernels::broadcast_strides(src.shape(), shape) : Strides(shape.size(), 0);
    const Strides none(shape.size(), 0);
    const auto each = [&](std::ptrdiff_t o, std::ptrdiff_t i, std::ptrdiff_t) { f(dst[o], from ? from[i] : T(0)); };
    if (!t.is_contiguous()) return for_each_offset(shape, t.strides(), read, none, each);
    // A contiguous self has no two elements at one address: its rows can go to different threads.
    const std::size_t n = shape.empty() ? 1 : shape.back();
    const std::ptrdiff_t step = shape.empty() ? 0 : read.back();
    kernels::parallel_rows(shape, t.strides(), read, none, [&](std::ptrdiff_t o, std::ptrdiff_t i, std::ptrdiff_t) {
      for (std::size_t k = 0; k < n; ++k) each(o + std::ptrdiff_t(k), i + std::ptrdiff_t(k) * step, 0);
    });
  });
}

}  // namespace

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_writable("add_");
  TG_CHECK(dtype() != kBool, DtypeError, "add_: not defined for bool tensors");
  update_each("add_", *this, &other, [alpha](auto& d, auto s) { d = decltype(s)(d + decltype(s)(alpha) * s); });
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(const Tensor& other) {
  check_writable("mul_");
  TG_CHECK(dtype() != kBool, DtypeError, "mul_: not defined for bool tensors");
  update_each("mul_", *this, &other, [](auto& d, auto s) { d = decltype(s)(d * s); });
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(double factor) {
  check_writable("mul_");
  TG_CHECK(dtype() != kBool, DtypeError, "mul_: not defined for bool tensors");
  // The factor in self's dtype first, as mul_ with a one-value tensor converts it.
  update_each("mul_", *this, nullptr, [factor](auto& d, auto) {
    using T = std::remove_reference_t<decltype(d)>;
    if constexpr (!std::is_same_v<T, bool>) d = T(d * T(factor));  // bool was refused above
  });
  bump_version();
  return *this;
}

Tensor& Tensor::fill_(double value) {
  check_writable("fill_");
  update_each("fill_", *this, nullptr, [value](auto& d, auto) { d = decltype(d + 0)(value); });
  bump_version();
  return *this;
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::copy_(const Tensor& source) {
  check_writable("copy_");
  update_each("copy_", *this, &source, [](auto& d, auto s) { d = s; });
  bump_version();
  return *this;
}

Tensor& Tensor::clamp_(double low, double high) {
  check_writable("clamp_");
  TG_CHECK(!(low > high) && !std::isnan(low) && !std::isnan(high), ValueError,
           "clamp_: need low <= high, got " << low << " and " << high);
  TG_CHECK(dtype() != kBool, DtypeError, "clamp_: not defined for bool tensors");
  update_each("clamp_", *this, nullptr, [low, high](auto& d, auto) {
    using T = decltype(d + 0);
    d = d < T(low) ? T(low) : (d > T(high) ? T(high) : d);
  });
  bump_version();
  return *this;
}

}  // namespace tg
