// Every op: gradients by finite differences (first and second order) over a
// table of cases on random shapes, then values against independent loops.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include <xtensor/xview.hpp>

#include <tapegrad/tapegrad.hpp>

using tg::DTensor;
using tg::Shape;
using Inputs = std::vector<DTensor>;

namespace {

// ---- random shapes and values ------------------------------------------------

Shape random_shape(tg::Generator& gen, std::size_t min_dims, std::size_t max_dims, std::size_t max_size = 4) {
  Shape s(min_dims + gen.below(max_dims - min_dims + 1));
  for (auto& d : s) d = 1 + gen.below(max_size);
  return s;
}

// A shape that broadcasts against `s`: some leading axes dropped, some set to 1.
Shape broadcastable_to(const Shape& s, tg::Generator& gen) {
  Shape t(s.begin() + std::ptrdiff_t(gen.below(s.size() + 1)), s.end());
  for (auto& d : t)
    if (gen.below(3) == 0) d = 1;
  return t;
}

// How a case's inputs are drawn.
enum class Domain {
  any,          // uniform in [-1, 1]
  positive,     // uniform in [0.5, 2]
  away_from_0,  // |x| in [0.1, 1]: no kink of relu/abs inside a difference step;
                // even elements in [0.1, 0.4], so relu and clamp pass some gradient
};

DTensor random_input(const Shape& shape, Domain domain, tg::Generator& gen) {
  xt::xarray<double> v(shape);
  for (std::size_t i = 0; i < v.size(); ++i) {
    double& e = v.data()[i];
    switch (domain) {
      case Domain::any: e = gen.uniform(-1, 1); break;
      case Domain::positive: e = gen.uniform(0.5, 2); break;
      case Domain::away_from_0: e = i % 2 ? (gen.below(2) ? 1 : -1) * gen.uniform(0.1, 1) : gen.uniform(0.1, 0.4); break;
    }
  }
  return DTensor(std::move(v), true);
}

// ---- the table of op cases ----------------------------------------------------

struct OpCase {
  std::string name;
  std::function<std::vector<Shape>(tg::Generator&)> shapes;
  std::function<DTensor(const Inputs&)> f;
  Domain domain = Domain::any;
};

std::vector<Shape> one(tg::Generator& g) { return {random_shape(g, 0, 3)}; }
std::vector<Shape> one_nonscalar(tg::Generator& g) { return {random_shape(g, 1, 3)}; }
std::vector<Shape> broadcast_pair(tg::Generator& g) {
  Shape a = random_shape(g, 1, 3);
  Shape b = broadcastable_to(a, g);
  if (g.below(2)) std::swap(a, b);
  return {a, b};
}
// At least two elements along the last axis, so softmax is not constant.
std::vector<Shape> rows(tg::Generator& g) {
  Shape s = random_shape(g, 1, 3);
  s.back() = 2 + g.below(3);
  return {s};
}
std::vector<Shape> same_pair(tg::Generator& g) {
  Shape a = random_shape(g, 1, 3);
  return {a, a};
}
// A random nonempty set of distinct axes of an n-d shape, some negative.
tg::Axes random_axes(std::size_t n, tg::Generator& g) {
  tg::Axes axes;
  for (std::size_t i = 0; i < n; ++i)
    if (g.below(2)) axes.push_back(g.below(2) ? std::ptrdiff_t(i) : std::ptrdiff_t(i) - std::ptrdiff_t(n));
  if (axes.empty()) axes.push_back(std::ptrdiff_t(g.below(n)));
  return axes;
}

// Cases whose function depends on a random choice (axes, permutation) draw it
// from their own generator, so the function is the same on every call.
std::vector<OpCase> op_cases() {
  auto axes_case = [](std::string name, std::function<DTensor(const DTensor&, const tg::Axes&, bool)> op) {
    return std::vector<OpCase>{
        {name + " over axes", [](tg::Generator& g) { return std::vector<Shape>{random_shape(g, 1, 3)}; },
         [op](const Inputs& in) {
           tg::Generator g(in[0].numel());
           return op(in[0], random_axes(in[0].dim(), g), false);
         }},
        {name + " over axes, keepdims", [](tg::Generator& g) { return std::vector<Shape>{random_shape(g, 1, 3)}; },
         [op](const Inputs& in) {
           tg::Generator g(in[0].numel() + 1);
           return op(in[0], random_axes(in[0].dim(), g), true);
         }}};
  };
  std::vector<OpCase> cases = {
      // elementwise, broadcasting
      {"add", broadcast_pair, [](const Inputs& in) { return in[0] + in[1]; }},
      {"sub", broadcast_pair, [](const Inputs& in) { return in[0] - in[1]; }},
      {"mul", broadcast_pair, [](const Inputs& in) { return in[0] * in[1]; }},
      {"div", broadcast_pair, [](const Inputs& in) { return in[0] / in[1]; }, Domain::positive},
      {"pow", broadcast_pair, [](const Inputs& in) { return tg::pow(in[0], in[1]); }, Domain::positive},
      {"add scalar", one, [](const Inputs& in) { return in[0] + 2.0; }},
      {"scalar minus", one, [](const Inputs& in) { return 3.0 - in[0]; }},
      {"mul scalar", one, [](const Inputs& in) { return 2.5 * in[0]; }},
      {"scalar over", one, [](const Inputs& in) { return 1.0 / in[0]; }, Domain::positive},
      {"pow scalar", one, [](const Inputs& in) { return tg::pow(in[0], 2.5); }, Domain::positive},
      // elementwise, unary
      {"neg", one, [](const Inputs& in) { return -in[0]; }},
      {"exp", one, [](const Inputs& in) { return tg::exp(in[0]); }},
      {"log", one, [](const Inputs& in) { return tg::log(in[0]); }, Domain::positive},
      {"sqrt", one, [](const Inputs& in) { return tg::sqrt(in[0]); }, Domain::positive},
      {"abs", one, [](const Inputs& in) { return tg::abs(in[0]); }, Domain::away_from_0},
      {"tanh", one, [](const Inputs& in) { return tg::tanh(in[0]); }},
      {"sigmoid", one, [](const Inputs& in) { return tg::sigmoid(in[0]); }},
      {"relu", one, [](const Inputs& in) { return tg::relu(in[0]); }, Domain::away_from_0},
      {"leaky_relu", one, [](const Inputs& in) { return tg::leaky_relu(in[0], 0.2); }, Domain::away_from_0},
      {"clamp", one, [](const Inputs& in) { return tg::clamp(in[0], -0.55, 0.45); }, Domain::away_from_0},
      {"square", one, [](const Inputs& in) { return tg::square(in[0]); }},
      // reductions
      {"sum", one, [](const Inputs& in) { return tg::sum(in[0]); }},
      {"mean", one, [](const Inputs& in) { return tg::mean(in[0]); }},
      {"max", one_nonscalar, [](const Inputs& in) { return tg::max(in[0]); }},
      {"broadcast_to", [](tg::Generator& g) {
         Shape s = random_shape(g, 1, 3);
         return std::vector<Shape>{broadcastable_to(s, g), s};  // second shape: the target only
       },
       [](const Inputs& in) { return tg::broadcast_to(in[0], in[1].shape()); }},
      {"sum_to", [](tg::Generator& g) {
         Shape s = random_shape(g, 1, 3);
         return std::vector<Shape>{s, broadcastable_to(s, g)};
       },
       [](const Inputs& in) { return tg::sum_to(in[0], in[1].shape()); }},
      // shape
      {"reshape", one_nonscalar, [](const Inputs& in) { return tg::reshape(in[0], std::vector<std::ptrdiff_t>{-1, 1}); }},
      {"flatten", [](tg::Generator& g) { return std::vector<Shape>{random_shape(g, 2, 4)}; },
       [](const Inputs& in) { return tg::flatten(in[0], 1); }},
      {"permute", [](tg::Generator& g) { return std::vector<Shape>{random_shape(g, 3, 3)}; },
       [](const Inputs& in) { return tg::permute(in[0], {2, 0, 1}); }},
      {"transpose", [](tg::Generator& g) { return std::vector<Shape>{random_shape(g, 2, 4)}; },
       [](const Inputs& in) { return tg::transpose(in[0], 0, -1); }},
      // linear algebra
      {"matmul 2-d", [](tg::Generator& g) {
         std::size_t m = 1 + g.below(4), k = 1 + g.below(4), n = 1 + g.below(4);
         return std::vector<Shape>{{m, k}, {k, n}};
       },
       [](const Inputs& in) { return tg::matmul(in[0], in[1]); }},
      {"matmul batched, broadcast batch", [](tg::Generator& g) {
         std::size_t m = 1 + g.below(3), k = 1 + g.below(3), n = 1 + g.below(3), b = 2 + g.below(2);
         switch (g.below(3)) {
           case 0: return std::vector<Shape>{{b, m, k}, {k, n}};
           case 1: return std::vector<Shape>{{m, k}, {b, k, n}};
           default: return std::vector<Shape>{{b, 1, m, k}, {2, k, n}};
         }
       },
       [](const Inputs& in) { return tg::matmul(in[0], in[1]); }},
      {"linear", [](tg::Generator& g) {
         std::size_t in = 1 + g.below(4), out = 1 + g.below(4);
         Shape x = g.below(2) ? Shape{2, 3, in} : Shape{1 + g.below(4), in};
         return std::vector<Shape>{x, {out, in}, {out}};
       },
       [](const Inputs& in) { return tg::linear(in[0], in[1], in[2]); }},
      {"linear, 1-d input, no bias", [](tg::Generator& g) {
         std::size_t in = 1 + g.below(4), out = 1 + g.below(4);
         return std::vector<Shape>{{in}, {out, in}};
       },
       [](const Inputs& in) { return tg::linear(in[0], in[1]); }},
      // softmax and losses
      {"softmax", rows, [](const Inputs& in) { return tg::softmax(in[0], -1); }},
      {"log_softmax", rows, [](const Inputs& in) { return tg::log_softmax(in[0], -1); }},
      {"cross_entropy", [](tg::Generator& g) { return std::vector<Shape>{{1 + g.below(4), 3}}; },
       [](const Inputs& in) {
         std::vector<std::int64_t> labels;
         for (std::size_t i = 0; i < in[0].shape()[0]; ++i) labels.push_back(std::int64_t(i % 3));
         return tg::cross_entropy(in[0], labels);
       }},
      {"nll_loss", [](tg::Generator& g) { return std::vector<Shape>{{1 + g.below(4), 4}}; },
       [](const Inputs& in) { return tg::nll_loss(in[0], std::vector<std::int64_t>(in[0].shape()[0], 2)); }},
      {"mse_loss", same_pair, [](const Inputs& in) { return tg::mse_loss(in[0], in[1]); }},
  };
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      cases.push_back({std::string("gemm ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0"),
                       [ta, tb](tg::Generator& g) {
                         std::size_t m = 1 + g.below(4), k = 1 + g.below(4), n = 1 + g.below(4);
                         return std::vector<Shape>{ta ? Shape{k, m} : Shape{m, k}, tb ? Shape{n, k} : Shape{k, n}};
                       },
                       [ta, tb](const Inputs& in) { return tg::gemm(in[0], in[1], ta, tb); }});
  for (auto& c : axes_case("sum", [](const DTensor& x, const tg::Axes& a, bool k) { return tg::sum(x, a, k); }))
    cases.push_back(c);
  for (auto& c : axes_case("mean", [](const DTensor& x, const tg::Axes& a, bool k) { return tg::mean(x, a, k); }))
    cases.push_back(c);
  for (auto& c : axes_case("max", [](const DTensor& x, const tg::Axes& a, bool k) { return tg::max(x, a, k); }))
    cases.push_back(c);
  return cases;
}

constexpr int kDraws = 8;  // random shapes per case

}  // namespace

