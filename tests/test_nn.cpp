// Modules and layers: the parameter tree, train/eval, freezing, summary, and
// each layer against an independent computation or finite differences.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include <xtensor/xarray.hpp>

#include <tapegrad/core/parallel.hpp>  // kParallelGrain
#include <tapegrad/nn/layers.hpp>
#include <tapegrad/tapegrad.hpp>

using tg::Shape;
namespace nn = tg::nn;

namespace {

// A user-defined module: a small conv feature extractor and a head.
struct SmallNet : nn::Module {
  nn::Sequential features;
  nn::Linear head;
  explicit SmallNet(tg::Generator& gen)
      : features(register_module("features", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 4, 3).padding(1), gen),
                                                             nn::ReLU(), nn::MaxPool2d(2)))),
        head(register_module("head", nn::Linear(4 * 3 * 3, 5, gen))) {}
  tg::Tensor forward(const tg::Tensor& x) override { return head(tg::flatten(features(x))); }
};

std::vector<std::string> names(const std::vector<std::pair<std::string, tg::Tensor>>& named) {
  std::vector<std::string> out;
  for (const auto& n : named) out.push_back(n.first);
  return out;
}

}  // namespace

TEST_CASE("named_parameters walks the tree with dotted names, in registration order") {
  tg::Generator gen(1);
  SmallNet net(gen);
  CHECK(names(net.named_parameters()) ==
        std::vector<std::string>{"features.0.weight", "features.0.bias", "head.weight", "head.bias"});
  CHECK(names(net.named_parameters(false)).empty());
  CHECK(net.parameters().size() == 4);
  CHECK(net.num_parameters() == 4 * 9 + 4 + 36 * 5 + 5);
  CHECK(net.find("head.weight").shape() == Shape{5, 36});
  CHECK(net.find("head.weight").same(net.head->weight));
  CHECK_THROWS_WITH_AS(net.find("head.nope"), doctest::Contains("no parameter or buffer named \"nope\""), tg::ValueError);
  // Handles: a change through the module is seen by the parameter list.
  {
    tg::NoGradGuard no_grad;  // the parameter requires grad: written only outside the graph
    net.head->weight.mutable_value<float>()(0, 0) = 42.0f;
  }
  CHECK(net.parameters()[2].value<float>()(0, 0) == 42.0f);
  // Parameters are float32, and carry their dotted names.
  for (const auto& named : net.named_parameters()) {  // not [name, p]: INFO captures name in a lambda
    const std::string& name = named.first;
    const tg::Tensor& p = named.second;
    CAPTURE(name);
    CHECK(p.dtype() == tg::kFloat32);
    CHECK(p.name() == name);
  }
}

TEST_CASE("default initialization is PyTorch's: uniform in ±1/sqrt(fan_in)") {
  tg::Generator gen(2);
  nn::Conv2d conv(8, 16, 5, gen);
  const double bound = 1.0 / std::sqrt(8.0 * 25.0);
  const xt::xarray<float> w = conv->weight.to_xarray<float>();
  CHECK(xt::amax(xt::abs(w))() <= bound);
  CHECK(xt::amax(xt::abs(w))() > 0.9 * bound);
  const double variance = xt::variance(w)();
  CHECK(variance == doctest::Approx(bound * bound / 3).epsilon(0.1));
  nn::Linear lin(nn::LinearOptions(100, 10).bias(false), gen);
  CHECK_FALSE(lin->bias.defined());
  CHECK(names(lin->named_parameters()) == std::vector<std::string>{"weight"});
  tg::Generator g1(9), g2(9);
  CHECK(nn::Linear(3, 2, g1)->weight.to_xarray<float>() == nn::Linear(3, 2, g2)->weight.to_xarray<float>());
}

TEST_CASE("Linear and Conv2d compute their functional ops with their parameters") {
  tg::Generator gen(3);
  nn::Linear lin(4, 3, gen);
  const tg::Tensor x = tg::randn({2, 4}, gen);
  CHECK(xt::allclose(lin(x).value<float>(), tg::linear(x, lin->weight, lin->bias).value<float>()));
  nn::Conv2d conv(nn::Conv2dOptions(2, 3, {3, 2}).stride(2).padding(1), gen);
  const tg::Tensor img = tg::randn({1, 2, 6, 5}, gen);
  CHECK(xt::allclose(conv(img).value<float>(), tg::conv2d(img, conv->weight, conv->bias, 2, 1).value<float>()));
}

