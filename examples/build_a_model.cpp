// The model code of README.md's "Modules, layers, optimizers" section, as a
// program that builds, trains a few steps and inspects the model. The part
// between the two "README" lines is the README's code block, verbatim
// (tests/test_modules.cpp compares them).
#include <cstdio>
#include <iostream>

#include <tapegrad/tapegrad.hpp>

// ---- README ----
namespace nn = tg::nn;

struct NetImpl : nn::Module {
  nn::Sequential features{nullptr};
  nn::Linear head{nullptr};
  NetImpl() {
    features = register_module("features", nn::Sequential(
        nn::Conv2d(nn::Conv2dOptions(1, 8, 3).padding(1)), nn::BatchNorm2d(8), nn::ReLU(), nn::MaxPool2d(2)));
    head = register_module("head", nn::Linear(8 * 14 * 14, 10));
  }
  tg::Tensor forward(const tg::Tensor& x) override { return head(tg::flatten(features(x))); }
};
TG_MODULE(Net);  // Net holds a shared NetImpl, as torch::nn::Linear holds a LinearImpl

int main() {
  tg::manual_seed(0);  // layers draw from the default generator: same seed, same weights
  Net net;
  const tg::Tensor images = tg::randn({16, 1, 28, 28});
  const tg::Tensor labels = tg::randint(0, 10, {16});
  tg::optim::Adam adam(net->parameters(), 1e-3);
  for (int step = 0; step < 20; ++step) {
    tg::Tensor loss = tg::cross_entropy(net(images), labels);
    adam.zero_grad();
    loss.backward();
    adam.step();  // conv kernels and dense weights: one update path
  }
  std::shared_ptr<nn::Conv2dImpl> conv = net->features->ptr<nn::Conv2d>(0);  // typed access
  std::cout << conv->weight.shape() << "\n" << *net << "\n" << net->summary({64, 1, 28, 28});
// ---- README ----
  // Twenty steps on one batch of 16 fit it: the loss must have fallen.
  const tg::Tensor loss = tg::cross_entropy(net(images), labels);
  std::printf("loss after 20 steps: %.4f (log 10 = 2.3026 at the start)\n", loss.item());
  return loss.item() < 1.0 ? 0 : 1;
}