// Runs `check` (gradcheck or gradgradcheck) on every case for kDraws random shapes.
void check_every_op(const std::function<tg::GradcheckReport(const tg::DFunction&, const Inputs&)>& check,
                    std::uint64_t seed) {
  for (const auto& c : op_cases()) {
    for (int draw = 0; draw < kDraws; ++draw) {
      tg::Generator gen(seed + 1000 * std::uint64_t(draw) + c.name.size());
      Inputs inputs;
      for (const auto& s : c.shapes(gen)) inputs.push_back(random_input(s, c.domain, gen));
      CAPTURE(c.name);
      CAPTURE(draw);
      const tg::GradcheckReport report = check(c.f, inputs);
      INFO(report.message);
      CHECK(report.passed);
    }
  }
  tg::tape().clear();
}

TEST_CASE("gradcheck: every op, random shapes") {
  check_every_op([](const tg::DFunction& f, const Inputs& in) { return tg::gradcheck(f, in); }, 0);
}

TEST_CASE("gradgradcheck: every op, random shapes") {
  check_every_op([](const tg::DFunction& f, const Inputs& in) { return tg::gradgradcheck(f, in); }, 7000);
}

// ---- values against independent computations ------------------------------------

TEST_CASE("broadcasting binary ops match explicit loops") {
  tg::Generator gen(1);
  DTensor a = tg::randn<double>({2, 1, 3}, gen), b = tg::randn<double>({4, 1}, gen);
  const auto sum = (a + b).value(), product = (a * b).value(), quotient = (a / b).value();
  REQUIRE(sum.shape() == xt::xarray<double>::shape_type{2, 4, 3});
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 4; ++j)
      for (std::size_t k = 0; k < 3; ++k) {
        const double x = a.value()(i, 0, k), y = b.value()(j, 0);
        CHECK(sum(i, j, k) == doctest::Approx(x + y));
        CHECK(product(i, j, k) == doctest::Approx(x * y));
        CHECK(quotient(i, j, k) == doctest::Approx(x / y));
      }
}

