// Optimizers, learning-rate schedulers and gradient clipping, against the
// update formulas of torch.optim written out here element by element;
// parameter groups; saving and resuming bit for bit; schedulers against
// hand-written loops of torch's formulas.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xadapt.hpp>

#include <tapegrad/optim/optim.hpp>
#include <tapegrad/nn/serialize.hpp>
#include <tapegrad/tapegrad.hpp>

#include "temp_dir.hpp"

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

TEST_CASE("parameters that stop requiring grad stay put; the others keep training") {
  // Two layers of plain tensors; the first one frozen, as Module::freeze() does it.
  tg::Generator gen(5);
  tg::Tensor w1 = tg::randn({4, 3}, gen, 0.0, 1.0, tg::kFloat64).requires_grad_();
  tg::Tensor b1 = tg::randn({4}, gen, 0.0, 1.0, tg::kFloat64).requires_grad_();
  tg::Tensor w2 = tg::randn({2, 4}, gen, 0.0, 1.0, tg::kFloat64).requires_grad_();
  tg::Tensor b2 = tg::randn({2}, gen, 0.0, 1.0, tg::kFloat64).requires_grad_();
  const std::vector<tg::Tensor> params{w1, b1, w2, b2};
  w1.requires_grad_(false);
  b1.requires_grad_(false);
  const tg::Tensor x = tg::randn({5, 3}, gen, 0.0, 1.0, tg::kFloat64);
  std::vector<xt::xarray<double>> before;
  for (const auto& p : params) before.push_back(p.to_xarray<double>());

  tg::optim::SGD sgd(params, 0.1, 0.9);
  for (int step = 0; step < 3; ++step) {
    sgd.zero_grad();
    const tg::Tensor y = tg::linear(tg::tanh(tg::linear(x, w1, b1)), w2, b2);
    tg::sum(y * y).backward();
    sgd.step();
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    CAPTURE(i);
    const bool frozen = i < 2;
    CHECK((params[i].to_xarray<double>() == before[i]) == frozen);
    CHECK(sgd.steps(i) == (frozen ? 0 : 3));
  }
}