TEST_CASE("train and eval reach every submodule; Dropout is the identity in eval") {
  tg::Generator gen(4);
  nn::Dropout drop(0.5, gen);
  nn::Sequential seq(nn::Linear(10, 10, gen), drop);
  CHECK(drop->is_training());
  seq->eval();
  CHECK_FALSE(drop->is_training());
  const tg::Tensor x = tg::ones({1000});
  CHECK(drop(x).to_xarray<float>() == x.to_xarray<float>());
  seq->train();
  const tg::Tensor dropped = drop(x);
  CHECK(dropped.dtype() == tg::kFloat32);  // the mask follows the input's dtype
  const auto y = dropped.to_xarray<float>();
  std::size_t zeros = 0;
  for (float v : y) {
    CHECK((v == 0.0f || v == 2.0f));  // kept elements scaled by 1/(1-p)
    zeros += v == 0.0f;
  }
  CHECK(double(zeros) == doctest::Approx(500).epsilon(0.1));
  tg::Generator a(5), b(5);
  CHECK(nn::Dropout(0.3, a)(x).to_xarray<float>() == nn::Dropout(0.3, b)(x).to_xarray<float>());
  const tg::Tensor xd = tg::ones({100}, tg::kFloat64);
  CHECK(nn::Dropout(0.3, a)(xd).dtype() == tg::kFloat64);
}

TEST_CASE("BatchNorm2d: batch statistics in training, running statistics in eval") {
  tg::Generator gen(6);
  nn::BatchNorm2d bn(nn::BatchNorm2dOptions(3).eps(1e-5).momentum(0.1));
  CHECK(bn->num_batches_tracked.dtype() == tg::kInt64);  // as PyTorch's
  CHECK(bn->num_batches_tracked.shape() == Shape{});
  CHECK(&bn->to(tg::kFloat64) == bn.get());  // computed in double below, compared to double references
  CHECK(bn->running_mean.dtype() == tg::kFloat64);
  CHECK(bn->num_batches_tracked.dtype() == tg::kInt64);  // integer buffers are not converted
  {
    tg::NoGradGuard no_grad;
    bn->weight.copy_(tg::tensor({1.0, 2.0, 0.5}));
    bn->bias.copy_(tg::tensor({0.0, 1.0, -1.0}));
  }
  const tg::Tensor x = tg::randn({4, 3, 2, 5}, gen, 3.0, 2.0, tg::kFloat64);
  const auto xv = x.value<double>();
  const tg::Tensor out = bn(x);
  CHECK(out.dtype() == tg::kFloat64);
  const auto y = out.to_xarray<double>();
  for (std::size_t c = 0; c < 3; ++c) {
    double mean = 0, sq = 0;
    const double n = 4 * 2 * 5;
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t w = 0; w < 5; ++w) mean += xv(i, c, h, w) / n;
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t w = 0; w < 5; ++w) sq += std::pow(xv(i, c, h, w) - mean, 2);
    const double var = sq / n;
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t w = 0; w < 5; ++w) {
          const double want = bn->weight.value<double>()(c) * (xv(i, c, h, w) - mean) / std::sqrt(var + 1e-5) + bn->bias.value<double>()(c);
          CHECK(y(i, c, h, w) == doctest::Approx(want));
        }
    // running statistics: (1 - m)·initial + m·batch, the variance unbiased
    CHECK(bn->running_mean.value<double>()(c) == doctest::Approx(0.1 * mean));
    CHECK(bn->running_var.value<double>()(c) == doctest::Approx(0.9 + 0.1 * var * n / (n - 1)));
  }
  CHECK(bn->num_batches_tracked.item() == 1.0);
  CHECK(names(bn->named_buffers()) == std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});

  bn->eval();
  const auto z = bn(x).to_xarray<double>();
  const double rm = bn->running_mean.value<double>()(1), rv = bn->running_var.value<double>()(1);
  CHECK(z(0, 1, 0, 0) == doctest::Approx(2.0 * (xv(0, 1, 0, 0) - rm) / std::sqrt(rv + 1e-5) + 1.0));
  CHECK(bn->running_mean.value<double>()(1) == rm);  // eval does not update
  CHECK(bn->num_batches_tracked.item() == 1.0);
  CHECK_THROWS_WITH_AS(bn(tg::zeros({1, 2, 3, 3}, tg::kFloat64)), doctest::Contains("BatchNorm2d: expected input of shape (N, 3, H, W)"),
                       tg::ShapeError);
}

