// Modules and layers: the parameter tree, train/eval, freezing, summary, and
// each layer against an independent computation or finite differences.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include <tapegrad/nn/layers.hpp>
#include <tapegrad/tapegrad.hpp>

using tg::DTensor;
using tg::Shape;
namespace nn = tg::nn;

namespace {

// A user-defined module: a small conv feature extractor and a head.
struct SmallNet : nn::Module {
  std::shared_ptr<nn::Sequential> features;
  std::shared_ptr<nn::Linear> head;
  explicit SmallNet(tg::Generator& gen)
      : features(register_module("features", std::make_shared<nn::Sequential>(std::initializer_list<nn::Sequential::Item>{
                                                 std::make_shared<nn::Conv2d>(1, 4, 3, gen, 1, 1),
                                                 std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2)}))),
        head(register_module("head", std::make_shared<nn::Linear>(4 * 3 * 3, 5, gen))) {}
  tg::Tensor forward(const tg::Tensor& x) override { return (*head)(tg::flatten((*features)(x))); }
  std::string type_name() const override { return "SmallNet"; }
};

template <class T>
std::vector<std::string> names(const std::vector<std::pair<std::string, tg::BasicTensor<T>>>& named) {
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
  net.head->weight.value()(0, 0) = 42.0f;
  CHECK(net.parameters()[2].value()(0, 0) == 42.0f);
}

TEST_CASE("default initialization is PyTorch's: uniform in ±1/sqrt(fan_in)") {
  tg::Generator gen(2);
  nn::Conv2d conv(8, 16, 5, gen);
  const double bound = 1.0 / std::sqrt(8.0 * 25.0);
  CHECK(xt::amax(xt::abs(conv.weight.value()))() <= bound);
  CHECK(xt::amax(xt::abs(conv.weight.value()))() > 0.9 * bound);
  const double variance = xt::variance(conv.weight.value())();
  CHECK(variance == doctest::Approx(bound * bound / 3).epsilon(0.1));
  nn::Linear lin(100, 10, gen, /*bias=*/false);
  CHECK_FALSE(lin.bias.defined());
  CHECK(names(lin.named_parameters()) == std::vector<std::string>{"weight"});
  tg::Generator g1(9), g2(9);
  CHECK(nn::Linear(3, 2, g1).weight.value() == nn::Linear(3, 2, g2).weight.value());
}

TEST_CASE("Linear and Conv2d compute their functional ops with their parameters") {
  tg::Generator gen(3);
  nn::Linear lin(4, 3, gen);
  const tg::Tensor x = tg::randn<float>({2, 4}, gen);
  CHECK(xt::allclose(lin(x).value(), tg::linear(x, lin.weight, lin.bias).value()));
  nn::Conv2d conv(2, 3, {3, 2}, gen, 2, 1, 1, 1);
  const tg::Tensor img = tg::randn<float>({1, 2, 6, 5}, gen);
  CHECK(xt::allclose(conv(img).value(), tg::conv2d(img, conv.weight, conv.bias, 2, 1).value()));
}

TEST_CASE("train and eval reach every submodule; Dropout is the identity in eval") {
  tg::Generator gen(4);
  auto drop = std::make_shared<nn::Dropout>(0.5, gen);
  nn::Sequential seq{std::make_shared<nn::Linear>(10, 10, gen), drop};
  CHECK(drop->is_training());
  seq.eval();
  CHECK_FALSE(drop->is_training());
  const tg::Tensor x = tg::ones<float>({1000});
  CHECK((*drop)(x).value() == x.value());
  seq.train();
  const auto y = (*drop)(x).value();
  std::size_t zeros = 0;
  for (float v : y) {
    CHECK((v == 0.0f || v == 2.0f));  // kept elements scaled by 1/(1-p)
    zeros += v == 0.0f;
  }
  CHECK(double(zeros) == doctest::Approx(500).epsilon(0.1));
  tg::Generator a(5), b(5);
  CHECK(nn::Dropout(0.3, a)(x).value() == nn::Dropout(0.3, b)(x).value());
}

TEST_CASE("BatchNorm2d: batch statistics in training, running statistics in eval") {
  tg::Generator gen(6);
  nn::DBatchNorm2d bn(3, 1e-5, 0.1);
  bn.weight.value() = xt::xarray<double>{1.0, 2.0, 0.5};
  bn.bias.value() = xt::xarray<double>{0.0, 1.0, -1.0};
  const DTensor x = tg::randn<double>({4, 3, 2, 5}, gen, 3.0, 2.0);
  const auto y = bn(x).value();
  for (std::size_t c = 0; c < 3; ++c) {
    double mean = 0, sq = 0;
    const double n = 4 * 2 * 5;
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t w = 0; w < 5; ++w) mean += x.value()(i, c, h, w) / n;
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t w = 0; w < 5; ++w) sq += std::pow(x.value()(i, c, h, w) - mean, 2);
    const double var = sq / n;
    for (std::size_t i = 0; i < 4; ++i)
      for (std::size_t h = 0; h < 2; ++h)
        for (std::size_t w = 0; w < 5; ++w) {
          const double want = bn.weight.value()(c) * (x.value()(i, c, h, w) - mean) / std::sqrt(var + 1e-5) + bn.bias.value()(c);
          CHECK(y(i, c, h, w) == doctest::Approx(want));
        }
    // running statistics: (1 - m)·initial + m·batch, the variance unbiased
    CHECK(bn.running_mean.value()(c) == doctest::Approx(0.1 * mean));
    CHECK(bn.running_var.value()(c) == doctest::Approx(0.9 + 0.1 * var * n / (n - 1)));
  }
  CHECK(bn.num_batches_tracked.item() == 1.0);
  CHECK(names(bn.named_buffers()) == std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});

  bn.eval();
  const auto z = bn(x).value();
  const double rm = bn.running_mean.value()(1), rv = bn.running_var.value()(1);
  CHECK(z(0, 1, 0, 0) == doctest::Approx(2.0 * (x.value()(0, 1, 0, 0) - rm) / std::sqrt(rv + 1e-5) + 1.0));
  CHECK(bn.running_mean.value()(1) == rm);  // eval does not update
  CHECK_THROWS_WITH_AS(bn(tg::zeros<double>({1, 2, 3, 3})), doctest::Contains("BatchNorm2d: expected input of shape (N, 3, H, W)"),
                       tg::ShapeError);
}

