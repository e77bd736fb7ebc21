// Layers, as torch::nn has them: each one an XxxImpl module and its holder
// Xxx (TG_MODULE), built from its hyperparameters or an options object:
//
//   nn::Sequential features(
//       nn::Conv2d(nn::Conv2dOptions(1, 32, 5).padding(2)), nn::BatchNorm2d(32), nn::ReLU(), nn::MaxPool2d(2));
//   nn::Linear head(3136, 10);
//   tg::Tensor y = head(tg::flatten(features(x)));
//
// Parameters are float32 when constructed; Module::to(kFloat64) converts a
// whole model (for gradient checks). Weights and biases start as PyTorch's
// do: uniform in ±1/√fan_in, drawn from the thread's default generator
// (tg::manual_seed), or from a Generator given as the last constructor
// argument. Members such as `weight` are handles to the registered
// parameters: they share value and gradient.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../ops/conv.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/embedding.hpp"
#include "../ops/shape.hpp"
#include "activations.hpp"
#include "conv_layers.hpp"
#include "losses.hpp"
#include "module.hpp"
#include "norm_layers.hpp"
#include "options.hpp"

namespace tg::nn {

// ---- options -----------------------------------------------------------------

struct LinearOptions {
  LinearOptions(std::size_t in_features, std::size_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  TG_ARG(std::size_t, in_features);
  TG_ARG(std::size_t, out_features);
  TG_ARG(bool, bias) = true;
};

struct Conv2dOptions {
  Conv2dOptions(std::size_t in_channels, std::size_t out_channels, Size2 kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TG_ARG(std::size_t, in_channels);
  TG_ARG(std::size_t, out_channels);
  TG_ARG(Size2, kernel_size);
  TG_ARG(Size2, stride) = 1;
  TG_ARG(Size2, padding) = 0;
  TG_ARG(Size2, dilation) = 1;
  TG_ARG(std::size_t, groups) = 1;
  TG_ARG(bool, bias) = true;
};

// A stride of 0 (the default) means the kernel size, as PyTorch's None.
struct MaxPool2dOptions {
  MaxPool2dOptions(Size2 kernel_size) : kernel_size_(kernel_size) {}  // NOLINT: implicit on purpose
  TG_ARG(Size2, kernel_size);
  TG_ARG(Size2, stride) = 0;
  TG_ARG(Size2, padding) = 0;
};

struct AvgPool2dOptions {
  AvgPool2dOptions(Size2 kernel_size) : kernel_size_(kernel_size) {}  // NOLINT: implicit on purpose
  TG_ARG(Size2, kernel_size);
  TG_ARG(Size2, stride) = 0;
  TG_ARG(Size2, padding) = 0;
};

struct DropoutOptions {
  DropoutOptions(double p = 0.5) : p_(p) {}  // NOLINT: implicit on purpose
  TG_ARG(double, p);
};

struct EmbeddingOptions {
  EmbeddingOptions(std::size_t num_embeddings, std::size_t embedding_dim)
      : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {}
  TG_ARG(std::size_t, num_embeddings);
  TG_ARG(std::size_t, embedding_dim);
  // A row that reads as usual but gets no gradient (negative counts from the end).
  TG_ARG(std::optional<std::int64_t>, padding_idx) = std::nullopt;
};

struct LeakyReLUOptions {
  TG_ARG(double, negative_slope) = 0.01;
};

// ---- layers ------------------------------------------------------------------

// y = x·wᵀ + b; weight (out, in), bias (out).
class LinearImpl : public Module {
 public:
  LinearImpl(std::size_t in_features, std::size_t out_features, Generator& gen = default_generator())
      : LinearImpl(LinearOptions(in_features, out_features), gen) {}
  explicit LinearImpl(const LinearOptions& options, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  const LinearOptions options;
  Tensor weight;
  Tensor bias;  // undefined without bias
};
TG_MODULE(Linear);

// weight (out, in / groups, kh, kw), bias (out).
class Conv2dImpl : public Module {
 public:
  Conv2dImpl(std::size_t in_channels, std::size_t out_channels, Size2 kernel_size,
             Generator& gen = default_generator())
      : Conv2dImpl(Conv2dOptions(in_channels, out_channels, kernel_size), gen) {}
  explicit Conv2dImpl(const Conv2dOptions& options, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  const Conv2dOptions options;
  Tensor weight;
  Tensor bias;
};
TG_MODULE(Conv2d);

class MaxPool2dImpl : public Module {
 public:
  explicit MaxPool2dImpl(Size2 kernel_size) : MaxPool2dImpl(MaxPool2dOptions(kernel_size)) {}
  explicit MaxPool2dImpl(const MaxPool2dOptions& options) : options(options) {}
  Tensor forward(const Tensor& x) override {
    return max_pool2d(x, options.kernel_size(), options.stride(), options.padding());
  }
  std::string describe() const override { return "kernel=" + options.kernel_size().str(); }
  const MaxPool2dOptions options;
};
TG_MODULE(MaxPool2d);

class AvgPool2dImpl : public Module {
 public:
  explicit AvgPool2dImpl(Size2 kernel_size) : AvgPool2dImpl(AvgPool2dOptions(kernel_size)) {}
  explicit AvgPool2dImpl(const AvgPool2dOptions& options) : options(options) {}
  Tensor forward(const Tensor& x) override {
    return avg_pool2d(x, options.kernel_size(), options.stride(), options.padding());
  }
  std::string describe() const override { return "kernel=" + options.kernel_size().str(); }
  const AvgPool2dOptions options;
};
TG_MODULE(AvgPool2d);

class ReLUImpl : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
};
TG_MODULE(ReLU);

class TanhImpl : public Module {
 public:
  Tensor forward(const Tensor& x) override { return tanh(x); }
};
TG_MODULE(Tanh);

class SigmoidImpl : public Module {
 public:
  Tensor forward(const Tensor& x) override { return sigmoid(x); }
};
TG_MODULE(Sigmoid);

class LeakyReLUImpl : public Module {
 public:
  explicit LeakyReLUImpl(const LeakyReLUOptions& options = {}) : options(options) {}
  Tensor forward(const Tensor& x) override { return leaky_relu(x, options.negative_slope()); }
  std::string describe() const override { return "negative_slope=" + std::to_string(options.negative_slope()); }
  const LeakyReLUOptions options;
};
TG_MODULE(LeakyReLU);

class FlattenImpl : public Module {
 public:
  explicit FlattenImpl(std::ptrdiff_t start_dim = 1, std::ptrdiff_t end_dim = -1)
      : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override { return flatten(x, start_dim, end_dim); }
  const std::ptrdiff_t start_dim, end_dim;
};
TG_MODULE(Flatten);

// The identity, as a layer: a placeholder in a Sequential, or a head removed.
class IdentityImpl : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
};
TG_MODULE(Identity);

// Training: zeroes each element with probability p and scales the rest by
// 1/(1-p); eval: the identity. The masks come from the layer's own
// Generator, seeded at construction from the default generator (or the one
// given), so building after manual_seed(s) gives the same masks.
class DropoutImpl : public Module {
 public:
  explicit DropoutImpl(const DropoutOptions& options = {}, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "p=" + std::to_string(options.p()); }
  const DropoutOptions options;

