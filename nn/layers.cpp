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

// PyTorch's default for weights and biases: uniform in ±1/√fan_in.
template <class T>
BasicTensor<T> fan_in_uniform(const Shape& shape, std::size_t fan_in, Generator& gen) {
  return init::torch_default(zeros<T>(shape), fan_in, gen);
}

}  // namespace

// ---- Linear --------------------------------------------------------------------

template <class T>
BasicLinear<T>::BasicLinear(std::size_t in_features, std::size_t out_features, Generator& gen, bool bias) {
  if (in_features == 0 || out_features == 0)
    throw ValueError("Linear: features must be positive, got in=" + std::to_string(in_features) +
                     ", out=" + std::to_string(out_features));
  weight = this->register_parameter("weight", fan_in_uniform<T>({out_features, in_features}, in_features, gen));
  if (bias) this->bias = this->register_parameter("bias", fan_in_uniform<T>({out_features}, in_features, gen));
}

template <class T>
BasicTensor<T> BasicLinear<T>::forward(const Tensor& x) {
  return linear(x, weight, bias);
}

template <class T>
std::string BasicLinear<T>::describe() const {
  return "in=" + std::to_string(weight.shape()[1]) + ", out=" + std::to_string(weight.shape()[0]) +
         (bias.defined() ? "" : ", bias=false");
}

// ---- Conv2d --------------------------------------------------------------------

template <class T>
BasicConv2d<T>::BasicConv2d(std::size_t in_channels, std::size_t out_channels, Size2 kernel, Generator& gen,
                            Size2 stride, Size2 padding, Size2 dilation, std::size_t groups, bool bias)
    : stride(stride), padding(padding), dilation(dilation), groups(groups) {
  if (groups == 0 || in_channels % groups || out_channels % groups || in_channels == 0 || out_channels == 0)
    throw ValueError("Conv2d: in_channels=" + std::to_string(in_channels) + " and out_channels=" +
                     std::to_string(out_channels) + " must be positive multiples of groups=" + std::to_string(groups));
  if (kernel.h == 0 || kernel.w == 0) throw ValueError("Conv2d: kernel size must be positive, got " + kernel.str());
  const std::size_t fan_in = in_channels / groups * kernel.h * kernel.w;
  weight = this->register_parameter(
      "weight", fan_in_uniform<T>({out_channels, in_channels / groups, kernel.h, kernel.w}, fan_in, gen));
  if (bias) this->bias = this->register_parameter("bias", fan_in_uniform<T>({out_channels}, fan_in, gen));
}

template <class T>
BasicTensor<T> BasicConv2d<T>::forward(const Tensor& x) {
  return conv2d(x, weight, bias, stride, padding, dilation, groups);
}

template <class T>
std::string BasicConv2d<T>::describe() const {
  const Shape s = weight.shape();
  return std::to_string(s[1] * groups) + ", " + std::to_string(s[0]) + ", kernel=" + Size2(s[2], s[3]).str() +
         ", stride=" + stride.str() + ", padding=" + padding.str() +
         (dilation == Size2(1) ? "" : ", dilation=" + dilation.str()) +
         (groups == 1 ? "" : ", groups=" + std::to_string(groups)) + (bias.defined() ? "" : ", bias=false");
}

// ---- Dropout -------------------------------------------------------------------

template <class T>
BasicDropout<T>::BasicDropout(double p, Generator& gen) : p(p), gen_(gen.next_u64()) {
  if (!(p >= 0.0 && p < 1.0)) throw ValueError("Dropout: p must be in [0, 1), got " + std::to_string(p));
}

// NOTE: the mask is a constant: the gradient passes where the element was kept.
template <class T>
BasicTensor<T> BasicDropout<T>::forward(const BasicTensor<T>& x) {
  if (!this->is_training() || p == 0.0) return x;
  xt::xarray<T> mask(x.value().shape());
  const T keep_scale = T(1.0 / (1.0 - p));
  for (auto& m : mask) m = gen_.uniform() < p ? T(0) : keep_scale;
  return mul(x, BasicTensor<T>(std::move(mask)));
}

// ---- BatchNorm2d ---------------------------------------------------------------

template <class T>
BasicBatchNorm2d<T>::BasicBatchNorm2d(std::size_t num_features, double eps, double momentum, bool affine)
    : num_features(num_features), eps(eps), momentum(momentum) {
  if (num_features == 0) throw ValueError("BatchNorm2d: num_features must be positive");
  if (affine) {
    weight = this->register_parameter("weight", ones<T>({num_features}));
    bias = this->register_parameter("bias", zeros<T>({num_features}));
  }
  running_mean = this->register_buffer("running_mean", zeros<T>({num_features}));
  running_var = this->register_buffer("running_var", ones<T>({num_features}));
  num_batches_tracked = this->register_buffer("num_batches_tracked", zeros<T>({}));
}

template <class T>
BasicTensor<T> BasicBatchNorm2d<T>::forward(const Tensor& x) {
  if (x.dim() != 4 || x.shape()[1] != num_features)
    throw ShapeError("BatchNorm2d: expected input of shape (N, " + std::to_string(num_features) + ", H, W), got " +
                     shape_str(x.shape()));
  const Shape per_channel{1, num_features, 1, 1};
  Tensor mean_c, var_c;  // (1, C, 1, 1)
  if (this->is_training()) {
    const std::size_t count = x.numel() / num_features;
    if (count < 2)
      throw ShapeError("BatchNorm2d: training needs more than one value per channel, got input " +
                       shape_str(x.shape()));
    mean_c = mean(x, {0, 2, 3}, true);
    const Tensor centered = sub(x, mean_c);
    var_c = mean(mul(centered, centered), {0, 2, 3}, true);  // biased, as the normalization uses
    {
      NoGradGuard no_grad;  // running statistics are buffers, outside the graph
      const T m = T(momentum), unbias = T(double(count) / double(count - 1));
      T* rm = running_mean.data();
      T* rv = running_var.data();
      for (std::size_t c = 0; c < num_features; ++c) {
        rm[c] = (1 - m) * rm[c] + m * mean_c.data()[c];
        rv[c] = (1 - m) * rv[c] + m * var_c.data()[c] * unbias;
      }
      num_batches_tracked.data()[0] += 1;
    }
  } else {
    mean_c = reshape(running_mean, per_channel);
    var_c = reshape(running_var, per_channel);
  }
  // x̂ = (x - mean) · 1/√(var + eps); y = γ·x̂ + β. The reciprocal is taken on
  // the (1, C, 1, 1) statistics, so the full-size tensors see one mul, not a div.
  Tensor y = mul(sub(x, mean_c), div(scalar<T>(1), sqrt(add(var_c, scalar<T>(eps)))));
  if (weight.defined()) y = add(mul(y, reshape(weight, per_channel)), reshape(bias, per_channel));
  return y;
}

// ---- Sequential ----------------------------------------------------------------

template <class T>
BasicSequential<T>::BasicSequential(std::initializer_list<Item> modules) {
  for (const auto& m : modules) push_back(m);
}

template <class T>
void BasicSequential<T>::push_back(Item module) {
  this->register_module(std::to_string(items_.size()), module);
  items_.push_back(std::move(module));
}

template <class T>
BasicTensor<T> BasicSequential<T>::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& m : items_) y = (*m)(y);
  return y;
}

#define TG_INSTANTIATE(T)            \
  template class BasicLinear<T>;     \
  template class BasicConv2d<T>;     \
  template class BasicDropout<T>;    \
  template class BasicBatchNorm2d<T>; \
  template class BasicSequential<T>;
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg::nn
