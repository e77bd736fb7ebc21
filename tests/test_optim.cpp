// Optimizers, learning-rate schedulers and gradient clipping, against the
// update formulas of torch.optim written out here element by element.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include <xtensor/xadapt.hpp>

#include <tapegrad/nn/optim.hpp>
#include <tapegrad/tapegrad.hpp>

namespace {

using Vec = std::vector<double>;
constexpr double kPi = 3.14159265358979323846;

// Sets p's gradient to exactly c: the gradient of sum(c * p).
void set_grad(tg::Tensor& p, const Vec& c) {
  p.zero_grad();
  tg::Tensor k(xt::adapt(c, std::vector<std::size_t>(p.shape())));
  tg::sum(k * p).backward();
}

Vec values(const tg::Tensor& p) { return Vec(p.data<double>(), p.data<double>() + p.numel()); }

void check_close(const tg::Tensor& p, const Vec& expected, double eps = 1e-13) {
  REQUIRE(p.dtype() == tg::kFloat64);
  REQUIRE(p.numel() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i)
    CHECK(p.data<double>()[i] == doctest::Approx(expected[i]).epsilon(eps));
}

// Gradients for three steps, hand-chosen: signs change, one element is 0.
const std::vector<Vec> kGrads = {{0.5, -1.0, 2.0, 0.0}, {1.5, 0.25, -3.0, 1.0}, {-0.75, 2.0, 0.5, -2.0}};
const Vec kStart = {1.0, -2.0, 0.5, 3.0};

// A float64 parameter holding kStart.
tg::Tensor param() { return tg::Tensor(xt::adapt(kStart, {kStart.size()}), true); }

// Runs `steps` steps of opt on p with the gradients above.
template <class Opt>
void run(Opt& opt, tg::Tensor& p, std::size_t steps = 3) {
  for (std::size_t t = 0; t < steps; ++t) {
    set_grad(p, kGrads[t]);
    opt.step();
  }
}

}  // namespace

// ---- SGD -------------------------------------------------------------------

TEST_CASE("SGD without momentum: p -= lr * g") {
  tg::Tensor p = param();
  tg::optim::SGD sgd({p}, 0.1);
  run(sgd, p);
  Vec q = kStart;
  for (const Vec& g : kGrads)
    for (std::size_t i = 0; i < q.size(); ++i) q[i] -= 0.1 * g[i];
  check_close(p, q);
  CHECK(sgd.steps(0) == 3);
  CHECK(sgd.lr() == 0.1);
  CHECK(sgd.name() == "SGD");
}

TEST_CASE("SGD with momentum, dampening and weight decay") {
  const double lr = 0.1, mu = 0.9, damp = 0.5, wd = 0.01;
  tg::Tensor p = param();
  tg::optim::SGD sgd({p}, lr, mu, damp, wd);
  run(sgd, p);
  Vec q = kStart, b(q.size());
  for (std::size_t t = 0; t < 3; ++t)
    for (std::size_t i = 0; i < q.size(); ++i) {
      const double g = kGrads[t][i] + wd * q[i];
      b[i] = t == 0 ? g : mu * b[i] + (1 - damp) * g;  // the first buffer is g itself, undamped
      q[i] -= lr * b[i];
    }
  check_close(p, q);
}

TEST_CASE("SGD with Nesterov momentum") {
  const double lr = 0.05, mu = 0.8, wd = 0.1;
  tg::Tensor p = param();
  tg::optim::SGD sgd({p}, lr, mu, 0.0, wd, /*nesterov=*/true);
  run(sgd, p);
  Vec q = kStart, b(q.size());
  for (std::size_t t = 0; t < 3; ++t)
    for (std::size_t i = 0; i < q.size(); ++i) {
      const double g = kGrads[t][i] + wd * q[i];
      b[i] = t == 0 ? g : mu * b[i] + g;
      q[i] -= lr * (g + mu * b[i]);
    }
  check_close(p, q);
}

