// Every op: gradients by finite differences (first and second order) over a
// table of cases on random shapes, then values against independent loops.
#include <doctest/doctest.h>

#include <cmath>
#include <algorithm>
#include <functional>
#include <limits>
#include <string>

#include <xtensor/xadapt.hpp>
#include <xtensor/xview.hpp>

#include <tapegrad/tapegrad.hpp>

#include "op_table.hpp"

using tg::Tensor;
using tg::Shape;

namespace {

// The table's helpers (random shapes and inputs, OpCase, check_cases) are in op_table.hpp.

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

// At least two elements along every axis, so that var (correction 1) is defined.
std::vector<Shape> at_least_two(tg::Generator& g) {
  Shape s = random_shape(g, 1, 3);
  for (auto& d : s) d = 2 + g.below(3);
  return {s};
}

// A random axis of an n-d shape, negative half the time.
std::ptrdiff_t random_axis(std::size_t n, tg::Generator& g) {
  const auto a = std::ptrdiff_t(g.below(n));
  return g.below(2) ? a : a - std::ptrdiff_t(n);
}

// Views, joins and gathers: each draws its axis (and indices) from a generator
// seeded by the input's size, so the function is fixed for one case.
std::vector<OpCase> indexing_cases() {
  auto nonscalar = [](tg::Generator& g) { return std::vector<Shape>{random_shape(g, 1, 3)}; };
  // Random int64 indices in [0, n) of this shape.
  auto indices = [](const Shape& shape, std::size_t n, tg::Generator& g) {
    return tg::randint(0, std::int64_t(n), shape, g);
  };
  return {
      {"slice with a step", nonscalar, [](const Inputs& in) {
         tg::Generator g(in[0].numel());
         const std::ptrdiff_t a = random_axis(in[0].dim(), g);
         return tg::slice(in[0], a, std::int64_t(g.below(in[0].size(a))), 100, 1 + std::int64_t(g.below(2)));
       }},
      {"narrow", nonscalar, [](const Inputs& in) {
         tg::Generator g(in[0].numel());
         const std::ptrdiff_t a = random_axis(in[0].dim(), g);
         const auto n = std::int64_t(in[0].size(a));
         return tg::narrow(in[0], a, n / 2, n - n / 2);
       }},
      {"select", nonscalar, [](const Inputs& in) {
         tg::Generator g(in[0].numel());
         const std::ptrdiff_t a = random_axis(in[0].dim(), g);
         return tg::select(in[0], a, -1);
       }},
      {"index x[:, 0]", [](tg::Generator& g) { return std::vector<Shape>{random_shape(g, 2, 3)}; },
       [](const Inputs& in) { return in[0].index({tg::Slice(), 0}); }},
      {"unsqueeze, squeeze", one, [](const Inputs& in) {
         return tg::squeeze(tg::unsqueeze(in[0], -1) * tg::unsqueeze(in[0], 0).sum(), 0);
       }},
      {"transposed view into a kernel", [](tg::Generator& g) { return std::vector<Shape>{{1 + g.below(4), 1 + g.below(4)}}; },
       [](const Inputs& in) { return tg::matmul(in[0].t(), in[0]) + tg::exp(in[0].t()).sum({1}); }},
      {"view, clone", one_nonscalar, [](const Inputs& in) { return tg::view(in[0], {-1}).clone() * 2.0; }},
      {"cat", [](tg::Generator& g) {
         Shape a = random_shape(g, 1, 3), b = a, c = a;
         const std::size_t axis = g.below(a.size());
         b[axis] = 1 + g.below(3);
         c[axis] = 1 + g.below(3);
         return std::vector<Shape>{a, b, c};
       },
       [](const Inputs& in) {
         // the axis along which the shapes differ (0 when they all agree)
         std::ptrdiff_t axis = 0;
         for (std::size_t d = 0; d < in[0].dim(); ++d)
           if (in[0].shape()[d] != in[1].shape()[d] || in[0].shape()[d] != in[2].shape()[d]) axis = std::ptrdiff_t(d);
         return tg::cat({in[0], in[1] * in[1], in[2]}, axis);
       }},
      {"stack", same_pair, [](const Inputs& in) { return tg::stack({in[0], in[1]}, -1); }},
      {"split and chunk joined back in another order", nonscalar, [](const Inputs& in) {
         tg::Generator g(in[0].numel());
         const std::ptrdiff_t a = random_axis(in[0].dim(), g);
         std::vector<Tensor> pieces = tg::split(in[0], 1 + g.below(2), a);
         std::reverse(pieces.begin(), pieces.end());
         const std::vector<Tensor> halves = tg::chunk(tg::cat(pieces, a), 2, a);
         return tg::cat({halves.back() * 3.0, halves.front()}, a);
       }},
      {"index_select", nonscalar, [indices](const Inputs& in) {
         tg::Generator g(in[0].numel());
         const std::ptrdiff_t a = random_axis(in[0].dim(), g);
         return tg::index_select(in[0], a, indices({1 + g.below(5)}, in[0].size(a), g));  // repeats add up
       }},
      {"index_select_backward", nonscalar, [indices](const Inputs& in) {
         tg::Generator g(in[0].numel());
         const std::ptrdiff_t a = random_axis(in[0].dim(), g);
         Shape target = in[0].shape();
         std::size_t& rows = target[std::size_t(a < 0 ? a + std::ptrdiff_t(target.size()) : a)];
         rows = 1 + g.below(4);
         // in[0]'s slices added into zeros of `target` at random rows (repeats add up)
         return tg::index_select_backward(in[0], target, a, indices({in[0].size(a)}, rows, g));
       }},
      {"gather", nonscalar, [indices](const Inputs& in) {
         tg::Generator g(in[0].numel());
         const std::ptrdiff_t a = random_axis(in[0].dim(), g);
         Shape s = in[0].shape();
         s[std::size_t(a < 0 ? a + std::ptrdiff_t(s.size()) : a)] = 1 + g.below(4);
         return tg::gather(in[0], a, indices(s, in[0].size(a), g));
       }},
      {"scatter_add", same_pair, [indices](const Inputs& in) {
         tg::Generator g(in[0].numel());
         const std::ptrdiff_t a = random_axis(in[0].dim(), g);
         return tg::scatter_add(in[0], a, indices(in[1].shape(), in[0].size(a), g), in[1]);
       }},
      {"pad", nonscalar, [](const Inputs& in) {
         return in[0].dim() == 1 ? tg::pad(in[0], {1, 2}, 0.5) : tg::pad(in[0], {0, 1, 2, 0}, -1.0);
       }},
      {"where and masked_fill", broadcast_pair, [](const Inputs& in) {
         const Tensor positive = tg::gt(in[0].detach(), tg::zeros_like(in[0]));
         return tg::masked_fill(tg::where(positive, in[0], in[1]), tg::lt(in[1].detach(), tg::zeros_like(in[1])), 0.25);
       }, Domain::away_from_0},
      {"maximum", broadcast_pair, [](const Inputs& in) { return tg::maximum(in[0], in[1]); }, Domain::away_from_0},
      {"minimum", broadcast_pair, [](const Inputs& in) { return tg::minimum(in[0], in[1]); }, Domain::away_from_0},
      {"var", at_least_two, [](const Inputs& in) { return tg::var(in[0], {0}); }},
      {"std", at_least_two, [](const Inputs& in) { return tg::std(in[0], {-1}, 0.0, true); }},
      {"norm p=3", one_nonscalar, [](const Inputs& in) { return tg::norm(in[0], 3.0); }, Domain::away_from_0},
      {"norm p=1", one_nonscalar, [](const Inputs& in) { return tg::norm(in[0], 1.0); }, Domain::away_from_0},
      {"cumsum", nonscalar, [](const Inputs& in) {
         tg::Generator g(in[0].numel());
         return tg::cumsum(in[0] * in[0], random_axis(in[0].dim(), g));
       }},
  };
}

// Cases whose function depends on a random choice (axes, permutation) draw it
// from their own generator, so the function is the same on every call.
std::vector<OpCase> op_cases() {
  auto axes_case = [](std::string name, std::function<Tensor(const Tensor&, const tg::Axes&, bool)> op) {
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
      {"expm1", one, [](const Inputs& in) { return tg::expm1(in[0]); }},
      {"log1p", one, [](const Inputs& in) { return tg::log1p(in[0]); }, Domain::positive},
      {"sin", one, [](const Inputs& in) { return tg::sin(in[0]); }},
      {"cos", one, [](const Inputs& in) { return tg::cos(in[0]); }},
      {"erf", one, [](const Inputs& in) { return tg::erf(in[0]); }},
      // sign's own gradient is zero; times x it must give sign(x), to first and second order
      {"sign", one, [](const Inputs& in) { return tg::sign(in[0]) * in[0]; }, Domain::away_from_0},
      {"scalar to the power", one, [](const Inputs& in) { return tg::pow(2.5, in[0]); }},
      {"mixed float32 and float64", one, [](const Inputs& in) { return in[0] * tg::ones(in[0].shape(), tg::kFloat32); }},
      // reductions
      {"sum", one, [](const Inputs& in) { return tg::sum(in[0]); }},
      {"mean", one, [](const Inputs& in) { return tg::mean(in[0]); }},
      {"max", one_nonscalar, [](const Inputs& in) { return tg::max(in[0]); }},
      {"min", one_nonscalar, [](const Inputs& in) { return tg::min(in[0]); }},
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
      {"reshape", one_nonscalar, [](const Inputs& in) { return tg::reshape(in[0], {-1, 1}); }},
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
  for (auto& c : axes_case("sum", [](const Tensor& x, const tg::Axes& a, bool k) { return tg::sum(x, a, k); }))
    cases.push_back(c);
  for (auto& c : axes_case("mean", [](const Tensor& x, const tg::Axes& a, bool k) { return tg::mean(x, a, k); }))
    cases.push_back(c);
  for (auto& c : axes_case("max", [](const Tensor& x, const tg::Axes& a, bool k) { return tg::max(x, a, k); }))
    cases.push_back(c);
  for (auto& c : axes_case("min", [](const Tensor& x, const tg::Axes& a, bool k) { return tg::min(x, a, k); }))
    cases.push_back(c);
  for (auto& c : axes_case("logsumexp", [](const Tensor& x, const tg::Axes& a, bool k) { return tg::logsumexp(x, a, k); }))
    cases.push_back(c);
  for (auto& c : axes_case("norm", [](const Tensor& x, const tg::Axes& a, bool k) { return tg::norm(x, 2.0, a, k); }))
    cases.push_back(c);
  for (const auto& c : indexing_cases()) cases.push_back(c);
  return cases;
}

constexpr int kDraws = 8;  // random shapes per case

}  // namespace

// Runs `check` (gradcheck or gradgradcheck) on every case for kDraws random shapes.
void check_every_op(const Check& check, std::uint64_t seed) { check_cases(op_cases(), check, seed, kDraws); }

TEST_CASE("gradcheck: every op, random shapes") {
  check_every_op([](const tg::Function& f, const Inputs& in) { return tg::gradcheck(f, in); }, 0);
}

TEST_CASE("gradgradcheck: every op, random shapes") {
  check_every_op([](const tg::Function& f, const Inputs& in) { return tg::gradgradcheck(f, in); }, 7000);
}

// ---- values against independent computations ------------------------------------

TEST_CASE("broadcasting binary ops match explicit loops") {
  tg::Generator gen(1);
  Tensor a = tg::randn({2, 1, 3}, gen, 0.0, 1.0, tg::kFloat64), b = tg::randn({4, 1}, gen, 0.0, 1.0, tg::kFloat64);
  const auto sum = (a + b).value<double>(), product = (a * b).value<double>(), quotient = (a / b).value<double>();
  REQUIRE(sum.shape() == xt::xarray<double>::shape_type{2, 4, 3});
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 4; ++j)
      for (std::size_t k = 0; k < 3; ++k) {
        const double x = a.value<double>()(i, 0, k), y = b.value<double>()(j, 0);
        CHECK(sum(i, j, k) == doctest::Approx(x + y));
        CHECK(product(i, j, k) == doctest::Approx(x * y));
        CHECK(quotient(i, j, k) == doctest::Approx(x / y));
      }
}

