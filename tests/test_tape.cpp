// The autograd engine and the tape, as a user sees them: what gets recorded,
// what backward computes, what the tape holds, prints and frees.
//
// The tape is thread-local and outlives a test case, so every case that looks
// at it starts with tg::tape().clear(). Expected values are computed by hand
// or by explicit loops here, never by tapegrad itself.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>

#include <tapegrad/core/autograd.hpp>
#include <tapegrad/core/gradcheck.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/linalg.hpp>
#include <tapegrad/ops/reduce.hpp>
#include <tapegrad/ops/shape.hpp>

#include "tensor_values.hpp"

namespace {

// Every element of t, in row-major order, against `expected`.
void check_values(const tg::Tensor& t, const std::vector<double>& expected, double eps = 1e-6) {
  REQUIRE(t.defined());
  REQUIRE(t.numel() == expected.size());
  const std::vector<double> got = values_of(t);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(expected[i]).epsilon(eps));
  }
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The one printed line holding `part`.
std::string line_with(const std::string& text, const std::string& part) {
  std::string found;
  for (const auto& line : lines(text)) {
    if (contains(line, part)) {
      CHECK_MESSAGE(found.empty(), "more than one line holds \"" << part << "\"");
      found = line;
    }
  }
  return found;
}

bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

// x: ones (2, 3), b: {1, 2, 3} (no grad), w: twos (2, 3), named as such.
std::tuple<tg::Tensor, tg::Tensor, tg::Tensor> named_xbw() {
  tg::Tensor x = tg::ones({2, 3}, tg::requires_grad());
  tg::Tensor b{1.0f, 2.0f, 3.0f};
  tg::Tensor w = tg::full({2, 3}, 2.0, tg::requires_grad());
  x.set_name("x");
  b.set_name("b");
  w.set_name("w");
  return {x, b, w};
}

// ---- custom ops, written as core/autograd.hpp shows -------------------------

// y = x³ with the rule dy/dx = factor·x²: right for 3, wrong otherwise.
tg::Tensor cube_with_rule_factor(const tg::Tensor& x, double factor) {
  const xt::xarray<double> value = xt::pow(x.value<double>(), 3);
  return tg::record(factor == 3.0 ? "cube" : "bad_cube", {x}, tg::Tensor(value))
      .save({x})
      .backward([factor](const tg::GradContext& c) {
        const auto& x = c.saved[0];
        return tg::Grads{c.grad * factor * x * x};
      });
}

// y = x³, dy/dx = 3x²
tg::Tensor cube(const tg::Tensor& x) { return cube_with_rule_factor(x, 3.0); }

// The same op with a wrong rule (2x² instead of 3x²), for gradcheck to reject.
tg::Tensor bad_cube(const tg::Tensor& x) { return cube_with_rule_factor(x, 2.0); }

// y = ln(1 + e^x), dy/dx = sigmoid(x)
tg::Tensor softplus(const tg::Tensor& x) {
  xt::xarray<double> y = x.to_xarray<double>();
  for (double& v : y) v = std::log1p(std::exp(v));
  return tg::record("softplus", {x}, tg::Tensor(y))
      .save({x})
      .backward([](const tg::GradContext& c) {
        return tg::Grads{c.grad * tg::sigmoid(c.saved[0])};
      });
}

// y = 2^x elementwise, dy/dx = ln 2 · y: reads its own output.
tg::Tensor exp2(const tg::Tensor& x) {
  xt::xarray<double> y = x.to_xarray<double>();
  for (double& v : y) v = std::exp2(v);
  return tg::record("exp2", {x}, tg::Tensor(y))
      .saves_output()
      .backward([](const tg::GradContext& c) {
        return tg::Grads{c.grad * c.output * std::log(2.0)};
      });
}

}  // namespace

// ============================================================================
// recording
// ============================================================================

TEST_CASE("an op is recorded only when one of its inputs requires grad") {
  tg::tape().clear();
  tg::Tensor a{1.0f, 2.0f, 3.0f};
  tg::Tensor b{4.0f, 5.0f, 6.0f};
  tg::Tensor c = tg::exp(a * b + a);
  CHECK(tg::tape().size() == 0);
  CHECK(tg::tape().empty());
  CHECK_FALSE(c.requires_grad());
  CHECK(c.is_leaf());

  tg::Tensor x(xt::xarray<float>{1.0f, 2.0f, 3.0f}, true);
  tg::Tensor d = x * b;  // x requires grad
  CHECK(tg::tape().size() == 1);
  CHECK(d.requires_grad());
  CHECK_FALSE(d.is_leaf());
  tg::Tensor e = a + d;  // only the second input requires grad
  CHECK(tg::tape().size() == 2);
  CHECK(e.requires_grad());
  tg::Tensor f = a * 2.0;  // constant again
  CHECK(tg::tape().size() == 2);
  CHECK_FALSE(f.requires_grad());
  check_values(e, {1 + 1 * 4, 2 + 2 * 5, 3 + 3 * 6});
}

TEST_CASE("nothing is recorded under NoGradGuard, and grad mode comes back after it") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<float>{1.0f, 2.0f, 3.0f}, true);
  tg::Tensor z;  // outlives the guards: its entry lives as long as it does
  REQUIRE(tg::grad_enabled());
  {
    tg::NoGradGuard no_grad;
    CHECK_FALSE(tg::grad_enabled());
    tg::Tensor y = tg::exp(x * x);
    CHECK(tg::tape().size() == 0);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    check_values(y, {std::exp(1.0), std::exp(4.0), std::exp(9.0)});
    {
      tg::GradModeGuard on(true);  // guards nest
      CHECK(tg::grad_enabled());
      z = x * 2.0;
      CHECK(z.requires_grad());
      CHECK(tg::tape().size() == 1);
    }
    CHECK_FALSE(tg::grad_enabled());
    {
      tg::NoGradGuard again;
      CHECK_FALSE(tg::grad_enabled());
    }
    CHECK_FALSE(tg::grad_enabled());
  }
  CHECK(tg::grad_enabled());
  tg::Tensor w = x * x;
  CHECK(w.requires_grad());
  CHECK(tg::tape().size() == 2);
}

