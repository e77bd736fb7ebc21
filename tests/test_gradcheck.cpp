// The checker itself: it must pass right gradients and catch wrong ones,
// including the wrong ones that a naive checker lets through.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>

#include <tapegrad/core/autograd.hpp>
#include <tapegrad/core/gradcheck.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/reduce.hpp>
#include <tapegrad/ops/shape.hpp>

using Inputs = std::vector<tg::Tensor>;

namespace {

// y = x², with a backward rule supplied by the test.
tg::Tensor square_with_rule(const tg::Tensor& x, tg::BackwardRule rule) {
  const xt::xarray<double> value = x.value<double>() * x.value<double>();
  return tg::record("test_square", {x}, tg::Tensor(value)).save({x}).backward(std::move(rule));
}

// A 1-d float64 leaf that requires grad.
tg::Tensor input(std::initializer_list<double> values) {
  return tg::Tensor(xt::xarray<double>(xt::adapt(std::vector<double>(values), {values.size()})), true);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a correct custom op passes gradcheck and gradgradcheck") {
  auto f = [](const Inputs& in) {
    return square_with_rule(in[0], [](const tg::GradContext& c) {
      return tg::Grads{c.grad * 2.0 * c.saved[0]};
    });
  };
  const tg::Tensor x = input({0.3, -1.2, 2.0});
  const auto first = tg::gradcheck(f, {x});
  CHECK(first.passed);
  CHECK(first.checked == 3);
  CHECK(static_cast<bool>(first));
  CHECK(tg::gradgradcheck(f, {x}).passed);
}

TEST_CASE("a wrong rule fails and the report names the worst element") {
  // Correct except at element 2, where the rule doubles the gradient.
  auto f = [](const Inputs& in) {
    return square_with_rule(in[1], [](const tg::GradContext& c) {
      xt::xarray<double> scale{1.0, 1.0, 2.0, 1.0};
      return tg::Grads{c.grad * 2.0 * c.saved[0] * tg::Tensor(scale)};
    }) + in[0];
  };
  const tg::Tensor a = input({1.0, 1.0, 1.0, 1.0});
  const tg::Tensor x = input({0.5, 1.0, 1.5, 2.0});
  const auto report = tg::gradcheck(f, {a, x});
  CHECK_FALSE(report.passed);
  CHECK(report.input == 1);
  CHECK(report.flat_index == 2);
  CHECK(report.analytic == doctest::Approx(2.0 * report.numeric));
  CHECK(report.message.find("input 1, element 2") != std::string::npos);
}

TEST_CASE("a gradient that is wrongly zero fails") {
  auto f = [](const Inputs& in) {
    return square_with_rule(in[0], [](const tg::GradContext& c) {
      return tg::Grads{tg::zeros(c.input_shape(0), tg::kFloat64)};
    });
  };
  const auto report = tg::gradcheck(f, {input({1.0, 2.0})});
  CHECK_FALSE(report.passed);
  CHECK(report.analytic == 0.0);
}

TEST_CASE("all-zero gradients fail unless the caller expects them") {
  auto f = [](const Inputs& in) { return in[0] - in[0]; };
  const tg::Tensor x = input({1.0, 2.0, 3.0});
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
    return tg::record("reversed", {in[0]}, in[0].detach().clone()).backward([](const tg::GradContext& c) {
      xt::xarray<double> g = c.grad.to_xarray<double>();
      std::reverse(g.begin(), g.end());
      return tg::Grads{tg::Tensor(g)};
    });
  };
  const tg::Tensor x = input({1.0, 2.0, 3.0});
  CHECK_FALSE(tg::gradcheck(reversed_identity, {x}).passed);
  // The same op under a plain sum cannot tell.
  CHECK(tg::gradcheck([&](const Inputs& in) { return tg::sum(reversed_identity(in)); }, {x}).passed);
}

TEST_CASE("gradgradcheck catches a rule that is right once but not differentiable") {
  // d(x²)/dx computed from raw values: right value, but a constant to the
  // tape, so the second derivative comes out zero instead of 2.
  auto f = [](const Inputs& in) {
    return square_with_rule(in[0], [](const tg::GradContext& c) {
      const xt::xarray<double> twice = 2.0 * c.saved[0].value<double>();
      return tg::Grads{c.grad * tg::Tensor(twice)};
    });
  };
  const tg::Tensor x = input({0.5, -1.0});
  CHECK(tg::gradcheck(f, {x}).passed);
  CHECK_FALSE(tg::gradgradcheck(f, {x}).passed);
}

TEST_CASE("inputs are restored and constants are not checked") {
  const tg::Tensor x = input({0.1, 0.2});
  const tg::Tensor c(xt::xarray<double>{3.0, 4.0});  // does not require grad
  const auto report = tg::gradcheck([](const Inputs& in) { return tg::sum(in[0] * in[1]); }, {x, c});
  CHECK(report.passed);
  CHECK(report.checked == 2);
  CHECK(x.to_xarray<double>() == xt::xarray<double>{0.1, 0.2});
  CHECK(c.to_xarray<double>() == xt::xarray<double>{3.0, 4.0});
}