// Textbook batch normalization in training over x: (N, C, L), in double
// loops, and its gradients for the upstream gradient dy.
struct BatchNormReference {
  xt::xarray<double> y, dx, dw, db;
};
BatchNormReference batch_norm_reference(const xt::xarray<double>& x, const xt::xarray<double>& w,
                                        const xt::xarray<double>& b, const xt::xarray<double>& dy, double eps) {
  const std::size_t n = x.shape()[0], c = x.shape()[1], l = x.shape()[2];
  const double m = double(n * l);
  BatchNormReference r{xt::zeros_like(x), xt::zeros_like(x), xt::zeros<double>({c}), xt::zeros<double>({c})};
  for (std::size_t k = 0; k < c; ++k) {
    double mean = 0, var = 0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < l; ++j) mean += x(i, k, j) / m;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < l; ++j) var += (x(i, k, j) - mean) * (x(i, k, j) - mean) / m;
    const double inv = 1 / std::sqrt(var + eps);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < l; ++j) {
        r.y(i, k, j) = w(k) * (x(i, k, j) - mean) * inv + b(k);
        r.db(k) += dy(i, k, j);
        r.dw(k) += dy(i, k, j) * (x(i, k, j) - mean) * inv;
      }
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < l; ++j) {
        const double x_hat = (x(i, k, j) - mean) * inv;
        r.dx(i, k, j) = w(k) * inv * (dy(i, k, j) - r.db(k) / m - x_hat * r.dw(k) / m);
      }
  }
  return r;
}

// t as (N, C, L) values in double.
xt::xarray<double> as_ncl(const tg::Tensor& t) {
  const std::size_t n = t.shape()[0], c = t.shape()[1];
  return tg::reshape(t.detach(), tg::Shape{n, c, t.numel() / (n * c)}).to(tg::kFloat64).to_xarray<double>();
}

void check_close(const xt::xarray<double>& got, const xt::xarray<double>& want, double tolerance) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    CHECK(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(tolerance).scale(1.0));
}