TEST_CASE("broadcast gradients are summed over the broadcast axes") {
  DTensor a(xt::xarray<double>{{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}, true);  // (2, 3)
  xt::xarray<double> column{10.0, 20.0};
  column.reshape({2, 1});
  DTensor b(column, true);                                                 // (2, 1)
  DTensor c(xt::xarray<double>{1.0, 2.0, 3.0}, true);                      // (3,)
  tg::sum(a * b + c).backward();
  CHECK(a.grad().value() == xt::xarray<double>{{10, 10, 10}, {20, 20, 20}});
  CHECK(b.grad().shape() == Shape{2, 1});
  CHECK(b.grad().value()(0, 0) == 6.0);  // row sums of a
  CHECK(b.grad().value()(1, 0) == 15.0);
  CHECK(c.grad().value() == xt::xarray<double>{2.0, 2.0, 2.0});  // one per row
}

TEST_CASE("matmul matches a naive triple loop, 2-d and batched with broadcasting") {
  tg::Generator gen(2);
  auto naive = [](const xt::xarray<double>& a, const xt::xarray<double>& b, std::size_t ia, std::size_t ib) {
    const std::size_t m = a.shape()[a.dimension() - 2], k = a.shape().back(), n = b.shape().back();
    xt::xarray<double> c = xt::zeros<double>({m, n});
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j)
        for (std::size_t p = 0; p < k; ++p) c(i, j) += a.data()[ia * m * k + i * k + p] * b.data()[ib * k * n + p * n + j];
    return c;
  };
  DTensor a = tg::randn<double>({5, 7}, gen), b = tg::randn<double>({7, 3}, gen);
  CHECK(xt::allclose(tg::matmul(a, b).value(), naive(a.value(), b.value(), 0, 0)));

  // (3, 1, 4, 5) @ (2, 5, 6) -> (3, 2, 4, 6)
  DTensor p = tg::randn<double>({3, 1, 4, 5}, gen), q = tg::randn<double>({2, 5, 6}, gen);
  const auto r = tg::matmul(p, q).value();
  REQUIRE(r.shape() == xt::xarray<double>::shape_type{3, 2, 4, 6});
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 2; ++j) {
      xt::xarray<double> block = xt::view(r, i, j, xt::all(), xt::all());
      CHECK(xt::allclose(block, naive(p.value(), q.value(), i, j)));
    }
  // (4, 5) @ (3, 5, 2): a 2-d left operand broadcast over the batch
  DTensor s = tg::randn<double>({4, 5}, gen), t = tg::randn<double>({3, 5, 2}, gen);
  const auto u = tg::matmul(s, t).value();
  for (std::size_t i = 0; i < 3; ++i) {
    xt::xarray<double> block = xt::view(u, i, xt::all(), xt::all());
    CHECK(xt::allclose(block, naive(s.value(), t.value(), 0, i)));
  }
}