TEST_CASE("an input is restored even when the function throws on a perturbed value") {
  const tg::Tensor x = input({0.25, 0.5});
  int calls = 0;
  auto f = [&](const Inputs& in) {
    if (++calls > 1) throw std::runtime_error("refused");  // the first perturbed call
    return tg::sum(in[0] * in[0]);
  };
  CHECK_THROWS_WITH_AS(tg::gradcheck(f, {x}), "refused", std::runtime_error);
  CHECK(x.to_xarray<double>() == xt::xarray<double>{0.25, 0.5});
}

TEST_CASE("tolerances are honoured") {
  // A rule off by 1e-4 relative passes with rtol 1e-3 and fails with 1e-6.
  auto f = [](const Inputs& in) {
    return square_with_rule(in[0], [](const tg::GradContext& c) {
      return tg::Grads{c.grad * (2.0 * (1 + 1e-4)) * c.saved[0]};
    });
  };
  const tg::Tensor x = input({1.0, 2.0});
  CHECK(tg::gradcheck(f, {x}, 1e-6, 0.0, 1e-3).passed);
  CHECK_FALSE(tg::gradcheck(f, {x}, 1e-6, 0.0, 1e-6).passed);
}

// ============================================================================
// NaN gradients, tiny gradients, multi-indices, dtypes
// ============================================================================

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// x² with the rule 2x·mask: mask holds 1 where the rule is right and NaN
// where it returns NaN.
tg::Tensor square_times_mask(const tg::Tensor& x, const tg::Tensor& mask) {
  return square_with_rule(x, [mask](const tg::GradContext& c) {
    return tg::Grads{c.grad * 2.0 * c.saved[0] * mask};
  });
}

// 2·g·x as a custom op whose own rule is right for g but multiplies x's
// gradient by mask: a first derivative that is right, with a second
// derivative that is NaN where mask is.
tg::Tensor twice_product(const tg::Tensor& g, const tg::Tensor& x, const tg::Tensor& mask) {
  const xt::xarray<double> value = 2.0 * g.value<double>() * x.value<double>();
  return tg::record("twice_product", {g, x}, tg::Tensor(value))
      .save({g, x})
      .backward([mask](const tg::GradContext& c) {
        return tg::Grads{c.grad * 2.0 * c.saved[1], c.grad * 2.0 * c.saved[0] * mask};
      });
}

tg::Tensor square_with_masked_second_derivative(const tg::Tensor& x, const tg::Tensor& mask) {
  return square_with_rule(x, [mask](const tg::GradContext& c) {
    return tg::Grads{twice_product(c.grad, c.saved[0], mask)};
  });
}

}  // namespace

TEST_CASE("gradcheck fails on a NaN analytic gradient in one element and names that element") {
  const tg::Tensor mask = tg::tensor({1.0, kNaN, 1.0}, tg::kFloat64);
  auto f = [&](const Inputs& in) { return square_times_mask(in[0], mask); };
  const auto report = tg::gradcheck(f, {input({0.5, -1.0, 2.0})});
  INFO(report.message);
  CHECK_FALSE(report.passed);
  CHECK(report.input == 0);
  CHECK(report.flat_index == 1);
  CHECK(report.index == tg::Shape{1});
  CHECK(std::isnan(report.analytic));
  CHECK(std::isfinite(report.numeric));
  CHECK(contains(report.message, "input 0, element 1"));
  CHECK(contains(report.message, "not finite"));

  // A NaN beats a larger finite error elsewhere: element 0 is doubled, element 2 is NaN.
  const tg::Tensor mixed = tg::tensor({2.0, 1.0, kNaN}, tg::kFloat64);
  const auto worst = tg::gradcheck([&](const Inputs& in) { return square_times_mask(in[0], mixed); },
                                   {input({0.5, -1.0, 2.0})});
  CHECK_FALSE(worst.passed);
  CHECK(worst.flat_index == 2);
  CHECK(contains(worst.message, "element 2"));
}

TEST_CASE("gradcheck fails when every analytic gradient is NaN, and does not call it zero") {
  const tg::Tensor mask = tg::tensor({kNaN, kNaN, kNaN}, tg::kFloat64);
  auto f = [&](const Inputs& in) { return square_times_mask(in[0], mask); };
  const auto report = tg::gradcheck(f, {input({0.5, -1.0, 2.0})});
  INFO(report.message);
  CHECK_FALSE(report.passed);
  CHECK(report.flat_index == 0);  // the first of them
  CHECK(std::isnan(report.analytic));
  CHECK(contains(report.message, "element 0"));
  CHECK(contains(report.message, "not finite"));
  CHECK_FALSE(contains(report.message, "every analytic gradient is zero"));
  // Even when the caller allows all-zero gradients.
  tg::GradcheckOptions options;
  options.allow_zero_gradient = true;
  CHECK_FALSE(tg::gradcheck(f, {input({0.5, -1.0, 2.0})}, options).passed);
}