TEST_CASE("broadcast gradients are summed over the broadcast axes") {
  Tensor a(xt::xarray<double>{{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}}, true);  // (2, 3)
  xt::xarray<double> column{10.0, 20.0};
  column.reshape({2, 1});
  Tensor b(column, true);                                                 // (2, 1)
  Tensor c(xt::xarray<double>{1.0, 2.0, 3.0}, true);                      // (3,)
  tg::sum(a * b + c).backward();
  CHECK(a.grad().value<double>() == xt::xarray<double>{{10, 10, 10}, {20, 20, 20}});
  CHECK(b.grad().shape() == Shape{2, 1});
  CHECK(b.grad().value<double>()(0, 0) == 6.0);  // row sums of a
  CHECK(b.grad().value<double>()(1, 0) == 15.0);
  CHECK(c.grad().value<double>() == xt::xarray<double>{2.0, 2.0, 2.0});  // one per row
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
  Tensor a = tg::randn({5, 7}, gen, 0.0, 1.0, tg::kFloat64), b = tg::randn({7, 3}, gen, 0.0, 1.0, tg::kFloat64);
  CHECK(xt::allclose(tg::matmul(a, b).value<double>(), naive(a.value<double>(), b.value<double>(), 0, 0)));

  // (3, 1, 4, 5) @ (2, 5, 6) -> (3, 2, 4, 6)
  Tensor p = tg::randn({3, 1, 4, 5}, gen, 0.0, 1.0, tg::kFloat64), q = tg::randn({2, 5, 6}, gen, 0.0, 1.0, tg::kFloat64);
  const auto r = tg::matmul(p, q).value<double>();
  REQUIRE(r.shape() == xt::xarray<double>::shape_type{3, 2, 4, 6});
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 2; ++j) {
      xt::xarray<double> block = xt::view(r, i, j, xt::all(), xt::all());
      CHECK(xt::allclose(block, naive(p.value<double>(), q.value<double>(), i, j)));
    }
  // (4, 5) @ (3, 5, 2): a 2-d left operand broadcast over the batch
  Tensor s = tg::randn({4, 5}, gen, 0.0, 1.0, tg::kFloat64), t = tg::randn({3, 5, 2}, gen, 0.0, 1.0, tg::kFloat64);
  const auto u = tg::matmul(s, t).value<double>();
  for (std::size_t i = 0; i < 3; ++i) {
    xt::xarray<double> block = xt::view(u, i, xt::all(), xt::all());
    CHECK(xt::allclose(block, naive(s.value<double>(), t.value<double>(), 0, i)));
  }
}

