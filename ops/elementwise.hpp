// Elementwise ops with NumPy broadcasting and PyTorch's type promotion
// (float32 with float64 gives float64; integers with floats give the float).
// Each gradient is reduced back to its input's shape by sum_to (reduce.hpp),
// the one broadcasting helper.
#pragma once

#include <type_traits>

#include "../core/tensor.hpp"

namespace tg {

// ---- binary, broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);  // a + b
Tensor sub(const Tensor& a, const Tensor& b);  // a - b
Tensor mul(const Tensor& a, const Tensor& b);  // a * b
Tensor div(const Tensor& a, const Tensor& b);  // a / b (true division: integers give float32)
Tensor pow(const Tensor& a, const Tensor& b);  // a ^ b
// Elementwise larger and smaller values. NOTE: ties send the gradient to a.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// ---- unary (integer inputs give float32, as torch) ----
Tensor neg(const Tensor& x);      // -x
Tensor exp(const Tensor& x);      // e^x
Tensor expm1(const Tensor& x);    // e^x - 1, exact near 0
Tensor log(const Tensor& x);      // ln x
Tensor log1p(const Tensor& x);    // ln(1 + x), exact near 0
Tensor sqrt(const Tensor& x);     // √x
Tensor abs(const Tensor& x);      // |x|
Tensor sign(const Tensor& x);     // -1, 0 or 1; NOTE: its gradient is zero everywhere
Tensor sin(const Tensor& x);      // sin x
Tensor cos(const Tensor& x);      // cos x
Tensor erf(const Tensor& x);      // 2/√π ∫₀ˣ e^(-t²) dt
Tensor tanh(const Tensor& x);     // tanh x
Tensor sigmoid(const Tensor& x);  // 1 / (1 + e^-x)
Tensor relu(const Tensor& x);     // max(x, 0); NaN stays NaN
// x for x > 0, slope · x otherwise.
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
// min(max(x, low), high).
Tensor clamp(const Tensor& x, double low, double high);
Tensor square(const Tensor& x);   // x · x

// ---- comparisons: bool tensors, no gradient ----
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& mask);

// ---- selection ----
// a where cond holds, else b; cond is a bool tensor; all three broadcast.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// x with `value` where mask holds.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// ---- scalars ----
template <class S>
using if_scalar = std::enable_if_t<std::is_arithmetic_v<S>, int>;

// A 0-d tensor holding s in x's dtype, as torch treats a C++ scalar beside a
// tensor: it never widens a float32 tensor, but a floating scalar turns an
// integer tensor into float32.
template <class S, if_scalar<S> = 0>
Tensor scalar_like(const Tensor& x, S s) {
  const bool widen = std::is_floating_point_v<S> && !is_floating(x.dtype());
  return scalar_tensor(double(s), widen ? kFloat32 : x.dtype());
}

template <class S, if_scalar<S> = 0> Tensor add(const Tensor& a, S s) { return add(a, scalar_like(a, s)); }
template <class S, if_scalar<S> = 0> Tensor sub(const Tensor& a, S s) { return sub(a, scalar_like(a, s)); }
template <class S, if_scalar<S> = 0> Tensor mul(const Tensor& a, S s) { return mul(a, scalar_like(a, s)); }
template <class S, if_scalar<S> = 0> Tensor div(const Tensor& a, S s) { return div(a, scalar_like(a, s)); }
template <class S, if_scalar<S> = 0> Tensor pow(const Tensor& a, S s) { return pow(a, scalar_like(a, s)); }
template <class S, if_scalar<S> = 0> Tensor add(S s, const Tensor& b) { return add(scalar_like(b, s), b); }
template <class S, if_scalar<S> = 0> Tensor sub(S s, const Tensor& b) { return sub(scalar_like(b, s), b); }
template <class S, if_scalar<S> = 0> Tensor mul(S s, const Tensor& b) { return mul(scalar_like(b, s), b); }
template <class S, if_scalar<S> = 0> Tensor div(S s, const Tensor& b) { return div(scalar_like(b, s), b); }
// s ^ b.
template <class S, if_scalar<S> = 0> Tensor pow(S s, const Tensor& b) { return pow(scalar_like(b, s), b); }

// ---- operators ----
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }

template <class S, if_scalar<S> = 0> Tensor operator+(const Tensor& a, S s) { return add(a, scalar_like(a, s)); }
template <class S, if_scalar<S> = 0> Tensor operator+(S s, const Tensor& a) { return add(scalar_like(a, s), a); }
template <class S, if_scalar<S> = 0> Tensor operator-(const Tensor& a, S s) { return sub(a, scalar_like(a, s)); }
template <class S, if_scalar<S> = 0> Tensor operator-(S s, const Tensor& a) { return sub(scalar_like(a, s), a); }
template <class S, if_scalar<S> = 0> Tensor operator*(const Tensor& a, S s) { return mul(a, scalar_like(a, s)); }
template <class S, if_scalar<S> = 0> Tensor operator*(S s, const Tensor& a) { return mul(scalar_like(a, s), a); }
template <class S, if_scalar<S> = 0> Tensor operator/(const Tensor& a, S s) { return div(a, scalar_like(a, s)); }
template <class S, if_scalar<S> = 0> Tensor operator/(S s, const Tensor& a) { return div(scalar_like(a, s), a); }

}  // namespace tg
