// A small classification problem for the programs run under mpirun: random
// 12x12 images with labels, and a convolutional network without BatchNorm
// (whose batch statistics would differ between one process and several).
#pragma once

#include <cstddef>
#include <cstdint>

#include <tapegrad/tapegrad.hpp>

// `count` images (count, 1, 12, 12) with labels in [0, 10), the same for a seed.
inline tg::data::datasets::TensorDataset toy_dataset(std::size_t count, std::uint64_t seed) {
  tg::Generator gen(seed);
  const tg::Tensor images = tg::randn({count, 1, 12, 12}, gen);
  const tg::Tensor labels = tg::randint(0, 10, {count}, gen);
  return tg::data::datasets::TensorDataset(images, labels);
}

// Conv 1->4 (3x3, padding 1), ReLU, 2x2 max pooling, Linear 144->10: weights drawn from `gen`.
class ToyNet : public tg::nn::Module {
 public:
  explicit ToyNet(tg::Generator& gen) {
    namespace nn = tg::nn;
    layers = register_module("layers", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 4, 3).padding(1), gen),
                                                      nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                                                      nn::Linear(4 * 6 * 6, 10, gen)));
  }
  tg::Tensor forward(const tg::Tensor& x) override { return layers(x); }

  tg::nn::Sequential layers{nullptr};
};
