// Smooth activations, as torch.nn.functional has them, composed from
// elementwise ops (so every order of derivative comes from their rules).
// relu, leaky_relu, sigmoid and tanh are in elementwise.hpp; softmax and
// log_softmax in loss.hpp.
#pragma once

#include "../core/tensor.hpp"

namespace tg {

// How gelu evaluates Φ, the standard normal distribution function.
enum class GeluApproximate { None, Tanh };

// x · Φ(x). None: Φ(x) = (1 + erf(x / √2)) / 2, exact. Tanh:
// Φ(x) ≈ (1 + tanh(√(2/π) · (x + 0.044715 · x³))) / 2, as torch's approximate='tanh'.
Tensor gelu(const Tensor& x, GeluApproximate approximate = GeluApproximate::None);
// x · sigmoid(x) (also called swish).
Tensor silu(const Tensor& x);
// log(1 + e^(beta·x)) / beta, and x itself where beta·x > threshold, as
// torch. The exponential is taken of min(beta·x, threshold), so no branch
// overflows and the gradient is finite everywhere.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
// x for x > 0, alpha · (e^x - 1) otherwise. The gradient at 0 is alpha's
// side (alpha · e^0), as torch.
Tensor elu(const Tensor& x, double alpha = 1.0);

}  // namespace tg
