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

#include <tapegrad/tapegrad.hpp>

namespace {

// Every element of t, in row-major order, against `expected`.
template <class T>
void check_values(const tg::BasicTensor<T>& t, const std::vector<double>& expected,
                  double eps = 1e-6) {
  REQUIRE(t.defined());
  REQUIRE(t.numel() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(double(t.data()[i]) == doctest::Approx(expected[i]).epsilon(eps));
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
  tg::Tensor x = tg::ones<float>({2, 3}, true);
  tg::Tensor b{1.0f, 2.0f, 3.0f};
  tg::Tensor w = tg::full<float>({2, 3}, 2.0f, true);
  x.set_name("x");
  b.set_name("b");
  w.set_name("w");
  return {x, b, w};
}

// ---- custom ops, written as core/autograd.hpp shows -------------------------

// y = x³ with the rule dy/dx = factor·x²: right for 3, wrong otherwise.
tg::DTensor cube_with_rule_factor(const tg::DTensor& x, double factor) {
  return tg::record(factor == 3.0 ? "cube" : "bad_cube", {x}, xt::xarray<double>(xt::pow(x.value(), 3)))
      .save({x})
      .backward([factor](const tg::GradContext<double>& c) {
        const auto& x = c.saved[0];
        return tg::Grads<double>{c.grad * factor * x * x};
      });
}

// y = x³, dy/dx = 3x²
tg::DTensor cube(const tg::DTensor& x) { return cube_with_rule_factor(x, 3.0); }

// The same op with a wrong rule (2x² instead of 3x²), for gradcheck to reject.
tg::DTensor bad_cube(const tg::DTensor& x) { return cube_with_rule_factor(x, 2.0); }

// y = ln(1 + e^x), dy/dx = sigmoid(x)
tg::DTensor softplus(const tg::DTensor& x) {
  xt::xarray<double> y(x.value().shape());
  for (std::size_t i = 0; i < x.numel(); ++i) y.data()[i] = std::log1p(std::exp(x.data()[i]));
  return tg::record("softplus", {x}, std::move(y))
      .save({x})
      .backward([](const tg::GradContext<double>& c) {
        return tg::Grads<double>{c.grad * tg::sigmoid(c.saved[0])};
      });
}

// y = 2^x elementwise, dy/dx = ln 2 · y: reads its own output.
tg::DTensor exp2(const tg::DTensor& x) {
  xt::xarray<double> y(x.value().shape());
  for (std::size_t i = 0; i < x.numel(); ++i) y.data()[i] = std::exp2(x.data()[i]);
  return tg::record("exp2", {x}, std::move(y))
      .saves_output()
      .backward([](const tg::GradContext<double>& c) {
        return tg::Grads<double>{c.grad * c.output * std::log(2.0)};
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
      tg::Tensor z = x * 2.0;
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
  CHECK(std::string(add.dtype()) == "f32");
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
  CHECK(z.value()() == doctest::Approx(2 * 2 * (2 + 3 + 4)));  // Σ (1 + b)·2 over 2 rows

  // Double-precision entries say so.
  tg::DTensor d(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor e = tg::tanh(d);
  REQUIRE(tg::tape().size() == 4);
  CHECK(tg::tape()[3].op == "tanh");
  CHECK(std::string(tg::tape()[3].dtype()) == "f64");
  CHECK(tg::tape()[3].input_label(0) == "leaf");  // unnamed leaf that requires grad
}

// ============================================================================
// backward
// ============================================================================

TEST_CASE("backward of sum(w * x + b) fills the leaves' grad; non-leaves get none") {
  tg::tape().clear();
  tg::DTensor w(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  tg::DTensor x{4.0, 5.0, 6.0};                          // a constant
  tg::DTensor b(xt::xarray<double>(0.5), true);          // a 0-d bias, broadcast
  tg::DTensor wx = w * x;
  tg::DTensor y = tg::sum(wx + b);
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

  tg::DTensor x({{0.5, -1.0}, {1.5, 0.25}, {-0.75, 2.0}});
  x.requires_grad_();
  tg::DTensor w1({{0.1, -0.2, 0.3, 0.4}, {-0.5, 0.6, 0.7, -0.8}});
  w1.requires_grad_();
  tg::DTensor b1(xt::xarray<double>{0.01, -0.02, 0.03, 0.0}, true);
  tg::DTensor w2({{1.0, -1.0}, {0.5, 2.0}, {-1.5, 0.25}, {0.75, -0.5}});
  w2.requires_grad_();

  // loss = Σ (tanh(x·w1 + b1)·w2)²
  tg::DTensor h = tg::tanh(tg::matmul(x, w1) + b1);
  tg::DTensor out = tg::matmul(h, w2);
  tg::DTensor loss = tg::sum(out * out);
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
  tg::DTensor x(xt::xarray<double>{1.0, -2.0, 3.0}, true);
  // x*x uses x as both inputs of one op; x + x*3 reaches it twice more.
  tg::DTensor y = tg::sum(x * x + x + x * 3.0);
  y.backward();
  check_values(x.grad(), {2 * 1.0 + 4, 2 * -2.0 + 4, 2 * 3.0 + 4});

  tg::DTensor a(xt::xarray<double>{0.5, 1.5}, true);
  tg::sum(a + a).backward();  // the same gradient tensor goes to both inputs
  check_values(a.grad(), {2.0, 2.0});

  // An intermediate used twice: h = 2a, y = Σ (h·h + h), dy/da = 2·(2h + 1).
  a.zero_grad();
  tg::DTensor h = a * 2.0;
  tg::sum(h * h + h).backward();
  check_values(a.grad(), {2 * (2 * 1.0 + 1), 2 * (2 * 3.0 + 1)});
}

TEST_CASE("backward(seed) on a non-scalar gives the vector-Jacobian product") {
  tg::tape().clear();
  // y = a·b, (2, 3)·(3, 2); with seed s: da = s·bᵀ, db = aᵀ·s.
  const double av[2][3] = {{1, 2, -1}, {0.5, -3, 2}};
  const double bv[3][2] = {{2, 1}, {-1, 0.5}, {4, -2}};
  const double sv[2][2] = {{1, -2}, {0.25, 3}};
  tg::DTensor a({{1.0, 2.0, -1.0}, {0.5, -3.0, 2.0}});
  a.requires_grad_();
  tg::DTensor b({{2.0, 1.0}, {-1.0, 0.5}, {4.0, -2.0}});
  b.requires_grad_();
  tg::DTensor s({{1.0, -2.0}, {0.25, 3.0}});
  tg::DTensor y = tg::matmul(a, b);
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
  tg::DTensor x(xt::xarray<double>{0.0, 1.0, -1.0}, true);
  tg::DTensor c{2.0, -1.0, 3.0};
  tg::DTensor v{1.0, 0.5, -2.0};
  (tg::exp(x) * c).backward(v);
  check_values(x.grad(), {1.0 * 2.0 * 1.0, 0.5 * -1.0 * std::exp(1.0), -2.0 * 3.0 * std::exp(-1.0)});
}

TEST_CASE("gradients accumulate across backward calls; zero_grad drops them") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{1.0, 2.0, 3.0}, true);
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
  tg::DTensor x(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  tg::DTensor y = tg::sum(x * x);
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
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor other = tg::sum(tg::exp(x));  // an independent graph: exp, sum
  tg::DTensor y = tg::sum(x * 3.0);         // mul, sum
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
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor h = x * x;
  tg::sum(h).backward();  // frees the entry of h
  tg::DTensor again = tg::sum(h * 2.0);  // a new graph on top of h
  CHECK_THROWS_WITH_AS(again.backward(), doctest::Contains("freed"), tg::AutogradError);
  // The failed backward leaves no half-summed gradient behind and grad mode on.
  CHECK(tg::grad_enabled());
  check_values(x.grad(), {2.0, 4.0});
}

TEST_CASE("a failed backward changes no leaf's grad, even one it reached before failing") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor h = x * x;
  tg::sum(h).backward();  // frees the entry of h; x.grad = 2x
  // x is reached directly and through the freed h: neither path may land.
  tg::DTensor again = tg::sum(h * 2.0 + x);
  CHECK_THROWS_WITH_AS(again.backward(), doctest::Contains("freed"), tg::AutogradError);
  check_values(x.grad(), {2.0, 4.0});
}

TEST_CASE("backward or tape().clear() from inside a hook is refused with a clear error") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor other(xt::xarray<double>{3.0}, true);
  tg::DTensor side = tg::sum(other * other);
  tg::DTensor h = x * 3.0;
  h.register_hook([&](const tg::DTensor& g) {
    side.backward();
    return g;
  });
  CHECK_THROWS_WITH_AS(tg::sum(h).backward(), doctest::Contains("another backward is running"),
                       tg::AutogradError);
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(other.grad().defined());

  tg::DTensor y(xt::xarray<double>{1.0}, true);
  tg::DTensor k = y * 2.0;
  k.register_hook([](const tg::DTensor& g) {
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
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor y;
  std::thread([&] { y = tg::sum(x * x); }).join();  // on that thread's tape, now gone
  tg::DTensor local = x * 2.0;  // an entry here, so ids could coincide if they were per tape
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("recorded on another thread"), tg::AutogradError);
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("after a non-retained backward the tape holds no saved bytes") {
  tg::tape().clear();
  tg::Tensor a = tg::ones<float>({3, 4}, true);
  tg::Tensor b = tg::full<float>({3, 4}, 2.0f, true);
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

// ============================================================================
// saved bytes
// ============================================================================

TEST_CASE("saved bytes: what each op saves, the total, the peak and reset_peak") {
  tg::tape().clear();
  tg::tape().reset_peak();
  CHECK(tg::tape().saved_bytes() == 0);
  CHECK(tg::tape().peak_saved_bytes() == 0);

  tg::Tensor a = tg::ones<float>({3, 4}, true);
  tg::Tensor b = tg::full<float>({3, 4}, 2.0f, true);
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

  tg::DTensor d(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  {
    tg::DTensor t = tg::log(d);  // saves its input: 3 doubles
    CHECK(tg::tape().saved_bytes() == 144 + 24);
  }
  CHECK(tg::tape().peak_saved_bytes() == 144 + 24);
  tg::tape().prune();  // the log's output is gone: its entry and bytes go too
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
  tg::Tensor a = tg::ones<float>({3, 4}, true);
  tg::Tensor b = tg::ones<float>({3, 4}, true);
  {
    tg::Tensor p = a * b;  // saves a and b: 96 B
    REQUIRE(tg::tape().saved_bytes() == 96);
    b.value() = xt::zeros<float>({100});  // in place, behind the tape's back
  }
  tg::tape().prune();  // p is gone: its entry goes, and what it was counted for
  CHECK(tg::tape().size() == 0);
  CHECK(tg::tape().saved_bytes() == 0);
}

TEST_CASE("saved bytes are printed in KiB from 1024 bytes on") {
  tg::tape().clear();
  tg::tape().reset_peak();
  tg::Tensor a = tg::ones<float>({16, 16}, true);
  tg::Tensor p = a * a;  // saves a twice: 2 · 256 · 4 = 2048 bytes
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

TEST_CASE("printing a double-precision entry marks it (f64)") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor y = tg::exp(x);
  std::ostringstream os;
  os << tg::tape();
  CHECK(contains(os.str(), "exp (f64)"));
  CHECK(contains(os.str(), "leaf(2,) -> (2,)"));
  CHECK(contains(os.str(), "1 entries; saved tensors hold 16 B"));
}

TEST_CASE("to_dot: a digraph with one node per entry, leaves as named boxes, edges") {
  tg::tape().clear();
  tg::Tensor x = tg::ones<float>({2, 3}, true);
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
  tg::DTensor x(xt::xarray<double>(2.0), true);
  tg::DTensor y = x * x * x;
  y.backward({}, /*retain_graph=*/false, /*create_graph=*/true);
  const tg::DTensor g = x.grad();
  REQUIRE(g.defined());
  CHECK(g.item() == doctest::Approx(12.0));  // 3x²
  CHECK(g.requires_grad());                  // differentiable

  // through tg::grad: nothing touches x.grad
  const auto second = tg::grad<double>({g}, {x}, {}, /*retain_graph=*/true);
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
  tg::DTensor x(xt::xarray<double>{1.0, -2.0, 0.5, 3.0}, true);
  tg::DTensor v{2.0, 1.0, -4.0, 0.25};
  tg::DTensor f = tg::sum(x * x * x);
  const auto g = tg::grad<double>({f}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true);
  REQUIRE(g[0].defined());
  std::vector<double> first(4), hv(4);
  for (std::size_t i = 0; i < 4; ++i) {
    first[i] = 3 * xv[i] * xv[i];
    hv[i] = 6 * xv[i] * vv[i];
  }
  check_values(g[0], first);
  const auto h = tg::grad<double>({g[0]}, {x}, {v}, /*retain_graph=*/true);
  check_values(h[0], hv);
  // The same as the gradient of the scalar <g, v>.
  const auto h2 = tg::grad<double>({tg::sum(g[0] * v)}, {x});
  check_values(h2[0], hv);
  CHECK_FALSE(x.grad().defined());
}

// ============================================================================
// tg::grad
// ============================================================================

TEST_CASE("tg::grad returns gradients without touching .grad") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  tg::DTensor unused(xt::xarray<double>{5.0}, true);
  tg::DTensor f = tg::sum(x * x * 2.0);
  const auto g = tg::grad<double>({f}, {x, unused});
  REQUIRE(g.size() == 2);
  check_values(g[0], {4.0, 8.0, 12.0});  // 4x
  CHECK_FALSE(g[1].defined());           // f does not depend on it
  CHECK_FALSE(x.grad().defined());
  CHECK_FALSE(unused.grad().defined());
}

TEST_CASE("tg::grad with respect to an intermediate, and with several seeded outputs") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{1.0, -1.0}, true);
  tg::DTensor h = x * x;
  tg::DTensor f = tg::sum(h * 3.0);
  const auto gh = tg::grad<double>({f}, {h, x});
  check_values(gh[0], {3.0, 3.0});    // df/dh
  check_values(gh[1], {6.0, -6.0});   // df/dx = 6x
  CHECK_FALSE(h.grad().defined());

  // Σ_k <y_k, s_k>: y1 = 2x with s1, y2 = x² with s2 -> 2·s1 + 2x·s2.
  tg::DTensor y1 = x * 2.0;
  tg::DTensor y2 = x * x;
  tg::DTensor s1{1.0, 10.0}, s2{0.5, 2.0};
  const auto g = tg::grad<double>({y1, y2}, {x}, {s1, s2});
  check_values(g[0], {2 * 1.0 + 2 * 1.0 * 0.5, 2 * 10.0 + 2 * -1.0 * 2.0});
  CHECK_FALSE(x.grad().defined());
}

// ============================================================================
// hooks
// ============================================================================

TEST_CASE("a hook on a leaf sees its gradient; a returned tensor replaces it") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  std::vector<double> seen;
  int calls = 0;
  x.register_hook([&](const tg::DTensor& g) {
    ++calls;
    seen.assign(g.data(), g.data() + g.numel());
    return tg::DTensor();  // undefined: keep the gradient
  });
  tg::sum(x * x).backward();
  CHECK(calls == 1);
  CHECK(seen == std::vector<double>{2.0, 4.0, 6.0});
  check_values(x.grad(), {2.0, 4.0, 6.0});

  tg::DTensor w(xt::xarray<double>{1.0, 2.0, 3.0}, true);
  w.register_hook([](const tg::DTensor& g) { return g * 2.0; });
  tg::sum(w * w).backward();
  check_values(w.grad(), {4.0, 8.0, 12.0});
}

TEST_CASE("a hook on an intermediate sees the summed gradient and changes what flows back") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{1.0, -2.0}, true);
  tg::DTensor h = x * 3.0;  // h = 3x
  std::vector<double> seen;
  int calls = 0;
  h.register_hook([&](const tg::DTensor& g) {
    ++calls;
    seen.assign(g.data(), g.data() + g.numel());
    return g * 2.0;
  });
  // f = Σ (h·h + h): df/dh = 2h + 1, doubled by the hook, times dh/dx = 3.
  tg::sum(h * h + h).backward();
  CHECK(calls == 1);  // once, with both contributions summed
  CHECK(seen == std::vector<double>{2 * 3.0 + 1, 2 * -6.0 + 1});
  check_values(x.grad(), {3 * 2 * (2 * 3.0 + 1), 3 * 2 * (2 * -6.0 + 1)});
  CHECK_FALSE(h.grad().defined());

  // Hooks run in order, each seeing what the previous returned.
  tg::DTensor y(xt::xarray<double>{1.0}, true);
  double second_saw = 0;
  y.register_hook([](const tg::DTensor& g) { return g * 10.0; });
  y.register_hook([&](const tg::DTensor& g) {
    second_saw = g.data()[0];
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
  tg::DTensor x(xt::xarray<double>{-1.5, 0.5, 2.0}, true);
  tg::DTensor y = cube(x);
  check_values(y, {-3.375, 0.125, 8.0});
  REQUIRE(tg::tape().size() == 1);
  CHECK(tg::tape()[0].op == "cube");
  CHECK(tg::tape()[0].saved_bytes() == 3 * sizeof(double));
  std::ostringstream os;
  os << tg::tape();
  CHECK(contains(os.str(), "cube (f64)"));

  tg::sum(y).backward();
  check_values(x.grad(), {3 * 2.25, 3 * 0.25, 3 * 4.0});

  // Under NoGradGuard a custom op is not recorded either.
  {
    tg::NoGradGuard no_grad;
    CHECK_FALSE(cube(x).requires_grad());
  }

  auto f = [](const std::vector<tg::DTensor>& in) { return cube(in[0]); };
  tg::DTensor p(xt::xarray<double>{{0.3, -1.2}, {2.0, 0.7}}, true);
  const auto first = tg::gradcheck(f, {p});
  CHECK_MESSAGE(first.passed, first.message);
  CHECK(first.checked == 4);
  const auto second = tg::gradgradcheck(f, {p});
  CHECK_MESSAGE(second.passed, second.message);

  // gradcheck is not vacuous: a wrong rule fails it.
  const auto wrong = tg::gradcheck([](const std::vector<tg::DTensor>& in) { return bad_cube(in[0]); }, {p});
  CHECK_FALSE(wrong.passed);
  CHECK(contains(wrong.message, "gradcheck failed"));
}

TEST_CASE("a custom softplus op: gradient is sigmoid, twice differentiable") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{-2.0, 0.0, 1.0}, true);
  tg::DTensor y = softplus(x);
  check_values(y, {std::log(1 + std::exp(-2.0)), std::log(2.0), std::log(1 + std::exp(1.0))});
  REQUIRE(tg::tape().size() == 1);
  CHECK(tg::tape()[0].op == "softplus");
  tg::sum(y).backward();
  check_values(x.grad(), {1 / (1 + std::exp(2.0)), 0.5, 1 / (1 + std::exp(-1.0))});

  auto f = [](const std::vector<tg::DTensor>& in) { return softplus(in[0] * in[1]); };
  const std::vector<tg::DTensor> inputs{tg::DTensor(xt::xarray<double>{0.4, -1.1, 2.5}, true),
                                        tg::DTensor(xt::xarray<double>{1.5, 0.3, -0.8}, true)};
  const auto first = tg::gradcheck(f, inputs);
  CHECK_MESSAGE(first.passed, first.message);
  const auto second = tg::gradgradcheck(f, inputs);
  CHECK_MESSAGE(second.passed, second.message);
}

TEST_CASE("a custom op that reads its output, and the needs_grad flags its rule sees") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{0.0, 1.0, 3.0}, true);
  tg::DTensor y = exp2(x);
  check_values(y, {1.0, 2.0, 8.0});
  CHECK(tg::tape()[0].saved_bytes() == 3 * sizeof(double));  // the output
  tg::sum(y).backward();
  check_values(x.grad(), {std::log(2.0), 2 * std::log(2.0), 8 * std::log(2.0)});

  // a·b with only a requiring grad: the rule is told so.
  std::vector<bool> flags;
  tg::DTensor a(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor b{3.0, 4.0};
  tg::DTensor z = tg::record("scaled", {a, b}, xt::xarray<double>{3.0, 8.0})
                      .save({b})
                      .backward([&](const tg::GradContext<double>& c) {
                        flags = c.needs_grad;
                        CHECK(c.input_shape(0) == tg::Shape{2});
                        return tg::Grads<double>{c.grad * c.saved[0], tg::DTensor()};
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
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor kept = tg::exp(x);  // alive: stays
  {
    tg::DTensor a = x * 2.0;      // a's entry: its output lives on inside b's entry
    tg::DTensor b = tg::log(a);
    tg::tape().prune();
    CHECK(tg::tape().size() == 3);
    CHECK(tg::tape()[0].output_alive());
  }
  REQUIRE(tg::tape().size() == 3);
  CHECK_FALSE(tg::tape()[2].output_alive());  // b is gone
  tg::tape().prune();                         // drops b's entry, which frees a, so a's entry too
  REQUIRE(tg::tape().size() == 1);
  CHECK(tg::tape()[0].op == "exp");
  CHECK(tg::tape().saved_bytes() == 2 * sizeof(double));  // only exp's output

  {
    tg::DTensor c = x * x;
    (void)c;
  }
  CHECK(tg::tape().size() == 2);
  tg::tape().prune();
  CHECK(tg::tape().size() == 1);
  tg::sum(kept).backward();  // what was kept still works
  check_values(x.grad(), {std::exp(1.0), std::exp(2.0)});
}

TEST_CASE("a long loop whose results are dropped does not grow the tape without bound") {
  tg::tape().clear();
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  for (int i = 0; i < 3000; ++i) {
    tg::DTensor t = x * 2.0;  // recorded, then destroyed
    (void)t;
  }
  CHECK(tg::tape().size() <= 1024);  // pruned along the way
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
  tg::DTensor x(xt::xarray<double>{1.0, 2.0}, true);
  tg::DTensor c(xt::xarray<double>{3.0, 4.0});
  tg::DTensor y = tg::sum(x * c);
  c.requires_grad_(true);
  y.backward();
  CHECK(x.grad().value() == xt::xarray<double>{3.0, 4.0});
  CHECK_FALSE(c.grad().defined());
}