// batch_norm in training has a kernel rule and, under create_graph, a rule
// written with tensor ops: both against the textbook, in loops.
TEST_CASE("batch_norm in training, forward and gradients, with and without create_graph, is the textbook one") {
  tg::Generator gen(12);
  const double eps = 1e-5;
  const tg::Shape shape{3, 2, 2, 3};
  SUBCASE("float64 and float32, weight and bias") {
    for (const tg::Dtype dtype : {tg::kFloat64, tg::kFloat32}) {
      const tg::Tensor x = tg::randn(shape, gen, 1.0, 2.0, dtype).requires_grad_();
      const tg::Tensor weight = tg::tensor({1.5, -0.5}, dtype).requires_grad_();
      const tg::Tensor bias = tg::tensor({0.25, 2.0}, dtype).requires_grad_();
      const tg::Tensor dy = tg::randn(shape, gen, 0.0, 1.0, dtype);
      const BatchNormReference want = batch_norm_reference(as_ncl(x), {1.5, -0.5}, {0.25, 2.0}, as_ncl(dy), eps);
      const double tolerance = dtype == tg::kFloat64 ? 1e-12 : 1e-5;
      for (const bool create_graph : {false, true}) {
        CAPTURE(create_graph);
        const tg::Tensor y = tg::batch_norm(x, {}, {}, weight, bias, true, 0.1, eps);
        check_close(as_ncl(y), want.y, tolerance);
        const auto grads = tg::grad({y}, {x, weight, bias}, {dy}, false, create_graph);
        CHECK(grads[0].requires_grad() == create_graph);
        check_close(as_ncl(grads[0]), want.dx, tolerance);
        check_close(grads[1].to(tg::kFloat64).to_xarray<double>(), want.dw, tolerance);
        check_close(grads[2].to(tg::kFloat64).to_xarray<double>(), want.db, tolerance);
      }
    }
  }
  SUBCASE("each walk of the kernel, with and without weight and bias, gives the same bits on one thread and two") {
    // Runs of 960 and 2 (a channel per block) and 1 (all of a thread's
    // channels, sample by sample). 3 · numel is at least twice
    // tg::kParallelGrain, so two threads do split the channels.
    struct Threads {  // sets the thread count, and restores it however the block ends
      int previous = tg::get_num_threads();
      explicit Threads(int n) { tg::set_num_threads(n); }
      ~Threads() { tg::set_num_threads(previous); }
    };
    for (const tg::Shape& s : {tg::Shape{8, 3, 30, 32}, tg::Shape{2048, 6, 2}, tg::Shape{4096, 6}})
      for (const bool affine : {true, false}) {
        CAPTURE(tg::shape_str(s));
        CAPTURE(affine);
        REQUIRE(3 * tg::product(s) >= 2 * tg::kParallelGrain);
        const std::size_t c = s[1];
        const tg::Tensor x = tg::randn(s, gen, 1.0, 2.0, tg::kFloat32).requires_grad_();
        const tg::Tensor weight = affine ? tg::rand({c}, gen, 0.5, 1.5).requires_grad_() : tg::Tensor();
        const tg::Tensor bias = affine ? tg::randn({c}, gen).requires_grad_() : tg::Tensor();
        const tg::Tensor dy = tg::randn(s, gen);
        const auto values = [](const tg::Tensor& t) { return t.detach().to(tg::kFloat64).to_xarray<double>(); };
        const xt::xarray<double> w = affine ? values(weight) : xt::xarray<double>(xt::ones<double>({c}));
        const xt::xarray<double> b = affine ? values(bias) : xt::xarray<double>(xt::zeros<double>({c}));
        const BatchNormReference want = batch_norm_reference(as_ncl(x), w, b, as_ncl(dy), eps);
        std::vector<std::vector<xt::xarray<double>>> runs;
        for (const int threads : {1, 2}) {
          const Threads guard(threads);
          const tg::Tensor y = tg::batch_norm(x, {}, {}, weight, bias, true, 0.1, eps);
          const auto grads = affine ? tg::grad({y}, {x, weight, bias}, {dy}) : tg::grad({y}, {x}, {dy});
          runs.push_back({as_ncl(y), as_ncl(grads[0])});
          if (affine) {
            runs.back().push_back(values(grads[1]));
            runs.back().push_back(values(grads[2]));
          }
        }
        check_close(runs[0][0], want.y, 1e-5);
        check_close(runs[0][1], want.dx, 1e-4);
        if (affine) {
          check_close(runs[0][2], want.dw, 1e-5);
          check_close(runs[0][3], want.db, 1e-5);
        }
        for (std::size_t k = 0; k < runs[0].size(); ++k) CHECK(runs[1][k] == runs[0][k]);  // bit for bit
      }
  }
  SUBCASE("float32 with a mean 10^4 times the spread: centred in double") {
    const tg::Tensor x = tg::randn(shape, gen, 1000.0, 0.1).requires_grad_();
    const tg::Tensor weight = tg::tensor({1.5f, -0.5f}).requires_grad_();
    const tg::Tensor dy = tg::randn(shape, gen);
    const BatchNormReference want = batch_norm_reference(as_ncl(x), {1.5, -0.5}, {0.0, 0.0}, as_ncl(dy), eps);
    const tg::Tensor y = tg::batch_norm(x, {}, {}, weight, {}, true, 0.1, eps);
    check_close(as_ncl(y), want.y, 1e-5);
    const auto grads = tg::grad({y}, {x, weight}, {dy});
    check_close(as_ncl(grads[0]), want.dx, 1e-4);
    check_close(grads[1].to(tg::kFloat64).to_xarray<double>(), want.dw, 1e-5);
  }
  SUBCASE("an input that needs no gradient, a bias without weight, a strided input") {
    const tg::Tensor base = tg::randn({3, 2, 3, 2}, gen, 0.5, 1.0, tg::kFloat64);  // (N, H, W, C)
    const tg::Tensor x = base.permute({0, 3, 1, 2});                            // (N, C, H, W), strided
    const tg::Tensor bias = tg::tensor({0.25, 2.0}, tg::kFloat64).requires_grad_();
    const tg::Tensor dy = tg::randn(shape, gen, 0.0, 1.0, tg::kFloat64).permute({0, 1, 3, 2}).contiguous().permute({0, 1, 3, 2});
    const BatchNormReference want = batch_norm_reference(as_ncl(x), {1.0, 1.0}, {0.25, 2.0}, as_ncl(dy), eps);
    for (const bool create_graph : {false, true}) {
      CAPTURE(create_graph);
      const tg::Tensor y = tg::batch_norm(x, {}, {}, {}, bias, true, 0.1, eps);
      check_close(as_ncl(y), want.y, 1e-12);
      check_close(tg::grad({y}, {bias}, {dy}, false, create_graph)[0].to_xarray<double>(), want.db, 1e-12);
      const tg::Tensor xg = x.detach().requires_grad_();  // strided, and now needing a gradient
      check_close(as_ncl(tg::grad({tg::batch_norm(xg, {}, {}, {}, bias, true)}, {xg}, {dy}, false, create_graph)[0]),
                  want.dx, 1e-12);
    }
  }
}