TEST_CASE("gemm transpose flags equal matmul of explicitly transposed operands") {
  tg::Generator gen(3);
  DTensor a = tg::randn<double>({4, 3}, gen), b = tg::randn<double>({5, 4}, gen);
  xt::xarray<double> at = xt::transpose(a.value()), bt = xt::transpose(b.value());
  CHECK(xt::allclose(tg::gemm(a, b, true, true).value(), tg::matmul(DTensor(at), DTensor(bt)).value()));
  DTensor c = tg::randn<double>({4, 5}, gen);
  CHECK(xt::allclose(tg::gemm(a, c, true, false).value(), tg::matmul(DTensor(at), c).value()));
  DTensor d = tg::randn<double>({2, 3}, gen);
  xt::xarray<double> dt = xt::transpose(d.value());
  CHECK(xt::allclose(tg::gemm(a, d, false, true).value(), tg::matmul(a, DTensor(dt)).value()));
}

TEST_CASE("linear is x·wᵀ + b") {
  DTensor x{{1.0, 2.0}};                        // (1, 2)
  DTensor w{{1.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}};  // (3, 2)
  DTensor b{0.5, -0.5, 0.0};
  CHECK(tg::linear(x, w, b).value() == xt::xarray<double>{{1.5, 1.5, 3.0}});
  CHECK(tg::linear(DTensor{1.0, 2.0}, w).value() == xt::xarray<double>{1.0, 2.0, 3.0});
}

