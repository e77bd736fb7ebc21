// Activation layers beyond layers.hpp's ReLU, LeakyReLU, Tanh and Sigmoid:
// each a holder around the function of ops/activation.hpp (or loss.hpp's
// softmax), holding its settings.
#pragma once

#include <cstddef>
#include <string>

#include "../ops/activation.hpp"
#include "../ops/loss.hpp"
#include "module.hpp"
#include "options.hpp"

namespace tg::nn {

// x · Φ(x); GeluApproximate::Tanh for the tanh approximation.
class GELUImpl : public Module {
 public:
  explicit GELUImpl(GeluApproximate approximate = GeluApproximate::None) : approximate(approximate) {}
  Tensor forward(const Tensor& x) override { return gelu(x, approximate); }
  std::string describe() const override { return approximate == GeluApproximate::Tanh ? "approximate=tanh" : ""; }
  const GeluApproximate approximate;
};
TG_MODULE(GELU);

// x · sigmoid(x).
class SiLUImpl : public Module {
 public:
  Tensor forward(const Tensor& x) override { return silu(x); }
};
TG_MODULE(SiLU);

struct SoftplusOptions {
  TG_ARG(double, beta) = 1.0;
  TG_ARG(double, threshold) = 20.0;
};

// log(1 + e^(beta·x)) / beta, linear above the threshold.
class SoftplusImpl : public Module {
 public:
  explicit SoftplusImpl(const SoftplusOptions& options = {}) : options(options) {}
  Tensor forward(const Tensor& x) override { return softplus(x, options.beta(), options.threshold()); }
  std::string describe() const override {
    return "beta=" + std::to_string(options.beta()) + ", threshold=" + std::to_string(options.threshold());
  }
  const SoftplusOptions options;
};
TG_MODULE(Softplus);

struct ELUOptions {
  TG_ARG(double, alpha) = 1.0;
};

// x for x > 0, alpha · (e^x - 1) otherwise.
class ELUImpl : public Module {
 public:
  explicit ELUImpl(const ELUOptions& options = {}) : options(options) {}
  Tensor forward(const Tensor& x) override { return elu(x, options.alpha()); }
  std::string describe() const override { return "alpha=" + std::to_string(options.alpha()); }
  const ELUOptions options;
};
TG_MODULE(ELU);

// softmax along `dim` (as torch, no default: name the class axis, 1 for (N, C)).
class SoftmaxImpl : public Module {
 public:
  explicit SoftmaxImpl(std::ptrdiff_t dim) : dim(dim) {}
  Tensor forward(const Tensor& x) override { return softmax(x, dim); }
  std::string describe() const override { return "dim=" + std::to_string(dim); }
  const std::ptrdiff_t dim;
};
TG_MODULE(Softmax);

// log_softmax along `dim`.
class LogSoftmaxImpl : public Module {
 public:
  explicit LogSoftmaxImpl(std::ptrdiff_t dim) : dim(dim) {}
  Tensor forward(const Tensor& x) override { return log_softmax(x, dim); }
  std::string describe() const override { return "dim=" + std::to_string(dim); }
  const std::ptrdiff_t dim;
};
TG_MODULE(LogSoftmax);

}  // namespace tg::nn