TEST_CASE("recorded entries: op names, input and output shapes, which inputs need grad") {
  tg::tape().clear();
  auto [x, b, w] = named_xbw();
  tg::Tensor y = x + b;       // add  (2, 3), (3,) -> (2, 3)
  tg::Tensor p = y * w;       // mul  (2, 3), (2, 3) -> (2, 3)
  tg::Tensor z = tg::sum(p);  // sum  (2, 3) -> ()
  REQUIRE(tg::tape().size() == 3);

  const tg::TapeEntry& add = tg::tape()[0];
  CHECK(add.op == "add");
  CHECK(std::string(add.dtype()) == "float32");
  REQUIRE(add.num_inputs() == 2);
  CHECK(add.input_shape(0) == tg::Shape{2, 3});
  CHECK(add.input_shape(1) == tg::Shape{3});
  CHECK(add.output_shape() == tg::Shape{2, 3});
  CHECK(add.input_requires_grad(0));
  CHECK_FALSE(add.input_requires_grad(1));
  CHECK(add.input_label(0) == "x");
  CHECK(add.input_label(1) == "b");
  CHECK(add.input_creator(0) == 0);  // leaves
  CHECK(add.input_creator(1) == 0);
  CHECK(add.output_alive());
  CHECK(add.saved_bytes() == 0);  // the gradient of a sum needs no values

  const tg::TapeEntry& mul = tg::tape()[1];
  CHECK(mul.op == "mul");
  REQUIRE(mul.num_inputs() == 2);
  CHECK(mul.input_shape(0) == tg::Shape{2, 3});
  CHECK(mul.input_shape(1) == tg::Shape{2, 3});
  CHECK(mul.output_shape() == tg::Shape{2, 3});
  CHECK(mul.input_requires_grad(0));
  CHECK(mul.input_requires_grad(1));
  CHECK(mul.input_creator(0) == add.id);  // y was made by the add entry
  CHECK(mul.input_label(0) == "#" + std::to_string(add.id));
  CHECK(mul.input_label(1) == "w");
  CHECK(mul.saved_bytes() == 2 * 6 * sizeof(float));  // both inputs need grad: both saved

  const tg::TapeEntry& sum = tg::tape()[2];
  CHECK(sum.op == "sum");
  REQUIRE(sum.num_inputs() == 1);
  CHECK(sum.input_shape(0) == tg::Shape{2, 3});
  CHECK(sum.output_shape() == tg::Shape{});
  CHECK(sum.input_requires_grad(0));
  CHECK(sum.input_creator(0) == mul.id);
  CHECK(sum.saved_bytes() == 0);
  CHECK(add.id < mul.id);
  CHECK(mul.id < sum.id);

  CHECK(tg::tape().find(add.id) == &tg::tape()[0]);
  CHECK(tg::tape().find(sum.id) == &tg::tape()[2]);
  CHECK(tg::tape().find(sum.id + 1000) == nullptr);
  CHECK(z.item() == doctest::Approx(2 * 2 * (2 + 3 + 4)));  // Σ (1 + b)·2 over 2 rows

  // Double-precision entries say so.
  tg::Tensor d(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor e = tg::tanh(d);
  REQUIRE(tg::tape().size() == 4);
  CHECK(tg::tape()[3].op == "tanh");
  CHECK(std::string(tg::tape()[3].dtype()) == "float64");
  CHECK(tg::tape()[3].input_label(0) == "leaf");  // unnamed leaf that requires grad
}

// ============================================================================
// backward
// ============================================================================

TEST_CASE("backward of sum(w * x + b) fills the leaves' grad; non-leaves get none") {
  tg::tape().clear();
  tg::Tensor w(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  tg::Tensor x = tg::tensor({4.0, 5.0, 6.0}, tg::kFloat64);                          // a constant
  tg::Tensor b(xt::xarray<double>(0.5), true);          // a 0-d bias, broadcast
  tg::Tensor wx = w * x;
  tg::Tensor y = tg::sum(wx + b);
  CHECK(y.item() == doctest::Approx(4 + 10 + 18 + 3 * 0.5));
  y.backward();
  check_values(w.grad(), {4.0, 5.0, 6.0});  // dy/dw = x
  REQUIRE(b.grad().defined());
  CHECK(b.grad().shape() == tg::Shape{});  // the gradient has b's shape
  CHECK(b.grad().item() == doctest::Approx(3.0));  // b was added to 3 elements
  CHECK_FALSE(x.grad().defined());  // x does not require grad
  CHECK_FALSE(wx.grad().defined());  // non-leaf
  CHECK_FALSE(y.grad().defined());
  CHECK_FALSE(w.grad().requires_grad());  // a plain value outside create_graph
}

TEST_CASE("backward through a two-layer network with matmul matches hand-written loops") {
  tg::tape().clear();
  const std::vector<std::vector<double>> xv{{0.5, -1.0}, {1.5, 0.25}, {-0.75, 2.0}};  // (3, 2)
  const std::vector<std::vector<double>> w1v{{0.1, -0.2, 0.3, 0.4}, {-0.5, 0.6, 0.7, -0.8}};  // (2, 4)
  const std::vector<double> b1v{0.01, -0.02, 0.03, 0.0};                                   // (4,)
  const std::vector<std::vector<double>> w2v{{1.0, -1.0}, {0.5, 2.0}, {-1.5, 0.25}, {0.75, -0.5}};  // (4, 2)

  tg::Tensor x = tg::tensor({{0.5, -1.0}, {1.5, 0.25}, {-0.75, 2.0}}, tg::kFloat64);
  x.requires_grad_();
  tg::Tensor w1 = tg::tensor({{0.1, -0.2, 0.3, 0.4}, {-0.5, 0.6, 0.7, -0.8}}, tg::kFloat64);
  w1.requires_grad_();
  tg::Tensor b1(xt::xarray<double>{0.01, -0.02, 0.03, 0.0}, true);
  tg::Tensor w2 = tg::tensor({{1.0, -1.0}, {0.5, 2.0}, {-1.5, 0.25}, {0.75, -0.5}}, tg::kFloat64);
  w2.requires_grad_();

  // loss = Σ (tanh(x·w1 + b1)·w2)²
  tg::Tensor h = tg::tanh(tg::matmul(x, w1) + b1);
  tg::Tensor out = tg::matmul(h, w2);
  tg::Tensor loss = tg::sum(out * out);
  loss.backward();

  // The same by loops.
  const std::size_t n = 3, in = 2, hid = 4, o = 2;
  std::vector<std::vector<double>> hv(n, std::vector<double>(hid)), ov(n, std::vector<double>(o));
  double expected_loss = 0;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < hid; ++j) {
      double z = b1v[j];
      for (std::size_t k = 0; k < in; ++k) z += xv[i][k] * w1v[k][j];
      hv[i][j] = std::tanh(z);
    }
    for (std::size_t k = 0; k < o; ++k) {
      double s = 0;
      for (std::size_t j = 0; j < hid; ++j) s += hv[i][j] * w2v[j][k];
      ov[i][k] = s;
      expected_loss += s * s;
    }
  }
  CHECK(loss.item() == doctest::Approx(expected_loss));
  // dout = 2·out; dw2 = hᵀ·dout; dh = dout·w2ᵀ; dz = dh·(1 - h²);
  // dw1 = xᵀ·dz; db1 = Σ_i dz; dx = dz·w1ᵀ
  std::vector<double> dw2(hid * o, 0.0), dw1(in * hid, 0.0), db1(hid, 0.0), dx(n * in, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> dz(hid, 0.0);
    for (std::size_t j = 0; j < hid; ++j) {
      double dh = 0;
      for (std::size_t k = 0; k < o; ++k) {
        dw2[j * o + k] += hv[i][j] * 2 * ov[i][k];
        dh += 2 * ov[i][k] * w2v[j][k];
      }
      dz[j] = dh * (1 - hv[i][j] * hv[i][j]);
      db1[j] += dz[j];
    }
    for (std::size_t k = 0; k < in; ++k)
      for (std::size_t j = 0; j < hid; ++j) {
        dw1[k * hid + j] += xv[i][k] * dz[j];
        dx[i * in + k] += dz[j] * w1v[k][j];
      }
  }
  check_values(w2.grad(), dw2, 1e-9);
  check_values(w1.grad(), dw1, 1e-9);
  check_values(b1.grad(), db1, 1e-9);
  check_values(x.grad(), dx, 1e-9);
  CHECK(w1.grad().shape() == tg::Shape{2, 4});
  CHECK(b1.grad().shape() == tg::Shape{4});
  CHECK_FALSE(h.grad().defined());
  CHECK_FALSE(out.grad().defined());
}

TEST_CASE("a tensor used several times receives the sum of its gradients") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, -2.0, 3.0}, true);
  // x*x uses x as both inputs of one op; x + x*3 reaches it twice more.
  tg::Tensor y = tg::sum(x * x + x + x * 3.0);
  y.backward();
  check_values(x.grad(), {2 * 1.0 + 4, 2 * -2.0 + 4, 2 * 3.0 + 4});

  tg::Tensor a(xt::xarray<double>{0.5, 1.5}, true);
  tg::sum(a + a).backward();  // the same gradient tensor goes to both inputs
  check_values(a.grad(), {2.0, 2.0});

  // An intermediate used twice: h = 2a, y = Σ (h·h + h), dy/da = 2·(2h + 1).
  a.zero_grad();
  tg::Tensor h = a * 2.0;
  tg::sum(h * h + h).backward();
  check_values(a.grad(), {2 * (2 * 1.0 + 1), 2 * (2 * 3.0 + 1)});
}