TEST_CASE("gradgradcheck fails on a NaN second derivative in one element and names it") {
  const tg::Tensor mask = tg::tensor({1.0, 1.0, kNaN, 1.0}, tg::kFloat64);
  auto f = [&](const Inputs& in) { return square_with_masked_second_derivative(in[0], mask); };
  const tg::Tensor x = input({0.5, -1.0, 2.0, 1.5});
  const auto first = tg::gradcheck(f, {x});  // the first derivative is right
  CHECK_MESSAGE(first.passed, first.message);
  const auto report = tg::gradgradcheck(f, {x});
  INFO(report.message);
  CHECK_FALSE(report.passed);
  CHECK(report.input == 0);  // x; the output direction v is input 1
  CHECK(report.flat_index == 2);
  CHECK(std::isnan(report.analytic));
  CHECK(contains(report.message, "gradgradcheck failed"));
  CHECK(contains(report.message, "input 0, element 2"));
  CHECK(contains(report.message, "not finite"));

  // The same op with a right second derivative passes: the NaN is what failed.
  const tg::Tensor ones = tg::ones({4}, tg::kFloat64);
  const auto right = tg::gradgradcheck([&](const Inputs& in) { return square_with_masked_second_derivative(in[0], ones); }, {x});
  CHECK_MESSAGE(right.passed, right.message);
}

TEST_CASE("gradgradcheck fails when the gradient is NaN everywhere") {
  const tg::Tensor all_nan = tg::tensor({kNaN, kNaN}, tg::kFloat64);
  const auto first_nan =
      tg::gradgradcheck([&](const Inputs& in) { return square_times_mask(in[0], all_nan); }, {input({0.5, 2.0})});
  INFO(first_nan.message);
  CHECK_FALSE(first_nan.passed);
  CHECK(contains(first_nan.message, "not finite"));
  CHECK_FALSE(contains(first_nan.message, "every analytic gradient is zero"));

  const auto second_nan = tg::gradgradcheck(
      [&](const Inputs& in) { return square_with_masked_second_derivative(in[0], all_nan); }, {input({0.5, 2.0})});
  INFO(second_nan.message);
  CHECK_FALSE(second_nan.passed);
  CHECK(second_nan.input == 0);
  CHECK(second_nan.flat_index == 0);
  CHECK(std::isnan(second_nan.analytic));
  CHECK(contains(second_nan.message, "not finite"));
}

TEST_CASE("a tiny but nonzero correct gradient is not reported as all zero") {
  // d/dx Σ 1e-7·x = 1e-7 everywhere: far below atol, yet not zero.
  auto f = [](const Inputs& in) { return tg::sum(in[0] * 1e-7); };
  const auto report = tg::gradcheck(f, {input({1.0, -2.0, 3.0})});
  CHECK_MESSAGE(report.passed, report.message);
  CHECK(report.checked == 3);
  CHECK_FALSE(contains(report.message, "zero"));
  const auto second = tg::gradcheck([](const Inputs& in) { return in[0] * 1e-7; }, {input({1.0, -2.0, 3.0})});
  CHECK_MESSAGE(second.passed, second.message);
}

TEST_CASE("a failure message names the worst element's multi-index") {
  // A (2, 3) input whose rule triples the gradient at (1, 2) only: flat index 5.
  auto f = [](const Inputs& in) {
    return square_with_rule(in[0], [](const tg::GradContext& c) {
      const tg::Tensor scale = tg::tensor({{1, 1, 1}, {1, 1, 3}}, tg::kFloat64);
      return tg::Grads{c.grad * 2.0 * c.saved[0] * scale};
    });
  };
  const tg::Tensor x = tg::tensor({{0.5, 1.0, 1.5}, {-0.5, 2.0, 1.25}}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  const auto report = tg::gradcheck(f, {x});
  INFO(report.message);
  CHECK_FALSE(report.passed);
  CHECK(report.input == 0);
  CHECK(report.flat_index == 5);
  CHECK(report.index == tg::Shape{1, 2});
  CHECK(contains(report.message, "element 5 (index (1, 2))"));
  CHECK(report.analytic == doctest::Approx(3.0 * report.numeric));
}

TEST_CASE("a float32 input or output gives a clear DtypeError") {
  auto f = [](const Inputs& in) { return tg::sum(in[0] * in[0]); };
  const tg::Tensor x32 = tg::tensor({1.0, 2.0}, tg::requires_grad());
  CHECK_THROWS_AS(tg::gradcheck(f, {x32}), tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::gradcheck(f, {x32}), doctest::Contains("gradcheck: input 0 is a float32"),
                       tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::gradcheck(f, {x32}), doctest::Contains("float64"), tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::gradgradcheck(f, {x32}), doctest::Contains("gradgradcheck: input 0 is a float32"),
                       tg::DtypeError);
  // The message's own advice works.
  CHECK(tg::gradcheck(f, {x32.detach().to(tg::kFloat64).requires_grad_()}).passed);

  // A float64 input through a float32 computation: the output is refused.
  auto narrowing = [](const Inputs& in) { return tg::sum(in[0].to(tg::kFloat32)); };
  CHECK_THROWS_WITH_AS(tg::gradcheck(narrowing, {input({1.0, 2.0})}),
                       doctest::Contains("gradcheck: output 0 is float32"), tg::DtypeError);
}
