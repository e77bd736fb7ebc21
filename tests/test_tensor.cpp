// Tensor handles, creation, generators.
#include <doctest/doctest.h>

#include <cmath>

#include <tapegrad/tapegrad.hpp>

TEST_CASE("copies of a tensor share value and autograd state") {
  tg::Tensor a(xt::xarray<float>{1, 2, 3}, true);
  tg::Tensor b = a;
  b.value()(0) = 10;
  CHECK(a.value()(0) == 10);
  CHECK(b.requires_grad());
  CHECK(a.same(b));
  tg::sum(b).backward();
  REQUIRE(a.grad().defined());
  CHECK(a.grad().value() == xt::xarray<float>{1, 1, 1});
}

TEST_CASE("construction from nested initializer lists and xarray") {
  tg::DTensor m{{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}};
  CHECK(m.shape() == tg::Shape{2, 3});
  CHECK(m.numel() == 6);
  CHECK(m.dim() == 2);
  CHECK(m.size(-1) == 3);
  CHECK(m.value()(1, 2) == 6.0);
  CHECK_FALSE(m.requires_grad());
  tg::DTensor x(xt::xarray<double>{{1.0, 2.0}}, /*requires_grad=*/true);
  CHECK(x.requires_grad());
  CHECK(x.is_leaf());
  CHECK(x.shape() == tg::Shape{1, 2});
  CHECK(tg::DTensor(xt::xarray<double>(5.0)).item() == 5.0);
}

TEST_CASE("item, detach, names") {
  tg::Tensor x(xt::xarray<float>{2.0f}, true);
  x.set_name("x");
  CHECK(x.name() == "x");
  tg::Tensor y = x * x;
  CHECK_FALSE(y.is_leaf());
  tg::Tensor d = y.detach();
  CHECK(d.is_leaf());
  CHECK_FALSE(d.requires_grad());
  CHECK(d.item() == 4.0f);
  d.value()(0) = 7;  // a copy: y is untouched
  CHECK(y.item() == 4.0f);
  CHECK_THROWS_AS(tg::ones<float>({2}).item(), tg::ShapeError);
}

TEST_CASE("requires_grad_ only on leaves") {
  tg::Tensor x = tg::ones<float>({2}, true);
  tg::Tensor y = x * 2.0;
  CHECK_THROWS_AS(y.requires_grad_(false), tg::AutogradError);
  x.requires_grad_(false);
  CHECK_FALSE(x.requires_grad());
}

TEST_CASE("zeros, ones, full, arange") {
  CHECK(tg::zeros<float>({2, 2}).value() == xt::zeros<float>({2, 2}));
  CHECK(tg::ones<double>({3}).value() == xt::xarray<double>{1, 1, 1});
  CHECK(tg::full<float>({2}, 2.5f).value() == xt::xarray<float>{2.5f, 2.5f});
  CHECK(tg::arange<float>(0, 5).value() == xt::xarray<float>{0, 1, 2, 3, 4});
  CHECK(tg::arange<double>(1, 2, 0.25).value() == xt::xarray<double>{1, 1.25, 1.5, 1.75});
  CHECK(tg::arange<float>(3, 1).numel() == 0);
  CHECK_THROWS_AS(tg::arange<float>(0, 1, 0), tg::ValueError);
  CHECK(tg::zeros<float>({}).dim() == 0);
}

TEST_CASE("random creation is reproducible from the seed and has the right moments") {
  tg::Generator g1(7), g2(7), g3(8);
  auto a = tg::randn<float>({1000}, g1);
  auto b = tg::randn<float>({1000}, g2);
  auto c = tg::randn<float>({1000}, g3);
  CHECK(a.value() == b.value());
  CHECK(a.value() != c.value());

  tg::Generator gen(1);
  auto n = tg::randn<double>({200000}, gen, 2.0, 3.0).value();
  const double mean = xt::mean(n)();
  const double var = xt::variance(n)();
  CHECK(mean == doctest::Approx(2.0).epsilon(0.03));
  CHECK(var == doctest::Approx(9.0).epsilon(0.02));

  auto u = tg::rand<double>({200000}, gen, -1.0, 3.0).value();
  CHECK(xt::amin(u)() >= -1.0);
  CHECK(xt::amax(u)() < 3.0);
  CHECK(xt::mean(u)() == doctest::Approx(1.0).epsilon(0.01));
  CHECK(xt::variance(u)() == doctest::Approx(16.0 / 12.0).epsilon(0.02));
}

TEST_CASE("Generator::below is uniform over [0, n)") {
  tg::Generator gen(3);
  std::vector<int> counts(5, 0);
  for (int i = 0; i < 50000; ++i) counts[gen.below(5)]++;
  for (int c : counts) CHECK(c == doctest::Approx(10000).epsilon(0.05));
}

TEST_CASE("undefined tensors") {
  tg::Tensor none;
  CHECK_FALSE(none.defined());
  CHECK_FALSE(none.requires_grad());
  CHECK_THROWS_AS(none.value(), tg::Error);
  CHECK_THROWS_WITH_AS(none.shape(), doctest::Contains("undefined"), tg::Error);
}

TEST_CASE("grad accumulates across backward calls until zero_grad") {
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::sum(x * x).backward();
  CHECK(x.grad().value() == xt::xarray<double>{2.0, 4.0});
  tg::sum(x * x).backward();
  CHECK(x.grad().value() == xt::xarray<double>{4.0, 8.0});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  tg::sum(x * 3.0).backward();
  CHECK(x.grad().value() == xt::xarray<double>{3.0, 3.0});
}