TEST_CASE("backward(seed) on a non-scalar gives the vector-Jacobian product") {
  tg::tape().clear();
  // y = a·b, (2, 3)·(3, 2); with seed s: da = s·bᵀ, db = aᵀ·s.
  const double av[2][3] = {{1, 2, -1}, {0.5, -3, 2}};
  const double bv[3][2] = {{2, 1}, {-1, 0.5}, {4, -2}};
  const double sv[2][2] = {{1, -2}, {0.25, 3}};
  tg::Tensor a = tg::tensor({{1.0, 2.0, -1.0}, {0.5, -3.0, 2.0}}, tg::kFloat64);
  a.requires_grad_();
  tg::Tensor b = tg::tensor({{2.0, 1.0}, {-1.0, 0.5}, {4.0, -2.0}}, tg::kFloat64);
  b.requires_grad_();
  tg::Tensor s = tg::tensor({{1.0, -2.0}, {0.25, 3.0}}, tg::kFloat64);
  tg::Tensor y = tg::matmul(a, b);
  y.backward(s);
  std::vector<double> da(6, 0.0), db(6, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 3; ++k)
      for (int j = 0; j < 2; ++j) {
        da[i * 3 + k] += sv[i][j] * bv[k][j];
        db[k * 2 + j] += av[i][k] * sv[i][j];
      }
  check_values(a.grad(), da);
  check_values(b.grad(), db);
  // The seed is the caller's: it is left as it was.
  check_values(s, {1.0, -2.0, 0.25, 3.0});

  // Elementwise: y = e^x · c, dy/dx = v · c · e^x.
  tg::Tensor x(xt::xarray<double>{0.0, 1.0, -1.0}, true);
  tg::Tensor c = tg::tensor({2.0, -1.0, 3.0}, tg::kFloat64);
  tg::Tensor v = tg::tensor({1.0, 0.5, -2.0}, tg::kFloat64);
  (tg::exp(x) * c).backward(v);
  check_values(x.grad(), {1.0 * 2.0 * 1.0, 0.5 * -1.0 * std::exp(1.0), -2.0 * 3.0 * std::exp(-1.0)});
}

TEST_CASE("gradients accumulate across backward calls; zero_grad drops them") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  tg::sum(x * x).backward();
  check_values(x.grad(), {2.0, 4.0, 6.0});
  tg::sum(x * 5.0).backward();
  check_values(x.grad(), {7.0, 9.0, 11.0});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  tg::sum(x * x * x).backward();
  check_values(x.grad(), {3.0, 12.0, 27.0});
}

// ============================================================================
// retain_graph and freeing
// ============================================================================

TEST_CASE("retain_graph keeps the graph for a second backward, which doubles the gradient") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  tg::Tensor y = tg::sum(x * x);
  REQUIRE(tg::tape().size() == 2);
  y.backward({}, /*retain_graph=*/true);
  check_values(x.grad(), {2.0, 4.0, 6.0});
  CHECK(tg::tape().size() == 2);  // kept
  y.backward();
  check_values(x.grad(), {4.0, 8.0, 12.0});
  CHECK(tg::tape().size() == 0);  // consumed by the non-retained backward

  CHECK_THROWS_AS(y.backward(), tg::AutogradError);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("freed"), tg::AutogradError);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("retain_graph"), tg::AutogradError);
  check_values(x.grad(), {4.0, 8.0, 12.0});  // the failed calls added nothing
}

TEST_CASE("a non-retained backward removes only the entries it went through") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor other = tg::sum(tg::exp(x));  // an independent graph: exp, sum
  tg::Tensor y = tg::sum(x * 3.0);         // mul, sum
  REQUIRE(tg::tape().size() == 4);
  y.backward();
  REQUIRE(tg::tape().size() == 2);
  CHECK(tg::tape()[0].op == "exp");
  CHECK(tg::tape()[1].op == "sum");
  check_values(x.grad(), {3.0, 3.0});
  other.backward();  // still usable
  check_values(x.grad(), {3.0 + std::exp(1.0), 3.0 + std::exp(2.0)});
  CHECK(tg::tape().size() == 0);
}

TEST_CASE("a gradient that reaches an intermediate whose entry was freed is an error") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor h = x * x;
  tg::sum(h).backward();  // frees the entry of h
  tg::Tensor again = tg::sum(h * 2.0);  // a new graph on top of h
  CHECK_THROWS_WITH_AS(again.backward(), doctest::Contains("freed"), tg::AutogradError);
  // The failed backward leaves no half-summed gradient behind and grad mode on.
  CHECK(tg::grad_enabled());
  check_values(x.grad(), {2.0, 4.0});
}

TEST_CASE("a failed backward changes no leaf's grad, even one it reached before failing") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor h = x * x;
  tg::sum(h).backward();  // frees the entry of h; x.grad = 2x
  // x is reached directly and through the freed h: neither path may land.
  tg::Tensor again = tg::sum(h * 2.0 + x);
  CHECK_THROWS_WITH_AS(again.backward(), doctest::Contains("freed"), tg::AutogradError);
  check_values(x.grad(), {2.0, 4.0});
}

TEST_CASE("backward or tape().clear() from inside a hook is refused with a clear error") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor other(xt::xarray<double>{3.0}, true);
  tg::Tensor side = tg::sum(other * other);
  tg::Tensor h = x * 3.0;
  h.register_hook([&](const tg::Tensor& g) {
    side.backward();
    return g;
  });
  CHECK_THROWS_WITH_AS(tg::sum(h).backward(), doctest::Contains("another backward is running"),
                       tg::AutogradError);
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(other.grad().defined());

  tg::Tensor y(xt::xarray<double>{1.0}, true);
  tg::Tensor k = y * 2.0;
  k.register_hook([](const tg::Tensor& g) {
    tg::tape().clear();
    return g;
  });
  CHECK_THROWS_WITH_AS(tg::sum(k).backward(), doctest::Contains("tape().clear()"), tg::AutogradError);
  CHECK_FALSE(y.grad().defined());

  // The tape is usable afterwards: the side graph still runs.
  side.backward();
  check_values(other.grad(), {6.0});
}

TEST_CASE("a tensor recorded on another thread cannot be backpropagated here, and says so") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor y;
  std::thread([&] { y = tg::sum(x * x); }).join();  // on that thread's tape, now gone
  tg::Tensor local = x * 2.0;  // an entry here, so ids could coincide if they were per tape
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("recorded on another thread"), tg::AutogradError);
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("after a non-retained backward the tape holds no saved bytes") {
  tg::tape().clear();
  tg::Tensor a = tg::ones({3, 4}, tg::requires_grad());
  tg::Tensor b = tg::full({3, 4}, 2.0, tg::requires_grad());
  tg::Tensor y = tg::sum(tg::exp(a * b));
  REQUIRE(tg::tape().saved_bytes() == 96 + 48);
  y.backward();
  CHECK(tg::tape().size() == 0);
  CHECK(tg::tape().saved_bytes() == 0);
  tg::tape().reset_peak();
  CHECK(tg::tape().peak_saved_bytes() == 0);

  // With entries left over, the total is what those entries hold.
  tg::tape().clear();
  tg::Tensor other = tg::exp(a);                  // stays: 48 B (its output)
  tg::Tensor z = tg::sum(a * b);                  // consumed: 96 B
  REQUIRE(tg::tape().saved_bytes() == 48 + 96);
  z.backward();
  REQUIRE(tg::tape().size() == 1);
  CHECK(tg::tape()[0].saved_bytes() == 48);
  CHECK(tg::tape().saved_bytes() == 48);
  std::ostringstream os;
  os << tg::tape();
  CHECK(contains(os.str(), "1 entries; saved tensors hold 48 B"));
}