TEST_CASE("sum, mean and max over axes match loops") {
  tg::Generator gen(4);
  DTensor x = tg::randn<double>({3, 4, 5}, gen);
  const auto& v = x.value();
  const auto s = tg::sum(x, {0, 2}).value();
  const auto m = tg::max(x, {-1}, true).value();
  const auto avg = tg::mean(x, {1}).value();
  REQUIRE(s.shape() == xt::xarray<double>::shape_type{4});
  REQUIRE(m.shape() == xt::xarray<double>::shape_type{3, 4, 1});
  REQUIRE(avg.shape() == xt::xarray<double>::shape_type{3, 5});
  for (std::size_t j = 0; j < 4; ++j) {
    double total = 0;
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t k = 0; k < 5; ++k) total += v(i, j, k);
    CHECK(s(j) == doctest::Approx(total));
  }
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 4; ++j) {
      double best = -1e300;
      for (std::size_t k = 0; k < 5; ++k) best = std::max(best, v(i, j, k));
      CHECK(m(i, j, 0) == best);
    }
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t k = 0; k < 5; ++k) {
      double total = 0;
      for (std::size_t j = 0; j < 4; ++j) total += v(i, j, k);
      CHECK(avg(i, k) == doctest::Approx(total / 4));
    }
  CHECK(tg::sum(x).dim() == 0);
  CHECK(tg::sum(x).item() == doctest::Approx(xt::sum(v)()));
}

TEST_CASE("a float sum of a million elements keeps its digits") {
  tg::Tensor x = tg::full<float>({1 << 20}, 0.1f);
  CHECK(tg::sum(x).item() == doctest::Approx(0.1 * (1 << 20)).epsilon(1e-6));
}

TEST_CASE("max splits the gradient equally between ties") {
  DTensor x(xt::xarray<double>{{1.0, 3.0, 3.0}, {2.0, 0.0, 1.0}}, true);
  tg::sum(tg::max(x, {1})).backward();
  CHECK(x.grad().value() == xt::xarray<double>{{0.0, 0.5, 0.5}, {1.0, 0.0, 0.0}});
}