TEST_CASE("gemm transpose flags equal matmul of explicitly transposed operands") {
  tg::Generator gen(3);
  Tensor a = tg::randn({4, 3}, gen, 0.0, 1.0, tg::kFloat64), b = tg::randn({5, 4}, gen, 0.0, 1.0, tg::kFloat64);
  xt::xarray<double> at = xt::transpose(a.value<double>()), bt = xt::transpose(b.value<double>());
  CHECK(xt::allclose(tg::gemm(a, b, true, true).value<double>(), tg::matmul(Tensor(at), Tensor(bt)).value<double>()));
  Tensor c = tg::randn({4, 5}, gen, 0.0, 1.0, tg::kFloat64);
  CHECK(xt::allclose(tg::gemm(a, c, true, false).value<double>(), tg::matmul(Tensor(at), c).value<double>()));
  Tensor d = tg::randn({2, 3}, gen, 0.0, 1.0, tg::kFloat64);
  xt::xarray<double> dt = xt::transpose(d.value<double>());
  CHECK(xt::allclose(tg::gemm(a, d, false, true).value<double>(), tg::matmul(a, Tensor(dt)).value<double>()));
}

TEST_CASE("linear is x·wᵀ + b") {
  Tensor x = tg::tensor({{1.0, 2.0}}, tg::kFloat64);                        // (1, 2)
  Tensor w = tg::tensor({{1.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}}, tg::kFloat64);  // (3, 2)
  Tensor b = tg::tensor({0.5, -0.5, 0.0}, tg::kFloat64);
  CHECK(tg::linear(x, w, b).value<double>() == xt::xarray<double>{{1.5, 1.5, 3.0}});
  CHECK(tg::linear(tg::tensor({1.0, 2.0}, tg::kFloat64), w).value<double>() == xt::xarray<double>{1.0, 2.0, 3.0});
}