TEST_CASE("batch_norm's weight, bias and running statistics must have the input's dtype") {
  const tg::Tensor x = tg::ones({2, 3});
  const tg::Tensor mean = tg::zeros({3}, tg::kFloat64), var = tg::ones({3}, tg::kFloat64);
  CHECK_THROWS_WITH_AS(tg::batch_norm(x, {}, {}, tg::ones({3}, tg::kFloat64), {}, true),
                       "batch_norm: weight is float64 but the input is float32", tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::batch_norm(x, {}, {}, {}, tg::zeros({3}, tg::kFloat64), true),
                       "batch_norm: bias is float64 but the input is float32", tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::batch_norm(x, mean, var), "batch_norm: running_mean is float64 but the input is float32",
                       tg::DtypeError);
  CHECK(tg::batch_norm(x.to(tg::kFloat64), mean, var).dtype() == tg::kFloat64);
}

TEST_CASE("gradcheck of a Sequential with conv, batchnorm, pool and linear, converted to double") {
  tg::Generator gen(7);
  nn::Sequential net(nn::Conv2d(nn::Conv2dOptions(2, 3, 3).padding(1), gen), nn::BatchNorm2d(3), nn::Tanh(),
                     nn::MaxPool2d(2), nn::Flatten(), nn::Linear(3 * 2 * 2, 2, gen));
  net->to(tg::kFloat64);
  const tg::Tensor x = tg::randn({2, 2, 4, 4}, gen, 0.0, 1.0, tg::kFloat64).requires_grad_();
  // The parameters are inputs: gradcheck perturbs them in place, which the
  // module sees through its handles.
  std::vector<tg::Tensor> inputs{x};
  for (const auto& p : net->parameters()) inputs.push_back(p);
  auto f = [&](const std::vector<tg::Tensor>& in) { return net(in[0]); };
  const auto report = tg::gradcheck(f, inputs);
  INFO(report.message);
  CHECK(report.passed);
  net->eval();
  CHECK(tg::gradcheck(f, inputs).passed);
}

TEST_CASE("freeze and unfreeze: whole module, a parameter, a submodule; frozen parameters are not recorded") {
  tg::Generator gen(8);
  SmallNet net(gen);
  const tg::Tensor x = tg::randn({2, 1, 6, 6}, gen);

  tg::tape().clear();
  const tg::Tensor full = net(x);  // kept alive: the tape drops the entries of a dead output
  const std::size_t full_tape = tg::tape().size();
  REQUIRE(full_tape > 0);

  net.freeze("features");
  CHECK_FALSE(net.features->parameters()[0].requires_grad());
  CHECK(net.head->weight.requires_grad());
  CHECK(net.num_trainable_parameters() == 36 * 5 + 5);
  tg::tape().clear();
  tg::Tensor y = net(x);
  // Only the head's ops are recorded: the conv, relu and pool read nothing trainable.
  CHECK(tg::tape().size() < full_tape);
  for (std::size_t i = 0; i < tg::tape().size(); ++i) CHECK(tg::tape()[i].op != "im2col");
  tg::sum(y).backward();
  CHECK_FALSE(net.features->parameters()[0].grad().defined());
  CHECK(net.head->weight.grad().defined());

  net.freeze("head.bias");
  CHECK_FALSE(net.head->bias.requires_grad());
  net.unfreeze();
  CHECK(net.num_trainable_parameters() == net.num_parameters());
  net.freeze();
  CHECK(net.num_trainable_parameters() == 0);
  tg::tape().clear();
  const tg::Tensor frozen = net(x);
  CHECK(tg::tape().size() == 0);
  CHECK_THROWS_WITH_AS(net.freeze("nothing"), doctest::Contains("freeze: no parameter or submodule named \"nothing\""),
                       tg::ValueError);
  tg::tape().clear();
}

