#include "init.hpp"

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <xtensor-blas/xlinalg.hpp>
#include <xtensor/xview.hpp>

#include "../core/tape.hpp"

namespace tg::nn::init {

namespace {

std::string num(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

std::string prefix(const char* name) { return std::string("init::") + name + ": "; }

// The tensor's shape, after checking that there is one of a floating dtype.
Shape checked_shape(const char* name, const Tensor& t) {
  if (!t.defined()) throw ValueError(prefix(name) + "the tensor is undefined (it holds no value)");
  TG_CHECK(is_floating(t.dtype()), DtypeError,
           prefix(name) << "needs a float32 or float64 tensor, got " << dtype_name(t.dtype()) << " (tensor of shape "
                        << shape_str(t.shape()) << ")");
  return t.shape();
}

std::string of_shape(const Shape& shape) { return " (tensor of shape " + shape_str(shape) + ")"; }

void check_finite(const char* name, const char* what, double v, const Shape& shape) {
  if (!std::isfinite(v))
    throw ValueError(prefix(name) + what + " must be finite, got " + num(v) + of_shape(shape));
}

void check_stddev(const char* name, double mean, double stddev, const Shape& shape) {
  check_finite(name, "mean", mean, shape);
  if (!(stddev > 0.0) || !std::isfinite(stddev))
    throw ValueError(prefix(name) + "stddev must be positive and finite, got " + num(stddev) + of_shape(shape));
}

std::pair<std::size_t, std::size_t> fans_for(const char* name, const Shape& shape) {
  if (shape.size() < 2)
    throw ShapeError(prefix(name) + "fan_in and fan_out need a weight of at least 2 dimensions"
                     " (out, in, k...), got shape " + shape_str(shape));
  std::size_t receptive = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
  return {shape[1] * receptive, shape[0] * receptive};
}

// Writes draw() (a double) into every element of t in row-major order,
// rounded to t's dtype. Every initializer writes through here.
template <class F>
Tensor fill(const char* name, Tensor t, F draw) {
  NoGradGuard no_grad;  // initializing a parameter that requires grad is no op of the graph
  visit_floating(name, t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (auto& e : t.mutable_value<T>()) e = static_cast<T>(draw());
  });
  return t;
}

Tensor uniform_fill(const char* name, Tensor t, Generator& gen, double limit) {
  return fill(name, t, [&] { return gen.uniform(-limit, limit); });
}

// mean + stddev·z, z ~ N(0, 1) redrawn while |z| > 2.
Tensor truncated_fill(const char* name, Tensor t, Generator& gen, double mean, double stddev) {
  return fill(name, t, [&] {
    double z = gen.normal();
    while (std::abs(z) > 2.0) z = gen.normal();
    return mean + stddev * z;
  });
}

// Zero elements need no fans; any zero fan implies zero elements.
Tensor scaled_uniform(const char* name, Tensor t, Generator& gen, double scale, bool fan_in_only) {
  const Shape shape = checked_shape(name, t);
  const auto [fan_in, fan_out] = fans_for(name, shape);
  if (t.numel() == 0) return t;
  const double fan = fan_in_only ? double(fan_in) : 0.5 * double(fan_in + fan_out);
  return uniform_fill(name, t, gen, std::sqrt(3.0 * scale / fan));
}

Tensor scaled_normal(const char* name, Tensor t, Generator& gen, double scale, bool fan_in_only) {
  const Shape shape = checked_shape(name, t);
  const auto [fan_in, fan_out] = fans_for(name, shape);
  if (t.numel() == 0) return t;
  const double fan = fan_in_only ? double(fan_in) : 0.5 * double(fan_in + fan_out);
  return truncated_fill(name, t, gen, 0.0, std::sqrt(scale / fan) / kTruncatedStddev);
}

Tensor filter3x3(const char* name, Tensor t, const double (&k)[3][3]) {
  const Shape shape = checked_shape(name, t);
  if (shape.size() != 4 || shape[2] != 3 || shape[3] != 3)
    throw ShapeError(prefix(name) + "needs a kernel of shape (out, in, 3, 3), got shape " + shape_str(shape));
  std::size_t i = 0;  // row-major: element i is tap (i / 3 % 3, i % 3) of its slice
  return fill(name, t, [&] {
    const double v = k[i / 3 % 3][i % 3];
    ++i;
    return v;
  });
}

// Q of the reduced QR of a (m×n, m >= n), its columns multiplied by the sign
// of R's diagonal (+1 for a zero), as torch.nn.init.orthogonal_ does: LAPACK
// leaves those signs to its reflections, and without the correction Q would
// not be uniformly distributed over the orthogonal matrices.
xt::xarray<double> sign_corrected_q(const xt::xarray<double>& a) {
  auto [q, r] = xt::linalg::qr(a, xt::linalg::qrmode::reduced);
  for (std::size_t j = 0; j < r.shape()[0]; ++j)
    if (r(j, j) < 0)
      for (std::size_t i = 0; i < q.shape()[0]; ++i) q(i, j) = -q(i, j);
  return q;
}

}  // namespace

std::pair<std::size_t, std::size_t> fans(const Shape& shape) { return fans_for("fans", shape); }

// ---- constants -----------------------------------------------------------------

Tensor constant(Tensor t, double value) {
  checked_shape("constant", t);
  return fill("constant", t, [&] { return value; });
}

Tensor zeros(Tensor t) {
  checked_shape("zeros", t);
  return fill("zeros", t, [] { return 0.0; });
}

Tensor ones(Tensor t) {
  checked_shape("ones", t);
  return fill("ones", t, [] { return 1.0; });
}

// ---- plain distributions -------------------------------------------------------

Tensor random_normal(Tensor t, Generator& gen, double mean, double stddev) {
  check_stddev("random_normal", mean, stddev, checked_shape("random_normal", t));
  // Drawn in double and rounded, as tg::randn does, so that both give the same values.
  return fill("random_normal", t, [&] { return gen.normal(mean, stddev); });
}

Tensor random_uniform(Tensor t, Generator& gen, double low, double high) {
  const Shape shape = checked_shape("random_uniform", t);
  check_finite("random_uniform", "low", low, shape);
  check_finite("random_uniform", "high", high, shape);
  if (!(low < high))
    throw ValueError(prefix("random_uniform") + "low must be less than high, got low=" + num(low) +
                     ", high=" + num(high) + of_shape(shape));
  // Drawn in double and rounded, as tg::rand does.
  return fill("random_uniform", t, [&] { return gen.uniform(low, high); });
}

Tensor truncated_normal(Tensor t, Generator& gen, double mean, double stddev) {
  check_stddev("truncated_normal", mean, stddev, checked_shape("truncated_normal", t));
  return truncated_fill("truncated_normal", t, gen, mean, stddev);
}

// ---- variance scaling ----------------------------------------------------------
// Keras VarianceScaling: uniform limit sqrt(3·scale/fan), truncated normal
// stddev sqrt(scale/fan) / 0.8796...; fan = fan_in or (fan_in + fan_out) / 2.

Tensor glorot_uniform(Tensor t, Generator& gen) {
  return scaled_uniform("glorot_uniform", t, gen, 1.0, false);  // sqrt(6 / (fan_in + fan_out))
}

Tensor glorot_normal(Tensor t, Generator& gen) {
  return scaled_normal("glorot_normal", t, gen, 1.0, false);  // sqrt(2 / (fan_in + fan_out)) / 0.8796
}

Tensor he_uniform(Tensor t, Generator& gen) {
  return scaled_uniform("he_uniform", t, gen, 2.0, true);  // sqrt(6 / fan_in)
}

Tensor he_normal(Tensor t, Generator& gen) {
  return scaled_normal("he_normal", t, gen, 2.0, true);  // sqrt(2 / fan_in) / 0.8796
}

Tensor lecun_uniform(Tensor t, Generator& gen) {
  return scaled_uniform("lecun_uniform", t, gen, 1.0, true);  // sqrt(3 / fan_in)
}

Tensor lecun_normal(Tensor t, Generator& gen) {
  return scaled_normal("lecun_normal", t, gen, 1.0, true);  // sqrt(1 / fan_in) / 0.8796
}

// ---- structured ----------------------------------------------------------------

Tensor orthogonal(Tensor t, Generator& gen, double gain) {
  const Shape shape = checked_shape("orthogonal", t);
  check_finite("orthogonal", "gain", gain, shape);
  if (shape.size() < 2)
    throw ShapeError(prefix("orthogonal") + "needs at least 2 dimensions (rows, cols...), got shape " +
                     shape_str(shape));
  if (t.numel() == 0) return t;
  const std::size_t rows = shape[0], cols = t.numel() / rows;
  const bool wide = rows < cols;
  // A (rows×cols) drawn row by row; QR needs rows >= cols, so a wide A is
  // factored as Aᵀ and its Q transposed back.
  xt::xarray<double> a = xt::empty<double>({rows, cols});
  for (double& x : a) x = gen.normal();
  const xt::xarray<double> q =
      wide ? xt::xarray<double>(xt::transpose(sign_corrected_q(xt::transpose(a)))) : sign_corrected_q(a);
  auto next = q.begin();  // row-major, the order fill writes
  return fill("orthogonal", t, [&] { return gain * *next++; });
}

Tensor identity(Tensor t, double gain) {
  const Shape shape = checked_shape("identity", t);
  check_finite("identity", "gain", gain, shape);
  if (shape.size() != 2)
    throw ShapeError(prefix("identity") + "needs a 2-d tensor, got shape " + shape_str(shape));
  std::size_t k = 0;  // row-major: element k is (k / cols, k % cols)
  return fill("identity", t, [&] {
    const bool diagonal = k / shape[1] == k % shape[1];
    ++k;
    return diagonal ? gain : 0.0;
  });
}

Tensor sobel_x(Tensor t) {
  static const double k[3][3] = {{-1, 0, 1}, {-2, 0, 2}, {-1, 0, 1}};
  return filter3x3("sobel_x", t, k);
}

Tensor sobel_y(Tensor t) {
  static const double k[3][3] = {{-1, -2, -1}, {0, 0, 0}, {1, 2, 1}};
  return filter3x3("sobel_y", t, k);
}

Tensor laplacian(Tensor t) {
  static const double k[3][3] = {{0, 1, 0}, {1, -4, 1}, {0, 1, 0}};
  return filter3x3("laplacian", t, k);
}

// ---- PyTorch's layer default ---------------------------------------------------

Tensor torch_default(Tensor t, std::size_t fan_in, Generator& gen) {
  const Shape shape = checked_shape("torch_default", t);
  if (fan_in == 0) throw ValueError(prefix("torch_default") + "fan_in must be positive, got 0" + of_shape(shape));
  const double bound = 1.0 / std::sqrt(double(fan_in));
  return fill("torch_default", t, [&] { return gen.uniform(-bound, bound); });
}

}  // namespace tg::nn::init
