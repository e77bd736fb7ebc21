// Initializers: every distribution's moments and bounds against the formula
// written out here, fans by hand, orthogonality and the QR factor it comes
// from, fixed filters by value and by what they compute, reproducibility, and
// the errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad/nn/init.hpp>
#include <tapegrad/tapegrad.hpp>

using tg::Shape;
using tg::Tensor;
namespace init = tg::nn::init;

namespace {

// (128, 64, 5, 5): fan_in = 64·25 = 1600, fan_out = 128·25 = 3200, 204800 elements.
const Shape kConv{128, 64, 5, 5};
// (300, 700): fan_in = 700, fan_out = 300, 210000 elements.
const Shape kLinear{300, 700};

// The elements in row-major order, as doubles, whatever the floating dtype.
std::vector<double> as_doubles(const Tensor& t) {
  return tg::visit_floating("as_doubles", t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto v = t.value<T>();
    return std::vector<double>(v.begin(), v.end());
  });
}

// v rounded to t's dtype, as an initializer stores it.
double rounded(double v, const Tensor& t) { return t.dtype() == tg::kFloat32 ? double(float(v)) : v; }

struct Stats {
  double mean = 0, var = 0, min = 0, max = 0, max_abs = 0;
  std::size_t n = 0;
};

Stats stats(const Tensor& t) {
  const std::vector<double> values = as_doubles(t);
  Stats s;
  s.n = t.numel();
  s.min = std::numeric_limits<double>::infinity();
  s.max = -s.min;
  double sum = 0;
  for (double v : values) {
    sum += v;
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
  }
  s.mean = sum / double(s.n);
  double ss = 0;
  for (double v : values) ss += (v - s.mean) * (v - s.mean);
  s.var = ss / double(s.n);
  s.max_abs = std::max(-s.min, s.max);
  return s;
}

// The mean of n draws with standard deviation sd is within 6 standard errors.
void check_mean(const Stats& s, double mean, double sd) {
  CHECK(std::abs(s.mean - mean) < 6.0 * sd / std::sqrt(double(s.n)));
}

// Variance of N(0, 1) truncated to [-2, 2]: 1 - 2·2·φ(2) / (Φ(2) - Φ(-2)).
double truncated_var_factor() {
  const double phi2 = std::exp(-2.0) / std::sqrt(2.0 * M_PI);
  const double mass = std::erf(2.0 / std::sqrt(2.0));
  return 1.0 - 4.0 * phi2 / mass;
}

// P(|z| > 1 | |z| <= 2) for z ~ N(0, 1).
double truncated_tail_beyond_one() {
  const double mass2 = std::erf(2.0 / std::sqrt(2.0)), mass1 = std::erf(1.0 / std::sqrt(2.0));
  return (mass2 - mass1) / mass2;
}

double fraction_beyond(const Tensor& t, double center, double dist) {
  std::size_t k = 0;
  for (double v : as_doubles(t)) k += std::abs(v - center) > dist;
  return double(k) / double(t.numel());
}

// A U[-limit, limit) sample: inside the bounds, reaching near both, variance limit²/3.
void check_uniform(const Tensor& t, double limit) {
  const Stats s = stats(t);
  CHECK(s.min >= rounded(-limit, t));
  CHECK(s.max <= rounded(limit, t));
  CHECK(s.min < -0.999 * limit);
  CHECK(s.max > 0.999 * limit);
  check_mean(s, 0.0, limit / std::sqrt(3.0));
  CHECK(s.var == doctest::Approx(limit * limit / 3.0).epsilon(0.02));
}

// A zero-mean normal truncated at ±2·sigma (sigma of the underlying normal)
// with variance `variance`.
void check_truncated(const Tensor& t, double sigma, double variance) {
  const Stats s = stats(t);
  CHECK(s.max_abs <= 2.0 * sigma * (1 + 1e-6));
  CHECK(s.max_abs > 1.98 * sigma);  // cut at 2 sigma, not sooner
  check_mean(s, 0.0, std::sqrt(variance));
  CHECK(s.var == doctest::Approx(variance).epsilon(0.02));
  CHECK(fraction_beyond(t, 0.0, sigma) == doctest::Approx(truncated_tail_beyond_one()).epsilon(0.03));
}

// Row-major product of a (n×k) and b (k×m).
std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, std::size_t n, std::size_t k,
                           std::size_t m) {
  std::vector<double> c(n * m, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t p = 0; p < k; ++p)
      for (std::size_t j = 0; j < m; ++j) c[i * m + j] += a[i * k + p] * b[p * m + j];
  return c;
}

std::vector<double> transpose(const std::vector<double>& a, std::size_t n, std::size_t m) {
  std::vector<double> t(n * m);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < m; ++j) t[j * n + i] = a[i * m + j];
  return t;
}