TEST_CASE("a non-retained backward frees each op's saved tensors as soon as its rule has run") {
  tg::tape().clear();
  tg::Tensor a = tg::ones({3, 4}, tg::requires_grad());
  tg::Tensor b = tg::full({3, 4}, 2.0, tg::requires_grad());
  tg::Tensor p = a * b;         // saves a and b: 96 B
  tg::Tensor e = tg::exp(p);    // saves its output: 48 B
  tg::Tensor y = tg::sum(e);
  REQUIRE(tg::tape().saved_bytes() == 96 + 48);
  // p's gradient arrives after exp's rule ran and before mul's does.
  std::size_t during = 0;
  p.register_hook([&](const tg::Tensor&) {
    during = tg::tape().saved_bytes();
    return tg::Tensor();
  });
  y.backward();
  CHECK(during == 96);  // exp's output went; mul's inputs are still needed
  CHECK(tg::tape().saved_bytes() == 0);
  for (double g : values_of(a.grad())) CHECK(g == doctest::Approx(2.0 * std::exp(2.0)));

  // retain_graph keeps everything until the graph dies.
  tg::Tensor y2 = tg::sum(tg::exp(a * b));
  y2.backward({}, /*retain_graph=*/true);
  CHECK(tg::tape().saved_bytes() == 96 + 48);
}

TEST_CASE("a result that only the tape holds lets its values go; a rule that reads them saved them") {
  tg::tape().clear();
  const tg::Tensor x(xt::xarray<double>{0.5, 1.0, 2.0}, true);
  tg::Tensor h = x + 1.0;  // add's rule reads no values
  tg::Tensor e = tg::exp(h);  // exp's rule reads its result
  const std::weak_ptr<tg::Storage> h_values = h.impl()->storage, e_values = e.impl()->storage;
  const tg::Tensor y = tg::sum(e);
  h = tg::Tensor();
  e = tg::Tensor();
  CHECK(h_values.expired());        // exp holds h for its gradient, not its values
  CHECK_FALSE(e_values.expired());  // saved for exp's rule
  const tg::Tensor g = tg::grad({y}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  const tg::Tensor gg = tg::grad({tg::sum(g)}, {x})[0];
  for (std::size_t i = 0; i < 3; ++i) {
    const double ex = std::exp(values_of(x)[i] + 1.0);
    CHECK(values_of(g)[i] == doctest::Approx(ex));   // d/dx exp(x + 1)
    CHECK(values_of(gg)[i] == doctest::Approx(ex));  // and the second derivative, through exp's result
  }
}

TEST_CASE("a rule that reads its result without saving it is told the values were freed") {
  tg::tape().clear();
  const tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  const auto doubled = [](const tg::Tensor& v) {
    return tg::record("doubled", {v}, v.detach() * 2.0).backward([](const tg::GradContext& c) {
      return tg::Grads{c.grad * c.output};  // reads the result, but did not call saves_output()
    });
  };
  const tg::Tensor y = tg::sum(doubled(x));  // nothing but the tape holds doubled's result
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("were freed when its last handle went"), tg::AutogradError);
}

TEST_CASE("a rule frees a saved tensor it has finished with; retain_graph keeps it") {
  for (const bool retain : {false, true}) {
    tg::tape().clear();
    tg::Tensor a(xt::xarray<double>{1.0, 2.0}, true);
    const tg::Tensor b = tg::tensor({3.0, 4.0}, tg::kFloat64);
    std::size_t bytes_after_free = 0;
    bool still_readable = true;
    const tg::Tensor z = tg::record("scaled", {a}, a * b)
                             .save({tg::tensor({3.0, 4.0}, tg::kFloat64)})
                             .backward([&](const tg::GradContext& c) {
                               const tg::Tensor da = c.grad * c.saved[0];
                               c.free_saved(0);
                               bytes_after_free = tg::tape().saved_bytes();
                               still_readable = c.saved[0].defined();
                               return tg::Grads{da};
                             });
    REQUIRE(tg::tape().saved_bytes() == 2 * sizeof(double));
    tg::sum(z).backward({}, retain);
    CHECK(bytes_after_free == (retain ? 2 * sizeof(double) : 0));
    CHECK(still_readable == retain);
    check_values(a.grad(), {3.0, 4.0});
  }
}

// ============================================================================
// saved bytes
// ============================================================================

TEST_CASE("saved bytes: what each op saves, the total, the peak and reset_peak") {
  tg::tape().clear();
  tg::tape().reset_peak();
  CHECK(tg::tape().saved_bytes() == 0);
  CHECK(tg::tape().peak_saved_bytes() == 0);

  tg::Tensor a = tg::ones({3, 4}, tg::requires_grad());
  tg::Tensor b = tg::full({3, 4}, 2.0, tg::requires_grad());
  tg::Tensor p = a * b;  // saves a and b: 2 · 12 floats
  REQUIRE(tg::tape().size() == 1);
  CHECK(tg::tape()[0].saved_bytes() == 96);
  CHECK(tg::tape().saved_bytes() == 96);
  CHECK(tg::tape().peak_saved_bytes() == 96);

  tg::Tensor e = tg::exp(p);  // saves its output: 12 floats
  CHECK(tg::tape()[1].saved_bytes() == 48);
  CHECK(tg::tape().saved_bytes() == 144);

  tg::Tensor s = tg::sum(e);  // saves nothing
  CHECK(tg::tape()[2].saved_bytes() == 0);
  CHECK(tg::tape().saved_bytes() == 144);
  CHECK(tg::tape().peak_saved_bytes() == 144);

  tg::Tensor d(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  {
    tg::Tensor t = tg::log(d);  // saves its input: 3 doubles
    CHECK(tg::tape().saved_bytes() == 144 + 24);
  }
  // The log's output died with the block: its entry and bytes went at once.
  CHECK(tg::tape().size() == 3);
  CHECK(tg::tape().saved_bytes() == 144);
  CHECK(tg::tape().peak_saved_bytes() == 144 + 24);
  tg::tape().prune();  // nothing more to drop
  CHECK(tg::tape().size() == 3);
  CHECK(tg::tape().saved_bytes() == 144);
  CHECK(tg::tape().peak_saved_bytes() == 144 + 24);  // the peak stays...
  tg::tape().reset_peak();
  CHECK(tg::tape().peak_saved_bytes() == 144);  // ...until reset to what is held now

  s.backward({}, /*retain_graph=*/true);  // retained: nothing freed
  CHECK(tg::tape().saved_bytes() == 144);

  tg::tape().clear();
  CHECK(tg::tape().saved_bytes() == 0);
  tg::tape().reset_peak();
  CHECK(tg::tape().peak_saved_bytes() == 0);
}

TEST_CASE("the total stays right when a saved tensor is resized after it was recorded") {
  tg::tape().clear();
  tg::Tensor a = tg::ones({3, 4}, tg::requires_grad());
  tg::Tensor b = tg::ones({3, 4}, tg::requires_grad());
  {
    tg::Tensor p = a * b;  // saves a and b: 96 B
    REQUIRE(tg::tape().saved_bytes() == 96);
    b.set_data(tg::zeros({100}));  // in place, behind the tape's back
  }
  tg::tape().prune();  // p is gone: its entry goes, and what it was counted for
  CHECK(tg::tape().size() == 0);
  CHECK(tg::tape().saved_bytes() == 0);
}

TEST_CASE("saved bytes are printed in KiB from 1024 bytes on") {
  tg::tape().clear();
  tg::tape().reset_peak();
  tg::Tensor a = tg::ones({16, 16}, tg::requires_grad());
  tg::Tensor b = tg::ones({16, 16}, tg::requires_grad());
  tg::Tensor p = a * b;  // saves a and b: 2 · 256 · 4 = 2048 bytes
  CHECK(tg::tape().saved_bytes() == 2048);
  std::ostringstream os;
  os << tg::tape();
  INFO(os.str());
  CHECK(contains(os.str(), "2.0 KiB"));
  CHECK(contains(os.str(), "1 entries; saved tensors hold 2.0 KiB (peak 2.0 KiB)"));
}

// ============================================================================
// printing and DOT
// ============================================================================

TEST_CASE("printing the tape: ops, shapes, needs-grad flags, bytes, and the closing line") {
  tg::tape().clear();
  tg::tape().reset_peak();
  auto [x, b, w] = named_xbw();
  tg::Tensor y = x + b;
  tg::Tensor z = tg::sum(y * w);
  REQUIRE(tg::tape().size() == 3);
  const std::string add_id = std::to_string(tg::tape()[0].id);
  const std::string mul_id = std::to_string(tg::tape()[1].id);

  std::ostringstream os;
  os << tg::tape();
  const std::string text = os.str();
  INFO(text);
  const auto all = lines(text);
  REQUIRE(all.size() == 5);  // header, three entries, closing line
  CHECK(contains(all[0], "op"));
  CHECK(contains(all[0], "inputs -> output"));
  CHECK(contains(all[0], "needs grad"));
  CHECK(contains(all[0], "saved"));
  CHECK_FALSE(contains(text, "|grad out|"));  // no backward yet

  const std::string add = line_with(text, "add");
  CHECK(all[1] == add);  // in tape order
  CHECK(all[1].find(add_id) == all[1].find_first_not_of(' '));  // starts with the id
  CHECK(contains(add, "x(2, 3) b(3,) -> (2, 3)"));
  CHECK(contains(add, "y-"));
  CHECK(ends_with(add, " 0 B"));
  const std::string mul = line_with(text, "mul");
  CHECK(all[2] == mul);
  CHECK(contains(mul, "#" + add_id + "(2, 3) w(2, 3) -> (2, 3)"));
  CHECK(contains(mul, "yy"));
  CHECK(ends_with(mul, " 48 B"));
  const std::string sum = line_with(text, "sum");
  CHECK(all[3] == sum);
  CHECK(contains(sum, "#" + mul_id + "(2, 3) -> ()"));
  CHECK(ends_with(sum, " 0 B"));

  CHECK(all.back() == "3 entries; saved tensors hold 48 B (peak 48 B)");

  // After a retained backward the gradient norms of the outputs are shown:
  // |dz/dz| = 1 for the sum; |dz/d(y·w)| = |ones(2, 3)| = √6 for the mul;
  // |dz/dy| = |w| = √(6·4) for the add.
  z.backward({}, /*retain_graph=*/true);
  std::ostringstream after;
  after << tg::tape();
  const std::string text2 = after.str();
  INFO(text2);
  CHECK(contains(lines(text2)[0], "|grad out|"));
  CHECK(ends_with(line_with(text2, "sum"), " 1"));
  CHECK(ends_with(line_with(text2, "mul"), " 2.449"));
  CHECK(ends_with(line_with(text2, "add"), " 4.899"));
  CHECK(contains(text2, "3 entries"));
  CHECK(contains(text2, "peak"));
}

TEST_CASE("printing a double-precision entry marks it (float64)") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor y = tg::exp(x);
  std::ostringstream os;
  os << tg::tape();
  CHECK(contains(os.str(), "exp (float64)"));
  CHECK(contains(os.str(), "leaf(2,) -> (2,)"));
  CHECK(contains(os.str(), "1 entries; saved tensors hold 16 B"));
}

