// Indexing, joining and gathering ops: values against loops over xtensor
// arrays, and the gradients that go with them by hand. (Finite-difference
// checks of every one of them are in test_ops.cpp's table.)
#include <doctest/doctest.h>

#include <xtensor/xview.hpp>

#include <tapegrad/tapegrad.hpp>

using tg::Shape;
using tg::Tensor;

namespace {

Tensor iota(const Shape& shape) {  // 0, 1, 2, ... in float64
  return tg::arange(0, double(tg::product(shape)), 1, tg::kFloat64).reshape(shape);
}

}  // namespace

TEST_CASE("slice, narrow, select and index follow Python's rules") {
  const Tensor x = iota({4, 5});
  const auto v = x.value<double>();
  const auto s = tg::slice(x, 1, -4, 100, 2).value<double>();  // columns 1, 3
  REQUIRE(s.shape() == std::vector<std::size_t>{4, 2});
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(s(i, 0) == v(i, 1));
    CHECK(s(i, 1) == v(i, 3));
  }
  CHECK(tg::slice(x, 0, 3, 1).numel() == 0);  // stop before start: empty
  CHECK(tg::narrow(x, 0, 1, 2).value<double>() == xt::xarray<double>(xt::view(v, xt::range(1, 3), xt::all())));
  CHECK(tg::select(x, 1, -1).value<double>() == xt::xarray<double>(xt::view(v, xt::all(), 4)));
  CHECK(x.index({tg::Slice(), 0}).value<double>() == xt::xarray<double>(xt::view(v, xt::all(), 0)));
  CHECK(x.index({2}).value<double>() == xt::xarray<double>(xt::view(v, 2, xt::all())));
  CHECK(x.index({tg::Slice(1, std::nullopt, 2), tg::Slice(std::nullopt, 2)}).value<double>() ==
        xt::xarray<double>{{5.0, 6.0}, {15.0, 16.0}});
  CHECK_THROWS_AS(tg::narrow(x, 0, 3, 2), tg::ValueError);
  CHECK_THROWS_AS(tg::select(x, 0, 4), tg::ValueError);
  CHECK_THROWS_AS(tg::slice(x, 0, 0, 4, 0), tg::ValueError);
  CHECK_THROWS_AS(x.index({0, 0, 0}), tg::AxisError);
}

TEST_CASE("a slice's gradient lands in its positions, zero elsewhere") {
  Tensor x = iota({3, 4}).requires_grad_();
  tg::sum(tg::slice(x, 1, 0, 4, 3) * 2.0).backward();  // columns 0 and 3
  CHECK(x.grad().value<double>() == xt::xarray<double>{{2, 0, 0, 2}, {2, 0, 0, 2}, {2, 0, 0, 2}});
}

TEST_CASE("cat, stack, split and chunk") {
  const Tensor a = iota({2, 3}), b = iota({2, 1}) + 100.0;
  const auto c = tg::cat({a, b}, 1).value<double>();
  CHECK(c == xt::xarray<double>{{0, 1, 2, 100}, {3, 4, 5, 101}});
  CHECK(tg::cat({a, a}, 0).shape() == Shape{4, 3});
  CHECK(tg::cat({a, tg::ones({1, 3}, tg::kFloat32)}, 0).dtype() == tg::kFloat64);  // promoted
  CHECK_THROWS_AS(tg::cat({a, b}, 0), tg::ShapeError);
  const Tensor s = tg::stack({a, a + 1.0}, 1);
  REQUIRE(s.shape() == Shape{2, 2, 3});
  CHECK(s.value<double>()(1, 1, 2) == 6.0);
  const auto pieces = tg::split(iota({7}), 3);
  REQUIRE(pieces.size() == 3);
  CHECK(pieces[2].shape() == Shape{1});
  CHECK(pieces[2].item() == 6.0);
  const auto chunks = tg::chunk(iota({2, 5}), 2, 1);
  REQUIRE(chunks.size() == 2);
  CHECK(chunks[0].shape() == Shape{2, 3});
  CHECK(chunks[1].value<double>() == xt::xarray<double>{{3, 4}, {8, 9}});
  // cat's gradient splits back: each input gets its own columns.
  Tensor p = iota({2, 2}).requires_grad_(), q = iota({2, 1}).requires_grad_();
  tg::sum(tg::cat({p, q}, 1) * iota({2, 3})).backward();
  CHECK(p.grad().value<double>() == xt::xarray<double>{{0, 1}, {3, 4}});
  CHECK(q.grad().shape() == Shape{2, 1});
  CHECK(q.grad().value<double>()(0, 0) == 2.0);
  CHECK(q.grad().value<double>()(1, 0) == 5.0);
}