TEST_CASE("sum, mean and max over axes match loops") {
  tg::Generator gen(4);
  Tensor x = tg::randn({3, 4, 5}, gen, 0.0, 1.0, tg::kFloat64);
  const auto& v = x.value<double>();
  const auto s = tg::sum(x, {0, 2}).value<double>();
  const auto m = tg::max(x, {-1}, true).value<double>();
  const auto avg = tg::mean(x, {1}).value<double>();
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

TEST_CASE("reductions and broadcasts whose neighbouring axes merge (batch norm's shapes) match loops") {
  // (N, C, H, W) reduced over {0, 2, 3} is walked as (N, C, H·W); a (C, 1, 1)
  // operand against it likewise. The results must not see the difference.
  tg::Generator gen(5);
  const std::size_t n = 3, c = 4, h = 5, w = 6;
  Tensor x = tg::randn({n, c, h, w}, gen, 0.0, 1.0, tg::kFloat64);
  Tensor scale = tg::randn({c, 1, 1}, gen, 0.0, 1.0, tg::kFloat64);
  const auto& v = x.value<double>();
  const auto s = tg::sum(x, {0, 2, 3}).value<double>();
  const auto m = tg::max(x, {0, 2, 3}, true).value<double>();
  const auto p = (x * scale).value<double>();
  const auto wide = tg::broadcast_to(scale, {n, c, h, w}).value<double>();
  REQUIRE(m.shape() == xt::xarray<double>::shape_type{1, c, 1, 1});
  for (std::size_t j = 0; j < c; ++j) {
    double total = 0, best = -1e300;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t y = 0; y < h; ++y)
        for (std::size_t z = 0; z < w; ++z) {
          total += v(i, j, y, z);
          best = std::max(best, v(i, j, y, z));
          CHECK(p(i, j, y, z) == v(i, j, y, z) * scale.value<double>()(j, 0, 0));
          CHECK(wide(i, j, y, z) == scale.value<double>()(j, 0, 0));
        }
    CHECK(s(j) == doctest::Approx(total));
    CHECK(m(0, j, 0, 0) == best);
  }
  // Kept neighbours merge too: (N, C, H, W) over {1} walks as (N, C, H·W).
  const auto sc = tg::sum(x, {1}).value<double>();
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t y = 0; y < h; ++y)
      for (std::size_t z = 0; z < w; ++z) {
        double total = 0;
        for (std::size_t j = 0; j < c; ++j) total += v(i, j, y, z);
        CHECK(sc(i, y, z) == doctest::Approx(total));
      }
}

TEST_CASE("a float sum of a million elements keeps its digits") {
  Tensor x = tg::full({1 << 20}, 0.1);
  CHECK(tg::sum(x).item() == doctest::Approx(0.1 * (1 << 20)).epsilon(1e-6));
}

TEST_CASE("max splits the gradient equally between ties") {
  Tensor x(xt::xarray<double>{{1.0, 3.0, 3.0}, {2.0, 0.0, 1.0}}, true);
  tg::sum(tg::max(x, {1})).backward();
  CHECK(x.grad().value<double>() == xt::xarray<double>{{0.0, 0.5, 0.5}, {1.0, 0.0, 0.0}});
}

TEST_CASE("max splits ties over several axes, and differentiates twice") {
  // Small integers: many ties. Reduced over the outer and the inner axis.
  tg::Generator gen(11);
  Tensor x = tg::randint(0, 3, {3, 4, 5}, gen).to(tg::kFloat64).requires_grad_();
  tg::sum(tg::max(x, {0, 2}, true)).backward();
  const auto v = x.value<double>();
  const auto g = x.grad().value<double>();
  for (std::size_t j = 0; j < 4; ++j) {
    double best = -1, ties = 0;
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t k = 0; k < 5; ++k) best = std::max(best, v(i, j, k));
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t k = 0; k < 5; ++k) ties += v(i, j, k) == best;
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t k = 0; k < 5; ++k) CHECK(g(i, j, k) == (v(i, j, k) == best ? 1.0 / ties : 0.0));
  }
  // d/dx Σ dx with dx = d(Σ y²)/dx: share_j · 2 · Σ_i share_i = 2 · share_j.
  Tensor z(xt::xarray<double>{{3.0, 1.0}, {3.0, 2.0}, {0.0, 2.0}}, true);
  const Tensor y = tg::max(z, {0});
  const Tensor dz = tg::grad({tg::sum(y * y)}, {z}, {}, true, true)[0];
  CHECK(dz.value<double>() == xt::xarray<double>{{3.0, 0.0}, {3.0, 2.0}, {0.0, 2.0}});
  tg::sum(dz).backward();
  CHECK(z.grad().value<double>() == xt::xarray<double>{{1.0, 0.0}, {1.0, 1.0}, {0.0, 1.0}});
}

