// Activation functions and modules against their formulas evaluated here
// with <cmath>: GELU (exact and tanh), SiLU, Softplus (beta, threshold), ELU,
// Softmax and LogSoftmax; finite gradients where an exponential could overflow.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include <tapegrad/tapegrad.hpp>

using tg::Shape;
using tg::Tensor;
namespace nn = tg::nn;

namespace {

const std::vector<double> kPoints{-30.0, -3.0, -1.0, -0.25, 0.0, 0.5, 1.0, 2.5, 19.0, 21.0, 45.0};

Tensor points() {
  Tensor x = tg::zeros({kPoints.size()}, tg::kFloat64);
  for (std::size_t i = 0; i < kPoints.size(); ++i) x.mutable_data<double>()[i] = kPoints[i];
  return x.requires_grad_();
}

// f's values at kPoints against want(x), and its gradient against dwant(x).
template <class F, class W, class D>
void check_function(const char* name, F f, W want, D dwant) {
  CAPTURE(name);
  const Tensor x = points();
  const Tensor y = f(x);
  tg::sum(y).backward();
  const auto yv = y.to_xarray<double>();
  const auto gv = x.grad().to_xarray<double>();
  for (std::size_t i = 0; i < kPoints.size(); ++i) {
    CAPTURE(kPoints[i]);
    CHECK(yv(i) == doctest::Approx(want(kPoints[i])).epsilon(1e-12));
    CHECK(gv(i) == doctest::Approx(dwant(kPoints[i])).epsilon(1e-9));
  }
}

double phi(double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); }
double normal_pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }
double logistic(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace

TEST_CASE("gelu, silu, softplus and elu match their formulas and derivatives") {
  check_function("gelu", [](const Tensor& x) { return tg::gelu(x); }, [](double x) { return x * phi(x); },
                 [](double x) { return phi(x) + x * normal_pdf(x); });
  check_function(
      "gelu tanh", [](const Tensor& x) { return tg::gelu(x, tg::GeluApproximate::Tanh); },
      [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); },
      [](double x) {
        const double k = std::sqrt(2 / M_PI), t = std::tanh(k * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
      });
  check_function("silu", [](const Tensor& x) { return tg::silu(x); }, [](double x) { return x * logistic(x); },
                 [](double x) { return logistic(x) * (1 + x * (1 - logistic(x))); });
  // torch: x where beta·x > threshold, else log(1 + e^(beta·x)) / beta
  check_function("softplus", [](const Tensor& x) { return tg::softplus(x); },
                 [](double x) { return x > 20 ? x : std::log1p(std::exp(x)); },
                 [](double x) { return x > 20 ? 1.0 : logistic(x); });
  check_function("softplus beta=2 threshold=5", [](const Tensor& x) { return tg::softplus(x, 2.0, 5.0); },
                 [](double x) { return 2 * x > 5 ? x : std::log1p(std::exp(2 * x)) / 2; },
                 [](double x) { return 2 * x > 5 ? 1.0 : logistic(2 * x); });
  check_function("elu alpha=0.5", [](const Tensor& x) { return tg::elu(x, 0.5); },
                 [](double x) { return x > 0 ? x : 0.5 * std::expm1(x); },
                 [](double x) { return x > 0 ? 1.0 : 0.5 * std::exp(x); });
}

TEST_CASE("no NaN where an exponential would overflow, in value or gradient") {
  using Fn = Tensor (*)(const Tensor&);
  const std::vector<Fn> fns{[](const Tensor& v) { return tg::softplus(v); }, [](const Tensor& v) { return tg::elu(v); },
                            [](const Tensor& v) { return tg::silu(v); }, [](const Tensor& v) { return tg::gelu(v); },
                            [](const Tensor& v) { return tg::softplus(v, 0.5, 1e9); }};
  for (Fn f : fns) {
    const Tensor x = tg::tensor({-1000.0, 1000.0}, tg::kFloat64).requires_grad_();
    const Tensor y = f(x);
    tg::sum(y).backward();
    const auto v = y.to_xarray<double>();
    const auto g = x.grad().to_xarray<double>();
    CHECK(std::isfinite(v(0)));
    CHECK(std::isfinite(g(0)));
    CHECK(std::isfinite(g(1)));
  }
  CHECK(tg::softplus(tg::tensor({1000.0}, tg::kFloat64)).to_xarray<double>()(0) == 1000.0);
}

TEST_CASE("activation modules call their functions with their settings") {
  const Tensor x = tg::randn({3, 4});
  auto same = [](const Tensor& a, const Tensor& b) { return a.to_xarray<float>() == b.to_xarray<float>(); };
  CHECK(same(nn::GELU()(x), tg::gelu(x)));
  CHECK(same(nn::GELU(tg::GeluApproximate::Tanh)(x), tg::gelu(x, tg::GeluApproximate::Tanh)));
  CHECK(same(nn::SiLU()(x), tg::silu(x)));
  CHECK(same(nn::Softplus(nn::SoftplusOptions().beta(2).threshold(3))(x), tg::softplus(x, 2, 3)));
  CHECK(same(nn::ELU(nn::ELUOptions().alpha(0.3))(x), tg::elu(x, 0.3)));
  CHECK(same(nn::Softmax(1)(x), tg::softmax(x, 1)));
  CHECK(same(nn::LogSoftmax(0)(x), tg::log_softmax(x, 0)));
  const auto rows = tg::sum(nn::Softmax(1)(x), {1}).to_xarray<float>();
  for (float r : rows) CHECK(r == doctest::Approx(1.0f));
  std::ostringstream os;
  os << *nn::Sequential(nn::GELU(tg::GeluApproximate::Tanh), nn::ELU(), nn::LogSoftmax(1));
  CHECK(os.str().find("GELU(approximate=tanh)") != std::string::npos);
  CHECK(os.str().find("LogSoftmax(dim=1)") != std::string::npos);
  CHECK_THROWS_AS(nn::Softmax(2)(x), tg::AxisError);
  CHECK_THROWS_WITH_AS(tg::gelu(tg::tensor({1, 2}, tg::kInt64)), "gelu: expected a float32 or float64 input, got int64",
                       tg::DtypeError);
  CHECK_THROWS_AS(tg::softplus(x, 0.0), tg::ValueError);
}