TEST_CASE("gradcheck of a Sequential with conv, batchnorm, pool and linear, in double") {
  tg::Generator gen(7);
  nn::DSequential net{std::make_shared<nn::DConv2d>(2, 3, 3, gen, 1, 1), std::make_shared<nn::DBatchNorm2d>(3),
                      std::make_shared<nn::DTanh>(), std::make_shared<nn::DMaxPool2d>(2),
                      std::make_shared<nn::DFlatten>(), std::make_shared<nn::DLinear>(3 * 2 * 2, 2, gen)};
  const DTensor x = tg::randn<double>({2, 2, 4, 4}, gen).requires_grad_();
  std::vector<DTensor> inputs{x};
  for (const auto& p : net.parameters()) inputs.push_back(p);
  auto f = [&](const std::vector<DTensor>& in) { return net(in[0]); };
  const auto report = tg::gradcheck(f, inputs);
  INFO(report.message);
  CHECK(report.passed);
  net.eval();
  CHECK(tg::gradcheck(f, inputs).passed);
}

TEST_CASE("freeze and unfreeze: whole module, a parameter, a submodule; frozen parameters are not recorded") {
  tg::Generator gen(8);
  SmallNet net(gen);
  const tg::Tensor x = tg::randn<float>({2, 1, 6, 6}, gen);

  tg::tape().clear();
  net(x);
  const std::size_t full_tape = tg::tape().size();

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
  net(x);
  CHECK(tg::tape().size() == 0);
  CHECK_THROWS_WITH_AS(net.freeze("nothing"), doctest::Contains("freeze: no parameter or submodule named \"nothing\""),
                       tg::ValueError);
  tg::tape().clear();
}

TEST_CASE("zero_grad clears every parameter's gradient") {
  tg::Generator gen(9);
  SmallNet net(gen);
  tg::sum(net(tg::randn<float>({1, 1, 6, 6}, gen))).backward();
  for (const auto& p : net.parameters()) CHECK(p.grad().defined());
  net.zero_grad();
  for (const auto& p : net.parameters()) CHECK_FALSE(p.grad().defined());
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
    std::string type_name() const override { return "Hidden"; }
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
      register_module("a", std::make_shared<nn::Linear>(2, 2, g));
      register_module("a", std::make_shared<nn::Linear>(2, 2, g));
    }
    tg::Tensor forward(const tg::Tensor& x) override { return x; }
    std::string type_name() const override { return "Twice"; }
  };
  CHECK_THROWS_WITH_AS(Twice{gen}, doctest::Contains("\"a\" is already registered"), tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::Conv2d(3, 4, 3, gen, 1, 0, 1, 2), doctest::Contains("Conv2d: in_channels=3"), tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::Dropout(1.0, gen), doctest::Contains("Dropout: p must be in [0, 1)"), tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::Linear(0, 3, gen), doctest::Contains("Linear: features must be positive"), tg::ValueError);
}

TEST_CASE("a model trained a few steps, saved and loaded into a fresh model gives identical outputs") {
  tg::Generator gen(12);
  SmallNet trained(gen);
  auto bn = std::make_shared<nn::BatchNorm2d>(1);  // buffers travel too
  nn::Sequential model{bn, std::make_shared<SmallNet>(gen)};
  tg::optim::Adam adam(model.parameters(), 1e-2);
  const tg::Tensor x = tg::randn<float>({8, 1, 6, 6}, gen);
  const std::vector<std::int64_t> y{0, 1, 2, 3, 4, 0, 1, 2};
  for (int step = 0; step < 5; ++step) {
    const tg::Tensor loss = tg::cross_entropy(model(x), y);
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  const auto path = std::filesystem::temp_directory_path() / "tapegrad_test_nn_model.safetensors";
  tg::nn::save(model, path.string());

  tg::Generator other(99);  // a fresh model with different initial weights
  nn::Sequential fresh{std::make_shared<nn::BatchNorm2d>(1), std::make_shared<SmallNet>(other)};
  model.eval();
  fresh.eval();
  CHECK(model(x).value() != fresh(x).value());
  tg::nn::load(fresh, path.string());
  CHECK(model(x).value() == fresh(x).value());
  CHECK(fresh.find("0.running_mean").value() == bn->running_mean.value());
  std::filesystem::remove(path);
}