TEST_CASE("zero_grad clears every parameter's gradient") {
  tg::Generator gen(9);
  SmallNet net(gen);
  const tg::Tensor x = tg::randn({1, 1, 6, 6}, gen);
  tg::sum(net(x)).backward();
  for (const auto& p : net.parameters()) CHECK(p.grad().defined());
  net.zero_grad();
  for (const auto& p : net.parameters()) CHECK_FALSE(p.grad().defined());

  // set_to_none = false keeps each gradient tensor, zeroed in place.
  tg::sum(net(x)).backward();
  std::vector<tg::Tensor> grads;
  for (const auto& p : net.parameters()) grads.push_back(p.grad());
  net.zero_grad(false);
  const auto params = net.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    REQUIRE(params[i].grad().defined());
    CHECK(params[i].grad().same(grads[i]));
    const auto g = params[i].grad().to_xarray<float>();
    CHECK(std::all_of(g.begin(), g.end(), [](float v) { return v == 0.0f; }));
  }
}

TEST_CASE("summary lists each layer's output shape and parameters, Keras style") {
  tg::Generator gen(10);
  SmallNet net(gen);
  net.freeze("features");
  const std::string s = net.summary({2, 1, 6, 6});
  CHECK(s.find("features.0 (Conv2d)") != std::string::npos);
  CHECK(s.find("(2, 4, 6, 6)") != std::string::npos);
  CHECK(s.find("features.2 (MaxPool2d)") != std::string::npos);
  CHECK(s.find("(2, 4, 3, 3)") != std::string::npos);
  CHECK(s.find("head (Linear)") != std::string::npos);
  CHECK(s.find("(2, 5)") != std::string::npos);
  CHECK(s.find("Total params: 225") != std::string::npos);
  CHECK(s.find("Trainable params: 185") != std::string::npos);
  CHECK(s.find("Non-trainable params: 40") != std::string::npos);
  CHECK(tg::tape().size() == 0);  // the summary's forward pass records nothing

  std::ostringstream os;
  os << net;
  CHECK(os.str().find("(features): Sequential(") != std::string::npos);
  CHECK(os.str().find("(0): Conv2d(1, 4, kernel=(3, 3), stride=(1, 1), padding=(1, 1))") != std::string::npos);
  CHECK(os.str().find("(head): Linear(in=36, out=5)") != std::string::npos);
}

TEST_CASE("summary of a module that calls an unregistered submodule names the problem") {
  tg::Generator gen(12);
  struct Hidden : nn::Module {
    explicit Hidden(tg::Generator& g) : inner(2, 2, g) {}
    tg::Tensor forward(const tg::Tensor& x) override { return inner(x); }
    nn::Linear inner;  // a member, never passed to register_module
  };
  Hidden net(gen);
  CHECK_THROWS_WITH_AS(net.summary({1, 2}), doctest::Contains("Hidden.summary: forward called a module that is not registered"),
                       tg::ValueError);
}

TEST_CASE("registration and construction errors") {
  tg::Generator gen(11);
  struct Twice : nn::Module {
    explicit Twice(tg::Generator& g) {
      register_module("a", std::make_shared<nn::LinearImpl>(2, 2, g));
      register_module("a", nn::Linear(2, 2, g));
    }
    tg::Tensor forward(const tg::Tensor& x) override { return x; }
    std::string type_name() const override { return "Twice"; }
  };
  CHECK_THROWS_WITH_AS(Twice{gen}, doctest::Contains("\"a\" is already registered"), tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::Conv2d(nn::Conv2dOptions(3, 4, 3).groups(2), gen), doctest::Contains("Conv2d: in_channels=3"), tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::Dropout(1.0, gen), doctest::Contains("Dropout: p must be in [0, 1)"), tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::Linear(0, 3, gen), doctest::Contains("Linear: features must be positive"), tg::ValueError);
}

