#include "init.hpp"

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace tg::nn::init {

namespace {

std::string num(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

std::string prefix(const char* name) { return std::string("init::") + name + ": "; }

// The tensor's shape, after checking that there is one.
template <class T>
Shape checked_shape(const char* name, const BasicTensor<T>& t) {
  if (!t.defined()) throw ValueError(prefix(name) + "the tensor is undefined (it holds no value)");
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

template <class T, class F>
BasicTensor<T> fill(BasicTensor<T> t, F draw) {
  for (auto& e : t.value()) e = static_cast<T>(draw());
  return t;
}

template <class T>
BasicTensor<T> uniform_fill(BasicTensor<T> t, Generator& gen, double limit) {
  return fill(t, [&] { return gen.uniform(-limit, limit); });
}

// mean + stddev·z, z ~ N(0, 1) redrawn while |z| > 2.
template <class T>
BasicTensor<T> truncated_fill(BasicTensor<T> t, Generator& gen, double mean, double stddev) {
  return fill(t, [&] {
    double z = gen.normal();
    while (std::abs(z) > 2.0) z = gen.normal();
    return mean + stddev * z;
  });
}

// Zero elements need no fans; any zero fan implies zero elements.
template <class T>
BasicTensor<T> scaled_uniform(const char* name, BasicTensor<T> t, Generator& gen, double scale,
                              bool fan_in_only) {
  const Shape shape = checked_shape(name, t);
  const auto [fan_in, fan_out] = fans_for(name, shape);
  if (t.numel() == 0) return t;
  const double fan = fan_in_only ? double(fan_in) : 0.5 * double(fan_in + fan_out);
  return uniform_fill(t, gen, std::sqrt(3.0 * scale / fan));
}

template <class T>
BasicTensor<T> scaled_normal(const char* name, BasicTensor<T> t, Generator& gen, double scale,
                             bool fan_in_only) {
  const Shape shape = checked_shape(name, t);
  const auto [fan_in, fan_out] = fans_for(name, shape);
  if (t.numel() == 0) return t;
  const double fan = fan_in_only ? double(fan_in) : 0.5 * double(fan_in + fan_out);
  return truncated_fill(t, gen, 0.0, std::sqrt(scale / fan) / kTruncatedStddev);
}

template <class T>
BasicTensor<T> filter3x3(const char* name, BasicTensor<T> t, const double (&k)[3][3]) {
  const Shape shape = checked_shape(name, t);
  if (shape.size() != 4 || shape[2] != 3 || shape[3] != 3)
    throw ShapeError(prefix(name) + "needs a kernel of shape (out, in, 3, 3), got shape " + shape_str(shape));
  T* p = t.data();
  const std::size_t slices = shape[0] * shape[1];
  for (std::size_t s = 0; s < slices; ++s)
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t j = 0; j < 3; ++j) *p++ = static_cast<T>(k[i][j]);
  return t;
}

// The reduced QR of the row-major m×n matrix a (m >= n) by Householder
// reflections: returns Q (m×n, row-major) with its columns multiplied by the
// sign of R's diagonal (+1 for a zero), i.e. the Q whose R has a
// non-negative diagonal.
std::vector<double> sign_corrected_q(std::vector<double> a, std::size_t m, std::size_t n) {
  std::vector<std::vector<double>> reflectors(n);  // v_k, of length m - k, |v_k| = 1 or v_k = 0
  std::vector<double> r_diag(n);
  std::vector<double> w(n);
  for (std::size_t k = 0; k < n; ++k) {
    std::vector<double>& v = reflectors[k];
    v.resize(m - k);
    double norm2 = 0.0;
    for (std::size_t i = k; i < m; ++i) {
      v[i - k] = a[i * n + k];
      norm2 += v[i - k] * v[i - k];
    }
    const double norm = std::sqrt(norm2);
    const double alpha = v[0] > 0 ? -norm : norm;  // H_k x = alpha·e1, chosen to avoid cancellation
    r_diag[k] = alpha;
    v[0] -= alpha;
    double vnorm2 = 0.0;
    for (double x : v) vnorm2 += x * x;
    if (vnorm2 == 0.0) continue;  // a zero column: H_k = I
    const double inv = 1.0 / std::sqrt(vnorm2);
    for (double& x : v) x *= inv;
    // A[k:, k:] -= 2 v (vᵀ A[k:, k:])
    std::fill(w.begin() + k, w.end(), 0.0);
    for (std::size_t i = k; i < m; ++i)
      for (std::size_t j = k; j < n; ++j) w[j] += v[i - k] * a[i * n + j];
    for (std::size_t i = k; i < m; ++i)
      for (std::size_t j = k; j < n; ++j) a[i * n + j] -= 2.0 * v[i - k] * w[j];
  }
  // Q = H_0 ··· H_{n-1} I[:, :n], applied from the last reflector.
  std::vector<double> q(m * n, 0.0);
  for (std::size_t j = 0; j < n; ++j) q[j * n + j] = 1.0;
  for (std::size_t kk = n; kk-- > 0;) {
    const std::vector<double>& v = reflectors[kk];
    std::fill(w.begin(), w.end(), 0.0);
    for (std::size_t i = kk; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) w[j] += v[i - kk] * q[i * n + j];
    for (std::size_t i = kk; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) q[i * n + j] -= 2.0 * v[i - kk] * w[j];
  }
  for (std::size_t j = 0; j < n; ++j)
    if (r_diag[j] < 0)
      for (std::size_t i = 0; i < m; ++i) q[i * n + j] = -q[i * n + j];
  return q;
}

}  // namespace

std::pair<std::size_t, std::size_t> fans(const Shape& shape) { return fans_for("fans", shape); }

// ---- constants -----------------------------------------------------------------

template <class T>
BasicTensor<T> constant(BasicTensor<T> t, double value) {
  checked_shape("constant", t);
  return fill(t, [&] { return value; });
}

template <class T>
BasicTensor<T> zeros(BasicTensor<T> t) {
  checked_shape("zeros", t);
  return fill(t, [] { return 0.0; });
}

template <class T>
BasicTensor<T> ones(BasicTensor<T> t) {
  checked_shape("ones", t);
  return fill(t, [] { return 1.0; });
}

// ---- plain distributions -------------------------------------------------------

template <class T>
BasicTensor<T> random_normal(BasicTensor<T> t, Generator& gen, double mean, double stddev) {
  check_stddev("random_normal", mean, stddev, checked_shape("random_normal", t));
  // Through T, as tg::randn does, so that both give the same values.
  const T m = static_cast<T>(mean), s = static_cast<T>(stddev);
  return fill(t, [&] { return gen.normal(m, s); });
}

template <class T>
BasicTensor<T> random_uniform(BasicTensor<T> t, Generator& gen, double low, double high) {
  const Shape shape = checked_shape("random_uniform", t);
  check_finite("random_uniform", "low", low, shape);
  check_finite("random_uniform", "high", high, shape);
  const T lo = static_cast<T>(low), hi = static_cast<T>(high);  // as tg::rand
  if (!(lo < hi))
    throw ValueError(prefix("random_uniform") + "low must be less than high, got low=" + num(low) +
                     ", high=" + num(high) + of_shape(shape));
  return fill(t, [&] { return gen.uniform(lo, hi); });
}

template <class T>
BasicTensor<T> truncated_normal(BasicTensor<T> t, Generator& gen, double mean, double stddev) {
  check_stddev("truncated_normal", mean, stddev, checked_shape("truncated_normal", t));
  return truncated_fill(t, gen, mean, stddev);
}

// ---- variance scaling ----------------------------------------------------------
// Keras VarianceScaling: uniform limit sqrt(3·scale/fan), truncated normal
// stddev sqrt(scale/fan) / 0.8796...; fan = fan_in or (fan_in + fan_out) / 2.

template <class T>
BasicTensor<T> glorot_uniform(BasicTensor<T> t, Generator& gen) {
  return scaled_uniform("glorot_uniform", t, gen, 1.0, false);  // sqrt(6 / (fan_in + fan_out))
}

template <class T>
BasicTensor<T> glorot_normal(BasicTensor<T> t, Generator& gen) {
  return scaled_normal("glorot_normal", t, gen, 1.0, false);  // sqrt(2 / (fan_in + fan_out)) / 0.8796
}

template <class T>
BasicTensor<T> he_uniform(BasicTensor<T> t, Generator& gen) {
  return scaled_uniform("he_uniform", t, gen, 2.0, true);  // sqrt(6 / fan_in)
}

template <class T>
BasicTensor<T> he_normal(BasicTensor<T> t, Generator& gen) {
  return scaled_normal("he_normal", t, gen, 2.0, true);  // sqrt(2 / fan_in) / 0.8796
}

template <class T>
BasicTensor<T> lecun_uniform(BasicTensor<T> t, Generator& gen) {
  return scaled_uniform("lecun_uniform", t, gen, 1.0, true);  // sqrt(3 / fan_in)
}

template <class T>
BasicTensor<T> lecun_normal(BasicTensor<T> t, Generator& gen) {
  return scaled_normal("lecun_normal", t, gen, 1.0, true);  // sqrt(1 / fan_in) / 0.8796
}

// ---- structured ----------------------------------------------------------------

template <class T>
BasicTensor<T> orthogonal(BasicTensor<T> t, Generator& gen, double gain) {
  const Shape shape = checked_shape("orthogonal", t);
  check_finite("orthogonal", "gain", gain, shape);
  if (shape.size() < 2)
    throw ShapeError(prefix("orthogonal") + "needs at least 2 dimensions (rows, cols...), got shape " +
                     shape_str(shape));
  if (t.numel() == 0) return t;
  const std::size_t rows = shape[0], cols = t.numel() / rows;
  const bool wide = rows < cols;
  const std::size_t m = wide ? cols : rows, n = wide ? rows : cols;  // m >= n
  // A (rows×cols) drawn row by row, stored as the m×n matrix (A or Aᵀ).
  std::vector<double> a(m * n);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) (wide ? a[c * n + r] : a[r * n + c]) = gen.normal();
  const std::vector<double> q = sign_corrected_q(std::move(a), m, n);
  T* out = t.data();
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c)
      out[r * cols + c] = static_cast<T>(gain * (wide ? q[c * n + r] : q[r * n + c]));
  return t;
}