TEST_CASE("max propagates NaN, and its gradient goes to the NaN element") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x(xt::xarray<double>{{1.0, nan, 3.0}, {nan, 0.0, 1.0}, {2.0, 5.0, 1.0}}, true);
  const Tensor m = tg::max(x, {1});
  CHECK(std::isnan(m.value<double>()(0)));
  CHECK(std::isnan(m.value<double>()(1)));
  CHECK(m.value<double>()(2) == 5.0);
  tg::sum(m).backward();
  CHECK(x.grad().value<double>() == xt::xarray<double>{{0.0, 1.0, 0.0}, {1.0, 0.0, 0.0}, {0.0, 1.0, 0.0}});
  CHECK(std::isnan(tg::max(x).item()));
  // The same in a pooling window, which is a max over the window.
  Tensor img(xt::xarray<double>{{{{0.0, 1.0}, {nan, 2.0}}}}, true);
  CHECK(std::isnan(tg::max_pool2d(img, 2).item()));
}

TEST_CASE("subgradients at the kinks follow the documented choices") {
  Tensor x(xt::xarray<double>{-1.0, 0.0, 1.0}, true);
  tg::sum(tg::relu(x)).backward();
  CHECK(x.grad().value<double>() == xt::xarray<double>{0.0, 0.0, 1.0});
  x.zero_grad();
  tg::sum(tg::abs(x)).backward();
  CHECK(x.grad().value<double>() == xt::xarray<double>{-1.0, 0.0, 1.0});
  x.zero_grad();
  tg::sum(tg::leaky_relu(x, 0.1)).backward();
  CHECK(xt::allclose(x.grad().value<double>(), xt::xarray<double>{0.1, 0.1, 1.0}));
  x.zero_grad();
  tg::sum(tg::clamp(x, -1.0, 0.5)).backward();  // boundaries pass the gradient
  CHECK(x.grad().value<double>() == xt::xarray<double>{1.0, 1.0, 0.0});
}

TEST_CASE("elementwise values") {
  Tensor x = tg::tensor({0.5, 1.0, 2.0}, tg::kFloat64);
  CHECK(xt::allclose(tg::exp(x).value<double>(), xt::xarray<double>{std::exp(0.5), std::exp(1.0), std::exp(2.0)}));
  CHECK(xt::allclose(tg::log(x).value<double>(), xt::xarray<double>{std::log(0.5), 0.0, std::log(2.0)}));
  CHECK(xt::allclose(tg::sqrt(x).value<double>(), xt::xarray<double>{std::sqrt(0.5), 1.0, std::sqrt(2.0)}));
  CHECK(xt::allclose(tg::tanh(x).value<double>(), xt::xarray<double>{std::tanh(0.5), std::tanh(1.0), std::tanh(2.0)}));
  CHECK(xt::allclose(tg::sigmoid(x).value<double>(),
                     xt::xarray<double>{1 / (1 + std::exp(-0.5)), 1 / (1 + std::exp(-1.0)), 1 / (1 + std::exp(-2.0))}));
  CHECK(xt::allclose(tg::pow(x, 3.0).value<double>(), xt::xarray<double>{0.125, 1.0, 8.0}));
  CHECK(xt::allclose((2.0 - x).value<double>(), xt::xarray<double>{1.5, 1.0, 0.0}));
  CHECK(xt::allclose((1.0 / x).value<double>(), xt::xarray<double>{2.0, 1.0, 0.5}));
}

TEST_CASE("pow at zero: gradients are 0 where PyTorch's are, not NaN") {
  // d(a^b)/da = b·a^(b-1) is 0 at b = 0, even where a = 0; d(a^b)/db = a^b·ln a
  // is 0 at a = 0 for b > 0 (its limit), and 0 at a = b = 0 as in PyTorch.
  Tensor a(xt::xarray<double>{0.0, 0.0, 2.0, 0.0}, true);
  Tensor b(xt::xarray<double>{0.0, 2.0, 0.0, 3.0}, true);
  tg::sum(tg::pow(a, b)).backward();
  CHECK(a.grad().value<double>() == xt::xarray<double>{0.0, 0.0, 0.0, 0.0});
  CHECK(b.grad().value<double>()(0) == 0.0);
  CHECK(b.grad().value<double>()(1) == 0.0);
  CHECK(b.grad().value<double>()(2) == doctest::Approx(std::log(2.0)));
  CHECK(b.grad().value<double>()(3) == 0.0);
  // Away from zero nothing changes: a second derivative by hand.
  Tensor x(xt::xarray<double>{1.5}, true);
  const Tensor dx = tg::grad({tg::sum(tg::pow(x, 3.0))}, {x}, {}, true, true)[0];
  tg::sum(dx).backward();
  CHECK(dx.value<double>()(0) == doctest::Approx(3 * 1.5 * 1.5));
  CHECK(x.grad().value<double>()(0) == doctest::Approx(6 * 1.5));
}