TEST_CASE("to_dot: a digraph with one node per entry, leaves as named boxes, edges") {
  tg::tape().clear();
  tg::Tensor x = tg::ones({2, 3}, tg::requires_grad());
  x.set_name("x");
  tg::Tensor b{1.0f, 2.0f, 3.0f};
  b.set_name("b");
  tg::Tensor y = x * b;           // mul <- x, b
  tg::Tensor z = tg::sum(y + x);  // add <- mul, x; sum <- add
  REQUIRE(tg::tape().size() == 3);
  const auto mul = tg::tape()[0].id, add = tg::tape()[1].id, sum = tg::tape()[2].id;

  const std::string dot = tg::tape().to_dot();
  INFO(dot);
  CHECK(dot.rfind("digraph", 0) == 0);
  CHECK(ends_with(dot, "}\n"));
  for (auto id : {mul, add, sum}) CHECK(contains(dot, "op" + std::to_string(id) + " [shape=ellipse"));
  CHECK(count(dot, "shape=ellipse") == 3);
  CHECK(contains(dot, "#" + std::to_string(mul) + " mul"));
  CHECK(contains(dot, "#" + std::to_string(add) + " add"));
  CHECK(contains(dot, "#" + std::to_string(sum) + " sum"));

  // x is used twice but drawn once; only x (requires grad) is bold.
  CHECK(count(dot, "shape=box") == 2);
  CHECK(count(dot, "style=bold") == 1);
  CHECK(contains(dot, "label=\"x\\n(2, 3)\""));
  CHECK(contains(dot, "label=\"b\\n(3,)\""));

  // x->mul, b->mul, mul->add, x->add, add->sum
  CHECK(count(dot, " -> ") == 5);
  CHECK(contains(dot, "op" + std::to_string(mul) + " -> op" + std::to_string(add)));
  CHECK(contains(dot, "op" + std::to_string(add) + " -> op" + std::to_string(sum)));
  CHECK(contains(dot, "-> op" + std::to_string(sum) + " [label=\"(2, 3)\"]"));
}

// ============================================================================
// higher order
// ============================================================================

TEST_CASE("create_graph: the second derivative of x³ at 2 is 12") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>(2.0), true);
  tg::Tensor y = x * x * x;
  y.backward({}, /*retain_graph=*/false, /*create_graph=*/true);
  const tg::Tensor g = x.grad();
  REQUIRE(g.defined());
  CHECK(g.item() == doctest::Approx(12.0));  // 3x²
  CHECK(g.requires_grad());                  // differentiable

  // through tg::grad: nothing touches x.grad
  const auto second = tg::grad({g}, {x}, {}, /*retain_graph=*/true);
  REQUIRE(second.size() == 1);
  REQUIRE(second[0].defined());
  CHECK(second[0].item() == doctest::Approx(12.0));  // 6x
  CHECK(x.grad().item() == doctest::Approx(12.0));

  // through backward on the gradient itself
  x.zero_grad();
  g.backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().item() == doctest::Approx(12.0));
}

TEST_CASE("create_graph: a Hessian-vector product of sum(x*x*x) is 6·x·v") {
  tg::tape().clear();
  const std::vector<double> xv{1.0, -2.0, 0.5, 3.0}, vv{2.0, 1.0, -4.0, 0.25};
  tg::Tensor x(xt::xarray<double>{1.0, -2.0, 0.5, 3.0}, true);
  tg::Tensor v = tg::tensor({2.0, 1.0, -4.0, 0.25}, tg::kFloat64);
  tg::Tensor f = tg::sum(x * x * x);
  const auto g = tg::grad({f}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true);
  REQUIRE(g[0].defined());
  std::vector<double> first(4), hv(4);
  for (std::size_t i = 0; i < 4; ++i) {
    first[i] = 3 * xv[i] * xv[i];
    hv[i] = 6 * xv[i] * vv[i];
  }
  check_values(g[0], first);
  const auto h = tg::grad({g[0]}, {x}, {v}, /*retain_graph=*/true);
  check_values(h[0], hv);
  // The same as the gradient of the scalar <g, v>.
  const auto h2 = tg::grad({tg::sum(g[0] * v)}, {x});
  check_values(h2[0], hv);
  CHECK_FALSE(x.grad().defined());
}

// ============================================================================
// tg::grad
// ============================================================================

TEST_CASE("tg::grad returns gradients without touching .grad") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  tg::Tensor unused(xt::xarray<double>{5.0}, true);
  tg::Tensor f = tg::sum(x * x * 2.0);
  const auto g = tg::grad({f}, {x, unused});
  REQUIRE(g.size() == 2);
  check_values(g[0], {4.0, 8.0, 12.0});  // 4x
  CHECK_FALSE(g[1].defined());           // f does not depend on it
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(unused.grad().defined());
}

