#include "norm_layers.hpp"

#include <algorithm>

#include "../core/tape.hpp"
#include "../ops/reduce.hpp"

namespace tg::nn {

// ---- BatchNorm1d, BatchNorm2d --------------------------------------------------

detail::BatchNormBase::BatchNormBase(const BatchNormOptions& options, const char* layer)
    : options(options), layer_(layer) {
  const std::size_t num_features = options.num_features();
  if (num_features == 0) throw ValueError(std::string(layer) + ": num_features must be positive");
  if (options.affine()) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
  running_mean = register_buffer("running_mean", zeros({num_features}));
  running_var = register_buffer("running_var", ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, kInt64));
}

Tensor detail::BatchNormBase::forward(const Tensor& x) {
  if (!accepts(x) || x.shape()[1] != options.num_features())
    throw ShapeError(std::string(layer_) + ": expected input of shape " + expected() + ", got " + shape_str(x.shape()));
  const bool training = is_training();
  if (training && x.numel() / options.num_features() < 2)
    throw ShapeError(std::string(layer_) + ": training needs more than one value per channel, got input " +
                     shape_str(x.shape()));
  Tensor y = batch_norm(x, running_mean, running_var, weight, bias, training, options.momentum(), options.eps());
  if (training) {
    NoGradGuard no_grad;
    num_batches_tracked.add_(ones({}, kInt64));
  }
  return y;
}

bool BatchNorm1dImpl::accepts(const Tensor& x) const { return x.dim() == 2 || x.dim() == 3; }
std::string BatchNorm1dImpl::expected() const {
  const std::string c = std::to_string(options.num_features());
  return "(N, " + c + ") or (N, " + c + ", L)";
}

bool BatchNorm2dImpl::accepts(const Tensor& x) const { return x.dim() == 4; }
std::string BatchNorm2dImpl::expected() const { return "(N, " + std::to_string(options.num_features()) + ", H, W)"; }

// ---- LayerNorm -----------------------------------------------------------------

LayerNormImpl::LayerNormImpl(const LayerNormOptions& options) : options(options) {
  const Shape& s = options.normalized_shape();
  bool ok = !s.empty();
  for (std::size_t d : s) ok = ok && d > 0;
  if (!ok) throw ValueError("LayerNorm: normalized_shape must be non-empty with positive sizes, got " + shape_str(s));
  if (options.elementwise_affine()) {
    weight = register_parameter("weight", ones(s));
    bias = register_parameter("bias", zeros(s));
  }
}

Tensor LayerNormImpl::forward(const Tensor& x) {
  const Shape& s = options.normalized_shape();
  const std::size_t k = s.size();
  if (x.dim() < k || !std::equal(s.begin(), s.end(), x.shape().end() - std::ptrdiff_t(k)))
    throw ShapeError("LayerNorm: expected an input ending with normalized_shape " + shape_str(s) + ", got " +
                     shape_str(x.shape()));
  return layer_norm(x, s, weight, bias, options.eps());
}

std::string LayerNormImpl::describe() const {
  return shape_str(options.normalized_shape()) + (weight.defined() ? "" : ", elementwise_affine=false");
}

// ---- GroupNorm -----------------------------------------------------------------

GroupNormImpl::GroupNormImpl(const GroupNormOptions& options) : options(options) {
  const std::size_t groups = options.num_groups(), channels = options.num_channels();
  if (groups == 0 || channels == 0 || channels % groups != 0)
    throw ValueError("GroupNorm: num_channels=" + std::to_string(channels) +
                     " must be a positive multiple of num_groups=" + std::to_string(groups));
  if (options.affine()) {
    weight = register_parameter("weight", ones({channels}));
    bias = register_parameter("bias", zeros({channels}));
  }
}

Tensor GroupNormImpl::forward(const Tensor& x) {
  if (x.dim() < 2 || x.shape()[1] != options.num_channels())
    throw ShapeError("GroupNorm: expected input of shape (N, " + std::to_string(options.num_channels()) +
                     ", *), got " + shape_str(x.shape()));
  return group_norm(x, options.num_groups(), weight, bias, options.eps());
}

std::string GroupNormImpl::describe() const {
  return std::to_string(options.num_groups()) + ", " + std::to_string(options.num_channels()) +
         (weight.defined() ? "" : ", affine=false");
}

}  // namespace tg::nn
