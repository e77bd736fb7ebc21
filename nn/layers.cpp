#include "layers.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

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

// ---- Dropout2d -----------------------------------------------------------------

Dropout2dImpl::Dropout2dImpl(const DropoutOptions& options, Generator& gen) : options(options), gen_(gen.next_u64()) {
  const double p = options.p();
  if (!(p >= 0.0 && p < 1.0)) throw ValueError("Dropout2d: p must be in [0, 1), got " + std::to_string(p));
}

// One mask value per (sample, channel), broadcast over the channel's pixels.
Tensor Dropout2dImpl::forward(const Tensor& x) {
  if (x.dim() != 4) throw ShapeError("Dropout2d: expected input of shape (N, C, H, W), got " + shape_str(x.shape()));
  const double p = options.p();
  if (!is_training() || p == 0.0) return x;
  Tensor mask = empty(Shape{x.shape()[0], x.shape()[1], 1, 1}, x.dtype());
  visit_floating("Dropout2d", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T keep_scale = T(1.0 / (1.0 - p));
    T* m = mask.mutable_data<T>();
    for (std::size_t i = 0, n = mask.numel(); i < n; ++i) m[i] = gen_.uniform() < p ? T(0) : keep_scale;
  });
  return mul(x, mask);
}

// ---- Embedding -----------------------------------------------------------------

EmbeddingImpl::EmbeddingImpl(const EmbeddingOptions& options, Generator& gen) : options(options) {
  const std::size_t rows = options.num_embeddings(), dim = options.embedding_dim();
  if (rows == 0 || dim == 0)
    throw ValueError("Embedding: num_embeddings=" + std::to_string(rows) + " and embedding_dim=" +
                     std::to_string(dim) + " must be positive");
  Tensor w = randn({rows, dim}, gen);
  if (const auto pad = options.padding_idx()) {
    if (!(*pad >= -std::int64_t(rows) && *pad < std::int64_t(rows)))
      throw ValueError("Embedding: padding_idx " + std::to_string(*pad) + " is out of range for " +
                       std::to_string(rows) + " embeddings");
    const std::size_t row = std::size_t(*pad < 0 ? *pad + std::int64_t(rows) : *pad);
    float* pw = w.mutable_data<float>();
    std::fill(pw + row * dim, pw + (row + 1) * dim, 0.0f);
  }
  weight = register_parameter("weight", w);
}

Tensor EmbeddingImpl::forward(const Tensor& indices) {
  const std::size_t rows = options.num_embeddings();
  if (indices.dtype() != kInt64)
    throw DtypeError("Embedding: indices must be int64, got " + std::string(dtype_name(indices.dtype())) +
                     " of shape " + shape_str(indices.shape()));
  const Tensor flat = indices.contiguous();
  const std::int64_t* idx = flat.data<std::int64_t>();
  for (std::size_t i = 0; i < flat.numel(); ++i)
    if (idx[i] < 0 || std::uint64_t(idx[i]) >= rows)
      throw ValueError("Embedding(" + std::to_string(rows) + ", " + std::to_string(options.embedding_dim()) +
                       "): index " + std::to_string(idx[i]) + " in indices of shape " + shape_str(indices.shape()) +
                       " is outside [0, " + std::to_string(rows) + ")");
  return embedding(indices, weight, options.padding_idx());
}

std::string EmbeddingImpl::describe() const {
  const auto pad = options.padding_idx();
  return std::to_string(options.num_embeddings()) + ", " + std::to_string(options.embedding_dim()) +
         (pad ? ", padding_idx=" + std::to_string(*pad) : "");
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
