// Normalization layers: BatchNorm1d and BatchNorm2d (batch statistics per
// channel, running statistics for eval), LayerNorm (per sample over the last
// axes) and GroupNorm (per sample over groups of channels), each calling its
// function in ops/normalization.hpp. LayerNorm and GroupNorm behave the same
// in training and eval.
#pragma once

#include <cstddef>
#include <string>

#include "../ops/normalization.hpp"
#include "module.hpp"
#include "options.hpp"

namespace tg::nn {

struct BatchNormOptions {
  BatchNormOptions(std::size_t num_features) : num_features_(num_features) {}  // NOLINT: implicit on purpose
  TG_ARG(std::size_t, num_features);
  TG_ARG(double, eps) = 1e-5;
  TG_ARG(double, momentum) = 0.1;
  TG_ARG(bool, affine) = true;
};
using BatchNorm1dOptions = BatchNormOptions;
using BatchNorm2dOptions = BatchNormOptions;

namespace detail {
// Per channel: training normalizes with the batch mean and (biased) variance
// and updates running_mean / running_var (unbiased) with `momentum`; eval
// uses the running statistics. Parameters and buffers as PyTorch names them.
class BatchNormBase : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return std::to_string(options.num_features()); }

  const BatchNormOptions options;
  Tensor weight;  // γ, ones (undefined without affine)
  Tensor bias;    // β, zeros
  Tensor running_mean;
  Tensor running_var;
  Tensor num_batches_tracked;  // int64, shape (), as PyTorch's

 protected:
  BatchNormBase(const BatchNormOptions& options, const char* layer);
  // Whether x has a shape this layer takes; `expected` describes it.
  virtual bool accepts(const Tensor& x) const = 0;
  virtual std::string expected() const = 0;

 private:
  const char* layer_;
};
}  // namespace detail

// (N, C) or (N, C, L), per channel C.
class BatchNorm1dImpl : public detail::BatchNormBase {
 public:
  explicit BatchNorm1dImpl(const BatchNorm1dOptions& options) : BatchNormBase(options, "BatchNorm1d") {}

 protected:
  bool accepts(const Tensor& x) const override;
  std::string expected() const override;
};
TG_MODULE(BatchNorm1d);

// (N, C, H, W), per channel C.
class BatchNorm2dImpl : public detail::BatchNormBase {
 public:
  explicit BatchNorm2dImpl(const BatchNorm2dOptions& options) : BatchNormBase(options, "BatchNorm2d") {}

 protected:
  bool accepts(const Tensor& x) const override;
  std::string expected() const override;
};
TG_MODULE(BatchNorm2d);

struct LayerNormOptions {
  LayerNormOptions(Shape normalized_shape) : normalized_shape_(std::move(normalized_shape)) {}  // NOLINT: implicit
  TG_ARG(Shape, normalized_shape);
  TG_ARG(double, eps) = 1e-5;
  TG_ARG(bool, elementwise_affine) = true;
};

// Normalizes each sample over its last axes, which must equal
// normalized_shape; weight (ones) and bias (zeros) of that shape.
class LayerNormImpl : public Module {
 public:
  explicit LayerNormImpl(const LayerNormOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  const LayerNormOptions options;
  Tensor weight;  // undefined without elementwise_affine
  Tensor bias;
};
TG_MODULE(LayerNorm);

struct GroupNormOptions {
  GroupNormOptions(std::size_t num_groups, std::size_t num_channels)
      : num_groups_(num_groups), num_channels_(num_channels) {}
  TG_ARG(std::size_t, num_groups);
  TG_ARG(std::size_t, num_channels);
  TG_ARG(double, eps) = 1e-5;
  TG_ARG(bool, affine) = true;
};

// (N, C, *): each sample's channels in num_groups groups, each normalized
// over its channels and positions; weight (ones) and bias (zeros) per channel.
class GroupNormImpl : public Module {
 public:
  GroupNormImpl(std::size_t num_groups, std::size_t num_channels)
      : GroupNormImpl(GroupNormOptions(num_groups, num_channels)) {}
  explicit GroupNormImpl(const GroupNormOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  const GroupNormOptions options;
  Tensor weight;  // undefined without affine
  Tensor bias;
};
TG_MODULE(GroupNorm);

}  // namespace tg::nn