TEST_CASE("permute and transpose move elements as loops say") {
  tg::Generator gen(5);
  Tensor x = tg::randn({2, 3, 4}, gen, 0.0, 1.0, tg::kFloat64);
  const auto p = tg::permute(x, {2, 0, 1}).value<double>();
  REQUIRE(p.shape() == xt::xarray<double>::shape_type{4, 2, 3});
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t k = 0; k < 4; ++k) CHECK(p(k, i, j) == x.value<double>()(i, j, k));
  const auto t = tg::transpose(x).value<double>();
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t k = 0; k < 4; ++k) CHECK(t(i, k, j) == x.value<double>()(i, j, k));
  CHECK(tg::flatten(x).shape() == Shape{2, 12});
  CHECK(tg::flatten(x, 0).shape() == Shape{24});
  CHECK(tg::reshape(x, {4, -1}).shape() == Shape{4, 6});
}

TEST_CASE("log_softmax and softmax are stable and match the formula") {
  Tensor x = tg::tensor({{1000.0, 1001.0, 1002.0}, {-1.0, 0.0, 1.0}}, tg::kFloat64);
  const auto ls = tg::log_softmax(x, 1).value<double>();
  const double lse = std::log(std::exp(-1.0) + std::exp(0.0) + std::exp(1.0));
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      CHECK(std::isfinite(ls(i, j)));
      CHECK(ls(i, j) == doctest::Approx(double(j) - 1.0 - lse));
    }
  const auto sm = tg::softmax(x, -1).value<double>();
  for (std::size_t i = 0; i < 2; ++i) CHECK(sm(i, 0) + sm(i, 1) + sm(i, 2) == doctest::Approx(1.0));
  CHECK(sm(1, 2) == doctest::Approx(std::exp(1.0 - lse)));
}