TEST_CASE("SGD on a quadratic: the gradient comes from the current value") {
  // loss = sum(p * p) / 2: g = p, so plain SGD scales p by (1 - lr) each step.
  tg::Tensor p(xt::xarray<double>{2.0, -4.0}, true);
  tg::optim::SGD sgd({p}, 0.25);
  for (int t = 0; t < 4; ++t) {
    sgd.zero_grad();
    (tg::sum(p * p) * 0.5).backward();
    sgd.step();
  }
  check_close(p, {2.0 * std::pow(0.75, 4), -4.0 * std::pow(0.75, 4)});
}

// ---- Adam and AdamW --------------------------------------------------------

namespace {

// torch.optim.Adam / AdamW as documented: m̂ = m / (1 - β1^t), v̂ = v / (1 - β2^t),
// p -= lr · m̂ / (√v̂ + eps).
Vec adam_reference(double lr, double b1, double b2, double eps, double wd, bool decoupled, std::size_t steps = 3) {
  Vec q = kStart, m(q.size(), 0.0), v(q.size(), 0.0);
  for (std::size_t t = 1; t <= steps; ++t)
    for (std::size_t i = 0; i < q.size(); ++i) {
      double g = kGrads[t - 1][i];
      if (decoupled)
        q[i] *= 1 - lr * wd;
      else
        g += wd * q[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const double m_hat = m[i] / (1 - std::pow(b1, double(t)));
      const double v_hat = v[i] / (1 - std::pow(b2, double(t)));
      q[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
  return q;
}

}  // namespace

TEST_CASE("Adam: bias-corrected moments over 3 steps") {
  SUBCASE("defaults") {
    tg::Tensor p = param();
    tg::optim::Adam adam({p});
    CHECK(adam.lr() == 1e-3);
    run(adam, p);
    check_close(p, adam_reference(1e-3, 0.9, 0.999, 1e-8, 0.0, false));
  }
  SUBCASE("a large eps shows it is added to √v̂, after the bias correction") {
    tg::Tensor p = param();
    tg::optim::Adam adam({p}, 0.1, 0.8, 0.95, 0.3);
    run(adam, p);
    check_close(p, adam_reference(0.1, 0.8, 0.95, 0.3, 0.0, false));
  }
  SUBCASE("L2 weight decay is added to the gradient") {
    tg::Tensor p = param();
    tg::optim::Adam adam({p}, 0.1, 0.9, 0.999, 1e-8, 0.5);
    run(adam, p);
    check_close(p, adam_reference(0.1, 0.9, 0.999, 1e-8, 0.5, false));
  }
  SUBCASE("the first step moves each element by about lr against its gradient's sign") {
    tg::Tensor p = param();
    tg::optim::Adam adam({p}, 0.01);
    run(adam, p, 1);
    CHECK(p.data<double>()[0] == doctest::Approx(kStart[0] - 0.01).epsilon(1e-9));
    CHECK(p.data<double>()[1] == doctest::Approx(kStart[1] + 0.01).epsilon(1e-9));
    CHECK(p.data<double>()[2] == doctest::Approx(kStart[2] - 0.01).epsilon(1e-9));
    CHECK(p.data<double>()[3] == kStart[3]);  // zero gradient: m = 0
  }
}

TEST_CASE("AdamW decays the weights decoupled from the gradient, unlike Adam with L2") {
  const double lr = 0.1, wd = 0.5;
  tg::Tensor pw = param(), pa = param();
  tg::optim::AdamW adamw({pw}, lr, 0.9, 0.999, 1e-8, wd);
  tg::optim::Adam adam({pa}, lr, 0.9, 0.999, 1e-8, wd);
  CHECK(adamw.name() == "AdamW");
  run(adamw, pw);
  run(adam, pa);
  const Vec decoupled = adam_reference(lr, 0.9, 0.999, 1e-8, wd, true);
  const Vec l2 = adam_reference(lr, 0.9, 0.999, 1e-8, wd, false);
  check_close(pw, decoupled);
  check_close(pa, l2);
  for (std::size_t i = 0; i < kStart.size(); ++i) CHECK(std::abs(decoupled[i] - l2[i]) > 1e-3);

  SUBCASE("default weight_decay is 1e-2") {
    tg::Tensor p = param();
    tg::optim::AdamW defaults({p});
    run(defaults, p);
    check_close(p, adam_reference(1e-3, 0.9, 0.999, 1e-8, 1e-2, true));
  }
}

// ---- RMSprop ---------------------------------------------------------------

namespace {

Vec rmsprop_reference(double lr, double alpha, double eps, double wd, double mu, bool centered) {
  Vec q = kStart, s(q.size(), 0.0), a(q.size(), 0.0), b(q.size(), 0.0);
  for (std::size_t t = 0; t < 3; ++t)
    for (std::size_t i = 0; i < q.size(); ++i) {
      const double g = kGrads[t][i] + wd * q[i];
      s[i] = alpha * s[i] + (1 - alpha) * g * g;
      double denom;
      if (centered) {
        a[i] = alpha * a[i] + (1 - alpha) * g;
        denom = std::sqrt(s[i] - a[i] * a[i]) + eps;
      } else {
        denom = std::sqrt(s[i]) + eps;
      }
      if (mu > 0) {
        b[i] = mu * b[i] + g / denom;
        q[i] -= lr * b[i];
      } else {
        q[i] -= lr * g / denom;
      }
    }
  return q;
}

}  // namespace

TEST_CASE("RMSprop: plain, weight decay, momentum, centered") {
  SUBCASE("defaults") {
    tg::Tensor p = param();
    tg::optim::RMSprop rms({p});
    CHECK(rms.lr() == 1e-2);
    run(rms, p);
    check_close(p, rmsprop_reference(1e-2, 0.99, 1e-8, 0.0, 0.0, false));
  }
  SUBCASE("weight decay and momentum") {
    tg::Tensor p = param();
    tg::optim::RMSprop rms({p}, 0.05, 0.9, 1e-3, 0.1, 0.7);
    run(rms, p);
    check_close(p, rmsprop_reference(0.05, 0.9, 1e-3, 0.1, 0.7, false));
  }
  SUBCASE("centered") {
    tg::Tensor p = param();
    tg::optim::RMSprop rms({p}, 0.05, 0.9, 1e-3, 0.0, 0.0, /*centered=*/true);
    run(rms, p);
    check_close(p, rmsprop_reference(0.05, 0.9, 1e-3, 0.0, 0.0, true));
  }
  SUBCASE("centered with momentum and weight decay") {
    tg::Tensor p = param();
    tg::optim::RMSprop rms({p}, 0.05, 0.8, 1e-2, 0.2, 0.9, /*centered=*/true);
    run(rms, p);
    const Vec centered = rmsprop_reference(0.05, 0.8, 1e-2, 0.2, 0.9, true);
    check_close(p, centered);
    const Vec plain = rmsprop_reference(0.05, 0.8, 1e-2, 0.2, 0.9, false);
    CHECK(std::abs(centered[0] - plain[0]) > 1e-3);
  }
}

// ---- what step() touches ---------------------------------------------------

TEST_CASE("a frozen parameter or one without a gradient does not move; the others do") {
  tg::Tensor a = param(), b = param(), c = param();
  tg::optim::Adam adam({a, b, c}, 0.1);
  set_grad(a, kGrads[0]);
  set_grad(b, kGrads[0]);
  b.requires_grad_(false);  // frozen after its gradient was computed: still skipped
  adam.step();              // c has no gradient at all
  CHECK(values(a) != kStart);
  CHECK(values(b) == kStart);
  CHECK(values(c) == kStart);
  CHECK(adam.steps(0) == 1);
  CHECK(adam.steps(1) == 0);
  CHECK(adam.steps(2) == 0);

  // c's first gradient arrives at a's third step: its own count starts at 1,
  // so its bias correction is a first step's (each element moves by ~lr).
  set_grad(a, kGrads[1]);
  adam.step();
  set_grad(a, kGrads[2]);
  set_grad(c, kGrads[0]);
  adam.step();
  check_close(a, adam_reference(0.1, 0.9, 0.999, 1e-8, 0.0, false));
  check_close(c, adam_reference(0.1, 0.9, 0.999, 1e-8, 0.0, false, 1));
  CHECK(adam.steps(0) == 3);
  CHECK(adam.steps(2) == 1);
  CHECK(values(b) == kStart);
}

namespace {

// Built in float32 and converted: the tests compare float64 values exactly.
struct TwoLayers : tg::nn::Module {
  std::shared_ptr<tg::nn::Linear> fc1, fc2;
  explicit TwoLayers(tg::Generator& gen)
      : fc1(register_module("fc1", std::make_shared<tg::nn::Linear>(3, 4, gen))),
        fc2(register_module("fc2", std::make_shared<tg::nn::Linear>(4, 2, gen))) {
    to(tg::kFloat64);
  }
  tg::Tensor forward(const tg::Tensor& x) override { return (*fc2)(tg::tanh((*fc1)(x))); }
  std::string type_name() const override { return "TwoLayers"; }
};

}  // namespace

TEST_CASE("parameters frozen through a module's freeze() stay put") {
  tg::Generator gen(5);
  TwoLayers net(gen);
  net.freeze("fc1");
  const tg::Tensor x = tg::randn({5, 3}, gen, 0.0, 1.0, tg::kFloat64);
  std::vector<xt::xarray<double>> before;
  for (const auto& p : net.parameters()) before.push_back(p.to_xarray<double>());

  tg::optim::SGD sgd(net.parameters(), 0.1, 0.9);
  for (int step = 0; step < 3; ++step) {
    sgd.zero_grad();
    tg::sum(net(x) * net(x)).backward();
    sgd.step();
  }
  const auto named = net.named_parameters();
  for (std::size_t i = 0; i < named.size(); ++i) {
    CAPTURE(named[i].first);
    const bool frozen = named[i].first.rfind("fc1.", 0) == 0;
    CHECK(frozen == !named[i].second.requires_grad());
    CHECK((named[i].second.to_xarray<double>() == before[i]) == frozen);
  }
}

TEST_CASE("one update path: conv kernels and dense weights alike, recording nothing") {
  tg::Generator gen(11);
  tg::nn::Sequential net{std::make_shared<tg::nn::Conv2d>(2, 3, 3, gen, 1, 1), std::make_shared<tg::nn::Flatten>(),
                         std::make_shared<tg::nn::Linear>(3 * 4 * 4, 2, gen)};
  net.to(tg::kFloat64);
  const tg::Tensor x = tg::randn({2, 2, 4, 4}, gen, 0.0, 1.0, tg::kFloat64);
  tg::sum(net(x) * net(x)).backward();
  tg::tape().clear();

  const auto params = net.parameters();
  REQUIRE(params.size() == 4);
  CHECK(params[0].dim() == 4);  // the kernel
  std::vector<xt::xarray<double>> before, grads;
  for (const auto& p : params) {
    before.push_back(p.to_xarray<double>());
    grads.push_back(p.grad().to_xarray<double>());
  }
  tg::optim::SGD sgd(params, 0.01);
  sgd.step();
  CHECK(tg::tape().empty());
  for (std::size_t i = 0; i < params.size(); ++i) {
    CHECK(xt::allclose(params[i].value<double>(), before[i] - 0.01 * grads[i], 1e-14, 1e-15));
    CHECK(params[i].grad().to_xarray<double>() == grads[i]);  // gradients are read, not changed
    CHECK(params[i].is_leaf());
  }
}

TEST_CASE("zero_grad drops every gradient, frozen parameters' too") {
  tg::Tensor a = param(), b = param();
  tg::optim::RMSprop rms({a, b});
  set_grad(a, kGrads[0]);
  set_grad(b, kGrads[1]);
  b.requires_grad_(false);
  rms.zero_grad();
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  rms.step();  // nothing to do
  CHECK(values(a) == kStart);
  CHECK(rms.steps(0) == 0);
}

TEST_CASE("float32 parameters: every optimizer updates them, in float32") {
  tg::Tensor p(xt::xarray<float>{1.0f, -1.0f}, true);
  REQUIRE(p.dtype() == tg::kFloat32);
  std::vector<std::unique_ptr<tg::optim::Optimizer>> opts;
  opts.push_back(std::make_unique<tg::optim::SGD>(std::vector<tg::Tensor>{p}, 0.1, 0.9));
  opts.push_back(std::make_unique<tg::optim::Adam>(std::vector<tg::Tensor>{p}, 0.1));
  opts.push_back(std::make_unique<tg::optim::AdamW>(std::vector<tg::Tensor>{p}, 0.1));
  opts.push_back(std::make_unique<tg::optim::RMSprop>(std::vector<tg::Tensor>{p}, 0.1));
  for (auto& opt : opts) {
    CAPTURE(opt->name());
    const float before = p.value<float>()(0);
    opt->zero_grad();
    tg::sum(p * p).backward();  // g = 2p: every optimizer moves p towards 0
    opt->step();
    CHECK(std::abs(p.value<float>()(0)) < std::abs(before));
    CHECK(p.dtype() == tg::kFloat32);
  }
  // SGD in float: one step is p - lr * g, rounded to float.
  tg::Tensor q(xt::xarray<float>{0.5f}, true);
  tg::optim::SGD sgd({q}, 0.1);
  tg::sum(q * 3.0f).backward();
  sgd.step();
  CHECK(q.value<float>()(0) == doctest::Approx(0.5f - 0.1f * 3.0f).epsilon(1e-6));
}

TEST_CASE("one optimizer, float32 and float64 parameters: each is updated in its own dtype") {
  tg::Tensor f(xt::xarray<float>{0.1f, -0.3f}, true);
  tg::Tensor d = param();
  tg::optim::SGD sgd({f, d}, 0.1, 0.9);
  for (std::size_t t = 0; t < 3; ++t) {
    sgd.zero_grad();
    set_grad(d, kGrads[t]);
    tg::sum(f * tg::Tensor{0.7f, -1.9f}).backward();
    sgd.step();
  }
  CHECK(f.dtype() == tg::kFloat32);
  CHECK(d.dtype() == tg::kFloat64);
  // float64: the formula in double, to double precision.
  Vec q = kStart, b(q.size());
  for (std::size_t t = 0; t < 3; ++t)
    for (std::size_t i = 0; i < q.size(); ++i) {
      b[i] = t == 0 ? kGrads[t][i] : 0.9 * b[i] + kGrads[t][i];
      q[i] -= 0.1 * b[i];
    }
  check_close(d, q);
  // float32: the same formula, to float precision.
  const double g[2] = {0.7f, -1.9f};
  double fp[2] = {0.1f, -0.3f}, buf[2] = {0, 0};
  for (std::size_t t = 0; t < 3; ++t)
    for (std::size_t i = 0; i < 2; ++i) {
      buf[i] = t == 0 ? g[i] : 0.9 * buf[i] + g[i];
      fp[i] -= 0.1 * buf[i];
    }
  CHECK(f.value<float>()(0) == doctest::Approx(fp[0]).epsilon(1e-6));
  CHECK(f.value<float>()(1) == doctest::Approx(fp[1]).epsilon(1e-6));
}

// ---- schedulers ------------------------------------------------------------

TEST_CASE("StepLR: lr · gamma^⌊epoch / step_size⌋") {
  tg::Tensor p = param();
  tg::optim::SGD sgd({p}, 0.5);
  tg::optim::StepLR sched(sgd, 3, 0.1);
  CHECK(sched.last_lr() == 0.5);
  CHECK(sched.base_lr() == 0.5);
  CHECK(sched.last_epoch() == 0);
  for (int epoch = 1; epoch <= 10; ++epoch) {
    sched.step();
    const double expected = 0.5 * std::pow(0.1, epoch / 3);
    CAPTURE(epoch);
    CHECK(sched.last_epoch() == epoch);
    CHECK(sched.last_lr() == doctest::Approx(expected).epsilon(1e-14));
    CHECK(sgd.lr() == sched.last_lr());
  }
  SUBCASE("chainable, as PyTorch's: an lr set by hand is multiplied at the next multiple") {
    sgd.set_lr(1.0);  // epoch 10
    sched.step();     // 11
    CHECK(sgd.lr() == 1.0);
    sched.step();  // 12
    CHECK(sgd.lr() == doctest::Approx(0.1));
  }
  SUBCASE("the default gamma is 0.1") {
    tg::optim::SGD other({p}, 2.0);
    tg::optim::StepLR by_default(other, 1);
    by_default.step();
    CHECK(other.lr() == doctest::Approx(0.2));
  }
}

TEST_CASE("CosineAnnealingLR: PyTorch's closed form, past T_max too") {
  const double base = 1.0, eta_min = 0.1;
  const std::int64_t T_max = 10;
  tg::Tensor p = param();
  tg::optim::Adam adam({p}, base);
  tg::optim::CosineAnnealingLR sched(adam, T_max, eta_min);
  CHECK(sched.last_lr() == base);
  for (std::int64_t epoch = 1; epoch <= 25; ++epoch) {
    sched.step();
    const double expected = eta_min + (base - eta_min) * (1 + std::cos(kPi * double(epoch) / double(T_max))) / 2;
    CAPTURE(epoch);
    CHECK(sched.last_lr() == doctest::Approx(expected).epsilon(1e-14));
    CHECK(adam.lr() == sched.last_lr());
    if (epoch == 5) CHECK(adam.lr() == doctest::Approx(0.55));
    if (epoch == 10) CHECK(adam.lr() == doctest::Approx(eta_min));
    if (epoch == 20) CHECK(adam.lr() == doctest::Approx(base));
  }
  SUBCASE("eta_min defaults to 0 and the new lr drives the next step") {
    tg::Tensor q = param();
    tg::optim::SGD sgd({q}, 0.2);
    tg::optim::CosineAnnealingLR half(sgd, 2);
    half.step();  // cos(π/2) = 0: lr 0.1
    CHECK(sgd.lr() == doctest::Approx(0.1));
    set_grad(q, kGrads[0]);
    sgd.step();
    Vec expected = kStart;
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] -= sgd.lr() * kGrads[0][i];
    check_close(q, expected);
    half.step();
    CHECK(sgd.lr() == doctest::Approx(0.0));
  }
}

// ---- clipping --------------------------------------------------------------

TEST_CASE("clip_grad_norm returns the total norm and rescales to max_norm") {
  tg::Tensor a(xt::xarray<double>{0.0, 0.0}, true), b(xt::xarray<double>{0.0}, true), none = param();
  set_grad(a, {3.0, 4.0});
  set_grad(b, {12.0});
  const std::vector<tg::Tensor> params{a, b, none};  // none has no gradient: ignored

  SUBCASE("large gradients are scaled by max_norm / (total + 1e-6)") {
    const double total = tg::optim::clip_grad_norm(params, 10.0);
    CHECK(total == doctest::Approx(13.0).epsilon(1e-15));
    const double coef = 10.0 / (13.0 + 1e-6);
    check_close(a, {0.0, 0.0});  // values untouched
    CHECK(a.grad().value<double>()(0) == doctest::Approx(3.0 * coef).epsilon(1e-15));
    CHECK(a.grad().value<double>()(1) == doctest::Approx(4.0 * coef).epsilon(1e-15));
    CHECK(b.grad().value<double>()(0) == doctest::Approx(12.0 * coef).epsilon(1e-15));
    const double after = tg::optim::clip_grad_norm(params, 1e9);
    CHECK(after == doctest::Approx(10.0).epsilon(1e-6));
    CHECK_FALSE(none.grad().defined());
  }
  SUBCASE("as PyTorch, max_norm equal to the norm still scales, by max_norm / (max_norm + 1e-6)") {
    CHECK(tg::optim::clip_grad_norm(params, 13.0) == doctest::Approx(13.0).epsilon(1e-15));
    CHECK(b.grad().value<double>()(0) == doctest::Approx(12.0 * 13.0 / (13.0 + 1e-6)).epsilon(1e-15));
    CHECK(b.grad().value<double>()(0) < 12.0);
  }
  SUBCASE("small gradients are left alone") {
    CHECK(tg::optim::clip_grad_norm(params, 100.0) == doctest::Approx(13.0));
    CHECK(a.grad().to_xarray<double>() == xt::xarray<double>{3.0, 4.0});
    CHECK(b.grad().to_xarray<double>() == xt::xarray<double>{12.0});
  }
  SUBCASE("max_norm 0 zeroes the gradients") {
    CHECK(tg::optim::clip_grad_norm(params, 0.0) == doctest::Approx(13.0));
    CHECK(a.grad().to_xarray<double>() == xt::xarray<double>{0.0, 0.0});
  }
  SUBCASE("float32 gradients; no gradient at all gives 0") {
    tg::Tensor f(xt::xarray<float>{0.0f, 0.0f}, true);
    tg::sum(f * tg::Tensor{6.0f, 8.0f}).backward();
    CHECK(tg::optim::clip_grad_norm(std::vector<tg::Tensor>{f}, 5.0) == doctest::Approx(10.0));
    CHECK(f.grad().value<float>()(0) == doctest::Approx(3.0f).epsilon(1e-6));
    CHECK(f.grad().value<float>()(1) == doctest::Approx(4.0f).epsilon(1e-6));
    CHECK(tg::optim::clip_grad_norm(std::vector<tg::Tensor>{param()}, 1.0) == 0.0);
  }
}

// ---- end to end ------------------------------------------------------------

TEST_CASE("SGD with momentum fits a least-squares problem") {
  tg::Generator gen(3);
  const tg::Tensor X = tg::randn({32, 3}, gen, 0.0, 1.0, tg::kFloat64);
  const Vec wt = {1.5, -2.0, 0.5};
  const tg::Tensor w_true(xt::xarray<double>(xt::adapt(wt, {3, 1})));
  const tg::Tensor y = tg::matmul(X, w_true);
  tg::Tensor w = tg::zeros({3, 1}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::optim::SGD sgd({w}, 0.05, 0.9);
  auto loss = [&] { return tg::mse_loss(tg::matmul(X, w), y); };
  const double initial = loss().item();
  double last = initial;
  for (int step = 0; step < 200; ++step) {
    sgd.zero_grad();
    const tg::Tensor l = loss();
    l.backward();
    sgd.step();
    last = l.item();
  }
  CHECK(initial > 1.0);
  CHECK(last < 1e-6 * initial);
  CHECK(xt::allclose(w.value<double>(), w_true.value<double>(), 1e-3, 1e-3));
}

// ---- errors ----------------------------------------------------------------

TEST_CASE("bad hyperparameters throw ValueError naming the optimizer and the value") {
  tg::Tensor p = param();
  using tg::optim::SGD;
  CHECK_THROWS_WITH_AS(SGD({p}, -0.1), doctest::Contains("SGD: invalid learning rate -0.1"), tg::ValueError);
  CHECK_THROWS_WITH_AS(SGD({p}, 0.1, -0.5), doctest::Contains("SGD: invalid momentum -0.5"), tg::ValueError);
  CHECK_THROWS_WITH_AS(SGD({p}, 0.1, 0.0, 0.0, -1.0), doctest::Contains("invalid weight_decay -1"), tg::ValueError);
  CHECK_THROWS_WITH_AS(SGD({p}, 0.1, 0.0, 0.0, 0.0, true), doctest::Contains("SGD: nesterov momentum requires"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(SGD({p}, 0.1, 0.9, 0.1, 0.0, true), doctest::Contains("dampening 0.1"), tg::ValueError);
  CHECK_NOTHROW(SGD({p}, 0.0, 0.9, 0.0, 0.0, true));

  using tg::optim::Adam;
  CHECK_THROWS_WITH_AS(Adam({p}, 1e-3, 1.0), doctest::Contains("Adam: invalid beta1 1 (must be in [0, 1))"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(Adam({p}, 1e-3, 0.9, -0.1), doctest::Contains("Adam: invalid beta2 -0.1"), tg::ValueError);
  CHECK_THROWS_WITH_AS(Adam({p}, 1e-3, 0.9, 0.999, -1e-8), doctest::Contains("Adam: invalid eps -1e-08"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(Adam({p}, -1.0), doctest::Contains("Adam: invalid learning rate -1"), tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::AdamW({p}, 1e-3, 0.9, 1.5), doctest::Contains("AdamW: invalid beta2 1.5"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::AdamW(std::vector<tg::Tensor>{tg::ones({2}, tg::requires_grad())}, std::nan("")),
                       doctest::Contains("AdamW: invalid learning rate nan"), tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::RMSprop({p}, 1e-2, -0.5), doctest::Contains("RMSprop: invalid alpha -0.5"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::RMSprop({p}, 1e-2, 0.99, -1.0), doctest::Contains("RMSprop: invalid eps -1"),
                       tg::ValueError);

  SGD sgd({p}, 0.1);
  CHECK_THROWS_WITH_AS(sgd.set_lr(-2.0), doctest::Contains("SGD: invalid learning rate -2"), tg::ValueError);
  CHECK(sgd.lr() == 0.1);
}

TEST_CASE("bad scheduler and clipping arguments throw ValueError") {
  tg::Tensor p = param();
  tg::optim::SGD sgd({p}, 0.1);
  CHECK_THROWS_WITH_AS(tg::optim::StepLR(sgd, 0), doctest::Contains("StepLR: invalid step_size 0"), tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::StepLR(sgd, 2, -0.5), doctest::Contains("StepLR: invalid gamma -0.5"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::CosineAnnealingLR(sgd, 0), doctest::Contains("CosineAnnealingLR: invalid T_max 0"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::CosineAnnealingLR(sgd, -3), doctest::Contains("T_max -3"), tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::CosineAnnealingLR(sgd, 5, -0.1), doctest::Contains("invalid eta_min -0.1"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::clip_grad_norm(std::vector<tg::Tensor>{p}, -1.0),
                       doctest::Contains("clip_grad_norm: invalid max_norm -1"), tg::ValueError);
  CHECK(sgd.lr() == 0.1);
}

TEST_CASE("bad parameter lists and shapes") {
  tg::Tensor p = param();
  CHECK_THROWS_WITH_AS(tg::optim::SGD({}, 0.1), doctest::Contains("SGD: got an empty parameter list"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::Adam({p, tg::Tensor()}), doctest::Contains("Adam: parameter 1 is undefined"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::Adam({p * 2.0}), doctest::Contains("Adam: parameter 0 of shape (4,) is not a leaf"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::RMSprop({p, p}), doctest::Contains("RMSprop: parameter 1 of shape (4,) appears more"),
                       tg::ValueError);

  // State is kept by position: a parameter that changes shape no longer fits it.
  tg::optim::Adam adam({p});
  run(adam, p, 1);
  p.set_data(tg::zeros({2, 3}, tg::kFloat64));
  p.zero_grad();
  tg::sum(p * 1.0).backward();
  CHECK_THROWS_WITH_AS(adam.step(), doctest::Contains("Adam: parameter 0 changed shape from (4,) to (2, 3)"),
                       tg::ShapeError);

  // The same for a parameter converted to another dtype after its first update.
  tg::Tensor q = param();
  tg::optim::SGD sgd({q}, 0.1, 0.9);
  run(sgd, q, 1);
  q.set_data(q.detach().to(tg::kFloat32));
  tg::sum(q * 1.0).backward();
  CHECK_THROWS_WITH_AS(sgd.step(), doctest::Contains("SGD: parameter 0 changed dtype from float64 to float32"),
                       tg::DtypeError);

  // Integer tensors cannot be optimized (they never have a gradient).
  CHECK_THROWS_WITH_AS(tg::optim::SGD({param(), tg::zeros({2}, tg::kInt64)}, 0.1),
                       doctest::Contains("SGD: parameter 1 of shape (2,) holds int64 elements"), tg::DtypeError);
}