TEST_CASE("tg::grad with respect to an intermediate, and with several seeded outputs") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, -1.0}, true);
  tg::Tensor h = x * x;
  tg::Tensor f = tg::sum(h * 3.0);
  const auto gh = tg::grad({f}, {h, x});
  check_values(gh[0], {3.0, 3.0});    // df/dh
  check_values(gh[1], {6.0, -6.0});   // df/dx = 6x
  CHECK_FALSE(h.grad().defined());

  // Σ_k <y_k, s_k>: y1 = 2x with s1, y2 = x² with s2 -> 2·s1 + 2x·s2.
  tg::Tensor y1 = x * 2.0;
  tg::Tensor y2 = x * x;
  tg::Tensor s1 = tg::tensor({1.0, 10.0}, tg::kFloat64), s2 = tg::tensor({0.5, 2.0}, tg::kFloat64);
  const auto g = tg::grad({y1, y2}, {x}, {s1, s2});
  check_values(g[0], {2 * 1.0 + 2 * 1.0 * 0.5, 2 * 10.0 + 2 * -1.0 * 2.0});
  CHECK_FALSE(x.grad().defined());
}

// ============================================================================
// hooks
// ============================================================================

TEST_CASE("a hook on a leaf sees its gradient; a returned tensor replaces it") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  std::vector<double> seen;
  int calls = 0;
  x.register_hook([&](const tg::Tensor& g) {
    ++calls;
    seen = values_of(g);
    return tg::Tensor();  // undefined: keep the gradient
  });
  tg::sum(x * x).backward();
  CHECK(calls == 1);
  CHECK(seen == std::vector<double>{2.0, 4.0, 6.0});
  check_values(x.grad(), {2.0, 4.0, 6.0});

  tg::Tensor w(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  w.register_hook([](const tg::Tensor& g) { return g * 2.0; });
  tg::sum(w * w).backward();
  check_values(w.grad(), {4.0, 8.0, 12.0});
}

TEST_CASE("a hook on an intermediate sees the summed gradient and changes what flows back") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, -2.0}, true);
  tg::Tensor h = x * 3.0;  // h = 3x
  std::vector<double> seen;
  int calls = 0;
  h.register_hook([&](const tg::Tensor& g) {
    ++calls;
    seen = values_of(g);
    return g * 2.0;
  });
  // f = Σ (h·h + h): df/dh = 2h + 1, doubled by the hook, times dh/dx = 3.
  tg::sum(h * h + h).backward();
  CHECK(calls == 1);  // once, with both contributions summed
  CHECK(seen == std::vector<double>{2 * 3.0 + 1, 2 * -6.0 + 1});
  check_values(x.grad(), {3 * 2 * (2 * 3.0 + 1), 3 * 2 * (2 * -6.0 + 1)});
  CHECK_FALSE(h.grad().defined());

  // Hooks run in order, each seeing what the previous returned.
  tg::Tensor y(xt::xarray<double>{1.0}, true);
  double second_saw = 0;
  y.register_hook([](const tg::Tensor& g) { return g * 10.0; });
  y.register_hook([&](const tg::Tensor& g) {
    second_saw = g.item();
    return g + 1.0;
  });
  tg::sum(y * 2.0).backward();
  CHECK(second_saw == doctest::Approx(20.0));
  check_values(y.grad(), {21.0});
}

// ============================================================================
// custom ops
// ============================================================================

TEST_CASE("a custom op through tg::record: values, gradients, the tape, gradcheck") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{-1.5, 0.5, 2.0}, true);
  tg::Tensor y = cube(x);
  check_values(y, {-3.375, 0.125, 8.0});
  REQUIRE(tg::tape().size() == 1);
  CHECK(tg::tape()[0].op == "cube");
  CHECK(tg::tape()[0].saved_bytes() == 3 * sizeof(double));
  std::ostringstream os;
  os << tg::tape();
  CHECK(contains(os.str(), "cube (float64)"));

  tg::sum(y).backward();
  check_values(x.grad(), {3 * 2.25, 3 * 0.25, 3 * 4.0});

  // Under NoGradGuard a custom op is not recorded either.
  {
    tg::NoGradGuard no_grad;
    CHECK_FALSE(cube(x).requires_grad());
  }

  auto f = [](const std::vector<tg::Tensor>& in) { return cube(in[0]); };
  tg::Tensor p(xt::xarray<double>{{0.3, -1.2}, {2.0, 0.7}}, true);
  const auto first = tg::gradcheck(f, {p});
  CHECK_MESSAGE(first.passed, first.message);
  CHECK(first.checked == 4);
  const auto second = tg::gradgradcheck(f, {p});
  CHECK_MESSAGE(second.passed, second.message);

  // gradcheck is not vacuous: a wrong rule fails it.
  const auto wrong = tg::gradcheck([](const std::vector<tg::Tensor>& in) { return bad_cube(in[0]); }, {p});
  CHECK_FALSE(wrong.passed);
  CHECK(contains(wrong.message, "gradcheck failed"));
}

TEST_CASE("a custom softplus op: gradient is sigmoid, twice differentiable") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{-2.0, 0.0, 1.0}, true);
  tg::Tensor y = softplus(x);
  check_values(y, {std::log(1 + std::exp(-2.0)), std::log(2.0), std::log(1 + std::exp(1.0))});
  REQUIRE(tg::tape().size() == 1);
  CHECK(tg::tape()[0].op == "softplus");
  tg::sum(y).backward();
  check_values(x.grad(), {1 / (1 + std::exp(2.0)), 0.5, 1 / (1 + std::exp(-1.0))});

  auto f = [](const std::vector<tg::Tensor>& in) { return softplus(in[0] * in[1]); };
  const std::vector<tg::Tensor> inputs{tg::Tensor(xt::xarray<double>{0.4, -1.1, 2.5}, true),
                                        tg::Tensor(xt::xarray<double>{1.5, 0.3, -0.8}, true)};
  const auto first = tg::gradcheck(f, inputs);
  CHECK_MESSAGE(first.passed, first.message);
  const auto second = tg::gradgradcheck(f, inputs);
  CHECK_MESSAGE(second.passed, second.message);
}

TEST_CASE("a custom op that reads its output, and the needs_grad flags its rule sees") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{0.0, 1.0, 3.0}, true);
  tg::Tensor y = exp2(x);
  check_values(y, {1.0, 2.0, 8.0});
  CHECK(tg::tape()[0].saved_bytes() == 3 * sizeof(double));  // the output
  tg::sum(y).backward();
  check_values(x.grad(), {std::log(2.0), 2 * std::log(2.0), 8 * std::log(2.0)});

  // a·b with only a requiring grad: the rule is told so.
  std::vector<bool> flags;
  tg::Tensor a(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor b = tg::tensor({3.0, 4.0}, tg::kFloat64);
  tg::Tensor z = tg::record("scaled", {a, b}, tg::tensor({3.0, 8.0}, tg::kFloat64))
                      .save({b})
                      .backward([&](const tg::GradContext& c) {
                        flags = c.needs_grad;
                        CHECK(c.input_shape(0) == tg::Shape{2});
                        return tg::Grads{c.grad * c.saved[0], tg::Tensor()};
                      });
  tg::sum(z).backward();
  CHECK(flags == std::vector<bool>{true, false});
  check_values(a.grad(), {3.0, 4.0});
  CHECK_FALSE(b.grad().defined());
}

// ============================================================================
// pruning
// ============================================================================