TEST_CASE("index_select, gather and scatter_add against loops") {
  const Tensor x = iota({3, 4});
  const auto v = x.value<double>();
  const Tensor rows = tg::tensor({2, 0, 2}, tg::kInt64);
  CHECK(tg::index_select(x, 0, rows).value<double>() ==
        xt::xarray<double>{{8, 9, 10, 11}, {0, 1, 2, 3}, {8, 9, 10, 11}});
  const Tensor idx = tg::tensor({{3, 0}, {1, 1}, {0, 2}}, tg::kInt64);
  const auto g = tg::gather(x, 1, idx).value<double>();
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 2; ++j) CHECK(g(i, j) == v(i, std::size_t(idx.value<std::int64_t>()(i, j))));
  const Tensor src = tg::ones({3, 2}, tg::kFloat64);
  const auto sa = tg::scatter_add(tg::zeros({3, 4}, tg::kFloat64), 1, idx, src).value<double>();
  CHECK(sa == xt::xarray<double>{{1, 0, 0, 1}, {0, 2, 0, 0}, {1, 0, 1, 0}});
  CHECK_THROWS_AS(tg::gather(x, 1, tg::tensor({{4}}, tg::kInt64)), tg::ValueError);
  CHECK_THROWS_AS(tg::gather(x, 1, tg::tensor({{1.0}}, tg::kFloat64)), tg::DtypeError);
  CHECK_THROWS_AS(tg::index_select(x, 0, tg::tensor({-1}, tg::kInt64)), tg::ValueError);
  // index_select's gradient adds up where an index repeats.
  Tensor y = iota({3, 2}).requires_grad_();
  tg::sum(tg::index_select(y, 0, rows)).backward();
  CHECK(y.grad().value<double>() == xt::xarray<double>{{1, 1}, {0, 0}, {2, 2}});
}

TEST_CASE("index_select_backward adds each slice at its row; bad arguments name the op") {
  const Tensor rows = tg::tensor({2, 0, 2}, tg::kInt64);
  const Tensor g = iota({3, 2});  // rows {0, 1}, {2, 3}, {4, 5}
  CHECK(tg::index_select_backward(g, {3, 2}, 0, rows).value<double>() ==
        xt::xarray<double>{{2, 3}, {0, 0}, {0 + 4, 1 + 5}});
  CHECK(tg::index_select_backward(tg::transpose(g, 0, 1), {2, 3}, 1, rows).value<double>() ==
        xt::xarray<double>{{2, 0, 4}, {3, 0, 6}});
  using doctest::Contains;
  CHECK_THROWS_WITH_AS(tg::index_select_backward(g, {2, 2}, 0, rows),
                       Contains("index_select_backward: index 2 at position 0 is outside [0, 2)"), tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::index_select_backward(g, {3, 3}, 0, rows),
                       Contains("index_select_backward: the gradient must have shape (3, 3)"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::index_select_backward(g, {3, 2}, 0, tg::tensor({{0}}, tg::kInt64)),
                       Contains("index_select_backward: the index must be 1-d"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::index_select_backward(g, {3, 2}, 2, rows),
                       Contains("index_select_backward: axis 2 is out of range"), tg::AxisError);
  CHECK_THROWS_WITH_AS(tg::index_select_backward(g, {3, 2}, 0, tg::tensor({0.0, 1.0, 2.0}, tg::kFloat64)),
                       Contains("index_select_backward: indices must be int64"), tg::DtypeError);
}

TEST_CASE("pad surrounds with a constant; its gradient is the interior") {
  Tensor x = iota({2, 2}).requires_grad_();
  const Tensor p = tg::pad(x, {1, 0, 0, 1}, -1.0);  // last axis: 1 left; axis 0: 1 below
  CHECK(p.value<double>() == xt::xarray<double>{{-1, 0, 1}, {-1, 2, 3}, {-1, -1, -1}});
  tg::sum(p * iota({3, 3})).backward();
  CHECK(x.grad().value<double>() == xt::xarray<double>{{1, 2}, {4, 5}});
  CHECK_THROWS_AS(tg::pad(x, {-1, 0}), tg::ValueError);
  CHECK_THROWS_AS(tg::pad(x, {1, 1, 1, 1, 1, 1}), tg::ValueError);
}

TEST_CASE("views share storage; reshape of a strided view copies") {
  Tensor x = iota({2, 3});
  const Tensor r = x.reshape({3, 2}), t = x.t(), u = x.unsqueeze(0);
  Tensor s = x.select(0, 1);
  CHECK(r.impl()->storage == x.impl()->storage);
  CHECK(t.impl()->storage == x.impl()->storage);
  CHECK(s.impl()->storage == x.impl()->storage);
  CHECK(u.shape() == Shape{1, 2, 3});
  CHECK_FALSE(t.is_contiguous());
  const Tensor tr = t.reshape({6});  // strided: a copy in the transposed order
  CHECK(tr.impl()->storage != x.impl()->storage);
  CHECK(tr.value<double>() == xt::xarray<double>{0, 3, 1, 4, 2, 5});
  CHECK_THROWS_AS(tg::view(t, {6}), tg::ValueError);
  s.fill_(9.0);  // x needs no grad: writing through a view is allowed
  CHECK(x.value<double>() == xt::xarray<double>{{0, 1, 2}, {9, 9, 9}});
  CHECK(t.value<double>()(2, 1) == 9.0);
}