template <class T>
BasicTensor<T> identity(BasicTensor<T> t, double gain) {
  const Shape shape = checked_shape("identity", t);
  check_finite("identity", "gain", gain, shape);
  if (shape.size() != 2)
    throw ShapeError(prefix("identity") + "needs a 2-d tensor, got shape " + shape_str(shape));
  T* p = t.data();
  for (std::size_t i = 0; i < shape[0]; ++i)
    for (std::size_t j = 0; j < shape[1]; ++j) *p++ = static_cast<T>(i == j ? gain : 0.0);
  return t;
}

template <class T>
BasicTensor<T> sobel_x(BasicTensor<T> t) {
  static const double k[3][3] = {{-1, 0, 1}, {-2, 0, 2}, {-1, 0, 1}};
  return filter3x3("sobel_x", t, k);
}

template <class T>
BasicTensor<T> sobel_y(BasicTensor<T> t) {
  static const double k[3][3] = {{-1, -2, -1}, {0, 0, 0}, {1, 2, 1}};
  return filter3x3("sobel_y", t, k);
}

template <class T>
BasicTensor<T> laplacian(BasicTensor<T> t) {
  static const double k[3][3] = {{0, 1, 0}, {1, -4, 1}, {0, 1, 0}};
  return filter3x3("laplacian", t, k);
}