TEST_CASE("prune drops the entries whose outputs were destroyed, and their chains") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor kept = tg::exp(x);  // alive: stays
  {
    tg::Tensor a = x * 2.0;      // a's entry: its output lives on inside b's entry
    tg::Tensor b = tg::log(a);
    tg::tape().prune();          // every output is alive: nothing goes
    CHECK(tg::tape().size() == 3);
    CHECK(tg::tape()[0].output_alive());
    CHECK(tg::tape()[2].output_alive());
  }
  // Changed on purpose: b's death dropped its entry at once (no prune
  // needed), which freed a, so a's entry went too.
  REQUIRE(tg::tape().size() == 1);
  tg::tape().prune();
  REQUIRE(tg::tape().size() == 1);
  CHECK(tg::tape()[0].op == "exp");
  CHECK(tg::tape().saved_bytes() == 2 * sizeof(double));  // only exp's output

  {
    tg::Tensor c = x * x;
    CHECK(tg::tape().size() == 2);
  }
  CHECK(tg::tape().size() == 1);  // c's entry went with c
  tg::tape().prune();
  CHECK(tg::tape().size() == 1);
  tg::sum(kept).backward();  // what was kept still works
  check_values(x.grad(), {std::exp(1.0), std::exp(2.0)});
}

TEST_CASE("a long loop whose results are dropped does not grow the tape without bound") {
  tg::tape().clear();
  tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  for (int i = 0; i < 3000; ++i) {
    tg::Tensor t = x * 2.0;  // recorded, then destroyed
    (void)t;
  }
  CHECK(tg::tape().size() <= 1024);  // freed along the way
  std::size_t held = 0;
  for (std::size_t i = 0; i < tg::tape().size(); ++i) held += tg::tape()[i].saved_bytes();
  CHECK(tg::tape().saved_bytes() == held);
  tg::tape().prune();
  CHECK(tg::tape().size() == 0);
  CHECK(tg::tape().saved_bytes() == 0);
}

TEST_CASE("which inputs need a gradient is fixed when the op runs") {
  // Turning on requires_grad for a constant after it was used changes nothing
  // about the recorded op: its rule still computes (and saved) only x's gradient.
  tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::Tensor c(xt::xarray<double>{3.0, 4.0});
  tg::Tensor y = tg::sum(x * c);
  c.requires_grad_(true);
  y.backward();
  CHECK(x.grad().to_xarray<double>() == xt::xarray<double>{3.0, 4.0});
  CHECK_FALSE(c.grad().defined());
}

// ============================================================================
// the runtime-dtype API: one reshape parameter, untemplated grad, hook handles,
// retain_grad, shared buffers, bounds, DOT escaping, freeing, in-place checks
// ============================================================================