TEST_CASE("cross_entropy, nll_loss and mse_loss values") {
  // Two equal logits: -log(1/2) per sample.
  CHECK(tg::cross_entropy(tg::tensor({{0.0, 0.0}, {5.0, 5.0}}, tg::kFloat64), {0, 1}).item() == doctest::Approx(std::log(2.0)));
  Tensor logits = tg::tensor({{2.0, 1.0, 0.1}}, tg::kFloat64);
  const double expected = -std::log(std::exp(2.0) / (std::exp(2.0) + std::exp(1.0) + std::exp(0.1)));
  CHECK(tg::cross_entropy(logits, {0}).item() == doctest::Approx(expected));
  CHECK(tg::nll_loss(tg::tensor({{-1.0, -2.0}, {-3.0, -4.0}}, tg::kFloat64), {1, 0}).item() == doctest::Approx(2.5));
  CHECK(tg::mse_loss(tg::tensor({1.0, 2.0, 3.0}, tg::kFloat64), tg::tensor({1.0, 0.0, 0.0}, tg::kFloat64)).item() == doctest::Approx(13.0 / 3.0));

  // d(cross_entropy)/d(logits) = (softmax - onehot) / N
  Tensor z(xt::xarray<double>{{1.0, 2.0, 3.0}, {0.0, 0.0, 0.0}}, true);
  tg::cross_entropy(z, {2, 0}).backward();
  const double e = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  const xt::xarray<double> want{{std::exp(1.0) / e / 2, std::exp(2.0) / e / 2, (std::exp(3.0) / e - 1) / 2},
                                {(1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6}};
  CHECK(xt::allclose(z.grad().value<double>(), want));
}

TEST_CASE("float ops agree with double ops") {
  tg::Generator gen(6);
  Tensor a = tg::randn({3, 4}, gen, 0.0, 1.0, tg::kFloat64), b = tg::randn({4, 2}, gen, 0.0, 1.0, tg::kFloat64);
  Tensor af = a.to(tg::kFloat32).detach().requires_grad_();
  Tensor bf = b.to(tg::kFloat32).detach().requires_grad_();
  a.requires_grad_();
  b.requires_grad_();
  tg::sum(tg::tanh(tg::matmul(a, b))).backward();
  tg::sum(tg::tanh(tg::matmul(af, bf))).backward();
  CHECK(xt::allclose(xt::cast<double>(af.grad().value<float>()), a.grad().value<double>(), 1e-4, 1e-5));
  CHECK(xt::allclose(xt::cast<double>(bf.grad().value<float>()), b.grad().value<double>(), 1e-4, 1e-5));
}

TEST_CASE("new elementwise math matches the standard library") {
  const std::vector<double> xs{-1.5, -0.2, 0.0, 0.3, 2.0};
  Tensor x(xt::xarray<double>(xt::adapt(xs)));
  const auto sin = tg::sin(x).value<double>(), cos = tg::cos(x).value<double>(), erf = tg::erf(x).value<double>();
  const auto expm1 = tg::expm1(x).value<double>(), sign = tg::sign(x).value<double>();
  const auto log1p = tg::log1p(tg::abs(x)).value<double>();
  for (std::size_t i = 0; i < xs.size(); ++i) {
    CHECK(sin(i) == doctest::Approx(std::sin(xs[i])));
    CHECK(cos(i) == doctest::Approx(std::cos(xs[i])));
    CHECK(erf(i) == doctest::Approx(std::erf(xs[i])));
    CHECK(expm1(i) == doctest::Approx(std::expm1(xs[i])));
    CHECK(log1p(i) == doctest::Approx(std::log1p(std::abs(xs[i]))));
    CHECK(sign(i) == (xs[i] > 0 ? 1.0 : xs[i] < 0 ? -1.0 : 0.0));
  }
  // expm1 and log1p keep their digits where exp(x) - 1 would not.
  CHECK(tg::expm1(tg::tensor({1e-12}, tg::kFloat64)).item() == doctest::Approx(1e-12).epsilon(1e-9));
  CHECK(tg::pow(2.0, tg::tensor({3.0, -1.0}, tg::kFloat64)).value<double>() == xt::xarray<double>{8.0, 0.5});
}

TEST_CASE("sign has a zero gradient; relu keeps NaN") {
  Tensor x = tg::tensor({-2.0, 3.0}, tg::kFloat64).requires_grad_();
  tg::sum(tg::sign(x) * x).backward();  // d(sign(x)·x)/dx = sign(x) + 0·x
  CHECK(x.grad().value<double>() == xt::xarray<double>{-1.0, 1.0});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto r = tg::relu(tg::tensor({nan, -1.0, 2.0}, tg::kFloat64)).value<double>();
  CHECK(std::isnan(r(0)));
  CHECK(r(1) == 0.0);
  CHECK(r(2) == 2.0);
  // As torch's threshold_backward: the gradient passes where x > 0 and is 0
  // elsewhere, at a NaN input too, and even where the upstream gradient is NaN.
  Tensor v = tg::tensor({nan, -1.0, 2.0, 0.0}, tg::kFloat64).requires_grad_();
  const Tensor upstream = tg::tensor({1.0, nan, 3.0, 4.0}, tg::kFloat64);
  tg::relu(v).backward(upstream);
  CHECK(v.grad().value<double>() == xt::xarray<double>{0.0, 0.0, 3.0, 0.0});
}

TEST_CASE("maximum and minimum pick elementwise and propagate NaN") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor a = tg::tensor({1.0, 5.0, nan, 2.0}, tg::kFloat64), b = tg::tensor({3.0, 4.0, 0.0, nan}, tg::kFloat64);
  const auto hi = tg::maximum(a, b).value<double>(), lo = tg::minimum(a, b).value<double>();
  CHECK(hi(0) == 3.0);
  CHECK(hi(1) == 5.0);
  CHECK(lo(0) == 1.0);
  CHECK(lo(1) == 4.0);
  CHECK((std::isnan(hi(2)) && std::isnan(hi(3)) && std::isnan(lo(2)) && std::isnan(lo(3))));
}

TEST_CASE("comparisons give bool tensors, with promotion and broadcasting") {
  Tensor a = tg::tensor({{1.0, 2.0, 3.0}}, tg::kFloat64);  // (1, 3)
  Tensor b = tg::tensor({{2}, {3}}, tg::kInt64);           // (2, 1)
  const Tensor lt = tg::lt(a, b);
  CHECK(lt.dtype() == tg::kBool);
  CHECK(lt.shape() == Shape{2, 3});
  CHECK(lt.value<bool>() == xt::xarray<bool>{{true, false, false}, {true, true, false}});
  CHECK(tg::eq(a, b).value<bool>() == xt::xarray<bool>{{false, true, false}, {false, false, true}});
  CHECK(tg::ne(a, b).value<bool>() == xt::xarray<bool>{{true, false, true}, {true, true, false}});
  CHECK(tg::le(a, b).value<bool>() == xt::xarray<bool>{{true, true, false}, {true, true, true}});
  CHECK(tg::gt(a, b).value<bool>() == xt::xarray<bool>{{false, false, true}, {false, false, false}});
  CHECK(tg::ge(a, b).value<bool>() == xt::xarray<bool>{{false, true, true}, {false, false, true}});
  CHECK(tg::logical_not(lt).value<bool>() == xt::xarray<bool>{{false, true, true}, {false, false, true}});
  CHECK_THROWS_AS(tg::where(tg::ones({3}), a, a), tg::DtypeError);
}

TEST_CASE("where selects and sends each gradient to the side it took") {
  const double inf = std::numeric_limits<double>::infinity();
  Tensor a = tg::tensor({1.0, inf, 3.0}, tg::kFloat64).requires_grad_();
  Tensor b = tg::tensor({-1.0, -2.0, -inf}, tg::kFloat64).requires_grad_();
  const Tensor cond = tg::tensor({1, 0, 1}, tg::kBool);
  const Tensor y = tg::where(cond, a, b);
  CHECK(y.value<double>() == xt::xarray<double>{1.0, -2.0, 3.0});  // a selection, not a blend: no inf·0
  tg::sum(y * tg::tensor({1.0, 2.0, 3.0}, tg::kFloat64)).backward();
  CHECK(a.grad().value<double>() == xt::xarray<double>{1.0, 0.0, 3.0});
  CHECK(b.grad().value<double>() == xt::xarray<double>{0.0, 2.0, 0.0});
  CHECK(tg::masked_fill(a.detach(), tg::logical_not(cond), 7.0).value<double>() == xt::xarray<double>{1.0, 7.0, 3.0});
}