using DInit = std::function<Tensor(Tensor, tg::Generator&)>;

struct NamedInit {
  const char* name;
  DInit fn;
};

const std::vector<NamedInit>& random_inits() {
  static const std::vector<NamedInit> all = {
      {"random_normal", [](Tensor t, tg::Generator& g) { return init::random_normal(t, g); }},
      {"random_uniform", [](Tensor t, tg::Generator& g) { return init::random_uniform(t, g); }},
      {"truncated_normal", [](Tensor t, tg::Generator& g) { return init::truncated_normal(t, g); }},
      {"glorot_uniform", [](Tensor t, tg::Generator& g) { return init::glorot_uniform(t, g); }},
      {"glorot_normal", [](Tensor t, tg::Generator& g) { return init::glorot_normal(t, g); }},
      {"he_uniform", [](Tensor t, tg::Generator& g) { return init::he_uniform(t, g); }},
      {"he_normal", [](Tensor t, tg::Generator& g) { return init::he_normal(t, g); }},
      {"lecun_uniform", [](Tensor t, tg::Generator& g) { return init::lecun_uniform(t, g); }},
      {"lecun_normal", [](Tensor t, tg::Generator& g) { return init::lecun_normal(t, g); }},
      {"orthogonal", [](Tensor t, tg::Generator& g) { return init::orthogonal(t, g); }},
      {"torch_default", [](Tensor t, tg::Generator& g) { return init::torch_default(t, 7, g); }},
  };
  return all;
}

// Every initializer with its argument-free defaults, for the undefined-tensor check.
const std::vector<NamedInit>& all_inits() {
  static const std::vector<NamedInit> all = [] {
    std::vector<NamedInit> v = random_inits();
    v.push_back({"zeros", [](Tensor t, tg::Generator&) { return init::zeros(t); }});
    v.push_back({"ones", [](Tensor t, tg::Generator&) { return init::ones(t); }});
    v.push_back({"constant", [](Tensor t, tg::Generator&) { return init::constant(t, 2.0); }});
    v.push_back({"identity", [](Tensor t, tg::Generator&) { return init::identity(t); }});
    v.push_back({"sobel_x", [](Tensor t, tg::Generator&) { return init::sobel_x(t); }});
    v.push_back({"sobel_y", [](Tensor t, tg::Generator&) { return init::sobel_y(t); }});
    v.push_back({"laplacian", [](Tensor t, tg::Generator&) { return init::laplacian(t); }});
    return v;
  }();
  return all;
}

}  // namespace

// ---- fans ------------------------------------------------------------------------