TEST_CASE("max propagates NaN, and its gradient goes to the NaN element") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  DTensor x(xt::xarray<double>{{1.0, nan, 3.0}, {nan, 0.0, 1.0}, {2.0, 5.0, 1.0}}, true);
  const DTensor m = tg::max(x, {1});
  CHECK(std::isnan(m.value()(0)));
  CHECK(std::isnan(m.value()(1)));
  CHECK(m.value()(2) == 5.0);
  tg::sum(m).backward();
  CHECK(x.grad().value() == xt::xarray<double>{{0.0, 1.0, 0.0}, {1.0, 0.0, 0.0}, {0.0, 1.0, 0.0}});
  CHECK(std::isnan(tg::max(x).item()));
  // The same in a pooling window, which is a max over the window.
  DTensor img(xt::xarray<double>{{{{0.0, 1.0}, {nan, 2.0}}}}, true);
  CHECK(std::isnan(tg::max_pool2d(img, 2).item()));
}

TEST_CASE("subgradients at the kinks follow the documented choices") {
  DTensor x(xt::xarray<double>{-1.0, 0.0, 1.0}, true);
  tg::sum(tg::relu(x)).backward();
  CHECK(x.grad().value() == xt::xarray<double>{0.0, 0.0, 1.0});
  x.zero_grad();
  tg::sum(tg::abs(x)).backward();
  CHECK(x.grad().value() == xt::xarray<double>{-1.0, 0.0, 1.0});
  x.zero_grad();
  tg::sum(tg::leaky_relu(x, 0.1)).backward();
  CHECK(xt::allclose(x.grad().value(), xt::xarray<double>{0.1, 0.1, 1.0}));
  x.zero_grad();
  tg::sum(tg::clamp(x, -1.0, 0.5)).backward();  // boundaries pass the gradient
  CHECK(x.grad().value() == xt::xarray<double>{1.0, 1.0, 0.0});
}

TEST_CASE("elementwise values") {
  DTensor x{0.5, 1.0, 2.0};
  CHECK(xt::allclose(tg::exp(x).value(), xt::xarray<double>{std::exp(0.5), std::exp(1.0), std::exp(2.0)}));
  CHECK(xt::allclose(tg::log(x).value(), xt::xarray<double>{std::log(0.5), 0.0, std::log(2.0)}));
  CHECK(xt::allclose(tg::sqrt(x).value(), xt::xarray<double>{std::sqrt(0.5), 1.0, std::sqrt(2.0)}));
  CHECK(xt::allclose(tg::tanh(x).value(), xt::xarray<double>{std::tanh(0.5), std::tanh(1.0), std::tanh(2.0)}));
  CHECK(xt::allclose(tg::sigmoid(x).value(),
                     xt::xarray<double>{1 / (1 + std::exp(-0.5)), 1 / (1 + std::exp(-1.0)), 1 / (1 + std::exp(-2.0))}));
  CHECK(xt::allclose(tg::pow(x, 3.0).value(), xt::xarray<double>{0.125, 1.0, 8.0}));
  CHECK(xt::allclose((2.0 - x).value(), xt::xarray<double>{1.5, 1.0, 0.0}));
  CHECK(xt::allclose((1.0 / x).value(), xt::xarray<double>{2.0, 1.0, 0.5}));
}

TEST_CASE("pow at zero: gradients are 0 where PyTorch's are, not NaN") {
  // d(a^b)/da = b·a^(b-1) is 0 at b = 0, even where a = 0; d(a^b)/db = a^b·ln a
  // is 0 at a = 0 for b > 0 (its limit), and 0 at a = b = 0 as in PyTorch.
  DTensor a(xt::xarray<double>{0.0, 0.0, 2.0, 0.0}, true);
  DTensor b(xt::xarray<double>{0.0, 2.0, 0.0, 3.0}, true);
  tg::sum(tg::pow(a, b)).backward();
  CHECK(a.grad().value() == xt::xarray<double>{0.0, 0.0, 0.0, 0.0});
  CHECK(b.grad().value()(0) == 0.0);
  CHECK(b.grad().value()(1) == 0.0);
  CHECK(b.grad().value()(2) == doctest::Approx(std::log(2.0)));
  CHECK(b.grad().value()(3) == 0.0);
  // Away from zero nothing changes: a second derivative by hand.
  DTensor x(xt::xarray<double>{1.5}, true);
  const DTensor dx = tg::grad<double>({tg::sum(tg::pow(x, 3.0))}, {x}, {}, true, true)[0];
  tg::sum(dx).backward();
  CHECK(dx.value()(0) == doctest::Approx(3 * 1.5 * 1.5));
  CHECK(x.grad().value()(0) == doctest::Approx(6 * 1.5));
}

