// Fixed filters and trained ones in one network. The first conv layer holds
// Sobel edge detectors and is frozen; a second conv layer and a linear head
// learn to tell vertical stripes from horizontal ones. Frozen weights are not
// recorded on the tape (nothing about them needs a gradient) and the
// optimizer leaves them alone; everything else trains exactly as usual.
#include <cstdio>
#include <map>

#include <tapegrad/tapegrad.hpp>

namespace nn = tg::nn;

namespace {

// n images of 8x8 stripes two pixels wide, with noise, and their int64 labels:
// 0 vertical, 1 horizontal.
std::pair<tg::Tensor, tg::Tensor> stripes(std::size_t n, tg::Generator& gen) {
  xt::xarray<float> images = xt::zeros<float>({n, std::size_t(1), std::size_t(8), std::size_t(8)});
  std::vector<std::int64_t> labels(n);
  for (std::size_t i = 0; i < n; ++i) {
    labels[i] = std::int64_t(gen.below(2));
    const std::size_t phase = gen.below(2);
    for (std::size_t r = 0; r < 8; ++r)
      for (std::size_t c = 0; c < 8; ++c) {
        const std::size_t along = labels[i] == 0 ? c : r;
        images(i, 0, r, c) = float((along / 2 + phase) % 2) + float(gen.normal(0.0, 0.2));
      }
  }
  return {tg::Tensor(images), tg::Tensor(xt::adapt(labels))};
}

struct EdgeNet : nn::Module {
  nn::Sequential features{nullptr}, head{nullptr};
  explicit EdgeNet(tg::Generator& gen) {
    features = register_module(
        "features", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 2, 3).padding(1), gen),  // features.0: Sobel x and y
                                   nn::ReLU(),
                                   nn::Conv2d(nn::Conv2dOptions(2, 4, 3).padding(1), gen),  // features.2: trained
                                   nn::ReLU(), nn::MaxPool2d(2)));
    head = register_module("head", nn::Sequential(nn::Flatten(), nn::Linear(4 * 4 * 4, 2, gen)));
  }
  tg::Tensor forward(const tg::Tensor& x) override { return head(features(x)); }
};

}  // namespace

int main() {
  tg::Generator gen(3);
  EdgeNet net(gen);

  // Channel 0 of the first layer detects vertical edges, channel 1 horizontal ones.
  tg::Tensor sobel = net.find("features.0.weight");
  {
    tg::NoGradGuard no_grad;  // an in-place write to a parameter
    sobel.copy_(tg::cat({nn::init::sobel_x(tg::zeros({1, 1, 3, 3})), nn::init::sobel_y(tg::zeros({1, 1, 3, 3}))}));
  }
  nn::init::zeros(net.find("features.0.bias"));
  net.freeze("features.0");

  std::printf("%s\n", net.summary({32, 1, 8, 8}).c_str());

  // Not structured bindings: the lambdas below capture them, which C++17 allows only for variables.
  const std::pair<tg::Tensor, tg::Tensor> train = stripes(32, gen);
  const tg::Tensor &x = train.first, &y = train.second;
  const std::pair<tg::Tensor, tg::Tensor> test = stripes(200, gen);
  const tg::Tensor &test_x = test.first, &test_y = test.second;
  auto accuracy = [&] {
    tg::NoGradGuard no_grad;
    const tg::Tensor right = tg::eq(tg::argmax(net(test_x), 1), test_y).sum();
    return right.item() / double(test_y.numel());
  };

  // The tape with the first layer frozen, and what it would be without.
  auto entries_of_forward = [&] {
    tg::tape().clear();
    const tg::Tensor output = net(x);  // kept alive: the entries of a dead output are freed at once
    return tg::tape().size();
  };
  const std::size_t frozen_entries = entries_of_forward();
  net.unfreeze("features.0");
  const std::size_t unfrozen_entries = entries_of_forward();
  net.freeze("features.0");
  tg::tape().clear();
  std::printf("Tape of one forward pass: %zu entries with features.0 frozen, %zu without\n"
              "(the first conv's im2col, matmul and bias entries are not recorded).\n\n",
              frozen_entries, unfrozen_entries);

  std::map<std::string, tg::Tensor> before;  // copies: detach() alone would share the values
  for (const auto& [name, p] : net.named_parameters()) before[name] = p.detach().clone();

  tg::optim::SGD sgd(net.parameters(), 0.1, /*momentum=*/0.9);
  std::printf("test accuracy before training: %.2f\n", accuracy());
  for (int step = 0; step < 60; ++step) {
    tg::Tensor loss = tg::cross_entropy(net(x), y);
    sgd.zero_grad();
    loss.backward();
    sgd.step();
    if (step % 20 == 0 || step == 59) std::printf("step %2d  loss %.4f\n", step, loss.item());
  }
  std::printf("test accuracy after training:  %.2f\n\n", accuracy());

  std::printf("%-20s %-10s %s\n", "parameter", "trainable", "max |change|");
  bool frozen_moved = false;
  for (const auto& [name, p] : net.named_parameters()) {
    const double change = (p.detach() - before[name]).abs().max().item();
    std::printf("%-20s %-10s %g\n", name.c_str(), p.requires_grad() ? "yes" : "no (frozen)", change);
    frozen_moved |= !p.requires_grad() && change != 0.0;
  }
  return frozen_moved ? 1 : 0;
}