TEST_CASE("one update path: conv kernels and dense weights alike, recording nothing") {
  tg::Generator gen(11);
  const tg::TensorOptions f64(tg::kFloat64);
  tg::Tensor kernel = tg::randn({3, 2, 3, 3}, gen, 0.0, 1.0, tg::kFloat64).requires_grad_();
  tg::Tensor conv_bias = tg::zeros({3}, f64.requires_grad(true));
  tg::Tensor weight = tg::randn({2, 3 * 4 * 4}, gen, 0.0, 0.1, tg::kFloat64).requires_grad_();
  tg::Tensor bias = tg::zeros({2}, f64.requires_grad(true));
  const tg::Tensor x = tg::randn({2, 2, 4, 4}, gen, 0.0, 1.0, tg::kFloat64);
  const tg::Tensor y = tg::linear(tg::flatten(tg::conv2d(x, kernel, conv_bias, 1, 1)), weight, bias);
  tg::sum(y * y).backward();
  tg::tape().clear();

  const std::vector<tg::Tensor> params{kernel, conv_bias, weight, bias};
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

TEST_CASE("state that decays below the smallest normal float becomes 0, never subnormal (x86)") {
#if !defined(__SSE2__)
  MESSAGE("skipped: subnormals are flushed on x86 only");
  return;
#endif
  // One step with gradient 1, then gradient 0: SGD's momentum buffer and
  // Adam's first moment shrink by 0.9 a step (RMSprop's centred average by
  // alpha = 0.9), and would be subnormal floats from about step 830 to 980.
  for (const std::string name : {"SGD", "Adam", "RMSprop"}) {
    CAPTURE(name);
    tg::Tensor p(xt::xarray<float>{1.0f}, true);
    std::unique_ptr<tg::optim::Optimizer> opt;
    if (name == "SGD") opt = std::make_unique<tg::optim::SGD>(std::vector<tg::Tensor>{p}, 0.1, 0.9);
    if (name == "Adam") opt = std::make_unique<tg::optim::Adam>(std::vector<tg::Tensor>{p}, 0.1);
    if (name == "RMSprop")
      opt = std::make_unique<tg::optim::RMSprop>(std::vector<tg::Tensor>{p}, 0.1, 0.9, 1e-8, 0.0, 0.0, true);
    const char* decaying = name == "SGD" ? "momentum_buffer" : name == "Adam" ? "exp_avg" : "grad_avg";
    float smallest = 1.0f;
    for (int step = 0; step < 900; ++step) {
      opt->zero_grad();
      tg::sum(p * (step == 0 ? 1.0f : 0.0f)).backward();
      opt->step();
      const float s = opt->state(0, decaying).item<float>();
      CHECK(std::fpclassify(s) != FP_SUBNORMAL);
      smallest = std::min(smallest, s);
    }
    // It did decay that far: into the range where the update's product
    // (0.1·m, or lerp's weight·(0 - m)) would be subnormal. There it becomes
    // 0 where the compiler fuses lerp's multiply and add (an FMA, as with
    // -march=native here); without FMA the flushed product leaves the state
    // at the first value whose 0.1·m is below the smallest normal float.
    CHECK(smallest < 16 * std::numeric_limits<float>::min());
    CHECK(std::isfinite(p.item<float>()));
  }
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
  CHECK_THROWS_WITH_AS(tg::optim::SGD(std::vector<tg::Tensor>{}, 0.1),
                       doctest::Contains("SGD: got an empty parameter list"), tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::Adam({p, tg::Tensor()}), doctest::Contains("Adam: parameter 1 is undefined"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::Adam({p * 2.0}), doctest::Contains("Adam: parameter 0 of shape (4,) is not a leaf"),
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

// ---- parameter groups --------------------------------------------------------

TEST_CASE("parameter groups: each group's own options, the others the optimizer's") {
  tg::Tensor w = param(), b = param();
  tg::optim::SGD sgd({{w}, {{b}, {{"lr", 0.5}, {"momentum", 0.9}}}}, 0.1);
  REQUIRE(sgd.num_groups() == 2);
  CHECK(sgd.lr(0) == 0.1);
  CHECK(sgd.lr(1) == 0.5);
  CHECK(sgd.lr() == 0.1);  // the first group's
  CHECK(sgd.option(0, "momentum") == 0.0);
  CHECK(sgd.option(1, "momentum") == 0.9);
  CHECK(sgd.option(1, "weight_decay") == 0.0);
  CHECK(sgd.param_groups()[1].options.size() == sgd.defaults().size());
  CHECK(sgd.params().size() == 2);
  CHECK(sgd.group_of(1) == 1);
  for (std::size_t t = 0; t < 3; ++t) {
    set_grad(w, kGrads[t]);
    set_grad(b, kGrads[t]);
    sgd.step();
  }
  Vec qw = kStart, qb = kStart, buf(kStart.size());
  for (std::size_t t = 0; t < 3; ++t)
    for (std::size_t i = 0; i < kStart.size(); ++i) {
      qw[i] -= 0.1 * kGrads[t][i];
      buf[i] = t == 0 ? kGrads[t][i] : 0.9 * buf[i] + kGrads[t][i];
      qb[i] -= 0.5 * buf[i];
    }
  check_close(w, qw);
  check_close(b, qb);
  CHECK(sgd.state(1, "momentum_buffer").defined());
  CHECK_FALSE(sgd.state(0, "momentum_buffer").defined());  // no momentum in group 0

  sgd.set_lr(1, 0.25);
  CHECK(sgd.lr(0) == 0.1);
  CHECK(sgd.lr(1) == 0.25);
  sgd.set_lr(0.3);  // every group
  CHECK(sgd.lr(0) == 0.3);
  CHECK(sgd.lr(1) == 0.3);
  CHECK_THROWS_WITH_AS(sgd.set_lr(1, -1.0), doctest::Contains("SGD: invalid learning rate -1"), tg::ValueError);
  CHECK_THROWS_WITH_AS(sgd.set_option(0, "nesterov", 1.0), doctest::Contains("nesterov momentum requires"),
                       tg::ValueError);
  CHECK(sgd.lr(1) == 0.3);
  CHECK(sgd.option(0, "nesterov") == 0.0);
  CHECK_THROWS_WITH_AS(sgd.option(0, "beta1"), doctest::Contains("SGD: unknown option \"beta1\""), tg::ValueError);

  tg::Tensor c = param();
  CHECK_THROWS_WITH_AS(tg::optim::SGD({{{c}, {{"beta1", 0.9}}}}, 0.1),
                       doctest::Contains("SGD: unknown option \"beta1\" (SGD's options: dampening, lr, momentum"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::Adam({{{c}, {{"beta2", 1.0}}}}), doctest::Contains("Adam: invalid beta2 1"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::optim::RMSprop({{{c}, {{"centered", 0.5}}}}),
                       doctest::Contains("RMSprop: invalid centered 0.5 (must be 0 or 1)"), tg::ValueError);
}

TEST_CASE("no weight decay on biases and norm parameters: two groups") {
  // Named as a module names them; one- and zero-dimensional tensors (biases,
  // norm scales) go without decay.
  tg::Tensor weight(xt::xarray<double>(xt::adapt(kStart, {2, 2})), true);
  tg::Tensor bias = param(), norm_scale = param();
  const std::vector<std::pair<std::string, tg::Tensor>> named{
      {"fc.weight", weight}, {"fc.bias", bias}, {"norm.weight", norm_scale}};

  std::vector<tg::Tensor> decay, no_decay;
  for (const auto& [name, p] : named) (p.dim() <= 1 ? no_decay : decay).push_back(p);
  tg::optim::AdamW adamw({{decay}, {no_decay, {{"weight_decay", 0.0}}}}, 0.1, 0.9, 0.999, 1e-8, 0.5);

  CHECK(adamw.option(0, "weight_decay") == 0.5);
  CHECK(adamw.option(1, "weight_decay") == 0.0);
  for (std::size_t t = 0; t < 3; ++t) {
    for (const auto& np : named) {
      tg::Tensor p = np.second;
      set_grad(p, kGrads[t]);
    }
    adamw.step();
  }
  check_close(weight, adam_reference(0.1, 0.9, 0.999, 1e-8, 0.5, true));
  check_close(bias, adam_reference(0.1, 0.9, 0.999, 1e-8, 0.0, true));
  check_close(norm_scale, adam_reference(0.1, 0.9, 0.999, 1e-8, 0.0, true));
}

TEST_CASE("add_param_group: options from the optimizer unless given; refused whole when bad") {
  tg::Tensor a = param(), c = param(), d = param();
  tg::optim::Adam adam({a}, 0.1);
  adam.add_param_group({{c}, {{"lr", 0.01}}});
  REQUIRE(adam.num_groups() == 2);
  CHECK(adam.params().size() == 2);
  CHECK(adam.lr(1) == 0.01);
  CHECK(adam.option(1, "beta1") == 0.9);
  run(adam, c);  // a has no gradient: only c moves
  check_close(c, adam_reference(0.01, 0.9, 0.999, 1e-8, 0.0, false));
  CHECK(values(a) == kStart);

  CHECK_THROWS_WITH_AS(adam.add_param_group({{d, a}}),
                       doctest::Contains("Adam: group 2, parameter 1 of shape (4,): some parameters appear in more "
                                         "than one parameter group"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(adam.add_param_group({{d}, {{"beta1", 1.5}}}), doctest::Contains("Adam: invalid beta1 1.5"),
                       tg::ValueError);
  CHECK_THROWS_AS(adam.add_param_group({{d, d * 2.0}}), tg::ValueError);  // not a leaf
  CHECK(adam.num_groups() == 2);
  CHECK(adam.params().size() == 2);
  adam.add_param_group({{d}});
  CHECK(adam.num_groups() == 3);
  CHECK(adam.lr(2) == 0.1);
}

TEST_CASE("a tensor listed twice (tied weights) is one parameter; in two groups it is an error, as in torch") {
  // A weight used twice in the forward pass (an embedding tied to the output
  // layer) and listed twice: one parameter, one update per step, with the
  // gradient of both uses.
  tg::Tensor w = param();
  tg::Tensor alias = w;  // another handle to the same tensor
  tg::optim::SGD sgd({w, alias, w}, 0.1, 0.9);
  CHECK(sgd.params().size() == 1);
  tg::Tensor reference = param();
  tg::optim::SGD single({reference}, 0.1, 0.9);
  run(sgd, w);
  run(single, reference);
  CHECK(values(w) == values(reference));
  CHECK(sgd.steps(0) == 3);

  tg::Tensor x = param(), y = param();
  CHECK_THROWS_WITH_AS(tg::optim::SGD({{x}, {y, x}}, 0.1),
                       doctest::Contains("SGD: group 1, parameter 1 of shape (4,): some parameters appear in more "
                                         "than one parameter group"),
                       tg::ValueError);
  CHECK_NOTHROW(tg::optim::Adam({{x, x}, {y, y}}));
}

// ---- saving and resuming ---------------------------------------------------

namespace {

// A float32 two-layer network of plain tensors.
struct Mlp {
  tg::Tensor w1, b1, w2, b2;
  explicit Mlp(std::uint64_t seed, std::size_t hidden = 8, tg::Dtype dtype = tg::kFloat32) {
    tg::Generator gen(seed);
    w1 = tg::randn({hidden, 4}, gen, 0.0, 0.5, dtype).requires_grad_();
    b1 = tg::randn({hidden}, gen, 0.0, 0.1, dtype).requires_grad_();
    w2 = tg::randn({2, hidden}, gen, 0.0, 0.5, dtype).requires_grad_();
    b2 = tg::randn({2}, gen, 0.0, 0.1, dtype).requires_grad_();
  }
  std::vector<std::pair<std::string, tg::Tensor>> named() const {
    return {{"w1", w1}, {"b1", b1}, {"w2", w2}, {"b2", b2}};
  }
  // Weights with the optimizer's weight decay, biases without.
  std::vector<tg::optim::ParamGroup> groups() const { return {{{w1, w2}}, {{b1, b2}, {{"weight_decay", 0.0}}}}; }
  void load(const std::string& path) {
    const tg::io::TensorFile file = tg::io::load_tensors(path);
    tg::NoGradGuard no_grad;
    for (auto& [name, p] : named()) {
      tg::Tensor target = p;
      target.copy_(file.get(name));
    }
  }
};

// One step on a batch that depends only on t.
double train_step(Mlp& m, tg::optim::Optimizer& opt, int t) {
  tg::Generator gen(1000 + std::uint64_t(t));
  const tg::Tensor x = tg::randn({16, 4}, gen, 0.0, 1.0, m.w1.dtype());
  const tg::Tensor y = tg::randn({16, 2}, gen, 0.0, 1.0, m.w1.dtype());
  opt.zero_grad();
  const tg::Tensor loss = tg::mse_loss(tg::linear(tg::tanh(tg::linear(x, m.w1, m.b1)), m.w2, m.b2), y);
  loss.backward();
  opt.step();
  return loss.item();
}

bool same_bits(const tg::Tensor& a, const tg::Tensor& b) {
  return a.dtype() == tg::kFloat32 && b.dtype() == tg::kFloat32 && a.shape() == b.shape() &&
         std::memcmp(a.data<float>(), b.data<float>(), a.numel() * sizeof(float)) == 0;
}

using MakeOptimizer = std::function<std::unique_ptr<tg::optim::Optimizer>(const Mlp&)>;
using MakeScheduler = std::function<std::unique_ptr<tg::optim::Scheduler>(tg::optim::Optimizer&)>;
using StepScheduler = std::function<void(tg::optim::Scheduler&, double loss)>;

void step_lr(tg::optim::Scheduler& s, double) { dynamic_cast<tg::optim::LRScheduler&>(s).step(); }

// Trains N + M steps without a break, saving the model and the optimizer
// after N; then, in a fresh model, optimizer and scheduler, loads both and
// trains the last M steps: every parameter must be the same to the bit.
void check_resume(const MakeOptimizer& make_optimizer, const MakeScheduler& make_scheduler,
                  const StepScheduler& step_scheduler) {
  const int N = 6, M = 7;
  TempDir dir("tapegrad-optim");
  const std::string model_path = dir / "model.safetensors", state_path = dir / "optimizer.safetensors";

  Mlp a(1);
  auto opt = make_optimizer(a);
  auto sched = make_scheduler(*opt);
  for (int t = 0; t < N + M; ++t) {
    if (t == N) {
      tg::io::save_tensors(model_path, a.named());
      opt->save(state_path, *sched);
    }
    step_scheduler(*sched, train_step(a, *opt, t));
  }

  Mlp b(2);  // other values: the file's replace them
  auto opt_b = make_optimizer(b);
  auto sched_b = make_scheduler(*opt_b);
  b.load(model_path);
  opt_b->load(state_path, *sched_b);
  CHECK(sched_b->last_epoch() == N);
  for (int t = N; t < N + M; ++t) step_scheduler(*sched_b, train_step(b, *opt_b, t));

  const auto pa = a.named(), pb = b.named();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(pa[i].first);
    CHECK(same_bits(pa[i].second, pb[i].second));
  }
  for (std::size_t g = 0; g < opt->num_groups(); ++g) CHECK(opt->param_groups()[g].options == opt_b->param_groups()[g].options);
  CHECK(sched->last_lrs() == sched_b->last_lrs());
  CHECK(sched->last_epoch() == sched_b->last_epoch());
  for (std::size_t i = 0; i < opt->params().size(); ++i) CHECK(opt->steps(i) == opt_b->steps(i));

  // Without the optimizer's state the same M steps end elsewhere.
  Mlp c(2);
  auto opt_c = make_optimizer(c);
  auto sched_c = make_scheduler(*opt_c);
  c.load(model_path);
  for (int t = N; t < N + M; ++t) step_scheduler(*sched_c, train_step(c, *opt_c, t));
  CHECK_FALSE(same_bits(a.w1, c.w1));
}

}  // namespace

TEST_CASE("resuming from a saved optimizer gives the uninterrupted run's parameters bit for bit") {
  SUBCASE("SGD with Nesterov momentum and weight decay; OneCycleLR, which also cycles the momentum") {
    check_resume(
        [](const Mlp& m) { return std::make_unique<tg::optim::SGD>(m.groups(), 0.05, 0.9, 0.0, 1e-3, true); },
        [](tg::optim::Optimizer& o) { return std::make_unique<tg::optim::OneCycleLR>(o, 0.1, 20); }, step_lr);
  }
  SUBCASE("Adam with L2 decay; warm-up then cosine (SequentialLR)") {
    check_resume([](const Mlp& m) { return std::make_unique<tg::optim::Adam>(m.groups(), 1e-2, 0.9, 0.999, 1e-8, 1e-3); },
                 [](tg::optim::Optimizer& o) {
                   auto warmup = std::make_shared<tg::optim::LinearLR>(o, 0.2, 1.0, 4);
                   auto cosine = std::make_shared<tg::optim::CosineAnnealingLR>(o, 10);
                   return std::make_unique<tg::optim::SequentialLR>(
                       o, std::vector<std::shared_ptr<tg::optim::LRScheduler>>{warmup, cosine},
                       std::vector<std::int64_t>{4});
                 },
                 step_lr);
  }
  SUBCASE("AdamW; ReduceLROnPlateau on the loss") {
    check_resume([](const Mlp& m) { return std::make_unique<tg::optim::AdamW>(m.groups(), 2e-2); },
                 [](tg::optim::Optimizer& o) {
                   tg::optim::PlateauOptions c;
                   c.patience = 1;
                   c.factor = 0.5;
                   c.threshold = 0.05;
                   return std::make_unique<tg::optim::ReduceLROnPlateau>(o, c);
                 },
                 [](tg::optim::Scheduler& s, double loss) {
                   dynamic_cast<tg::optim::ReduceLROnPlateau&>(s).step(loss);
                 });
  }
  SUBCASE("RMSprop, centered, with momentum and weight decay; StepLR") {
    check_resume(
        [](const Mlp& m) { return std::make_unique<tg::optim::RMSprop>(m.groups(), 1e-2, 0.9, 1e-8, 1e-3, 0.5, true); },
        [](tg::optim::Optimizer& o) { return std::make_unique<tg::optim::StepLR>(o, 3, 0.5); }, step_lr);
  }
}

TEST_CASE("save and load without a scheduler; a state saved before any step") {
  TempDir dir("tapegrad-optim");
  Mlp a(1);
  tg::optim::Adam adam(a.groups(), 0.01);
  adam.save(dir / "fresh.safetensors");
  for (int t = 0; t < 3; ++t) train_step(a, adam, t);
  adam.set_lr(1, 0.003);
  adam.save(dir / "three.safetensors");

  Mlp b(1);
  tg::optim::Adam other(b.groups(), 0.5);
  other.load(dir / "fresh.safetensors");
  CHECK(other.lr(0) == 0.01);
  CHECK(other.steps(0) == 0);
  other.load(dir / "three.safetensors");
  CHECK(other.lr(0) == 0.01);
  CHECK(other.lr(1) == 0.003);
  CHECK(other.steps(3) == 3);
  CHECK(same_bits(other.state(0, "exp_avg"), adam.state(0, "exp_avg")));
  CHECK(same_bits(other.state(3, "exp_avg_sq"), adam.state(3, "exp_avg_sq")));
  // The file is a safetensors file like any other.
  const tg::io::TensorFile file = tg::io::load_tensors(dir / "three.safetensors");
  CHECK(file.metadata.at("optimizer") == "Adam");
  CHECK(file.metadata.at("group.1.lr") == "0.003");
  CHECK(file.metadata.at("param.0") == "float32 (8, 4)");
  CHECK(file.at("step").dtype == "I64");
  CHECK(file.contains("state.2.exp_avg"));
}

TEST_CASE("load refuses a state that does not fit, names the difference and changes nothing") {
  TempDir dir("tapegrad-optim");
  {
    Mlp m(1);
    tg::optim::SGD sgd(m.groups(), 0.1, 0.9);
    train_step(m, sgd, 0);
    sgd.save(dir / "sgd.safetensors");
    tg::optim::Adam adam(m.groups(), 0.01);
    tg::optim::StepLR step_lr(adam, 2);
    train_step(m, adam, 0);
    adam.save(dir / "adam.safetensors", step_lr);
    tg::io::save_tensors(dir / "model.safetensors", m.named());
  }
  // Two identical runs; one has every bad file thrown at it.
  Mlp a(3), twin(3);
  tg::optim::Adam adam(a.groups(), 0.02);
  tg::optim::Adam adam_twin(twin.groups(), 0.02);
  tg::optim::CosineAnnealingLR cosine(adam, 10);
  for (int t = 0; t < 2; ++t) {
    train_step(a, adam, t);
    train_step(twin, adam_twin, t);
  }
  using tg::optim::StateMismatchError;
  CHECK_THROWS_WITH_AS(adam.load(dir / "sgd.safetensors"),
                       doctest::Contains("the saved state does not fit this Adam:\n  optimizer: SGD in the file, Adam here"),
                       StateMismatchError);
  CHECK_THROWS_WITH_AS(adam.load(dir / "adam.safetensors", cosine),
                       doctest::Contains("scheduler: scheduler.name is StepLR in the file, CosineAnnealingLR here"),
                       StateMismatchError);
  CHECK_THROWS_WITH_AS(adam.load(dir / "model.safetensors"), doctest::Contains("not an optimizer state"),
                       tg::io::MismatchError);
  CHECK_THROWS_AS(adam.load(dir / "missing.safetensors"), tg::io::FileError);
  {
    Mlp m(3);
    tg::optim::Adam other(m.groups());
    tg::optim::StepLR foreign(other, 2);
    CHECK_THROWS_WITH_AS(adam.load(dir / "adam.safetensors", foreign),
                         doctest::Contains("Adam: load: the scheduler (StepLR) acts on another optimizer"),
                         tg::ValueError);
    CHECK_THROWS_WITH_AS(adam.save(dir / "never.safetensors", foreign),
                         doctest::Contains("acts on another optimizer"), tg::ValueError);
  }
  {
    Mlp one(3);
    tg::optim::Adam single({one.w1, one.b1, one.w2, one.b2});
    CHECK_THROWS_WITH_AS(single.load(dir / "adam.safetensors"),
                         doctest::Contains("parameter groups: 2 in the file, 1 here"), StateMismatchError);
  }
  {
    Mlp narrow(3, 5);
    tg::optim::Adam other(narrow.groups());
    CHECK_THROWS_WITH_AS(other.load(dir / "adam.safetensors"),
                         doctest::Contains("parameter 0: float32 (8, 4) in the file, float32 (5, 4) here"),
                         StateMismatchError);
  }
  {
    Mlp wide(3, 8, tg::kFloat64);
    tg::optim::Adam other(wide.groups());
    CHECK_THROWS_WITH_AS(other.load(dir / "adam.safetensors"),
                         doctest::Contains("parameter 3: float32 (2,) in the file, float64 (2,) here"),
                         StateMismatchError);
  }
  {
    Mlp m(3);
    tg::optim::Adam few({{m.w1}, {m.b1, m.w2, m.b2}});
    CHECK_THROWS_WITH_AS(few.load(dir / "adam.safetensors"),
                         doctest::Contains("group 0: 2 parameters in the file, 1 here"), StateMismatchError);
  }
  // Nothing changed: the same options, counts and moments, and the next
  // steps are the twin's.
  CHECK(adam.lr(0) == adam_twin.lr(0));
  CHECK(cosine.last_epoch() == 0);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(adam.steps(i) == 2);
    CHECK(same_bits(adam.state(i, "exp_avg"), adam_twin.state(i, "exp_avg")));
  }
  for (int t = 2; t < 4; ++t) {
    train_step(a, adam, t);
    train_step(twin, adam_twin, t);
  }
  CHECK(same_bits(a.w1, twin.w1));
  CHECK(same_bits(a.b2, twin.b2));
}

// ---- more schedulers, against torch's formulas written out ------------------

namespace {

// SGD with two groups of base lrs 0.5 and 0.2 (momentum 0.9, for OneCycleLR).
struct TwoGroups {
  tg::Tensor a = param(), b = param();
  tg::optim::SGD sgd{{{a}, {{b}, {{"lr", 0.2}}}}, 0.5, 0.9};
};

}  // namespace

TEST_CASE("schedulers act on every group, each from its own initial lr") {
  SUBCASE("ExponentialLR: lr·gamma each epoch") {
    TwoGroups m;
    tg::optim::ExponentialLR sched(m.sgd, 0.9);
    Vec lr = {0.5, 0.2};
    for (int epoch = 1; epoch <= 8; ++epoch) {
      sched.step();
      for (std::size_t g = 0; g < 2; ++g) {
        lr[g] *= 0.9;
        CHECK(m.sgd.lr(g) == lr[g]);
        CHECK(sched.last_lrs()[g] == lr[g]);
      }
    }
    CHECK(sched.base_lrs() == Vec{0.5, 0.2});
  }
  SUBCASE("StepLR and CosineAnnealingLR per group") {
    TwoGroups m;
    tg::optim::CosineAnnealingLR sched(m.sgd, 4, 0.01);
    for (int epoch = 1; epoch <= 6; ++epoch) {
      sched.step();
      for (std::size_t g = 0; g < 2; ++g) {
        const double base = g == 0 ? 0.5 : 0.2;
        CHECK(m.sgd.lr(g) == doctest::Approx(0.01 + (base - 0.01) * (1 + std::cos(kPi * epoch / 4)) / 2).epsilon(1e-14));
      }
    }
    TwoGroups n;
    tg::optim::StepLR step(n.sgd, 2, 0.5);
    for (int epoch = 1; epoch <= 5; ++epoch) step.step();
    CHECK(n.sgd.lr(0) == doctest::Approx(0.5 * 0.25));
    CHECK(n.sgd.lr(1) == doctest::Approx(0.2 * 0.25));
  }
  SUBCASE("LinearLR: torch's chainable warm-up") {
    TwoGroups m;
    const double start = 0.25, end = 1.0;
    const std::int64_t total = 4;
    tg::optim::LinearLR sched(m.sgd, start, end, total);
    Vec lr = {0.5 * start, 0.2 * start};  // epoch 0
    CHECK(m.sgd.lr(0) == lr[0]);
    CHECK(m.sgd.lr(1) == lr[1]);
    for (std::int64_t epoch = 1; epoch <= 7; ++epoch) {
      sched.step();
      for (std::size_t g = 0; g < 2; ++g) {
        if (epoch <= total) lr[g] *= 1.0 + (end - start) / (total * start + (epoch - 1) * (end - start));
        CAPTURE(epoch);
        CHECK(m.sgd.lr(g) == lr[g]);
        // the closed form: base·(start + (end - start)·min(epoch, total) / total)
        const double base = g == 0 ? 0.5 : 0.2;
        CHECK(m.sgd.lr(g) ==
              doctest::Approx(base * (start + (end - start) * double(std::min(epoch, total)) / total)).epsilon(1e-14));
      }
    }
    CHECK(m.sgd.lr(0) == doctest::Approx(0.5));
  }
  SUBCASE("LambdaLR: base·lambda(epoch), one function per group") {
    TwoGroups m;
    tg::optim::LambdaLR sched(m.sgd, std::vector<tg::optim::LambdaLR::Lambda>{
                                         [](std::int64_t e) { return 1.0 / double(1 + e); },
                                         [](std::int64_t e) { return std::pow(0.95, double(e)); }});
    CHECK(m.sgd.lr(0) == 0.5);
    for (std::int64_t epoch = 1; epoch <= 5; ++epoch) {
      sched.step();
      CHECK(m.sgd.lr(0) == 0.5 * (1.0 / double(1 + epoch)));
      CHECK(m.sgd.lr(1) == 0.2 * std::pow(0.95, double(epoch)));
    }
    CHECK_THROWS_WITH_AS(tg::optim::LambdaLR(m.sgd, std::vector<tg::optim::LambdaLR::Lambda>{[](std::int64_t) { return 1.0; }}),
                         doctest::Contains("LambdaLR: got 1 functions for 2 parameter groups"), tg::ValueError);
  }
}

namespace {

double anneal_cos(double start, double end, double pct) { return end + (start - end) / 2.0 * (std::cos(kPi * pct) + 1.0); }

}  // namespace

TEST_CASE("OneCycleLR: torch's two phases of cosine annealing, momentum cycling the other way") {
  TwoGroups m;
  const std::int64_t total = 10;
  const double max_lrs[2] = {0.1, 0.4}, div = 25.0, final_div = 1e4, pct_start = 0.3;
  tg::optim::OneCycleLR sched(m.sgd, std::vector<double>{0.1, 0.4}, total);
  for (std::int64_t step = 0; step <= total; ++step) {
    if (step > 0) sched.step();
    const double end1 = pct_start * double(total) - 1.0, end2 = double(total) - 1.0;
    for (std::size_t g = 0; g < 2; ++g) {
      const double initial = max_lrs[g] / div, min_lr = initial / final_div;
      double lr, momentum;
      if (double(step) <= end1) {
        const double pct = double(step) / end1;
        lr = anneal_cos(initial, max_lrs[g], pct);
        momentum = anneal_cos(0.95, 0.85, pct);
      } else {
        const double pct = (double(step) - end1) / (end2 - end1);
        lr = anneal_cos(max_lrs[g], min_lr, pct);
        momentum = anneal_cos(0.85, 0.95, pct);
      }
      CAPTURE(step);
      CAPTURE(g);
      CHECK(m.sgd.lr(g) == doctest::Approx(lr).epsilon(1e-14));
      CHECK(m.sgd.option(g, "momentum") == doctest::Approx(momentum).epsilon(1e-14));
      if (step == total - 1) CHECK(m.sgd.lr(g) == doctest::Approx(min_lr).epsilon(1e-12));  // the cycle's end
    }
  }
  CHECK(m.sgd.initial_lr(1) == 0.4 / 25);
  CHECK_THROWS_WITH_AS(sched.step(), doctest::Contains("OneCycleLR: tried to step 11 times"), tg::ValueError);

  SUBCASE("three phases, linear annealing, Adam's beta1") {
    tg::Tensor p = param();
    tg::optim::Adam adam({p}, 1e-3);
    tg::optim::OneCycleOptions o;
    o.three_phase = true;
    o.anneal_cos = false;
    o.pct_start = 0.25;
    const std::int64_t steps = 20;
    tg::optim::OneCycleLR three(adam, 1.0, steps, o);
    auto lin = [](double start, double end, double pct) { return (end - start) * pct + start; };
    const double initial = 1.0 / 25, min_lr = initial / 1e4;
    const double e1 = 0.25 * steps - 1, e2 = 2 * 0.25 * steps - 2, e3 = steps - 1.0;
    for (std::int64_t step = 0; step < steps; ++step) {
      if (step > 0) three.step();
      const double s = double(step);
      double lr, beta1;
      if (s <= e1) {
        lr = lin(initial, 1.0, s / e1);
        beta1 = lin(0.95, 0.85, s / e1);
      } else if (s <= e2) {
        lr = lin(1.0, initial, (s - e1) / (e2 - e1));
        beta1 = lin(0.85, 0.95, (s - e1) / (e2 - e1));
      } else {
        lr = lin(initial, min_lr, (s - e2) / (e3 - e2));
        beta1 = 0.95;
      }
      CAPTURE(step);
      CHECK(adam.lr() == doctest::Approx(lr).epsilon(1e-14));
      CHECK(adam.option(0, "beta1") == doctest::Approx(beta1).epsilon(1e-14));
    }
    // One more step extrapolates the last phase, linearly below 0 here: refused, and nothing changes.
    CHECK_THROWS_WITH_AS(three.step(), doctest::Contains("OneCycleLR: epoch 20 gives group 0 the invalid lr -"),
                         tg::ValueError);
    CHECK(three.last_epoch() == steps - 1);
    CHECK(adam.lr() == doctest::Approx(min_lr).epsilon(1e-12));
    CHECK(adam.option(0, "beta1") == 0.95);
  }
  SUBCASE("cycle_momentum off leaves the momentum alone") {
    TwoGroups n;
    tg::optim::OneCycleOptions o;
    o.cycle_momentum = false;
    tg::optim::OneCycleLR plain(n.sgd, 0.1, 10, o);
    plain.step();
    CHECK(n.sgd.option(0, "momentum") == 0.9);
  }
}

TEST_CASE("SequentialLR: warm-up, then the next scheduler restarted at the milestone") {
  TwoGroups m;
  auto warmup = std::make_shared<tg::optim::LinearLR>(m.sgd, 0.1, 1.0, 3);
  auto decay = std::make_shared<tg::optim::ExponentialLR>(m.sgd, 0.9);
  tg::optim::SequentialLR sched(m.sgd, {warmup, decay}, {3});
  const double base[2] = {0.5, 0.2};
  Vec lr = {0.5 * 0.1, 0.2 * 0.1};  // epoch 0: the warm-up's start
  CHECK(m.sgd.lr(0) == lr[0]);
  CHECK(m.sgd.lr(1) == lr[1]);
  CHECK(sched.last_epoch() == 0);
  for (std::int64_t epoch = 1; epoch <= 8; ++epoch) {
    sched.step();
    for (std::size_t g = 0; g < 2; ++g) {
      if (epoch < 3)
        lr[g] *= 1.0 + (1.0 - 0.1) / (3 * 0.1 + double(epoch - 1) * (1.0 - 0.1));
      else if (epoch == 3)
        lr[g] = base[g];  // ExponentialLR at its epoch 0
      else
        lr[g] *= 0.9;
      CAPTURE(epoch);
      CHECK(m.sgd.lr(g) == lr[g]);
      CHECK(sched.last_lrs()[g] == lr[g]);
    }
  }
  CHECK(decay->last_epoch() == 5);
  CHECK_THROWS_WITH_AS(tg::optim::SequentialLR(m.sgd, {warmup, decay}, {}),
                       doctest::Contains("SequentialLR: got 2 schedulers and 0 milestones"), tg::ValueError);
  TwoGroups other;
  auto foreign = std::make_shared<tg::optim::ExponentialLR>(other.sgd, 0.5);
  CHECK_THROWS_WITH_AS(tg::optim::SequentialLR(m.sgd, {warmup, foreign}, {2}),
                       doctest::Contains("scheduler 1 (ExponentialLR) acts on another optimizer"), tg::ValueError);
}

TEST_CASE("ReduceLROnPlateau: patience, relative threshold, cooldown, a min_lr per group") {
  TwoGroups m;
  m.sgd.set_lr(0, 0.2);
  m.sgd.set_lr(1, 1.0);
  tg::optim::PlateauOptions c;
  c.patience = 2;
  c.factor = 0.5;
  c.threshold = 0.1;  // better: below best·0.9
  c.cooldown = 1;
  c.min_lrs = {0.03, 0.4};
  tg::optim::ReduceLROnPlateau sched(m.sgd, c);
  // Worked out by hand from torch's rules:
  //  epoch 1: best 1.0; 2-3: 0.95 is not below 0.9, bad 1, 2; 4: bad 3 > 2: halve, cooldown 1;
  //  5: best 0.5 (cooldown ends); 6-7: bad 1, 2; 8: halve (group 1 stops at 0.4), cooldown;
  //  9: bad, in cooldown: not counted; 10-11: bad 1, 2; 12: halve to min_lr 0.03; ...
  const Vec metrics = {1.0, 0.95, 0.95, 0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
  const Vec lr0 = {0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.03, 0.03, 0.03, 0.03, 0.03};
  const Vec lr1 = {1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4};
  for (std::size_t e = 0; e < metrics.size(); ++e) {
    sched.step(metrics[e]);
    CAPTURE(e + 1);
    CHECK(m.sgd.lr(0) == doctest::Approx(lr0[e]).epsilon(1e-15));
    CHECK(m.sgd.lr(1) == doctest::Approx(lr1[e]).epsilon(1e-15));
    CHECK(sched.last_lrs()[0] == m.sgd.lr(0));
  }
  CHECK(sched.best() == 0.5);
  CHECK(sched.last_epoch() == 16);

  SUBCASE("mode max with an absolute threshold; NaN is never an improvement") {
    tg::Tensor p = param();
    tg::optim::SGD sgd({p}, 1.0);
    tg::optim::PlateauOptions o;
    o.mode = tg::optim::PlateauOptions::Mode::kMax;
    o.threshold_mode = tg::optim::PlateauOptions::ThresholdMode::kAbs;
    o.threshold = 0.5;
    o.patience = 0;
    tg::optim::ReduceLROnPlateau up(sgd, o);
    up.step(1.0);  // best 1
    CHECK(sgd.lr() == 1.0);
    up.step(1.4);  // not above 1.5: reduce
    CHECK(sgd.lr() == doctest::Approx(0.1));
    up.step(2.0);  // best 2
    CHECK(sgd.lr() == doctest::Approx(0.1));
    up.step(std::nan(""));
    CHECK(sgd.lr() == doctest::Approx(0.01));
    CHECK(up.best() == 2.0);
  }
  SUBCASE("mode max with a relative threshold, mode min with an absolute one") {
    tg::Tensor p = param(), q = param();
    tg::optim::SGD up_sgd({p}, 1.0), down_sgd({q}, 1.0);
    tg::optim::PlateauOptions o;
    o.mode = tg::optim::PlateauOptions::Mode::kMax;
    o.threshold = 0.1;  // better: above best·1.1
    o.patience = 0;
    o.factor = 0.5;
    tg::optim::ReduceLROnPlateau up(up_sgd, o);
    up.step(10.0);
    up.step(10.5);  // not above 11
    CHECK(up_sgd.lr() == 0.5);
    up.step(11.5);
    CHECK(up_sgd.lr() == 0.5);
    CHECK(up.best() == 11.5);
    o.mode = tg::optim::PlateauOptions::Mode::kMin;
    o.threshold_mode = tg::optim::PlateauOptions::ThresholdMode::kAbs;
    o.threshold = 0.25;  // better: below best - 0.25
    tg::optim::ReduceLROnPlateau down(down_sgd, o);
    down.step(1.0);
    down.step(0.8);  // not below 0.75
    CHECK(down_sgd.lr() == 0.5);
    down.step(0.7);
    CHECK(down_sgd.lr() == 0.5);
    CHECK(down.best() == 0.7);
    CHECK(down.num_bad_epochs() == 0);
  }
  CHECK_THROWS_WITH_AS(tg::optim::ReduceLROnPlateau(m.sgd, [] {
                         tg::optim::PlateauOptions o;
                         o.factor = 1.0;
                         return o;
                       }()),
                       doctest::Contains("ReduceLROnPlateau: invalid factor 1"), tg::ValueError);
}

TEST_CASE("a scheduler refuses to step once the optimizer has more groups than it was made for") {
  tg::Tensor a = param(), b = param();
  tg::optim::SGD sgd({a}, 0.1);
  tg::optim::StepLR sched(sgd, 1);
  sgd.add_param_group({{b}});
  CHECK_THROWS_WITH_AS(sched.step(), doctest::Contains("StepLR: the optimizer has 2 parameter groups"), tg::ValueError);
}

// ---- clip_grad_value -------------------------------------------------------

TEST_CASE("clip_grad_value clamps every gradient to [-clip, clip], in place") {
  tg::Tensor a = param(), none = param();
  set_grad(a, {0.5, -3.0, 2.0, std::nan("")});
  tg::Tensor f(xt::xarray<float>{0.0f, 0.0f}, true);
  tg::sum(f * tg::Tensor{-0.25f, 7.0f}).backward();
  tg::optim::clip_grad_value({a, f, none}, 1.5);
  const Vec g = values(a.grad());
  CHECK(g[0] == 0.5);
  CHECK(g[1] == -1.5);
  CHECK(g[2] == 1.5);
  CHECK(std::isnan(g[3]));  // NaN stays NaN, as torch's clamp
  CHECK(f.grad().value<float>()(0) == -0.25f);
  CHECK(f.grad().value<float>()(1) == 1.5f);
  CHECK_FALSE(none.grad().defined());
  check_close(a, kStart);  // values untouched
  tg::optim::clip_grad_value({a}, 0.0);
  CHECK(values(a.grad())[1] == 0.0);
  CHECK_THROWS_WITH_AS(tg::optim::clip_grad_value({a}, -1.0),
                       doctest::Contains("clip_grad_value: invalid clip_value -1"), tg::ValueError);
  CHECK_THROWS_AS(tg::optim::clip_grad_value({a}, std::nan("")), tg::ValueError);
}
