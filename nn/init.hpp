// Initializers, as torch.nn.init and keras.initializers: each fills a tensor's
// value in place and returns the same handle.
//
//   tg::nn::init::glorot_uniform(layer.weight, gen);
//   tg::nn::init::zeros(layer.bias);
//
// A tensor is a handle, so every copy of it sees the new value; shape,
// requires_grad and any gradient are left as they were. Changing a value that
// a recorded op saved makes that op's gradient wrong (see tensor.hpp).
//
// Random initializers draw from the Generator element by element in row-major
// order: the same seed gives the same values. Values are computed in double
// and rounded to T. A tensor with no elements is left as it is (after its
// arguments and number of dimensions are checked).
//
// Fans follow PyTorch's weight layouts: a 2-d weight is (out, in), a
// convolution kernel is (out, in / groups, k...). Every failure throws a
// tg::Error subclass whose message starts "init::<name>:" and names the shape:
// ValueError for an undefined tensor or a bad number, ShapeError for a shape
// the initializer cannot fill.
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
template <class T>
BasicTensor<T> zeros(BasicTensor<T> t);
// Every element = 1.
template <class T>
BasicTensor<T> ones(BasicTensor<T> t);
// Every element = value.
template <class T>
BasicTensor<T> constant(BasicTensor<T> t, double value);

// ---- plain distributions -------------------------------------------------------

// N(mean, stddev²); stddev > 0. Same values as tg::randn<T>(shape, gen, mean, stddev).
template <class T>
BasicTensor<T> random_normal(BasicTensor<T> t, Generator& gen, double mean = 0.0, double stddev = 0.05);
// U[low, high); low < high. Same values as tg::rand<T>(shape, gen, low, high).
template <class T>
BasicTensor<T> random_uniform(BasicTensor<T> t, Generator& gen, double low = -0.05, double high = 0.05);
// N(mean, stddev²) with draws beyond mean ± 2·stddev redrawn (variance ≈ 0.7737·stddev²).
template <class T>
BasicTensor<T> truncated_normal(BasicTensor<T> t, Generator& gen, double mean = 0.0, double stddev = 0.05);

// ---- variance scaling (Keras names; at least 2 dimensions) ---------------------

// U[-l, l), l = sqrt(6 / (fan_in + fan_out)).
template <class T>
BasicTensor<T> glorot_uniform(BasicTensor<T> t, Generator& gen);
// truncated_normal(0, sqrt(2 / (fan_in + fan_out)) / 0.8796...): variance 2 / (fan_in + fan_out).
template <class T>
BasicTensor<T> glorot_normal(BasicTensor<T> t, Generator& gen);
// U[-l, l), l = sqrt(6 / fan_in).
template <class T>
BasicTensor<T> he_uniform(BasicTensor<T> t, Generator& gen);
// truncated_normal(0, sqrt(2 / fan_in) / 0.8796...): variance 2 / fan_in.
template <class T>
BasicTensor<T> he_normal(BasicTensor<T> t, Generator& gen);
// U[-l, l), l = sqrt(3 / fan_in).
template <class T>
BasicTensor<T> lecun_uniform(BasicTensor<T> t, Generator& gen);
// truncated_normal(0, sqrt(1 / fan_in) / 0.8796...): variance 1 / fan_in.
template <class T>
BasicTensor<T> lecun_normal(BasicTensor<T> t, Generator& gen);

// ---- structured ----------------------------------------------------------------

// W = gain · Q, viewed as (rows = shape[0], cols = product of the rest): A is
// drawn N(0, 1) row by row as (rows, cols) and transposed if rows < cols; A = QR
// (Householder, reduced); Q's columns are multiplied by sign(R_jj) (sign(0) = +1)
// so that R's diagonal is positive; Q is transposed back if it was. Then
// W·Wᵀ = gain²·I when rows <= cols, Wᵀ·W = gain²·I otherwise. At least 2 dimensions.
template <class T>
BasicTensor<T> orthogonal(BasicTensor<T> t, Generator& gen, double gain = 1.0);
// W[i][j] = gain if i == j else 0; 2-d only, need not be square.
template <class T>
BasicTensor<T> identity(BasicTensor<T> t, double gain = 1.0);

// Fixed 3×3 filters for a kernel of shape (out, in, 3, 3): every (o, i) slice is the filter.
// [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]: d/dw (a cross-correlation gives +8 on the image w).
template <class T>
BasicTensor<T> sobel_x(BasicTensor<T> t);
// [[-1, -2, -1], [0, 0, 0], [1, 2, 1]] (sobel_x transposed): d/dh.
template <class T>
BasicTensor<T> sobel_y(BasicTensor<T> t);
// [[0, 1, 0], [1, -4, 1], [0, 1, 0]]: the 5-point Laplacian.
template <class T>
BasicTensor<T> laplacian(BasicTensor<T> t);

// ---- PyTorch's layer default ---------------------------------------------------

// U[-b, b), b = 1 / sqrt(fan_in): nn.Linear and nn.Conv2d weight and bias
// (kaiming_uniform with a = √5 reduces to it); fan_in > 0. Draws exactly what
// tg::nn::Linear and Conv2d draw.
template <class T>
BasicTensor<T> torch_default(BasicTensor<T> t, std::size_t fan_in, Generator& gen);

}  // namespace tg::nn::init
