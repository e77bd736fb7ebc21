// Layers, as torch::nn has them. Each is a BasicModule<T>; the names without
// a prefix are the float versions (Linear), D-prefixed ones double (DLinear).
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
template <class T>
class BasicLinear : public BasicModule<T> {
 public:
  using Tensor = BasicTensor<T>;
  BasicLinear(std::size_t in_features, std::size_t out_features, Generator& gen, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Linear"; }
  std::string describe() const override;

  Tensor weight;
  Tensor bias;  // undefined without bias
};

// weight (out, in / groups, kh, kw), bias (out).
template <class T>
class BasicConv2d : public BasicModule<T> {
 public:
  using Tensor = BasicTensor<T>;
  BasicConv2d(std::size_t in_channels, std::size_t out_channels, Size2 kernel, Generator& gen, Size2 stride = 1,
              Size2 padding = 0, Size2 dilation = 1, std::size_t groups = 1, bool bias = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string describe() const override;

  Tensor weight;
  Tensor bias;
  const Size2 stride, padding, dilation;
  const std::size_t groups;
};

template <class T>
class BasicMaxPool2d : public BasicModule<T> {
 public:
  explicit BasicMaxPool2d(Size2 kernel, Size2 stride = 0, Size2 padding = 0)
      : kernel(kernel), stride(stride), padding(padding) {}
  BasicTensor<T> forward(const BasicTensor<T>& x) override { return max_pool2d(x, kernel, stride, padding); }
  std::string type_name() const override { return "MaxPool2d"; }
  std::string describe() const override { return "kernel=" + kernel.str(); }
  const Size2 kernel, stride, padding;
};

template <class T>
class BasicAvgPool2d : public BasicModule<T> {
 public:
  explicit BasicAvgPool2d(Size2 kernel, Size2 stride = 0, Size2 padding = 0)
      : kernel(kernel), stride(stride), padding(padding) {}
  BasicTensor<T> forward(const BasicTensor<T>& x) override { return avg_pool2d(x, kernel, stride, padding); }
  std::string type_name() const override { return "AvgPool2d"; }
  std::string describe() const override { return "kernel=" + kernel.str(); }
  const Size2 kernel, stride, padding;
};

// An elementwise function as a layer: ReLU, Tanh, Sigmoid, LeakyReLU.
template <class T>
class BasicActivation : public BasicModule<T> {
 public:
  using Fn = BasicTensor<T> (*)(const BasicTensor<T>&);
  BasicActivation(std::string name, Fn fn) : name_(std::move(name)), fn_(fn) {}
  BasicTensor<T> forward(const BasicTensor<T>& x) override { return fn_(x); }
  std::string type_name() const override { return name_; }

 private:
  std::string name_;
  Fn fn_;
};

template <class T>
struct BasicReLU : BasicActivation<T> {
  BasicReLU() : BasicActivation<T>("ReLU", &relu<T>) {}
};
template <class T>
struct BasicTanh : BasicActivation<T> {
  BasicTanh() : BasicActivation<T>("Tanh", &tanh<T>) {}
};
template <class T>
struct BasicSigmoid : BasicActivation<T> {
  BasicSigmoid() : BasicActivation<T>("Sigmoid", &sigmoid<T>) {}
};

template <class T>
class BasicLeakyReLU : public BasicModule<T> {
 public:
  explicit BasicLeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  BasicTensor<T> forward(const BasicTensor<T>& x) override { return leaky_relu(x, negative_slope); }
  std::string type_name() const override { return "LeakyReLU"; }
  std::string describe() const override { return "negative_slope=" + std::to_string(negative_slope); }
  const double negative_slope;
};

template <class T>
class BasicFlatten : public BasicModule<T> {
 public:
  explicit BasicFlatten(std::ptrdiff_t start_dim = 1, std::ptrdiff_t end_dim = -1)
      : start_dim(start_dim), end_dim(end_dim) {}
  BasicTensor<T> forward(const BasicTensor<T>& x) override { return flatten(x, start_dim, end_dim); }
  std::string type_name() const override { return "Flatten"; }
  const std::ptrdiff_t start_dim, end_dim;
};

// Training: zeroes each element with probability p and scales the rest by
// 1/(1-p); eval: the identity. Its own Generator, seeded from the one given.
template <class T>
class BasicDropout : public BasicModule<T> {
 public:
  BasicDropout(double p, Generator& gen);
  BasicTensor<T> forward(const BasicTensor<T>& x) override;
  std::string type_name() const override { return "Dropout"; }
  std::string describe() const override { return "p=" + std::to_string(p); }
  const double p;

 private:
  Generator gen_;
};

// Per channel of (N, C, H, W): training normalizes with the batch mean and
// (biased) variance and updates running_mean / running_var (unbiased) with
// `momentum`; eval uses the running statistics. Composed from primitive ops.
template <class T>
class BasicBatchNorm2d : public BasicModule<T> {
 public:
  using Tensor = BasicTensor<T>;
  explicit BasicBatchNorm2d(std::size_t num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "BatchNorm2d"; }
  std::string describe() const override { return std::to_string(num_features); }

  const std::size_t num_features;
  const double eps, momentum;
  Tensor weight;  // γ, ones (undefined without affine)
  Tensor bias;    // β, zeros
  Tensor running_mean;
  Tensor running_var;
  Tensor num_batches_tracked;
};

// Children named "0", "1", ...; forward feeds each one's output to the next.
template <class T>
class BasicSequential : public BasicModule<T> {
 public:
  using Tensor = BasicTensor<T>;
  using Item = std::shared_ptr<BasicModule<T>>;
  BasicSequential() = default;
  BasicSequential(std::initializer_list<Item> modules);
  void push_back(Item module);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
  std::size_t size() const { return items_.size(); }
  BasicModule<T>& operator[](std::size_t i) const { return *items_.at(i); }

 private:
  std::vector<Item> items_;
};

using Linear = BasicLinear<float>;
using Conv2d = BasicConv2d<float>;
using MaxPool2d = BasicMaxPool2d<float>;
using AvgPool2d = BasicAvgPool2d<float>;
using ReLU = BasicReLU<float>;
using LeakyReLU = BasicLeakyReLU<float>;
using Tanh = BasicTanh<float>;
using Sigmoid = BasicSigmoid<float>;
using Flatten = BasicFlatten<float>;
using Dropout = BasicDropout<float>;
using BatchNorm2d = BasicBatchNorm2d<float>;
using Sequential = BasicSequential<float>;

using DLinear = BasicLinear<double>;
using DConv2d = BasicConv2d<double>;
using DMaxPool2d = BasicMaxPool2d<double>;
using DAvgPool2d = BasicAvgPool2d<double>;
using DReLU = BasicReLU<double>;
using DLeakyReLU = BasicLeakyReLU<double>;
using DTanh = BasicTanh<double>;
using DSigmoid = BasicSigmoid<double>;
using DFlatten = BasicFlatten<double>;
using DDropout = BasicDropout<double>;
using DBatchNorm2d = BasicBatchNorm2d<double>;
using DSequential = BasicSequential<double>;

}  // namespace tg::nn