// ---- PyTorch's layer default ---------------------------------------------------

template <class T>
BasicTensor<T> torch_default(BasicTensor<T> t, std::size_t fan_in, Generator& gen) {
  const Shape shape = checked_shape("torch_default", t);
  if (fan_in == 0) throw ValueError(prefix("torch_default") + "fan_in must be positive, got 0" + of_shape(shape));
  const double bound = 1.0 / std::sqrt(double(fan_in));
  const T lo = static_cast<T>(-bound), hi = static_cast<T>(bound);  // as nn::Linear and Conv2d
  return fill(t, [&] { return gen.uniform(lo, hi); });
}

#define TG_INSTANTIATE(T)                                                              \
  template BasicTensor<T> zeros<T>(BasicTensor<T>);                                    \
  template BasicTensor<T> ones<T>(BasicTensor<T>);                                     \
  template BasicTensor<T> constant<T>(BasicTensor<T>, double);                         \
  template BasicTensor<T> random_normal<T>(BasicTensor<T>, Generator&, double, double);  \
  template BasicTensor<T> random_uniform<T>(BasicTensor<T>, Generator&, double, double); \
  template BasicTensor<T> truncated_normal<T>(BasicTensor<T>, Generator&, double, double); \
  template BasicTensor<T> glorot_uniform<T>(BasicTensor<T>, Generator&);               \
  template BasicTensor<T> glorot_normal<T>(BasicTensor<T>, Generator&);                \
  template BasicTensor<T> he_uniform<T>(BasicTensor<T>, Generator&);                   \
  template BasicTensor<T> he_normal<T>(BasicTensor<T>, Generator&);                    \
  template BasicTensor<T> lecun_uniform<T>(BasicTensor<T>, Generator&);                \
  template BasicTensor<T> lecun_normal<T>(BasicTensor<T>, Generator&);                 \
  template BasicTensor<T> orthogonal<T>(BasicTensor<T>, Generator&, double);           \
  template BasicTensor<T> identity<T>(BasicTensor<T>, double);                         \
  template BasicTensor<T> sobel_x<T>(BasicTensor<T>);                                  \
  template BasicTensor<T> sobel_y<T>(BasicTensor<T>);                                  \
  template BasicTensor<T> laplacian<T>(BasicTensor<T>);                                \
  template BasicTensor<T> torch_default<T>(BasicTensor<T>, std::size_t, Generator&);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg::nn::init
