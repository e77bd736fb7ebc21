// The checker itself: it must pass right gradients and catch wrong ones,
// including the wrong ones that a naive checker lets through.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <xtensor/xadapt.hpp>

#include <tapegrad/tapegrad.hpp>

using tg::DTensor;
using Inputs = std::vector<DTensor>;

namespace {

// y = x², with a backward rule supplied by the test.
DTensor square_with_rule(const DTensor& x, tg::BackwardRule<double> rule) {
  return tg::record("test_square", {x}, xt::xarray<double>(x.value() * x.value())).save({x}).backward(std::move(rule));
}

DTensor input(std::initializer_list<double> values) {
  return DTensor(xt::xarray<double>(xt::adapt(std::vector<double>(values), {values.size()})), true);
}

}  // namespace

TEST_CASE("a correct custom op passes gradcheck and gradgradcheck") {
  auto f = [](const Inputs& in) {
    return square_with_rule(in[0], [](const tg::GradContext<double>& c) {
      return tg::Grads<double>{c.grad * 2.0 * c.saved[0]};
    });
  };
  const DTensor x = input({0.3, -1.2, 2.0});
  const auto first = tg::gradcheck(f, {x});
  CHECK(first.passed);
  CHECK(first.checked == 3);
  CHECK(static_cast<bool>(first));
  CHECK(tg::gradgradcheck(f, {x}).passed);
}

TEST_CASE("a wrong rule fails and the report names the worst element") {
  // Correct except at element 2, where the rule doubles the gradient.
  auto f = [](const Inputs& in) {
    return square_with_rule(in[1], [](const tg::GradContext<double>& c) {
      xt::xarray<double> scale{1.0, 1.0, 2.0, 1.0};
      return tg::Grads<double>{c.grad * 2.0 * c.saved[0] * DTensor(scale)};
    }) + in[0];
  };
  const DTensor a = input({1.0, 1.0, 1.0, 1.0});
  const DTensor x = input({0.5, 1.0, 1.5, 2.0});
  const auto report = tg::gradcheck(f, {a, x});
  CHECK_FALSE(report.passed);
  CHECK(report.input == 1);
  CHECK(report.flat_index == 2);
  CHECK(report.analytic == doctest::Approx(2.0 * report.numeric));
  CHECK(report.message.find("input 1, element 2") != std::string::npos);
}

TEST_CASE("a gradient that is wrongly zero fails") {
  auto f = [](const Inputs& in) {
    return square_with_rule(in[0], [](const tg::GradContext<double>& c) {
      return tg::Grads<double>{tg::zeros<double>(c.input_shape(0))};
    });
  };
  const auto report = tg::gradcheck(f, {input({1.0, 2.0})});
  CHECK_FALSE(report.passed);
  CHECK(report.analytic == 0.0);
}

TEST_CASE("all-zero gradients fail unless the caller expects them") {
  auto f = [](const Inputs& in) { return in[0] - in[0]; };
  const DTensor x = input({1.0, 2.0, 3.0});
  const auto strict = tg::gradcheck(f, {x});
  CHECK_FALSE(strict.passed);
  CHECK(strict.message.find("zero") != std::string::npos);
  tg::GradcheckOptions options;
  options.allow_zero_gradient = true;
  CHECK(tg::gradcheck(f, {x}, options).passed);
}

TEST_CASE("a non-scalar output is projected on a random direction, not summed") {
  // The rule reverses the gradient. Seeded with ones (a plain sum), the
  // reversed gradient is still all ones and the error would go unseen.
  auto reversed_identity = [](const Inputs& in) {
    return tg::record("reversed", {in[0]}, xt::xarray<double>(in[0].value())).backward([](const tg::GradContext<double>& c) {
      xt::xarray<double> g = c.grad.value();
      std::reverse(g.begin(), g.end());
      return tg::Grads<double>{DTensor(g)};
    });
  };
  const DTensor x = input({1.0, 2.0, 3.0});
  CHECK_FALSE(tg::gradcheck(reversed_identity, {x}).passed);
  // The same op under a plain sum cannot tell.
  CHECK(tg::gradcheck([&](const Inputs& in) { return tg::sum(reversed_identity(in)); }, {x}).passed);
}

TEST_CASE("gradgradcheck catches a rule that is right once but not differentiable") {
  // d(x²)/dx computed from raw values: right value, but a constant to the
  // tape, so the second derivative comes out zero instead of 2.
  auto f = [](const Inputs& in) {
    return square_with_rule(in[0], [](const tg::GradContext<double>& c) {
      return tg::Grads<double>{c.grad * DTensor(xt::xarray<double>(2.0 * c.saved[0].value()))};
    });
  };
  const DTensor x = input({0.5, -1.0});
  CHECK(tg::gradcheck(f, {x}).passed);
  CHECK_FALSE(tg::gradgradcheck(f, {x}).passed);
}

TEST_CASE("inputs are restored and constants are not checked") {
  const DTensor x = input({0.1, 0.2});
  const DTensor c(xt::xarray<double>{3.0, 4.0});  // does not require grad
  const auto report = tg::gradcheck([](const Inputs& in) { return tg::sum(in[0] * in[1]); }, {x, c});
  CHECK(report.passed);
  CHECK(report.checked == 2);
  CHECK(x.value() == xt::xarray<double>{0.1, 0.2});
  CHECK(c.value() == xt::xarray<double>{3.0, 4.0});
}

TEST_CASE("an input is restored even when the function throws on a perturbed value") {
  const DTensor x = input({0.25, 0.5});
  int calls = 0;
  auto f = [&](const Inputs& in) {
    if (++calls > 1) throw std::runtime_error("refused");  // the first perturbed call
    return tg::sum(in[0] * in[0]);
  };
  CHECK_THROWS_WITH_AS(tg::gradcheck(f, {x}), "refused", std::runtime_error);
  CHECK(x.value() == xt::xarray<double>{0.25, 0.5});
}

TEST_CASE("tolerances are honoured") {
  // A rule off by 1e-4 relative passes with rtol 1e-3 and fails with 1e-6.
  auto f = [](const Inputs& in) {
    return square_with_rule(in[0], [](const tg::GradContext<double>& c) {
      return tg::Grads<double>{c.grad * (2.0 * (1 + 1e-4)) * c.saved[0]};
    });
  };
  const DTensor x = input({1.0, 2.0});
  CHECK(tg::gradcheck(f, {x}, 1e-6, 0.0, 1e-3).passed);
  CHECK_FALSE(tg::gradcheck(f, {x}, 1e-6, 0.0, 1e-6).passed);
}
