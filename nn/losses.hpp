// Loss modules: each holds its options (ops/loss.hpp) and calls its function,
// as torch::nn's losses do:
//
//   nn::CrossEntropyLoss loss_fn(tg::CrossEntropyLossOptions().label_smoothing(0.1));
//   tg::Tensor loss = loss_fn(logits, labels);
//
// A Reduction alone converts to any of the options: nn::MSELoss(tg::Reduction::Sum).
// They take two inputs, so they are called directly, not put in a Sequential.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../ops/loss.hpp"
#include "module.hpp"

namespace tg::nn {

namespace detail {
// A loss module's options and its description ("reduction=mean, beta=0.5").
template <class Options>
class LossModule : public Module {
 public:
  explicit LossModule(const Options& options) : options(options) {}
  std::string describe() const override { return std::string("reduction=") + reduction_name(options.reduction()); }
  const Options options;
};
std::string loss_setting(const char* name, double value);  // ", name=value"
}  // namespace detail

class MSELossImpl : public detail::LossModule<MSELossOptions> {
 public:
  using Module::forward;  // the one-tensor form stays visible (and throws): no hidden overload
  explicit MSELossImpl(const MSELossOptions& options = {}) : LossModule(options) {}
  Tensor forward(const Tensor& input, const Tensor& target) { return mse_loss(input, target, options); }
};
TG_MODULE(MSELoss);

class L1LossImpl : public detail::LossModule<L1LossOptions> {
 public:
  using Module::forward;  // the one-tensor form stays visible (and throws): no hidden overload
  explicit L1LossImpl(const L1LossOptions& options = {}) : LossModule(options) {}
  Tensor forward(const Tensor& input, const Tensor& target) { return l1_loss(input, target, options); }
};
TG_MODULE(L1Loss);

class SmoothL1LossImpl : public detail::LossModule<SmoothL1LossOptions> {
 public:
  using Module::forward;  // the one-tensor form stays visible (and throws): no hidden overload
  explicit SmoothL1LossImpl(const SmoothL1LossOptions& options = {}) : LossModule(options) {}
  Tensor forward(const Tensor& input, const Tensor& target) { return smooth_l1_loss(input, target, options); }
  std::string describe() const override { return LossModule::describe() + detail::loss_setting("beta", options.beta()); }
};
TG_MODULE(SmoothL1Loss);

class HuberLossImpl : public detail::LossModule<HuberLossOptions> {
 public:
  using Module::forward;  // the one-tensor form stays visible (and throws): no hidden overload
  explicit HuberLossImpl(const HuberLossOptions& options = {}) : LossModule(options) {}
  Tensor forward(const Tensor& input, const Tensor& target) { return huber_loss(input, target, options); }
  std::string describe() const override { return LossModule::describe() + detail::loss_setting("delta", options.delta()); }
};
TG_MODULE(HuberLoss);

// input: probabilities in [0, 1].
class BCELossImpl : public detail::LossModule<BCELossOptions> {
 public:
  using Module::forward;  // the one-tensor form stays visible (and throws): no hidden overload
  explicit BCELossImpl(const BCELossOptions& options = {}) : LossModule(options) {}
  Tensor forward(const Tensor& input, const Tensor& target) { return binary_cross_entropy(input, target, options); }
};
TG_MODULE(BCELoss);

// input: logits.
class BCEWithLogitsLossImpl : public detail::LossModule<BCEWithLogitsLossOptions> {
 public:
  using Module::forward;  // the one-tensor form stays visible (and throws): no hidden overload
  explicit BCEWithLogitsLossImpl(const BCEWithLogitsLossOptions& options = {}) : LossModule(options) {}
  Tensor forward(const Tensor& input, const Tensor& target) {
    return binary_cross_entropy_with_logits(input, target, options);
  }
};
TG_MODULE(BCEWithLogitsLoss);

// input: log-probabilities; target: probabilities (log-probabilities with log_target).
class KLDivLossImpl : public detail::LossModule<KLDivLossOptions> {
 public:
  using Module::forward;  // the one-tensor form stays visible (and throws): no hidden overload
  explicit KLDivLossImpl(const KLDivLossOptions& options = {}) : LossModule(options) {}
  Tensor forward(const Tensor& input, const Tensor& target) { return kl_div(input, target, options); }
  std::string describe() const override {
    return LossModule::describe() + (options.log_target() ? ", log_target=true" : "");
  }
};
TG_MODULE(KLDivLoss);

// input: log-probabilities (N, C); target: int64 labels (N,), or a vector of them.
class NLLLossImpl : public detail::LossModule<NLLLossOptions> {
 public:
  using Module::forward;  // the one-tensor form stays visible (and throws): no hidden overload
  explicit NLLLossImpl(const NLLLossOptions& options = {}) : LossModule(options) {}
  Tensor forward(const Tensor& input, const Tensor& target) { return nll_loss(input, target, options); }
  Tensor forward(const Tensor& input, const std::vector<std::int64_t>& target) { return nll_loss(input, target, options); }
  std::string describe() const override;
};
TG_MODULE(NLLLoss);

// input: logits (N, C); target: int64 labels (N,), or a vector of them.
class CrossEntropyLossImpl : public detail::LossModule<CrossEntropyLossOptions> {
 public:
  using Module::forward;  // the one-tensor form stays visible (and throws): no hidden overload
  explicit CrossEntropyLossImpl(const CrossEntropyLossOptions& options = {}) : LossModule(options) {}
  Tensor forward(const Tensor& input, const Tensor& target) { return cross_entropy(input, target, options); }
  Tensor forward(const Tensor& input, const std::vector<std::int64_t>& target) {
    return cross_entropy(input, target, options);
  }
  std::string describe() const override;
};
TG_MODULE(CrossEntropyLoss);

}  // namespace tg::nn