 private:
  Generator gen_;
};
TG_MODULE(Dropout);

// Training: zeroes each whole channel of (N, C, H, W) with probability p (one
// draw per sample and channel) and scales the rest by 1/(1-p); eval: the
// identity. Masks from the layer's own Generator, as Dropout's.
class Dropout2dImpl : public Module {
 public:
  explicit Dropout2dImpl(const DropoutOptions& options = {}, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "p=" + std::to_string(options.p()); }
  const DropoutOptions options;

 private:
  Generator gen_;
};
TG_MODULE(Dropout2d);

// A table of num_embeddings vectors of embedding_dim, looked up by int64
// index (tg::embedding): indices of any shape -> that shape + (embedding_dim,).
// The weight starts standard normal, as PyTorch's, with the padding_idx row zero.
class EmbeddingImpl : public Module {
 public:
  EmbeddingImpl(std::size_t num_embeddings, std::size_t embedding_dim, Generator& gen = default_generator())
      : EmbeddingImpl(EmbeddingOptions(num_embeddings, embedding_dim), gen) {}
  explicit EmbeddingImpl(const EmbeddingOptions& options, Generator& gen = default_generator());
  Tensor forward(const Tensor& indices) override;
  std::string describe() const override;

  const EmbeddingOptions options;
  Tensor weight;  // (num_embeddings, embedding_dim)
};
TG_MODULE(Embedding);

// ---- containers ----------------------------------------------------------------

namespace detail {
// The list of modules that Sequential and ModuleList share: children named
// "0", "1", ... in order. A module that contains the container (or is it)
// is refused with a ValueError: the tree would become a cycle.
class ModuleSequence : public Module {
 public:
  template <class M>
  void push_back(M&& module) {
    push_back_ptr(detail::module_ptr(std::forward<M>(module)));
  }
  std::size_t size() const { return items_.size(); }
  bool is_empty() const { return items_.empty(); }
  // The i-th module; a ValueError naming i and the size when out of range.
  std::shared_ptr<Module> ptr(std::size_t i) const;
  std::shared_ptr<Module> operator[](std::size_t i) const { return ptr(i); }
  // Typed: ptr<nn::Conv2d>(0) or ptr<nn::Conv2dImpl>(0) gives a
  // std::shared_ptr<Conv2dImpl>; a ValueError naming the index and both
  // types when the module there is of another type.
  template <class T>
  std::shared_ptr<typename detail::impl_of<T>::type> ptr(std::size_t i) const {
    return detail::module_cast<T>(ptr(i), type_name() + "::ptr<" + detail::module_type_name(
        typeid(typename detail::impl_of<T>::type)) + ">: module " + std::to_string(i));
  }
  template <class T>
  typename detail::impl_of<T>::type& at(std::size_t i) const {
    return *ptr<T>(i);
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  void push_back_ptr(std::shared_ptr<Module> module);
  std::vector<std::shared_ptr<Module>> items_;
};
}  // namespace detail

// Forward feeds each module's output to the next. Built from any number of
// holders or shared_ptrs: nn::Sequential(nn::Linear(4, 8), nn::ReLU()).
class SequentialImpl : public detail::ModuleSequence {
 public:
  using Item = std::shared_ptr<Module>;
  SequentialImpl() = default;
  SequentialImpl(std::initializer_list<Item> modules) {
    for (const auto& m : modules) push_back(m);
  }
  template <class... Ms, std::enable_if_t<(sizeof...(Ms) > 0), int> = 0>
  explicit SequentialImpl(Ms&&... modules) {
    (push_back(std::forward<Ms>(modules)), ...);
  }
  Tensor forward(const Tensor& x) override;
};
TG_MODULE(Sequential);

// Modules held in order and registered ("0", "1", ...), with no forward of
// its own: the owner calls them. for (const auto& m : *list) ... walks them.
class ModuleListImpl : public detail::ModuleSequence {
 public:
  ModuleListImpl() = default;
  template <class... Ms, std::enable_if_t<(sizeof...(Ms) > 0), int> = 0>
  explicit ModuleListImpl(Ms&&... modules) {
    (push_back(std::forward<Ms>(modules)), ...);
  }
  Tensor forward(const Tensor& x) override;  // throws: a ModuleList is not called
};
TG_MODULE(ModuleList);

// Modules by name, registered under that name, keys in insertion order.
class ModuleDictImpl : public Module {
 public:
  ModuleDictImpl() = default;
  template <class M>
  void insert(const std::string& key, M&& module) {
    insert_ptr(key, detail::module_ptr(std::forward<M>(module)));
  }
  std::size_t size() const { return named_children().size(); }
  bool contains(const std::string& key) const;
  std::vector<std::string> keys() const;
  // The module under `key`; a ValueError naming the key when absent.
  std::shared_ptr<Module> operator[](const std::string& key) const;
  template <class T>
  std::shared_ptr<typename detail::impl_of<T>::type> ptr(const std::string& key) const {
    return detail::module_cast<T>((*this)[key], "ModuleDict::ptr<" + detail::module_type_name(
        typeid(typename detail::impl_of<T>::type)) + ">: module \"" + key + "\"");
  }
  Tensor forward(const Tensor& x) override;  // throws: a ModuleDict is not called

 private:
  void insert_ptr(const std::string& key, std::shared_ptr<Module> module);
};
TG_MODULE(ModuleDict);

}  // namespace tg::nn
