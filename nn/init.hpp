// Initializers, as torch.nn.init and keras.initializers: each fills a tensor's
// value in place and returns the same handle.
//
//   tg::nn::init::glorot_uniform(layer.weight, gen);
//   tg::nn::init::zeros(layer.bias);
//
// A tensor is a handle, so every copy of it sees the new value; shape,
// requires_grad and any gradient are left as they were.
//
// Any floating tensor (float32 or float64) can be filled. The values are written under NoGradGuard, so a parameter that
// requires grad can be initialized; the write bumps the tensor's version, so
// a backward through an op recorded before that reads the old value refuses
// (AutogradError) instead of returning a wrong gradient. A strided view is
// filled through its strides.
//
// Random initializers draw from a Generator element by element in row-major
// order: the same seed gives the same values. Without one they draw from the
// thread's default generator (tg::manual_seed), as the layers do:
// init::glorot_uniform(w), init::random_normal(w, 0.0, 0.02). Values are computed in double
// and rounded to the tensor's dtype. A tensor with no elements is left as it
// is (after its arguments and number of dimensions are checked).
//
// Fans follow PyTorch's weight layouts: a 2-d weight is (out, in), a
// convolution kernel is (out, in / groups, k...). Every failure throws a
// tg::Error subclass whose message starts "init::<name>:" and names the shape:
// ValueError for an undefined tensor or a bad number, ShapeError for a shape
// the initializer cannot fill, DtypeError for a tensor that is not float32 or
// float64.
#pragma once

#include <cstddef>
#include <utility>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace tg::nn::init {

// Truncating N(0, 1) at ±2 leaves a standard deviation of 0.87962566103423978;
// the *_normal scaling initializers divide by it (as Keras) so that the values
// have the variance their formula names.
inline constexpr double kTruncatedStddev = 0.87962566103423978;

// (fan_in, fan_out): (out, in) -> (in, out); (out, in, k...) -> (in·r, out·r),
// r = product of k...; throws ShapeError for fewer than 2 dimensions.
std::pair<std::size_t, std::size_t> fans(const Shape& shape);

// ---- constants -----------------------------------------------------------------

// Every element = 0.
Tensor zeros(Tensor t);
// Every element = 1.
Tensor ones(Tensor t);
// Every element = value.
Tensor constant(Tensor t, double value);

// ---- plain distributions -------------------------------------------------------

// N(mean, stddev²); stddev > 0. Same values as tg::randn(shape, gen, mean, stddev, t.dtype()).
Tensor random_normal(Tensor t, Generator& gen, double mean = 0.0, double stddev = 0.05);
inline Tensor random_normal(Tensor t, double mean = 0.0, double stddev = 0.05) {
  return random_normal(std::move(t), default_generator(), mean, stddev);
}
// U[low, high); low < high. Same values as tg::rand(shape, gen, low, high, t.dtype()).
Tensor random_uniform(Tensor t, Generator& gen, double low = -0.05, double high = 0.05);
inline Tensor random_uniform(Tensor t, double low = -0.05, double high = 0.05) {
  return random_uniform(std::move(t), default_generator(), low, high);
}
// N(mean, stddev²) with draws beyond mean ± 2·stddev redrawn (variance ≈ 0.7737·stddev²).
Tensor truncated_normal(Tensor t, Generator& gen, double mean = 0.0, double stddev = 0.05);
inline Tensor truncated_normal(Tensor t, double mean = 0.0, double stddev = 0.05) {
  return truncated_normal(std::move(t), default_generator(), mean, stddev);
}

// ---- variance scaling (Keras names; at least 2 dimensions) ---------------------

// U[-l, l), l = sqrt(6 / (fan_in + fan_out)).
Tensor glorot_uniform(Tensor t, Generator& gen = default_generator());
// truncated_normal(0, sqrt(2 / (fan_in + fan_out)) / 0.8796...): variance 2 / (fan_in + fan_out).
Tensor glorot_normal(Tensor t, Generator& gen = default_generator());
// U[-l, l), l = sqrt(6 / fan_in).
Tensor he_uniform(Tensor t, Generator& gen = default_generator());
// truncated_normal(0, sqrt(2 / fan_in) / 0.8796...): variance 2 / fan_in.
Tensor he_normal(Tensor t, Generator& gen = default_generator());
// U[-l, l), l = sqrt(3 / fan_in).
Tensor lecun_uniform(Tensor t, Generator& gen = default_generator());
// truncated_normal(0, sqrt(1 / fan_in) / 0.8796...): variance 1 / fan_in.
Tensor lecun_normal(Tensor t, Generator& gen = default_generator());

// ---- structured ----------------------------------------------------------------

// W = gain · Q, viewed as (rows = shape[0], cols = product of the rest): A is
// drawn N(0, 1) row by row as (rows, cols) and transposed if rows < cols; A = QR
// (LAPACK through xtensor-blas, reduced); Q's columns are multiplied by
// sign(R_jj) (sign(0) = +1), as torch does, so that R's diagonal is positive
// and Q is uniformly distributed (Haar); Q is transposed back if it was. Then
// W·Wᵀ = gain²·I when rows <= cols, Wᵀ·W = gain²·I otherwise. At least 2 dimensions.
Tensor orthogonal(Tensor t, Generator& gen, double gain = 1.0);
inline Tensor orthogonal(Tensor t, double gain = 1.0) { return orthogonal(std::move(t), default_generator(), gain); }
// W[i][j] = gain if i == j else 0; 2-d only, need not be square.
Tensor identity(Tensor t, double gain = 1.0);

// Fixed 3×3 filters for a kernel of shape (out, in, 3, 3): every (o, i) slice is the filter.
// [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]: d/dw (a cross-correlation gives +8 on the image w).
Tensor sobel_x(Tensor t);
// [[-1, -2, -1], [0, 0, 0], [1, 2, 1]] (sobel_x transposed): d/dh.
Tensor sobel_y(Tensor t);
// [[0, 1, 0], [1, -4, 1], [0, 1, 0]]: the 5-point Laplacian.
Tensor laplacian(Tensor t);

// ---- PyTorch's layer default ---------------------------------------------------

// U[-b, b), b = 1 / sqrt(fan_in): nn.Linear and nn.Conv2d weight and bias
// (kaiming_uniform with a = √5 reduces to it); fan_in > 0. Draws exactly what
// tg::nn::Linear and Conv2d draw.
Tensor torch_default(Tensor t, std::size_t fan_in, Generator& gen = default_generator());

}  // namespace tg::nn::init
