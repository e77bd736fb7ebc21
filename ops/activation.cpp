#include "activation.hpp"

#include <cmath>
#include <limits>

#include "../core/error.hpp"
#include "elementwise.hpp"

namespace tg {

namespace {

Tensor floating_input(const char* op, const Tensor& x) {
  TG_CHECK(x.defined(), ValueError, op << ": the input is an undefined tensor");
  TG_CHECK(is_floating(x.dtype()), DtypeError,
           op << ": expected a float32 or float64 input, got " << dtype_name(x.dtype()));
  return x;
}

constexpr double kLowest = -std::numeric_limits<double>::infinity();

}  // namespace

Tensor gelu(const Tensor& x0, GeluApproximate approximate) {
  const Tensor x = floating_input("gelu", x0);
  if (approximate == GeluApproximate::Tanh) {
    const double k = std::sqrt(2.0 / M_PI);
    const Tensor inner = mul(add(x, mul(mul(x, square(x)), 0.044715)), k);
    return mul(mul(x, 0.5), add(tanh(inner), 1.0));
  }
  TG_CHECK(approximate == GeluApproximate::None, ValueError,
           "gelu: unknown approximation " << int(approximate) << "; None or Tanh");
  return mul(mul(x, 0.5), add(erf(mul(x, M_SQRT1_2)), 1.0));
}

Tensor silu(const Tensor& x0) {
  const Tensor x = floating_input("silu", x0);
  return mul(x, sigmoid(x));
}

Tensor softplus(const Tensor& x0, double beta, double threshold) {
  const Tensor x = floating_input("softplus", x0);
  TG_CHECK(beta != 0.0 && std::isfinite(beta), ValueError, "softplus: beta must be finite and non-zero, got " << beta);
  TG_CHECK(!std::isnan(threshold), ValueError, "softplus: threshold must not be NaN");
  const Tensor z = mul(x, beta);
  // Where z > threshold the linear branch is taken; the other branch sees z
  // clamped there, so its exponential stays finite and passes no gradient.
  const Tensor smooth = div(log1p(exp(clamp(z, kLowest, threshold))), beta);
  return where(gt(z, scalar_like(z, threshold)), x, smooth);
}

Tensor elu(const Tensor& x0, double alpha) {
  const Tensor x = floating_input("elu", x0);
  TG_CHECK(std::isfinite(alpha), ValueError, "elu: alpha must be finite, got " << alpha);
  // e^x - 1 of min(x, 0): the branch not taken for x > 0 stays finite.
  const Tensor negative = mul(expm1(clamp(x, kLowest, 0.0)), alpha);
  return where(gt(x, scalar_like(x, 0.0)), x, negative);
}

}  // namespace tg