TEST_CASE("a model trained a few steps, saved and loaded into a fresh model gives identical outputs") {
  tg::Generator gen(12);
  SmallNet trained(gen);
  nn::BatchNorm2d bn(1);  // buffers travel too
  nn::Sequential model(bn, std::make_shared<SmallNet>(gen));
  tg::optim::Adam adam(model->parameters(), 1e-2);
  const tg::Tensor x = tg::randn({8, 1, 6, 6}, gen);
  const std::vector<std::int64_t> y{0, 1, 2, 3, 4, 0, 1, 2};
  for (int step = 0; step < 5; ++step) {
    const tg::Tensor loss = tg::cross_entropy(model(x), y);
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  const auto path = std::filesystem::temp_directory_path() / "tapegrad_test_nn_model.safetensors";
  tg::nn::save(*model, path.string());

  tg::Generator other(99);  // a fresh model with different initial weights
  nn::Sequential fresh(nn::BatchNorm2d(1), std::make_shared<SmallNet>(other));
  model->eval();
  fresh->eval();
  CHECK(model(x).to_xarray<float>() != fresh(x).to_xarray<float>());
  tg::nn::load(*fresh, path.string());
  CHECK(model(x).to_xarray<float>() == fresh(x).to_xarray<float>());
  CHECK(fresh->find("0.running_mean").to_xarray<float>() == bn->running_mean.to_xarray<float>());
  CHECK(fresh->find("0.num_batches_tracked").item() == 5.0);
  std::filesystem::remove(path);
}

TEST_CASE("parameters carry their dotted names, which the tape shows") {
  tg::Generator gen(13);
  SUBCASE("a Sequential's layers: 0.weight") {
    nn::Sequential seq(nn::Conv2d(1, 2, 3, gen), nn::ReLU());
    CHECK(seq->find("0.weight").name() == "0.weight");
    CHECK(seq->find("0.bias").name() == "0.bias");
    tg::tape().clear();
    const tg::Tensor y = seq(tg::randn({1, 1, 5, 5}, gen));
    std::ostringstream os;
    os << tg::tape();
    CAPTURE(os.str());
    CHECK(os.str().find("0.weight(2, 1, 3, 3)") != std::string::npos);
    CHECK(os.str().find("0.bias(2,)") != std::string::npos);
  }
  SUBCASE("nested: features.0.weight, head.weight") {
    SmallNet net(gen);
    tg::tape().clear();
    const tg::Tensor y = net(tg::randn({1, 1, 6, 6}, gen));
    std::ostringstream os;
    os << tg::tape();
    CAPTURE(os.str());
    CHECK(os.str().find("features.0.weight(4, 1, 3, 3)") != std::string::npos);
    CHECK(os.str().find("head.weight(5, 36)") != std::string::npos);
  }
  SUBCASE("a module adopted later gets the new prefix, buffers too") {
    nn::BatchNorm2d bn(1);
    nn::Sequential model(bn, std::make_shared<SmallNet>(gen));
    CHECK(model->find("1.features.0.weight").name() == "1.features.0.weight");
    CHECK(model->find("1.head.bias").name() == "1.head.bias");
    CHECK(bn->running_mean.name() == "0.running_mean");
    CHECK(bn->num_batches_tracked.name() == "0.num_batches_tracked");
  }
  SUBCASE("a layer added to a container that is already registered gets the full path") {
    struct Late : nn::Module {
      nn::Sequential body;
      explicit Late(tg::Generator& g) : body(register_module("body", nn::Sequential())) {
        body->push_back(nn::Linear(2, 3, g));  // after "body" was registered
      }
      tg::Tensor forward(const tg::Tensor& x) override { return body(x); }
    };
    Late late(gen);
    CHECK(late.find("body.0.weight").name() == "body.0.weight");
  }
  tg::tape().clear();
}

TEST_CASE("a Sequential that would contain itself is refused, naming the module") {
  tg::Generator gen(14);
  nn::Sequential seq;
  seq->push_back(nn::Linear(2, 2, gen));
  CHECK_THROWS_WITH_AS(seq->push_back(seq), doctest::Contains("cannot add \"1\" (Sequential) to this Sequential"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(seq->push_back(seq), doctest::Contains("a module cannot contain itself"), tg::ValueError);
  CHECK(seq->size() == 1);
  CHECK(seq->named_children().size() == 1);

  // Through children: outer -> middle -> seq; seq adopting outer would close the loop.
  // (Not nn::Sequential middle(seq): from one holder of its own type, a holder is a copy sharing the module.)
  nn::Sequential middle, outer;
  middle->push_back(seq);
  outer->push_back(middle);
  CHECK_THROWS_WITH_AS(seq->push_back(outer), doctest::Contains("it contains this Sequential"), tg::ValueError);
  CHECK_THROWS_AS(middle->push_back(outer), tg::ValueError);
  CHECK(seq->size() == 1);
  CHECK(middle->size() == 1);
  // The tree is still a tree: its walks end.
  CHECK(outer->parameters().size() == 2);
  CHECK(outer(tg::ones({1, 2})).shape() == Shape{1, 2});
  // Sharing a module (not a cycle) is allowed.
  CHECK_NOTHROW(outer->push_back(seq));
}

TEST_CASE("to(dtype) converts parameters and floating buffers in place, for every handle") {
  tg::Generator gen(15);
  nn::BatchNorm2d bn(4);
  SmallNet net(gen);
  nn::Sequential model(nn::Conv2d(nn::Conv2dOptions(1, 4, 3).padding(1), gen), bn);
  const tg::Tensor weight = model->find("0.weight");  // a handle taken before the conversion
  const xt::xarray<float> before = weight.to_xarray<float>();
  model->freeze("1");
  tg::sum(model(tg::randn({2, 1, 4, 4}, gen))).backward();
  REQUIRE(weight.grad().defined());

  CHECK(&model->to(tg::kFloat64) == model.get());
  for (const auto& named : model->named_parameters()) {  // not [name, p]: INFO captures name in a lambda
    const std::string& name = named.first;
    const tg::Tensor& p = named.second;
    CAPTURE(name);
    CHECK(p.dtype() == tg::kFloat64);
    CHECK(p.is_leaf());
    CHECK(p.name() == name);
    CHECK(p.requires_grad() == (name.rfind("1.", 0) != 0));  // the frozen stay frozen
  }
  CHECK(weight.dtype() == tg::kFloat64);  // the same tensor: every handle sees the new value
  CHECK(weight.same(model->find("0.weight")));
  CHECK(xt::xarray<float>(weight.to_xarray<double>()) == before);  // float32 -> float64 is exact
  CHECK_FALSE(weight.grad().defined());  // a float32 gradient no longer fits
  CHECK(bn->running_var.dtype() == tg::kFloat64);
  CHECK(bn->num_batches_tracked.dtype() == tg::kInt64);
  CHECK(bn->num_batches_tracked.item() == 1.0);
  const tg::Tensor y = model(tg::randn({2, 1, 4, 4}, gen, 0.0, 1.0, tg::kFloat64));
  CHECK(y.dtype() == tg::kFloat64);
  CHECK(model->summary({2, 1, 4, 4}).find("(2, 4, 4, 4)") != std::string::npos);  // a double input

  model->to(tg::kFloat32);
  CHECK(weight.dtype() == tg::kFloat32);
  CHECK(weight.to_xarray<float>() == before);
  CHECK_THROWS_WITH_AS(model->to(tg::kInt64), doctest::Contains("Sequential.to: a module converts to float32 or float64"),
                       tg::DtypeError);
  CHECK(net.to(tg::kFloat32).num_parameters() == 225);  // already float32: nothing to do
}

TEST_CASE("a float32 conv net converted with to(kFloat64) passes gradcheck on its parameters") {
  tg::Generator gen(16);
  nn::Conv2d conv(nn::Conv2dOptions(2, 3, 3).padding(1), gen);
  nn::Linear fc(3 * 2 * 2, 2, gen);
  nn::Sequential net(conv, nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), fc);
  REQUIRE(conv->weight.dtype() == tg::kFloat32);
  net->to(tg::kFloat64);
  REQUIRE(conv->weight.dtype() == tg::kFloat64);
  REQUIRE(fc->bias.dtype() == tg::kFloat64);

  // The parameters are the checked inputs: gradcheck perturbs each element in
  // place, and the net reads them through its own handles, so the lambda
  // ignores its argument. The data is a constant double input.
  const tg::Tensor x = tg::randn({2, 2, 4, 4}, gen, 0.0, 1.0, tg::kFloat64);
  const std::vector<tg::Tensor> params = net->parameters();
  REQUIRE(params.size() == 4);
  auto f = [&](const std::vector<tg::Tensor>&) { return net(x); };
  CHECK(f(params).dtype() == tg::kFloat64);
  const tg::GradcheckReport report = tg::gradcheck(f, params);
  INFO(report.message);
  CHECK(report.passed);
  CHECK(report.checked == net->num_parameters());

  // Unconverted, the float32 parameters are refused: finite differences need float64.
  net->to(tg::kFloat32);
  CHECK_THROWS_AS(tg::gradcheck(f, net->parameters()), tg::DtypeError);
}
