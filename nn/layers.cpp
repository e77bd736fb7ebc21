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

LinearImpl::LinearImpl(const LinearOptions& options, Generator& gen) : options(options) {
  const std::size_t in = options.in_features(), out = options.out_features();
  if (in == 0 || out == 0)
    throw ValueError("Linear: features must be positive, got in=" + std::to_string(in) + ", out=" + std::to_string(out));
  weight = register_parameter("weight", fan_in_uniform({out, in}, in, gen));
  if (options.bias()) bias = register_parameter("bias", fan_in_uniform({out}, in, gen));
}

Tensor LinearImpl::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string LinearImpl::describe() const {
  return "in=" + std::to_string(options.in_features()) + ", out=" + std::to_string(options.out_features()) +
         (bias.defined() ? "" : ", bias=false");
}

// ---- Conv2d --------------------------------------------------------------------

Conv2dImpl::Conv2dImpl(const Conv2dOptions& options, Generator& gen) : options(options) {
  const std::size_t in_channels = options.in_channels(), out_channels = options.out_channels(),
                    groups = options.groups();
  if (groups == 0 || in_channels % groups || out_channels % groups || in_channels == 0 || out_channels == 0)
    throw ValueError("Conv2d: in_channels=" + std::to_string(in_channels) + " and out_channels=" +
                     std::to_string(out_channels) + " must be positive multiples of groups=" + std::to_string(groups));
  const Size2 kernel = options.kernel_size();
  if (kernel.h <= 0 || kernel.w <= 0) throw ValueError("Conv2d: kernel size must be positive, got " + kernel.str());
  const auto kh = std::size_t(kernel.h), kw = std::size_t(kernel.w);
  const std::size_t fan_in = in_channels / groups * kh * kw;
  weight = register_parameter("weight", fan_in_uniform({out_channels, in_channels / groups, kh, kw}, fan_in, gen));
  if (options.bias()) bias = register_parameter("bias", fan_in_uniform({out_channels}, fan_in, gen));
}

Tensor Conv2dImpl::forward(const Tensor& x) {
  return conv2d(x, weight, bias, options.stride(), options.padding(), options.dilation(),
                std::int64_t(options.groups()));
}

std::string Conv2dImpl::describe() const {
  const std::size_t groups = options.groups();
  return std::to_string(options.in_channels()) + ", " + std::to_string(options.out_channels()) +
         ", kernel=" + options.kernel_size().str() + ", stride=" + options.stride().str() +
         ", padding=" + options.padding().str() +
         (options.dilation() == Size2(1) ? "" : ", dilation=" + options.dilation().str()) +
         (groups == 1 ? "" : ", groups=" + std::to_string(groups)) + (bias.defined() ? "" : ", bias=false");
}

// ---- Dropout -------------------------------------------------------------------

DropoutImpl::DropoutImpl(const DropoutOptions& options, Generator& gen) : options(options), gen_(gen.next_u64()) {
  const double p = options.p();
  if (!(p >= 0.0 && p < 1.0)) throw ValueError("Dropout: p must be in [0, 1), got " + std::to_string(p));
}

// NOTE: the mask is a constant: the gradient passes where the element was kept.
Tensor DropoutImpl::forward(const Tensor& x) {
  const double p = options.p();
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

BatchNorm2dImpl::BatchNorm2dImpl(const BatchNorm2dOptions& options) : options(options) {
  const std::size_t num_features = options.num_features();
  if (num_features == 0) throw ValueError("BatchNorm2d: num_features must be positive");
  if (options.affine()) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
  running_mean = register_buffer("running_mean", zeros({num_features}));
  running_var = register_buffer("running_var", ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, kInt64));
}

Tensor BatchNorm2dImpl::forward(const Tensor& x) {
  const std::size_t num_features = options.num_features();
  const double eps = options.eps(), momentum = options.momentum();
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

// ---- containers ----------------------------------------------------------------

namespace detail {

std::shared_ptr<Module> ModuleSequence::ptr(std::size_t i) const {
  if (i >= items_.size())
    throw ValueError(type_name() + ": index " + std::to_string(i) + " is out of range for " +
                     std::to_string(items_.size()) + " modules");
  return items_[i];
}

void ModuleSequence::push_back_ptr(std::shared_ptr<Module> module) {
  register_module(std::to_string(items_.size()), module);  // refuses null and a module containing this one
  items_.push_back(std::move(module));
}

}  // namespace detail

Tensor SequentialImpl::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& m : *this) y = (*m)(y);
  return y;
}

Tensor ModuleListImpl::forward(const Tensor&) {
  throw ValueError("ModuleList has no forward: its owner calls the modules it holds");
}

bool ModuleDictImpl::contains(const std::string& key) const {
  for (const auto& [name, child] : named_children())
    if (name == key) return true;
  return false;
}

std::vector<std::string> ModuleDictImpl::keys() const {
  std::vector<std::string> out;
  for (const auto& [name, child] : named_children()) out.push_back(name);
  return out;
}

std::shared_ptr<Module> ModuleDictImpl::operator[](const std::string& key) const {
  for (const auto& [name, child] : named_children())
    if (name == key) return child;
  throw ValueError("ModuleDict: no module named \"" + key + "\"");
}

void ModuleDictImpl::insert_ptr(const std::string& key, std::shared_ptr<Module> module) {
  register_module(key, std::move(module));  // refuses a key in use, an empty key or one with '.'
}

Tensor ModuleDictImpl::forward(const Tensor&) {
  throw ValueError("ModuleDict has no forward: call its modules, for example (*dict)[\"name\"]");
}

}  // namespace tg::nn