TEST_CASE("reshape takes a brace list with or without -1, and its gradient is the inverse reshape") {
  tg::tape().clear();
  tg::Tensor x = tg::tensor({1, 2, 3, 4, 5, 6}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  const tg::Tensor a = tg::reshape(x, {3, 2});
  const tg::Tensor b = tg::reshape(x, {-1, 2});
  CHECK(a.shape() == tg::Shape{3, 2});
  CHECK(b.shape() == tg::Shape{3, 2});
  check_values(a, {1, 2, 3, 4, 5, 6});
  CHECK(tg::reshape(x, tg::Shape{2, 3}).shape() == tg::Shape{2, 3});  // a Shape works too
  // Σ a·w: dx = w read row-major.
  const tg::Tensor w = tg::tensor({{1, -1}, {2, -2}, {3, -3}}, tg::kFloat64);
  tg::sum(b * w).backward();
  check_values(x.grad(), {1, -1, 2, -2, 3, -3});
}

TEST_CASE("tg::grad without template arguments, with create_graph") {
  tg::tape().clear();
  tg::Tensor x = tg::tensor({1.0, 2.0}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::Tensor y = tg::sum(x * x * x);
  const std::vector<tg::Tensor> g = tg::grad({y}, {x}, {}, false, true);
  REQUIRE(g.size() == 1);
  check_values(g[0], {3.0, 12.0});  // 3x²
  CHECK(g[0].requires_grad());      // differentiable again
  const auto h = tg::grad({tg::sum(g[0])}, {x});
  check_values(h[0], {6.0, 12.0});  // 6x
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("register_hook returns a handle whose remove() stops the hook") {
  tg::tape().clear();
  tg::Tensor x = tg::tensor({1.0, 2.0}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  int calls = 0;
  tg::HookHandle doubling = x.register_hook([&](const tg::Tensor& g) {
    ++calls;
    return g * 2.0;
  });
  int other_calls = 0;
  x.register_hook([&](const tg::Tensor&) {
    ++other_calls;
    return tg::Tensor();
  });
  tg::sum(x * 3.0).backward();
  CHECK(calls == 1);
  CHECK(other_calls == 1);
  check_values(x.grad(), {6.0, 6.0});

  doubling.remove();
  x.zero_grad();
  tg::sum(x * 3.0).backward();
  CHECK(calls == 1);        // not called again
  CHECK(other_calls == 2);  // the other hook stays
  check_values(x.grad(), {3.0, 3.0});
  doubling.remove();  // twice is harmless

  // A handle outliving its tensor is harmless too.
  tg::HookHandle orphan;
  {
    tg::Tensor t = tg::ones({2}, tg::requires_grad());
    orphan = t.register_hook([](const tg::Tensor& g) { return g; });
  }
  orphan.remove();
  tg::HookHandle().remove();  // and a default one
}

TEST_CASE("retain_grad() makes a non-leaf keep its .grad") {
  tg::tape().clear();
  tg::Tensor x = tg::tensor({1.0, -2.0}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::Tensor h = x * 3.0;  // {3, -6}
  tg::Tensor k = h + 1.0;  // does not retain
  h.retain_grad();
  tg::sum(h * h + k).backward();  // d/dh = 2h + 1
  REQUIRE(h.grad().defined());
  check_values(h.grad(), {7.0, -11.0});
  CHECK_FALSE(h.grad().requires_grad());
  CHECK_FALSE(k.grad().defined());
  check_values(x.grad(), {21.0, -33.0});  // 3·(2h + 1)
  CHECK_FALSE(h.is_leaf());

  CHECK_THROWS_AS(tg::ones({2}).retain_grad(), tg::AutogradError);
}

TEST_CASE("the tape counts a buffer saved by two entries once") {
  tg::tape().clear();
  tg::tape().reset_peak();
  tg::Tensor a = tg::ones({3, 4}, tg::requires_grad());
  tg::Tensor b = tg::full({3, 4}, 2.0, tg::requires_grad());
  tg::Tensor p = a * b;       // saves a and b: 48 + 48 B
  tg::Tensor l = tg::log(a);  // saves a again: 48 B, already counted
  REQUIRE(tg::tape().size() == 2);
  CHECK(tg::tape()[0].saved_bytes() == 96);
  CHECK(tg::tape()[1].saved_bytes() == 48);
  CHECK(tg::tape().saved_bytes() == 96);
  CHECK(tg::tape().peak_saved_bytes() == 96);
  p = tg::Tensor();  // the mul entry goes; the log still holds a
  CHECK(tg::tape().size() == 1);
  CHECK(tg::tape().saved_bytes() == 48);
  l = tg::Tensor();
  CHECK(tg::tape().size() == 0);
  CHECK(tg::tape().saved_bytes() == 0);

  // One entry saving one buffer twice counts it once as well.
  tg::Tensor sq = a * a;
  CHECK(tg::tape()[0].saved_bytes() == 48);
  CHECK(tg::tape().saved_bytes() == 48);
}

TEST_CASE("tape()[i] past the end throws ValueError") {
  tg::tape().clear();
  CHECK_THROWS_AS(tg::tape()[0], tg::ValueError);
  tg::Tensor x = tg::ones({2}, tg::requires_grad());
  tg::Tensor y = x * 2.0;
  REQUIRE(tg::tape().size() == 1);
  CHECK(tg::tape()[0].op == "mul");
  CHECK_THROWS_AS(tg::tape()[1], tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::tape()[7], doctest::Contains("tape()[7]"), tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::tape()[7], doctest::Contains("1 entries"), tg::ValueError);
  const tg::Tape& const_tape = tg::tape();
  CHECK_THROWS_AS(const_tape[1], tg::ValueError);
}

TEST_CASE("to_dot escapes a tensor name holding a double quote and a backslash") {
  tg::tape().clear();
  tg::Tensor x = tg::ones({2}, tg::requires_grad());
  x.set_name("say \"hi\" \\ bye");
  tg::Tensor y = x * 2.0;
  const std::string dot = tg::tape().to_dot();
  INFO(dot);
  // In DOT, " and \ inside a quoted label are written \" and \\.
  CHECK(contains(dot, "label=\"say \\\"hi\\\" \\\\ bye\\n(2,)\""));
  CHECK_FALSE(contains(dot, "say \"hi"));  // never raw

  // Parsed back: the label of the bold box, read up to its closing unescaped quote.
  const std::string head = "style=bold, label=\"";
  const auto at = dot.find(head);
  REQUIRE(at != std::string::npos);
  std::string label;
  std::size_t i = at + head.size();
  for (; i < dot.size() && dot[i] != '"'; ++i) {
    if (dot[i] == '\\') {
      ++i;
      label += dot[i] == 'n' ? '\n' : dot[i];
    } else {
      label += dot[i];
    }
  }
  REQUIRE(i < dot.size());
  CHECK(label == "say \"hi\" \\ bye\n(2,)");
}

TEST_CASE("a loss that is never backpropagated frees its graph as soon as it dies") {
  tg::tape().clear();
  tg::tape().reset_peak();
  tg::Tensor x = tg::ones({3}, tg::requires_grad());
  tg::Tensor w = tg::full({3}, 2.0, tg::requires_grad());
  {
    tg::Tensor loss = tg::sum(tg::exp(x * w) * x);
    CHECK(tg::tape().size() == 4);
    CHECK(tg::tape().saved_bytes() > 0);
  }
  CHECK(tg::tape().size() == 0);
  CHECK(tg::tape().saved_bytes() == 0);

  // With a live graph beside it, the tape goes back to just that graph.
  tg::Tensor kept = tg::exp(w);  // saves its output: 12 B
  const std::size_t size_before = tg::tape().size();
  REQUIRE(size_before == 1);
  REQUIRE(tg::tape().saved_bytes() == 12);
  {
    tg::Tensor h = x * w;  // kept while h lives
    {
      tg::Tensor loss = tg::sum(tg::log(h) * kept);
      CHECK(tg::tape().size() == size_before + 4);
    }
    CHECK(tg::tape().size() == size_before + 1);  // only h's entry is left
    CHECK(tg::tape()[size_before].op == "mul");
  }
  CHECK(tg::tape().size() == size_before);
  CHECK(tg::tape().saved_bytes() == 12);
  tg::sum(kept).backward();  // the graph that stayed still works
  check_values(w.grad(), {std::exp(2.0), std::exp(2.0), std::exp(2.0)});
}

TEST_CASE("a chain of 100000 ops is freed when its end dies, without overflowing the stack") {
  tg::tape().clear();
  tg::Tensor x = tg::ones({3}, tg::requires_grad());
  {
    tg::Tensor y = x;
    for (int i = 0; i < 100000; ++i) y = y * 1.0;  // each entry saves the 0-d factor: 4 B
    tg::Tensor loss = tg::sum(y);
    CHECK(tg::tape().size() == 100001);
    CHECK(tg::tape().saved_bytes() == 100000 * sizeof(float));
  }
  CHECK(tg::tape().size() == 0);
  CHECK(tg::tape().saved_bytes() == 0);
}

TEST_CASE("changing a saved tensor in place between forward and backward makes backward throw") {
  tg::tape().clear();
  // y = v·v saves v; dy/dv = 2v = 4 at v = 2. After v *= 10 the rule would
  // read 20 and return 40: backward must refuse instead.
  tg::Tensor v = tg::full({}, 2.0, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::Tensor y = v * v;
  {
    tg::NoGradGuard no_grad;
    v.mul_(10.0);
  }
  CHECK_THROWS_AS(y.backward(), tg::AutogradError);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("mul backward"), tg::AutogradError);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("modified in place"), tg::AutogradError);
  CHECK_FALSE(v.grad().defined());

  // An op that reads its output (exp) refuses when the output was written, through any view.
  tg::tape().clear();
  tg::Tensor x = tg::tensor({0.0, 1.0}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::Tensor e = tg::exp(x);
  e.detach().add_(tg::ones({2}, tg::kFloat64));
  CHECK_THROWS_WITH_AS(tg::sum(e).backward(), doctest::Contains("exp backward"), tg::AutogradError);
  CHECK_FALSE(x.grad().defined());

  // Writes through mutable_data count too.
  tg::tape().clear();
  tg::Tensor u = tg::tensor({1.0, 3.0}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::Tensor l = tg::log(u);
  {
    tg::NoGradGuard no_grad;
    u.mutable_data<double>()[0] = 5.0;
  }
  CHECK_THROWS_WITH_AS(tg::sum(l).backward(), doctest::Contains("log backward"), tg::AutogradError);

  // A tensor that no rule saved may change: add saves nothing, so d(v + v)/dv = 2 stays right.
  tg::tape().clear();
  tg::Tensor s = tg::full({}, 2.0, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::Tensor z = s + s;
  {
    tg::NoGradGuard no_grad;
    s.mul_(10.0);
  }
  z.backward();
  CHECK(s.grad().item() == 2.0);

  // Unchanged, the same product gives the right 4.
  tg::tape().clear();
  tg::Tensor r = tg::full({}, 2.0, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  (r * r).backward();
  CHECK(r.grad().item() == 4.0);
}

// ============================================================================
// anomaly mode
// ============================================================================

TEST_CASE("anomaly mode names the op whose result is not finite, forward") {
  const tg::Tensor x = tg::tensor({1.0, -1.0}, tg::kFloat64).requires_grad_();
  CHECK(std::isnan(tg::log(x).value<double>()(1)));  // off: NaN passes silently, as in torch
  tg::AnomalyGuard anomaly;
  CHECK(tg::anomaly_enabled());
  CHECK_THROWS_WITH_AS(tg::log(x), doctest::Contains("anomaly: the result of log (forward; inputs (2,)) holds nan at element 1"),
                       tg::AnomalyError);
  CHECK(tg::log(tg::abs(x)).value<double>()(1) == 0.0);  // finite results pass
}

TEST_CASE("anomaly mode names the backward that produced the first non-finite gradient") {
  tg::Tensor x = tg::tensor({4.0, 0.0}, tg::kFloat64).requires_grad_();
  tg::AnomalyGuard anomaly;
  const tg::Tensor y = tg::sum(tg::sqrt(x) * 3.0);  // finite forward: sqrt(0) = 0
  const std::uint64_t sqrt_entry = tg::tape()[tg::tape().size() - 3].id;
  REQUIRE(tg::tape()[tg::tape().size() - 3].op == "sqrt");
  try {
    y.backward();
    FAIL("backward should have thrown");
  } catch (const tg::AnomalyError& e) {
    const std::string message = e.what();
    CHECK(message.find("backward of tape entry #" + std::to_string(sqrt_entry) + " (sqrt, inputs (2,))") !=
          std::string::npos);
    CHECK(message.find("holds inf at element 1") != std::string::npos);
  }
  CHECK_FALSE(x.grad().defined());  // a failed backward leaves .grad untouched
  tg::tape().clear();
}

TEST_CASE("anomaly mode is off by default and restored by the guard") {
  CHECK_FALSE(tg::anomaly_enabled());
  {
    tg::AnomalyGuard on;
    {
      tg::AnomalyGuard off(false);
      CHECK_FALSE(tg::anomaly_enabled());
    }
    CHECK(tg::anomaly_enabled());
  }
  CHECK_FALSE(tg::anomaly_enabled());
}