TEST_CASE("permute and transpose move elements as loops say") {
  tg::Generator gen(5);
  DTensor x = tg::randn<double>({2, 3, 4}, gen);
  const auto p = tg::permute(x, {2, 0, 1}).value();
  REQUIRE(p.shape() == xt::xarray<double>::shape_type{4, 2, 3});
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t k = 0; k < 4; ++k) CHECK(p(k, i, j) == x.value()(i, j, k));
  const auto t = tg::transpose(x).value();
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t k = 0; k < 4; ++k) CHECK(t(i, k, j) == x.value()(i, j, k));
  CHECK(tg::flatten(x).shape() == Shape{2, 12});
  CHECK(tg::flatten(x, 0).shape() == Shape{24});
  CHECK(tg::reshape(x, std::vector<std::ptrdiff_t>{4, -1}).shape() == Shape{4, 6});
}

TEST_CASE("log_softmax and softmax are stable and match the formula") {
  DTensor x{{1000.0, 1001.0, 1002.0}, {-1.0, 0.0, 1.0}};
  const auto ls = tg::log_softmax(x, 1).value();
  const double lse = std::log(std::exp(-1.0) + std::exp(0.0) + std::exp(1.0));
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      CHECK(std::isfinite(ls(i, j)));
      CHECK(ls(i, j) == doctest::Approx(double(j) - 1.0 - lse));
    }
  const auto sm = tg::softmax(x, -1).value();
  for (std::size_t i = 0; i < 2; ++i) CHECK(sm(i, 0) + sm(i, 1) + sm(i, 2) == doctest::Approx(1.0));
  CHECK(sm(1, 2) == doctest::Approx(std::exp(1.0 - lse)));
}

TEST_CASE("cross_entropy, nll_loss and mse_loss values") {
  // Two equal logits: -log(1/2) per sample.
  CHECK(tg::cross_entropy(DTensor{{0.0, 0.0}, {5.0, 5.0}}, {0, 1}).item() == doctest::Approx(std::log(2.0)));
  DTensor logits{{2.0, 1.0, 0.1}};
  const double expected = -std::log(std::exp(2.0) / (std::exp(2.0) + std::exp(1.0) + std::exp(0.1)));
  CHECK(tg::cross_entropy(logits, {0}).item() == doctest::Approx(expected));
  CHECK(tg::nll_loss(DTensor{{-1.0, -2.0}, {-3.0, -4.0}}, {1, 0}).item() == doctest::Approx(2.5));
  CHECK(tg::mse_loss(DTensor{1.0, 2.0, 3.0}, DTensor{1.0, 0.0, 0.0}).item() == doctest::Approx(13.0 / 3.0));

  // d(cross_entropy)/d(logits) = (softmax - onehot) / N
  DTensor z(xt::xarray<double>{{1.0, 2.0, 3.0}, {0.0, 0.0, 0.0}}, true);
  tg::cross_entropy(z, {2, 0}).backward();
  const double e = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  const xt::xarray<double> want{{std::exp(1.0) / e / 2, std::exp(2.0) / e / 2, (std::exp(3.0) / e - 1) / 2},
                                {(1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6}};
  CHECK(xt::allclose(z.grad().value(), want));
}

TEST_CASE("float ops agree with double ops") {
  tg::Generator gen(6);
  DTensor a = tg::randn<double>({3, 4}, gen), b = tg::randn<double>({4, 2}, gen);
  tg::Tensor af(xt::xarray<float>(xt::cast<float>(a.value())), true);
  tg::Tensor bf(xt::xarray<float>(xt::cast<float>(b.value())), true);
  a.requires_grad_();
  b.requires_grad_();
  tg::sum(tg::tanh(tg::matmul(a, b))).backward();
  tg::sum(tg::tanh(tg::matmul(af, bf))).backward();
  CHECK(xt::allclose(xt::cast<double>(af.grad().value()), a.grad().value(), 1e-4, 1e-5));
  CHECK(xt::allclose(xt::cast<double>(bf.grad().value()), b.grad().value(), 1e-4, 1e-5));
}