TEST_CASE("fans: (out, in) -> (in, out); kernels multiply by the receptive field") {
  using P = std::pair<std::size_t, std::size_t>;
  CHECK(init::fans({10, 20}) == P{20, 10});
  CHECK(init::fans({1, 1}) == P{1, 1});
  CHECK(init::fans({64, 32, 5, 5}) == P{32 * 25, 64 * 25});
  CHECK(init::fans(kConv) == P{1600, 3200});
  CHECK(init::fans({8, 3, 7}) == P{21, 56});            // conv1d kernel
  CHECK(init::fans({4, 5, 2, 3, 1}) == P{30, 24});      // conv3d kernel
  CHECK(init::fans({6, 2, 3, 3}) == P{18, 54});         // groups: in / groups = 2
  CHECK(init::fans({3, 0}) == P{0, 3});
  CHECK_THROWS_WITH_AS(init::fans({5}), doctest::Contains("fans"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(init::fans({5}), doctest::Contains("(5,)"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(init::fans({}), doctest::Contains("()"), tg::ShapeError);
}

TEST_CASE("fans and torch_default agree with what Linear and Conv2d construct") {
  SUBCASE("Linear") {
    tg::Generator g1(11), g2(11);
    tg::nn::Linear lin(30, 20, g1);
    CHECK(init::fans(lin->weight.shape()).first == 30);
    auto w = init::torch_default(tg::zeros({20, 30}), 30, g2);
    auto b = init::torch_default(tg::zeros({20}), 30, g2);
    CHECK(w.to_xarray<float>() == lin->weight.to_xarray<float>());
    CHECK(b.to_xarray<float>() == lin->bias.to_xarray<float>());
  }
  SUBCASE("grouped Conv2d") {
    tg::Generator g1(12), g2(12);
    tg::nn::Conv2d conv(tg::nn::Conv2dOptions(4, 6, 3).groups(2), g1);
    REQUIRE(conv->weight.shape() == Shape{6, 2, 3, 3});
    const std::size_t fan_in = init::fans(conv->weight.shape()).first;
    CHECK(fan_in == 2 * 3 * 3);
    auto w = init::torch_default(tg::zeros({6, 2, 3, 3}), fan_in, g2);
    auto b = init::torch_default(tg::zeros({6}), fan_in, g2);
    CHECK(w.to_xarray<float>() == conv->weight.to_xarray<float>());
    CHECK(b.to_xarray<float>() == conv->bias.to_xarray<float>());
  }
}

// ---- constants ---------------------------------------------------------------------

TEST_CASE("zeros, ones, constant fill in place through every handle") {
  tg::Generator gen(1);
  Tensor w = tg::rand({3, 4}, gen, 2.0, 3.0);
  w.requires_grad_();
  Tensor alias = w;
  Tensor r = init::zeros(w);
  CHECK(r.same(w));
  CHECK(alias.to_xarray<float>() == xt::zeros<float>({3, 4}));
  init::ones(alias);
  CHECK(w.to_xarray<float>() == xt::ones<float>({3, 4}));
  init::constant(w, -0.25);
  CHECK(alias.to_xarray<float>() == xt::xarray<float>(Shape{3, 4}, -0.25f));
  CHECK(w.shape() == Shape{3, 4});
  CHECK(w.requires_grad());
  CHECK(w.is_leaf());

  Tensor d = tg::zeros({2, 2, 2}, tg::kFloat64);
  init::constant(d, 0.1);
  REQUIRE(d.dtype() == tg::kFloat64);
  for (double v : as_doubles(d)) CHECK(v == 0.1);
  Tensor scalar = tg::zeros({}, tg::kFloat64);
  init::ones(scalar);
  CHECK(scalar.item() == 1.0);
}

TEST_CASE("a strided view is filled through its strides; the storage it views changes") {
  Tensor base = tg::zeros({2, 3}, tg::kFloat64);
  Tensor view = base.t();  // (3, 2), strides (1, 3)
  REQUIRE_FALSE(view.is_contiguous());
  init::identity(view, 2.0);
  CHECK(view.to_xarray<double>() == xt::xarray<double>{{2, 0}, {0, 2}, {0, 0}});
  CHECK(base.to_xarray<double>() == xt::xarray<double>{{2, 0, 0}, {0, 2, 0}});
  tg::Generator g1(8), g2(8);
  Tensor seen = init::random_normal(tg::zeros({4, 3}, tg::kFloat64).t(), g1);  // row-major order of the view
  CHECK(seen.to_xarray<double>() == tg::randn({3, 4}, g2, 0.0, 0.05, tg::kFloat64).to_xarray<double>());
}

TEST_CASE("initializing a tensor that a recorded op saved makes that op's backward refuse") {
  Tensor w = tg::ones({3}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  const Tensor y = tg::sum(w * w);  // mul saves w to compute its gradient
  init::constant(w, 2.0);
  CHECK(w.to_xarray<double>() == xt::xarray<double>{2, 2, 2});
  CHECK_THROWS_AS(y.backward(), tg::AutogradError);
  // Recorded after the write, the op reads the new value.
  tg::sum(w * w).backward();
  CHECK(w.grad().to_xarray<double>() == xt::xarray<double>{4, 4, 4});
}

TEST_CASE("initializing a module's parameter changes the module") {
  tg::Generator gen(5);
  tg::nn::Linear lin(6, 4, gen);
  init::zeros(lin->bias);
  init::identity(lin->find("weight"), 3.0);
  tg::Tensor y = lin(tg::Tensor(xt::xarray<float>{{1, 2, 3, 4, 5, 6}}));
  CHECK(y.to_xarray<float>() == xt::xarray<float>{{3, 6, 9, 12}});
  CHECK(lin->parameters()[0].requires_grad());
}

// ---- plain distributions -----------------------------------------------------------

TEST_CASE("random_normal: mean, variance, untruncated tails; same values as tg::randn") {
  tg::Generator gen(21);
  Tensor t = init::random_normal(tg::zeros(kConv, tg::kFloat64), gen, 0.5, 2.0);
  const Stats s = stats(t);
  check_mean(s, 0.5, 2.0);
  CHECK(s.var == doctest::Approx(4.0).epsilon(0.02));
  CHECK(s.max > 0.5 + 4.0 * 2.0);  // ~13 of 204800 draws expected beyond 4 sigma
  CHECK(s.min < 0.5 - 4.0 * 2.0);

  Tensor d = init::random_normal(tg::zeros(kLinear, tg::kFloat64), gen);  // N(0, 0.05²)
  const Stats sd = stats(d);
  check_mean(sd, 0.0, 0.05);
  CHECK(sd.var == doctest::Approx(0.05 * 0.05).epsilon(0.02));

  tg::Generator g1(3), g2(3);
  CHECK(init::random_normal(tg::zeros({50, 40}), g1, 1.0, 0.5).to_xarray<float>() ==
        tg::randn({50, 40}, g2, 1.0, 0.5).to_xarray<float>());
}

TEST_CASE("random_uniform: bounds, mean, variance (high - low)²/12; same values as tg::rand") {
  tg::Generator gen(22);
  Tensor t = init::random_uniform(tg::zeros(kConv, tg::kFloat64), gen, -1.0, 3.0);
  const Stats s = stats(t);
  CHECK(s.min >= -1.0);
  CHECK(s.max < 3.0);
  CHECK(s.min < -0.999);
  CHECK(s.max > 2.999);
  check_mean(s, 1.0, 4.0 / std::sqrt(12.0));
  CHECK(s.var == doctest::Approx(16.0 / 12.0).epsilon(0.02));

  check_uniform(init::random_uniform(tg::zeros(kLinear, tg::kFloat64), gen), 0.05);  // default ±0.05
  check_uniform(init::random_uniform(tg::zeros(kLinear), gen), 0.05);

  tg::Generator g1(4), g2(4);
  CHECK(init::random_uniform(tg::zeros({50, 40}), g1, -2.0, 0.5).to_xarray<float>() ==
        tg::rand({50, 40}, g2, -2.0, 0.5).to_xarray<float>());
}

TEST_CASE("truncated_normal: nothing beyond 2 stddev, the truncated variance") {
  CHECK(init::kTruncatedStddev * init::kTruncatedStddev == doctest::Approx(truncated_var_factor()).epsilon(1e-12));
  tg::Generator gen(23);
  Tensor t = init::truncated_normal(tg::zeros(kConv, tg::kFloat64), gen, 1.0, 0.5);
  const Stats s = stats(t);
  CHECK(s.min >= 1.0 - 2 * 0.5);
  CHECK(s.max <= 1.0 + 2 * 0.5);
  CHECK(s.min < 1.0 - 1.98 * 0.5);
  CHECK(s.max > 1.0 + 1.98 * 0.5);
  check_mean(s, 1.0, 0.5);
  CHECK(s.var == doctest::Approx(0.25 * truncated_var_factor()).epsilon(0.02));
  CHECK(fraction_beyond(t, 1.0, 0.5) == doctest::Approx(truncated_tail_beyond_one()).epsilon(0.03));

  // Default N(0, 0.05²) truncated, in float.
  check_truncated(init::truncated_normal(tg::zeros(kLinear), gen), 0.05, 0.0025 * truncated_var_factor());
}

// ---- variance scaling --------------------------------------------------------------

TEST_CASE("glorot/he/lecun uniform: U(-limit, limit) with the limit from the fans") {
  struct Case {
    Shape shape;
    double fan_in, fan_out;
  };
  for (const Case& c : {Case{kConv, 1600, 3200}, Case{kLinear, 700, 300}}) {
    CAPTURE(tg::shape_str(c.shape));
    tg::Generator gen(31);
    SUBCASE("glorot_uniform") {
      check_uniform(init::glorot_uniform(tg::zeros(c.shape, tg::kFloat64), gen), std::sqrt(6.0 / (c.fan_in + c.fan_out)));
    }
    SUBCASE("he_uniform") {
      check_uniform(init::he_uniform(tg::zeros(c.shape, tg::kFloat64), gen), std::sqrt(6.0 / c.fan_in));
    }
    SUBCASE("lecun_uniform") {
      check_uniform(init::lecun_uniform(tg::zeros(c.shape, tg::kFloat64), gen), std::sqrt(3.0 / c.fan_in));
    }
    SUBCASE("float") {
      check_uniform(init::glorot_uniform(tg::zeros(c.shape), gen), std::sqrt(6.0 / (c.fan_in + c.fan_out)));
      check_uniform(init::he_uniform(tg::zeros(c.shape), gen), std::sqrt(6.0 / c.fan_in));
    }
  }
}

TEST_CASE("glorot/he/lecun normal: truncated at 2 sigma, variance as Keras corrects it") {
  const double f = truncated_var_factor();
  struct Case {
    Shape shape;
    double fan_in, fan_out;
  };
  for (const Case& c : {Case{kConv, 1600, 3200}, Case{kLinear, 700, 300}}) {
    CAPTURE(tg::shape_str(c.shape));
    tg::Generator gen(32);
    // The target variance is the formula's; the underlying sigma is larger by 1 / sqrt(f).
    SUBCASE("glorot_normal") {
      const double var = 2.0 / (c.fan_in + c.fan_out);
      check_truncated(init::glorot_normal(tg::zeros(c.shape, tg::kFloat64), gen), std::sqrt(var / f), var);
    }
    SUBCASE("he_normal") {
      const double var = 2.0 / c.fan_in;
      check_truncated(init::he_normal(tg::zeros(c.shape, tg::kFloat64), gen), std::sqrt(var / f), var);
    }
    SUBCASE("lecun_normal") {
      const double var = 1.0 / c.fan_in;
      check_truncated(init::lecun_normal(tg::zeros(c.shape, tg::kFloat64), gen), std::sqrt(var / f), var);
    }
    SUBCASE("float") {
      const double var = 2.0 / c.fan_in;
      check_truncated(init::he_normal(tg::zeros(c.shape), gen), std::sqrt(var / f), var);
    }
  }
}

TEST_CASE("torch_default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))") {
  tg::Generator gen(33);
  check_uniform(init::torch_default(tg::zeros(kLinear, tg::kFloat64), 700, gen), 1.0 / std::sqrt(700.0));
  check_uniform(init::torch_default(tg::zeros({204800}, tg::kFloat64), 1600, gen), 1.0 / std::sqrt(1600.0));  // a bias
  check_uniform(init::torch_default(tg::zeros(kConv), 1600, gen), 1.0 / std::sqrt(1600.0));
}

// ---- reproducibility ---------------------------------------------------------------

TEST_CASE("random initializers: same seed, same values; another seed or a later draw, others") {
  for (const NamedInit& ini : random_inits()) {
    CAPTURE(ini.name);
    tg::Generator g1(42), g2(42), g3(43);
    Tensor a = ini.fn(tg::zeros({16, 8, 3, 3}, tg::kFloat64), g1);
    Tensor b = ini.fn(tg::zeros({16, 8, 3, 3}, tg::kFloat64), g2);
    Tensor c = ini.fn(tg::zeros({16, 8, 3, 3}, tg::kFloat64), g3);
    Tensor again = ini.fn(tg::zeros({16, 8, 3, 3}, tg::kFloat64), g1);
    CHECK(as_doubles(a) == as_doubles(b));
    CHECK(as_doubles(a) != as_doubles(c));
    CHECK(as_doubles(a) != as_doubles(again));
    CHECK(a.shape() == Shape{16, 8, 3, 3});
    // Every element was written: none is left at the zeros it started from.
    const std::vector<double> written = as_doubles(a);
    CHECK(std::none_of(written.begin(), written.end(), [](double v) { return v == 0.0; }));
  }
}

TEST_CASE("without a Generator, the random initializers draw from the thread's default one") {
  // Each call, after manual_seed(7), equals the call with a Generator(7): the
  // default generator is that generator.
  const auto drawn = [](auto&& with_default, auto&& with_gen) {
    tg::manual_seed(7);
    const std::vector<double> a = as_doubles(with_default(tg::zeros({6, 4}, tg::kFloat64)));
    tg::Generator gen(7);
    CHECK(a == as_doubles(with_gen(tg::zeros({6, 4}, tg::kFloat64), gen)));
  };
  drawn([](Tensor t) { return init::random_normal(t, 1.0, 2.0); },
        [](Tensor t, tg::Generator& g) { return init::random_normal(t, g, 1.0, 2.0); });
  drawn([](Tensor t) { return init::random_uniform(t, -3.0, 3.0); },
        [](Tensor t, tg::Generator& g) { return init::random_uniform(t, g, -3.0, 3.0); });
  drawn([](Tensor t) { return init::truncated_normal(t); },
        [](Tensor t, tg::Generator& g) { return init::truncated_normal(t, g); });
  drawn([](Tensor t) { return init::glorot_uniform(t); },
        [](Tensor t, tg::Generator& g) { return init::glorot_uniform(t, g); });
  drawn([](Tensor t) { return init::he_normal(t); }, [](Tensor t, tg::Generator& g) { return init::he_normal(t, g); });
  drawn([](Tensor t) { return init::orthogonal(t, 2.0); },
        [](Tensor t, tg::Generator& g) { return init::orthogonal(t, g, 2.0); });
  drawn([](Tensor t) { return init::torch_default(t, 4); },
        [](Tensor t, tg::Generator& g) { return init::torch_default(t, 4, g); });
}

// ---- orthogonal --------------------------------------------------------------------

TEST_CASE("orthogonal: orthonormal rows or columns, the sign-corrected Q of a normal matrix") {
  struct Case {
    Shape shape;
    double gain;
  };
  for (const Case& c : {Case{{200, 50}, 1.0}, Case{{50, 200}, 1.0}, Case{{64, 64}, 1.0}, Case{{16, 8, 3, 3}, 1.0},
                        Case{{100, 2, 3, 3}, 1.0}, Case{{30, 70}, 2.5}, Case{{70, 30}, -0.5}, Case{{1, 9}, 1.0},
                        Case{{9, 1}, 1.0}}) {
    CAPTURE(tg::shape_str(c.shape));
    CAPTURE(c.gain);
    tg::Generator gen(51);
    Tensor t = init::orthogonal(tg::zeros(c.shape, tg::kFloat64), gen, c.gain);
    REQUIRE(t.shape() == c.shape);
    const std::size_t rows = c.shape[0], cols = t.numel() / rows;
    const std::vector<double> w = as_doubles(t);

    // W·Wᵀ (rows <= cols) or Wᵀ·W (rows > cols) = gain²·I.
    const bool wide = rows <= cols;
    const std::size_t n = wide ? rows : cols;
    const std::vector<double> gram =
        wide ? matmul(w, transpose(w, rows, cols), rows, cols, rows) : matmul(transpose(w, rows, cols), w, cols, rows, cols);
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j)
        worst = std::max(worst, std::abs(gram[i * n + j] - (i == j ? c.gain * c.gain : 0.0)));
    CHECK(worst < 1e-12);

    // Q = W / gain, as an m×n matrix with orthonormal columns (m >= n), is the
    // Q of B = QR, B the N(0, 1) matrix drawn row by row as (rows, cols), or
    // its transpose when wide: R = QᵀB is upper triangular with a positive
    // diagonal, and QR = B.
    tg::Generator replay(51);
    std::vector<double> a(rows * cols);
    for (double& x : a) x = replay.normal();
    const std::size_t m = std::max(rows, cols);
    std::vector<double> q = rows < cols ? transpose(w, rows, cols) : w;
    for (double& x : q) x /= c.gain;
    const std::vector<double> b = rows < cols ? transpose(a, rows, cols) : a;
    const std::vector<double> r = matmul(transpose(q, m, n), b, n, m, n);
    for (std::size_t i = 0; i < n; ++i) {
      CHECK(r[i * n + i] > 0);
      for (std::size_t j = 0; j < i; ++j) CHECK(std::abs(r[i * n + j]) < 1e-10);
    }
    const std::vector<double> qr = matmul(q, r, m, n, n);
    double err = 0;
    for (std::size_t i = 0; i < m * n; ++i) err = std::max(err, std::abs(qr[i] - b[i]));
    CHECK(err < 1e-10);
  }
}

TEST_CASE("orthogonal in float, and its distribution is not biased by the sign") {
  tg::Generator gen(52);
  Tensor t = init::orthogonal(tg::zeros({40, 10, 2, 2}), gen);
  const std::vector<double> w = as_doubles(t);
  const std::vector<double> gram = matmul(w, transpose(w, 40, 40), 40, 40, 40);
  for (std::size_t i = 0; i < 40; ++i)
    for (std::size_t j = 0; j < 40; ++j) CHECK(gram[i * 40 + j] == doctest::Approx(i == j ? 1.0 : 0.0).epsilon(1e-5).scale(1));

  // Haar-distributed: W[0][0] of a 3×3 draw has mean 0 and variance 1/3 (the
  // entries of a unit vector in 3-d). A Q left with Householder's signs would not.
  Tensor m = tg::zeros({3, 3}, tg::kFloat64);
  double sum = 0, sum2 = 0;
  const int draws = 20000;
  for (int k = 0; k < draws; ++k) {
    const double v = init::orthogonal(m, gen).value<double>()(0, 0);
    sum += v;
    sum2 += v * v;
  }
  CHECK(std::abs(sum / draws) < 6.0 * std::sqrt(1.0 / 3.0 / draws));
  CHECK(sum2 / draws == doctest::Approx(1.0 / 3.0).epsilon(0.03));
}

// ---- identity and filters ----------------------------------------------------------

TEST_CASE("identity: gain on the diagonal, square or not") {
  CHECK(init::identity(tg::zeros({3, 3}, tg::kFloat64)).to_xarray<double>() == xt::eye<double>(3));
  CHECK(init::identity(tg::ones({2, 4}, tg::kFloat64), 2.0).to_xarray<double>() ==
        xt::xarray<double>{{2, 0, 0, 0}, {0, 2, 0, 0}});
  CHECK(init::identity(tg::ones({3, 2}), -1.5).to_xarray<float>() == xt::xarray<float>{{-1.5f, 0}, {0, -1.5f}, {0, 0}});
  CHECK_THROWS_WITH_AS(init::identity(tg::zeros({2, 2, 2}, tg::kFloat64)), doctest::Contains("identity"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(init::identity(tg::zeros({2, 2, 2}, tg::kFloat64)), doctest::Contains("(2, 2, 2)"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(init::identity(tg::zeros({4}, tg::kFloat64)), doctest::Contains("(4,)"), tg::ShapeError);
}

TEST_CASE("sobel_x, sobel_y, laplacian: every (out, in) slice is the filter") {
  const xt::xarray<double> sx{{-1, 0, 1}, {-2, 0, 2}, {-1, 0, 1}};
  const xt::xarray<double> sy{{-1, -2, -1}, {0, 0, 0}, {1, 2, 1}};
  const xt::xarray<double> lap{{0, 1, 0}, {1, -4, 1}, {0, 1, 0}};
  CHECK(sy == xt::transpose(sx));
  Tensor kx = init::sobel_x(tg::zeros({2, 3, 3, 3}, tg::kFloat64));
  Tensor ky = init::sobel_y(tg::zeros({2, 3, 3, 3}, tg::kFloat64));
  Tensor kl = init::laplacian(tg::zeros({2, 3, 3, 3}));
  for (std::size_t o = 0; o < 2; ++o)
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t h = 0; h < 3; ++h)
        for (std::size_t w = 0; w < 3; ++w) {
          CHECK(kx.value<double>()(o, i, h, w) == sx(h, w));
          CHECK(ky.value<double>()(o, i, h, w) == sy(h, w));
          CHECK(kl.value<float>()(o, i, h, w) == float(lap(h, w)));
        }
}

TEST_CASE("the filters compute derivatives: ramps and a paraboloid through conv2d") {
  // Images (1, 1, 6, 7): I = w, I = h, I = h² + w².
  xt::xarray<double> ramp_w(Shape{1, 1, 6, 7}), ramp_h(Shape{1, 1, 6, 7}), bowl(Shape{1, 1, 6, 7});
  for (std::size_t h = 0; h < 6; ++h)
    for (std::size_t w = 0; w < 7; ++w) {
      ramp_w(0, 0, h, w) = double(w);
      ramp_h(0, 0, h, w) = double(h);
      bowl(0, 0, h, w) = double(h * h + w * w);
    }
  Tensor kx = init::sobel_x(tg::zeros({1, 1, 3, 3}, tg::kFloat64));
  Tensor ky = init::sobel_y(tg::zeros({1, 1, 3, 3}, tg::kFloat64));
  Tensor kl = init::laplacian(tg::zeros({1, 1, 3, 3}, tg::kFloat64));
  const xt::xarray<double> eights(Shape{1, 1, 4, 5}, 8.0), fours(Shape{1, 1, 4, 5}, 4.0),
      nothing = xt::zeros<double>({1, 1, 4, 5});
  CHECK(tg::conv2d(Tensor(ramp_w), kx).to_xarray<double>() == eights);  // (-1-2-1)(w-1) + (1+2+1)(w+1)
  CHECK(tg::conv2d(Tensor(ramp_w), ky).to_xarray<double>() == nothing);
  CHECK(tg::conv2d(Tensor(ramp_h), ky).to_xarray<double>() == eights);
  CHECK(tg::conv2d(Tensor(ramp_h), kx).to_xarray<double>() == nothing);
  CHECK(tg::conv2d(Tensor(ramp_w), kl).to_xarray<double>() == nothing);
  CHECK(tg::conv2d(Tensor(bowl), kl).to_xarray<double>() == fours);  // d²/dh² + d²/dw² of h² + w²
}

TEST_CASE("filters reject anything but (out, in, 3, 3)") {
  CHECK_THROWS_WITH_AS(init::sobel_x(tg::zeros({4, 1, 5, 5}, tg::kFloat64)), doctest::Contains("sobel_x"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(init::sobel_x(tg::zeros({4, 1, 5, 5}, tg::kFloat64)), doctest::Contains("(4, 1, 5, 5)"),
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(init::sobel_y(tg::zeros({1, 1, 3, 3, 1}, tg::kFloat64)), doctest::Contains("sobel_y"),
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(init::laplacian(tg::zeros({3, 3})), doctest::Contains("laplacian"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(init::laplacian(tg::zeros({3, 3})), doctest::Contains("(3, 3)"), tg::ShapeError);
  CHECK_THROWS_AS(init::laplacian(tg::zeros({1, 1, 3, 4})), tg::ShapeError);
}

// ---- errors ------------------------------------------------------------------------

TEST_CASE("every initializer rejects an undefined tensor, naming itself") {
  for (const NamedInit& ini : all_inits()) {
    CAPTURE(ini.name);
    tg::Generator gen(1);
    CHECK_THROWS_WITH_AS(ini.fn(Tensor(), gen), doctest::Contains((std::string("init::") + ini.name + ":").c_str()),
                         tg::ValueError);
    CHECK_THROWS_WITH_AS(ini.fn(Tensor(), gen), doctest::Contains("undefined"), tg::ValueError);
  }
}

TEST_CASE("the fan-based initializers need 2 dimensions, and say which and why") {
  const std::vector<NamedInit> needing_fans = {
      {"glorot_uniform", [](Tensor t, tg::Generator& g) { return init::glorot_uniform(t, g); }},
      {"glorot_normal", [](Tensor t, tg::Generator& g) { return init::glorot_normal(t, g); }},
      {"he_uniform", [](Tensor t, tg::Generator& g) { return init::he_uniform(t, g); }},
      {"he_normal", [](Tensor t, tg::Generator& g) { return init::he_normal(t, g); }},
      {"lecun_uniform", [](Tensor t, tg::Generator& g) { return init::lecun_uniform(t, g); }},
      {"lecun_normal", [](Tensor t, tg::Generator& g) { return init::lecun_normal(t, g); }},
      {"orthogonal", [](Tensor t, tg::Generator& g) { return init::orthogonal(t, g); }},
  };
  for (const NamedInit& ini : needing_fans) {
    CAPTURE(ini.name);
    tg::Generator gen(1);
    Tensor t = tg::full({5}, 7.0, tg::kFloat64);
    CHECK_THROWS_WITH_AS(ini.fn(t, gen), doctest::Contains((std::string("init::") + ini.name + ":").c_str()), tg::ShapeError);
    CHECK_THROWS_WITH_AS(ini.fn(t, gen), doctest::Contains("(5,)"), tg::ShapeError);
    CHECK_THROWS_WITH_AS(ini.fn(tg::zeros({}, tg::kFloat64), gen), doctest::Contains("()"), tg::ShapeError);
    CHECK(t.to_xarray<double>() == xt::xarray<double>{7, 7, 7, 7, 7});  // untouched
    // No elements: nothing to fill, no error.
    CHECK_NOTHROW(ini.fn(tg::zeros({0, 5}, tg::kFloat64), gen));
    CHECK_NOTHROW(ini.fn(tg::zeros({4, 0, 3, 3}, tg::kFloat64), gen));
  }
}

TEST_CASE("bad distribution parameters are ValueErrors naming the initializer, the value and the shape") {
  tg::Generator gen(1);
  Tensor t = tg::zeros({3, 4}, tg::kFloat64);
  for (double bad : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(init::random_normal(t, gen, 0.0, bad), doctest::Contains("init::random_normal: stddev"),
                         tg::ValueError);
    CHECK_THROWS_WITH_AS(init::random_normal(t, gen, 0.0, bad), doctest::Contains("(3, 4)"), tg::ValueError);
    CHECK_THROWS_WITH_AS(init::truncated_normal(t, gen, 0.0, bad), doctest::Contains("init::truncated_normal: stddev"),
                         tg::ValueError);
    CHECK_THROWS_WITH_AS(init::truncated_normal(t, gen, 0.0, bad), doctest::Contains("(3, 4)"), tg::ValueError);
  }
  CHECK_THROWS_WITH_AS(init::random_normal(t, gen, std::nan(""), 1.0), doctest::Contains("mean"), tg::ValueError);
  CHECK_THROWS_WITH_AS(init::random_uniform(t, gen, 1.0, 1.0), doctest::Contains("init::random_uniform: low"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(init::random_uniform(t, gen, 2.0, 1.0), doctest::Contains("low=2, high=1"), tg::ValueError);
  CHECK_THROWS_WITH_AS(init::random_uniform(t, gen, 2.0, 1.0), doctest::Contains("(3, 4)"), tg::ValueError);
  CHECK_THROWS_AS(init::random_uniform(t, gen, -std::numeric_limits<double>::infinity(), 1.0), tg::ValueError);
  CHECK_THROWS_WITH_AS(init::torch_default(t, 0, gen), doctest::Contains("init::torch_default: fan_in"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(init::torch_default(t, 0, gen), doctest::Contains("(3, 4)"), tg::ValueError);
  CHECK_THROWS_WITH_AS(init::orthogonal(t, gen, std::nan("")), doctest::Contains("gain"), tg::ValueError);
  CHECK(t.to_xarray<double>() == xt::zeros<double>({3, 4}));  // a failed call changes nothing
  // Every one is a tg::Error.
  CHECK_THROWS_AS(init::random_uniform(t, gen, 1.0, 0.0), tg::Error);
  CHECK_THROWS_AS(init::identity(Tensor()), tg::Error);
  CHECK_THROWS_AS(init::sobel_x(t), tg::Error);
}

TEST_CASE("integer tensors are refused with a DtypeError naming the initializer and the dtype") {
  tg::Generator gen(1);
  for (const NamedInit& ini : all_inits()) {
    CAPTURE(ini.name);
    Tensor t = tg::full({3, 3, 3, 3}, 5.0, tg::kInt64);
    CHECK_THROWS_WITH_AS(ini.fn(t, gen), doctest::Contains((std::string("init::") + ini.name + ":").c_str()),
                         tg::DtypeError);
    CHECK_THROWS_WITH_AS(ini.fn(t, gen), doctest::Contains("int64"), tg::DtypeError);
    const auto values = t.value<std::int64_t>();
    CHECK(std::all_of(values.begin(), values.end(), [](std::int64_t v) { return v == 5; }));  // untouched
  }
}