TEST_CASE("min, argmax and argmin match loops, NaN first and ties to the first index") {
  tg::Generator gen(8);
  Tensor x = tg::randn({3, 4, 5}, gen, 0.0, 1.0, tg::kFloat64);
  const auto v = x.value<double>();
  const auto am = tg::argmax(x, 1).value<std::int64_t>(), an = tg::argmin(x, -1, true).value<std::int64_t>();
  const auto mn = tg::min(x, {1}).value<double>();
  REQUIRE(tg::argmax(x, 1).dtype() == tg::kInt64);
  REQUIRE(tg::argmin(x, -1, true).shape() == Shape{3, 4, 1});
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t k = 0; k < 5; ++k) {
      std::size_t best = 0, worst = 0;
      for (std::size_t j = 1; j < 4; ++j) {
        if (v(i, j, k) > v(i, best, k)) best = j;
        if (v(i, j, k) < v(i, worst, k)) worst = j;
      }
      CHECK(am(i, k) == std::int64_t(best));
      CHECK(mn(i, k) == v(i, worst, k));
    }
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 4; ++j) {
      std::size_t worst = 0;
      for (std::size_t k = 1; k < 5; ++k)
        if (v(i, j, k) < v(i, j, worst)) worst = k;
      CHECK(an(i, j, 0) == std::int64_t(worst));
    }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(tg::argmax(tg::tensor({1.0, 3.0, nan, 3.0}, tg::kFloat64), 0).item() == 2);
  CHECK(tg::argmax(tg::tensor({1.0, 3.0, 0.0, 3.0}, tg::kFloat64), 0).item() == 1);
  CHECK(tg::argmax(tg::tensor({{4, 9, 9}}, tg::kInt64), 1).item() == 1);
  CHECK(tg::min(x).item() == xt::amin(v)());
}

TEST_CASE("var, std, logsumexp, norm and cumsum match formulas") {
  Tensor x = tg::tensor({{1.0, 2.0, 4.0}, {-1.0, 0.0, 7.0}}, tg::kFloat64);
  // row 0: mean 7/3, squared deviations 16/9 + 1/9 + 25/9 = 42/9
  CHECK(tg::var(x, {1}).value<double>()(0) == doctest::Approx(42.0 / 9.0 / 2.0));
  CHECK(tg::var(x, {1}, 0.0).value<double>()(0) == doctest::Approx(42.0 / 9.0 / 3.0));
  CHECK(tg::std(x, {0}).value<double>()(2) == doctest::Approx(std::sqrt(4.5)));  // (4 - 7)² / 2
  CHECK_THROWS_AS(tg::var(tg::ones({1, 3}, tg::kFloat64), {0}), tg::ValueError);  // 1 element, correction 1
  const double lse = std::log(std::exp(-1.0) + std::exp(0.0) + std::exp(7.0));
  CHECK(tg::logsumexp(x, {1}).value<double>()(1) == doctest::Approx(lse));
  CHECK(tg::logsumexp(tg::tensor({1000.0, 1000.0}, tg::kFloat64), {0}).item() == doctest::Approx(1000.0 + std::log(2.0)));
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(tg::logsumexp(tg::tensor({-inf, -inf}, tg::kFloat64), {0}).item() == -inf);
  CHECK(tg::norm(x).item() == doctest::Approx(std::sqrt(1 + 4 + 16 + 1 + 0 + 49.0)));
  CHECK(tg::norm(x, 1.0, {1}).value<double>() == xt::xarray<double>{7.0, 8.0});
  CHECK(tg::cumsum(x, 1).value<double>() == xt::xarray<double>{{1.0, 3.0, 7.0}, {-1.0, -1.0, 6.0}});
  CHECK(tg::cumsum(x, 0).value<double>() == xt::xarray<double>{{1.0, 2.0, 4.0}, {0.0, 2.0, 11.0}});
  CHECK(tg::cumsum(tg::tensor({1, 2, 3}, tg::kInt64), 0).value<std::int64_t>() == xt::xarray<std::int64_t>{1, 3, 6});
}

TEST_CASE("norm's gradient at the zero vector is zero, not NaN") {
  Tensor x = tg::zeros({3}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::norm(x).backward();
  CHECK(x.grad().value<double>() == xt::xarray<double>{0.0, 0.0, 0.0});
}

TEST_CASE("integer sums stay exact; mean refuses integers") {
  Tensor big = tg::full({3}, double(1LL << 53), tg::kInt64);
  CHECK(tg::sum(big).dtype() == tg::kInt64);
  CHECK(tg::sum(big).item<std::int64_t>() == 3 * (std::int64_t(1) << 53));
  CHECK(tg::sum(tg::tensor({1, 0, 1}, tg::kBool)).item() == 2);
  CHECK_THROWS_AS(tg::mean(big), tg::DtypeError);
}
