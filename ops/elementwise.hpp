// Elementwise ops with NumPy broadcasting. Each gradient is reduced back to
// its input's shape by sum_to (reduce.hpp), the one broadcasting helper.
#pragma once

#include <type_traits>

#include "../core/tensor.hpp"

namespace tg {

// ---- binary, broadcasting ----
template <class T> BasicTensor<T> add(const BasicTensor<T>& a, const BasicTensor<T>& b);  // a + b
template <class T> BasicTensor<T> sub(const BasicTensor<T>& a, const BasicTensor<T>& b);  // a - b
template <class T> BasicTensor<T> mul(const BasicTensor<T>& a, const BasicTensor<T>& b);  // a * b
template <class T> BasicTensor<T> div(const BasicTensor<T>& a, const BasicTensor<T>& b);  // a / b
template <class T> BasicTensor<T> pow(const BasicTensor<T>& a, const BasicTensor<T>& b);  // a ^ b

// ---- unary ----
template <class T> BasicTensor<T> neg(const BasicTensor<T>& x);      // -x
template <class T> BasicTensor<T> exp(const BasicTensor<T>& x);      // e^x
template <class T> BasicTensor<T> log(const BasicTensor<T>& x);      // ln x
template <class T> BasicTensor<T> sqrt(const BasicTensor<T>& x);     // √x
template <class T> BasicTensor<T> abs(const BasicTensor<T>& x);      // |x|
template <class T> BasicTensor<T> tanh(const BasicTensor<T>& x);     // tanh x
template <class T> BasicTensor<T> sigmoid(const BasicTensor<T>& x);  // 1 / (1 + e^-x)
template <class T> BasicTensor<T> relu(const BasicTensor<T>& x);     // max(x, 0)
// x for x > 0, slope · x otherwise.
template <class T> BasicTensor<T> leaky_relu(const BasicTensor<T>& x, double negative_slope = 0.01);
// min(max(x, low), high).
template <class T> BasicTensor<T> clamp(const BasicTensor<T>& x, double low, double high);
template <class T> BasicTensor<T> square(const BasicTensor<T>& x);   // x · x

// A 0-d tensor holding s: how scalars enter the tensor-tensor ops above.
template <class T> BasicTensor<T> scalar(double s) { return BasicTensor<T>(xt::xarray<T>(T(s))); }

template <class S>
using if_scalar = std::enable_if_t<std::is_arithmetic_v<S>, int>;

// ---- tensor-scalar forms ----
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> add(const BasicTensor<T>& a, S s) { return add(a, scalar<T>(s)); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> sub(const BasicTensor<T>& a, S s) { return sub(a, scalar<T>(s)); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> mul(const BasicTensor<T>& a, S s) { return mul(a, scalar<T>(s)); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> div(const BasicTensor<T>& a, S s) { return div(a, scalar<T>(s)); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> pow(const BasicTensor<T>& a, S s) { return pow(a, scalar<T>(s)); }

// ---- operators ----
template <class T> BasicTensor<T> operator+(const BasicTensor<T>& a, const BasicTensor<T>& b) { return add(a, b); }
template <class T> BasicTensor<T> operator-(const BasicTensor<T>& a, const BasicTensor<T>& b) { return sub(a, b); }
template <class T> BasicTensor<T> operator*(const BasicTensor<T>& a, const BasicTensor<T>& b) { return mul(a, b); }
template <class T> BasicTensor<T> operator/(const BasicTensor<T>& a, const BasicTensor<T>& b) { return div(a, b); }
template <class T> BasicTensor<T> operator-(const BasicTensor<T>& x) { return neg(x); }

template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> operator+(const BasicTensor<T>& a, S s) { return add(a, scalar<T>(s)); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> operator+(S s, const BasicTensor<T>& a) { return add(scalar<T>(s), a); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> operator-(const BasicTensor<T>& a, S s) { return sub(a, scalar<T>(s)); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> operator-(S s, const BasicTensor<T>& a) { return sub(scalar<T>(s), a); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> operator*(const BasicTensor<T>& a, S s) { return mul(a, scalar<T>(s)); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> operator*(S s, const BasicTensor<T>& a) { return mul(scalar<T>(s), a); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> operator/(const BasicTensor<T>& a, S s) { return div(a, scalar<T>(s)); }
template <class T, class S, if_scalar<S> = 0>
BasicTensor<T> operator/(S s, const BasicTensor<T>& a) { return div(scalar<T>(s), a); }

}  // namespace tg
