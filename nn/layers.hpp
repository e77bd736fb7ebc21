// Layers, as torch::nn has them. Parameters are float32 when constructed;
// Module::to(kFloat64) converts a whole model (for gradient checks).
// Weights and biases start as PyTorch's do: uniform in ±1/√fan_in, drawn
// from the Generator given to the constructor. Members such as `weight` are
// handles to the registered parameters: they share value and gradient.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "../ops/conv.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/shape.hpp"
#include "module.hpp"

namespace tg::nn {

// y = x·wᵀ + b; weight (out, in), bias (out).
class Linear : public Module {
 public:
  Linear(std::size_t in_features, std::size_t out_features, Generator& gen, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string describe() const override;

  Tensor weight;
  Tensor bias;  // undefined without bias
};

// weight (out, in / groups, kh, kw), bias (out).
class Conv2d : public Module {
 public:
  Conv2d(std::size_t in_channels, std::size_t out_channels, Size2 kernel, Generator& gen, Size2 stride = 1,
         Size2 padding = 0, Size2 dilation = 1, std::size_t groups = 1, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string describe() const override;

  Tensor weight;
  Tensor bias;
  const Size2 stride, padding, dilation;
  const std::size_t groups;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel, Size2 stride = 0, Size2 padding = 0)
      : kernel(kernel), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) override { return max_pool2d(x, kernel, stride, padding); }
  std::string type_name() const override { return "MaxPool2d"; }
  std::string describe() const override { return "kernel=" + kernel.str(); }
  const Size2 kernel, stride, padding;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel, Size2 stride = 0, Size2 padding = 0)
      : kernel(kernel), stride(stride), padding(padding) {}
  Tensor forward(const Tensor& x) override { return avg_pool2d(x, kernel, stride, padding); }
  std::string type_name() const override { return "AvgPool2d"; }
  std::string describe() const override { return "kernel=" + kernel.str(); }
  const Size2 kernel, stride, padding;
};

// An elementwise function as a layer: ReLU, Tanh, Sigmoid.
class Activation : public Module {
 public:
  using Fn = Tensor (*)(const Tensor&);
  Activation(std::string name, Fn fn) : name_(std::move(name)), fn_(fn) {}
  Tensor forward(const Tensor& x) override { return fn_(x); }
  std::string type_name() const override { return name_; }

 private:
  std::string name_;
  Fn fn_;
};

struct ReLU : Activation {
  ReLU() : Activation("ReLU", &tg::relu) {}
};
struct Tanh : Activation {
  Tanh() : Activation("Tanh", &tg::tanh) {}
};
struct Sigmoid : Activation {
  Sigmoid() : Activation("Sigmoid", &tg::sigmoid) {}
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x) override { return leaky_relu(x, negative_slope); }
  std::string type_name() const override { return "LeakyReLU"; }
  std::string describe() const override { return "negative_slope=" + std::to_string(negative_slope); }
  const double negative_slope;
};

class Flatten : public Module {
 public:
  explicit Flatten(std::ptrdiff_t start_dim = 1, std::ptrdiff_t end_dim = -1)
      : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override { return flatten(x, start_dim, end_dim); }
  std::string type_name() const override { return "Flatten"; }
  const std::ptrdiff_t start_dim, end_dim;
};

// Training: zeroes each element with probability p and scales the rest by
// 1/(1-p); eval: the identity. Its own Generator, seeded from the one given.
class Dropout : public Module {
 public:
  Dropout(double p, Generator& gen);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Dropout"; }
  std::string describe() const override { return "p=" + std::to_string(p); }
  const double p;

 private:
  Generator gen_;
};

// Per channel of (N, C, H, W): training normalizes with the batch mean and
// (biased) variance and updates running_mean / running_var (unbiased) with
// `momentum`; eval uses the running statistics. Composed from primitive ops.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(std::size_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BatchNorm2d"; }
  std::string describe() const override { return std::to_string(num_features); }

  const std::size_t num_features;
  const double eps, momentum;
  Tensor weight;  // γ, ones (undefined without affine)
  Tensor bias;    // β, zeros
  Tensor running_mean;
  Tensor running_var;
  Tensor num_batches_tracked;  // int64, shape (), as PyTorch's
};

// Children named "0", "1", ...; forward feeds each one's output to the next.
// A module that contains this Sequential (or is it) is refused with a
// ValueError: the chain would call itself forever.
class Sequential : public Module {
 public:
  using Item = std::shared_ptr<Module>;
  Sequential() = default;
  Sequential(std::initializer_list<Item> modules);
  void push_back(Item module);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  std::size_t size() const { return items_.size(); }
  Module& operator[](std::size_t i) const { return *items_.at(i); }

 private:
  std::vector<Item> items_;
};

}  // namespace tg::nn
