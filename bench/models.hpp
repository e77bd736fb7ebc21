// The two benchmark networks in tapegrad, built from functional ops only
// (conv2d, relu, max_pool2d, linear, cross_entropy), with their parameters
// in a flat list so another framework can be given the same weights, and one
// training step with SGD and momentum (PyTorch's formula).
//
//   LeNet-5: conv 6@5x5 pad 2, relu, pool 2 -> conv 16@5x5, relu, pool 2 -> fc 120, relu -> fc 84, relu -> fc 10
//   tfcnn (the TensorFlow-tutorial CNN): conv 32@5x5 pad 2, relu, pool 2 -> conv 64@5x5 pad 2, relu, pool 2
//                                        -> fc 1024, relu -> fc 10
// Input: (N, 1, 28, 28) float32, 10 classes.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace bench {

struct Model {
  std::string name;              // "lenet" or "tfcnn"
  std::vector<tg::Tensor> params;  // conv weight, bias, ..., fc weight, bias, in forward order
  std::vector<tg::Tensor> momentum;
};

// Weights and biases uniform in ±1/sqrt(fan_in), as PyTorch's layers start.
inline tg::Tensor uniform_param(const tg::Shape& shape, std::size_t fan_in, tg::Generator& gen) {
  const double bound = 1.0 / std::sqrt(double(fan_in));
  return tg::rand(shape, gen, -bound, bound).requires_grad_();
}

inline Model make_model(const std::string& name, std::uint64_t seed) {
  tg::Generator gen(seed);
  Model m{name, {}, {}};
  auto conv = [&](std::size_t out, std::size_t in) {
    m.params.push_back(uniform_param({out, in, 5, 5}, in * 25, gen));
    m.params.push_back(uniform_param({out}, in * 25, gen));
  };
  auto fc = [&](std::size_t out, std::size_t in) {
    m.params.push_back(uniform_param({out, in}, in, gen));
    m.params.push_back(uniform_param({out}, in, gen));
  };
  if (name == "lenet") {
    conv(6, 1), conv(16, 6), fc(120, 16 * 5 * 5), fc(84, 120), fc(10, 84);
  } else {
    conv(32, 1), conv(64, 32), fc(1024, 64 * 7 * 7), fc(10, 1024);
  }
  for (const tg::Tensor& p : m.params) m.momentum.push_back(tg::zeros(p.shape()));
  return m;
}

// x: (N, 1, 28, 28) -> logits (N, 10)
inline tg::Tensor forward(const Model& m, const tg::Tensor& x) {
  const auto& p = m.params;
  const bool lenet = m.name == "lenet";
  tg::Tensor h = tg::max_pool2d(tg::relu(tg::conv2d(x, p[0], p[1], 1, 2)), 2);
  h = tg::max_pool2d(tg::relu(tg::conv2d(h, p[2], p[3], 1, lenet ? 0 : 2)), 2);
  h = tg::relu(tg::linear(tg::flatten(h), p[4], p[5]));
  if (lenet) h = tg::relu(tg::linear(h, p[6], p[7]));
  return tg::linear(h, p[lenet ? 8 : 6], p[lenet ? 9 : 7]);
}

// One step: loss, gradients, then v = momentum·v + g; p -= lr·v. Returns the loss.
inline double train_step(Model& m, const tg::Tensor& x, const tg::Tensor& labels, double lr = 0.01,
                         double momentum = 0.9) {
  for (tg::Tensor& p : m.params) p.zero_grad();
  tg::Tensor loss = tg::cross_entropy(forward(m, x), labels);
  loss.backward();
  tg::NoGradGuard no_grad;
  for (std::size_t i = 0; i < m.params.size(); ++i) {
    m.momentum[i].mul_(momentum).add_(m.params[i].grad());
    m.params[i].add_(m.momentum[i], -lr);
  }
  return loss.item();
}

}  // namespace bench
