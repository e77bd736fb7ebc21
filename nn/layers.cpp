#include "layers.hpp"

#include <cmath>

#include "../core/tape.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/linalg.hpp"
#include "../ops/reduce.hpp"
#include "../ops/shape.hpp"
#include "init.hpp"

namespace tg::nn {

namespace {

// PyTorch's default for weights and biases: uniform in ±1/√fan_in, float32.
Tensor fan_in_uniform(const Shape& shape, std::size_t fan_in, Generator& gen) {
  return init::torch_default(zeros(shape), fan_in, gen);
}

}  // namespace

// ---- Linear --------------------------------------------------------------------

Linear::Linear(std::size_t in_features, std::size_t out_features, Generator& gen, bool bias) {
  if (in_features == 0 || out_features == 0)
    throw ValueError("Linear: features must be positive, got in=" + std::to_string(in_features) +
                     ", out=" + std::to_string(out_features));
  weight = register_parameter("weight", fan_in_uniform({out_features, in_features}, in_features, gen));
  if (bias) this->bias = register_parameter("bias", fan_in_uniform({out_features}, in_features, gen));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::describe() const {
  return "in=" + std::to_string(weight.shape()[1]) + ", out=" + std::to_string(weight.shape()[0]) +
         (bias.defined() ? "" : ", bias=false");
}

// ---- Conv2d --------------------------------------------------------------------

Conv2d::Conv2d(std::size_t in_channels, std::size_t out_channels, Size2 kernel, Generator& gen, Size2 stride,
               Size2 padding, Size2 dilation, std::size_t groups, bool bias)
    : stride(stride), padding(padding), dilation(dilation), groups(groups) {
  if (groups == 0 || in_channels % groups || out_channels % groups || in_channels == 0 || out_channels == 0)
    throw ValueError("Conv2d: in_channels=" + std::to_string(in_channels) + " and out_channels=" +
                     std::to_string(out_channels) + " must be positive multiples of groups=" + std::to_string(groups));
  if (kernel.h <= 0 || kernel.w <= 0) throw ValueError("Conv2d: kernel size must be positive, got " + kernel.str());
  const auto kh = std::size_t(kernel.h), kw = std::size_t(kernel.w);
  const std::size_t fan_in = in_channels / groups * kh * kw;
  weight = register_parameter("weight", fan_in_uniform({out_channels, in_channels / groups, kh, kw}, fan_in, gen));
  if (bias) this->bias = register_parameter("bias", fan_in_uniform({out_channels}, fan_in, gen));
}

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, stride, padding, dilation, std::int64_t(groups));
}

std::string Conv2d::describe() const {
  const Shape& s = weight.shape();
  return std::to_string(s[1] * groups) + ", " + std::to_string(s[0]) +
         ", kernel=" + Size2(std::int64_t(s[2]), std::int64_t(s[3])).str() + ", stride=" + stride.str() +
         ", padding=" + padding.str() + (dilation == Size2(1) ? "" : ", dilation=" + dilation.str()) +
         (groups == 1 ? "" : ", groups=" + std::to_string(groups)) + (bias.defined() ? "" : ", bias=false");
}

// ---- Dropout -------------------------------------------------------------------

Dropout::Dropout(double p, Generator& gen) : p(p), gen_(gen.next_u64()) {
  if (!(p >= 0.0 && p < 1.0)) throw ValueError("Dropout: p must be in [0, 1), got " + std::to_string(p));
}

// NOTE: the mask is a constant: the gradient passes where the element was kept.
Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p == 0.0) return x;
  Tensor mask = empty(x.shape(), x.dtype());  // in x's dtype, so the product does not promote
  visit_floating("Dropout", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T keep_scale = T(1.0 / (1.0 - p));
    T* m = mask.mutable_data<T>();
    for (std::size_t i = 0, n = mask.numel(); i < n; ++i) m[i] = gen_.uniform() < p ? T(0) : keep_scale;
  });
  return mul(x, mask);
}

// ---- BatchNorm2d ---------------------------------------------------------------

BatchNorm2d::BatchNorm2d(std::size_t num_features, double eps, double momentum, bool affine)
    : num_features(num_features), eps(eps), momentum(momentum) {
  if (num_features == 0) throw ValueError("BatchNorm2d: num_features must be positive");
  if (affine) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
  running_mean = register_buffer("running_mean", zeros({num_features}));
  running_var = register_buffer("running_var", ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, kInt64));
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  if (x.dim() != 4 || x.shape()[1] != num_features)
    throw ShapeError("BatchNorm2d: expected input of shape (N, " + std::to_string(num_features) + ", H, W), got " +
                     shape_str(x.shape()));
  const Shape per_channel{1, num_features, 1, 1};
  Tensor mean_c, var_c;  // (1, C, 1, 1)
  if (is_training()) {
    const std::size_t count = x.numel() / num_features;
    if (count < 2)
      throw ShapeError("BatchNorm2d: training needs more than one value per channel, got input " +
                       shape_str(x.shape()));
    mean_c = mean(x, {0, 2, 3}, true);
    const Tensor centered = sub(x, mean_c);
    var_c = mean(mul(centered, centered), {0, 2, 3}, true);  // biased, as the normalization uses
    {
      NoGradGuard no_grad;  // running statistics are buffers, outside the graph
      const double unbias = double(count) / double(count - 1);
      const Shape channels{num_features};
      running_mean.mul_(1.0 - momentum).add_(mean_c.detach().reshape(channels), momentum);
      running_var.mul_(1.0 - momentum).add_(var_c.detach().reshape(channels), momentum * unbias);
      num_batches_tracked.add_(ones({}, kInt64));
    }
  } else {
    mean_c = reshape(running_mean, per_channel);
    var_c = reshape(running_var, per_channel);
  }
  // x̂ = (x - mean) · 1/√(var + eps); y = γ·x̂ + β. The reciprocal is taken on
  // the (1, C, 1, 1) statistics, so the full-size tensors see one mul, not a div.
  Tensor y = mul(sub(x, mean_c), div(1.0, sqrt(add(var_c, eps))));
  if (weight.defined()) y = add(mul(y, reshape(weight, per_channel)), reshape(bias, per_channel));
  return y;
}

// ---- Sequential ----------------------------------------------------------------

Sequential::Sequential(std::initializer_list<Item> modules) {
  for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(Item module) {
  register_module(std::to_string(items_.size()), module);  // refuses a module containing this one
  items_.push_back(std::move(module));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : items_) y = (*m)(y);
  return y;
}

}  // namespace tg::nn
