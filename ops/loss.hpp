// Softmax and the losses, composed from primitive ops.
//
// Every loss is a function of (input, target, options) as in libtorch's
// torch::nn::functional: the options hold the loss's hyperparameters, so a
// loss module only keeps an options value and calls the function with it.
// Each options type converts implicitly from a Reduction, so
// tg::l1_loss(x, y, tg::Reduction::Sum) needs no options object; setters
// chain and getters share their name:
//
//   tg::cross_entropy(logits, labels, tg::CrossEntropyLossOptions().weight(w).ignore_index(0)
//                                         .label_smoothing(0.1).reduction(tg::Reduction::Sum));
//
// Elementwise losses want input and target of equal shapes (no broadcasting).
// Weights, ignored labels and clamping follow PyTorch's definitions, which
// are written out at each function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace tg {

// How a loss combines its per-element (or per-sample) values, as torch's
// `reduction`: None keeps them, Sum adds them, Mean averages them (over the
// elements, or for nll_loss and cross_entropy over the weights of the counted
// targets). BatchMean, the sum divided by the batch size, is for kl_div only.
enum class Reduction { None, Mean, Sum, BatchMean };
// "none", "mean", "sum", "batchmean".
const char* reduction_name(Reduction reduction);

// One option: a chaining setter and a getter of the same name, as libtorch's TORCH_ARG.
#define TG_LOSS_OPTION(Type, name, initial)                 \
 public:                                                    \
  auto& name(Type value) {                                  \
    name##_ = std::move(value);                             \
    return *this;                                           \
  }                                                         \
  const Type& name() const { return name##_; }              \
                                                            \
 private:                                                   \
  Type name##_ = initial;

#define TG_LOSS_OPTIONS(Options)                                                                \
 public:                                                                                        \
  Options(Reduction reduction = Reduction::Mean) : reduction_(reduction) {} /* NOLINT: implicit */ \
  TG_LOSS_OPTION(Reduction, reduction, Reduction::Mean)

class MSELossOptions {
  TG_LOSS_OPTIONS(MSELossOptions)
};
class L1LossOptions {
  TG_LOSS_OPTIONS(L1LossOptions)
};
class SmoothL1LossOptions {
  TG_LOSS_OPTIONS(SmoothL1LossOptions)
  TG_LOSS_OPTION(double, beta, 1.0)  // >= 0; 0 gives l1_loss
};
class HuberLossOptions {
  TG_LOSS_OPTIONS(HuberLossOptions)
  TG_LOSS_OPTION(double, delta, 1.0)  // > 0
};
class BCELossOptions {
  TG_LOSS_OPTIONS(BCELossOptions)
  TG_LOSS_OPTION(Tensor, weight, Tensor())  // multiplies each element's loss; broadcasts to the input's shape
};
class BCEWithLogitsLossOptions {
  TG_LOSS_OPTIONS(BCEWithLogitsLossOptions)
  TG_LOSS_OPTION(Tensor, weight, Tensor())      // as BCELossOptions::weight
  TG_LOSS_OPTION(Tensor, pos_weight, Tensor())  // weight of the positive term, per class (last axis)
};
class KLDivLossOptions {
  TG_LOSS_OPTIONS(KLDivLossOptions)
  TG_LOSS_OPTION(bool, log_target, false)  // the target is given as log-probabilities
};
class NLLLossOptions {
  TG_LOSS_OPTIONS(NLLLossOptions)
  TG_LOSS_OPTION(Tensor, weight, Tensor())        // (C,): one weight per class; no gradient flows to it
  TG_LOSS_OPTION(std::int64_t, ignore_index, -100)  // samples with this label count nowhere
};
class CrossEntropyLossOptions {
  TG_LOSS_OPTIONS(CrossEntropyLossOptions)
  TG_LOSS_OPTION(Tensor, weight, Tensor())          // as NLLLossOptions
  TG_LOSS_OPTION(std::int64_t, ignore_index, -100)  // as NLLLossOptions
  TG_LOSS_OPTION(double, label_smoothing, 0.0)      // in [0, 1]
};

#undef TG_LOSS_OPTIONS
#undef TG_LOSS_OPTION

// ---- softmax ----------------------------------------------------------------------

// e^x / Σ e^x along `axis`.
Tensor softmax(const Tensor& x, std::ptrdiff_t axis = -1);
// x - log Σ e^x along `axis`, computed as (x - m) - log Σ e^(x - m) with m the
// maximum, so no exponential overflows.
Tensor log_softmax(const Tensor& x, std::ptrdiff_t axis = -1);

// ---- classification with class indices -------------------------------------------

// For log_probs of shape (N, C) and int64 labels of shape (N,) (or a vector)
// with values in [0, C) or equal to ignore_index, sample i's loss is
//   l_i = -w[y_i] · log_probs[i, y_i]     (w = 1 without a weight; 0 when y_i is ignored).
// Mean is Σ l_i / Σ w[y_i] over the samples not ignored (PyTorch's weighted
// mean), NaN when there are none (with a zero gradient, as PyTorch); None
// gives the (N,) values, an ignored sample's being 0.
Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, const NLLLossOptions& options = {});
Tensor nll_loss(const Tensor& log_probs, const std::vector<std::int64_t>& labels, const NLLLossOptions& options = {});
Tensor nll_loss(const Tensor& log_probs, std::initializer_list<std::int64_t> labels,  // nll_loss(x, {0, 2})
                const NLLLossOptions& options = {});
// nll_loss(log_softmax(logits, 1), labels) for logits (N, C). With label
// smoothing s, PyTorch's formula: the loss is
//   (1 - s) · nll + (s / C) · Σ_i -Σ_c w[c] · log_probs[i, c]   (ignored samples left out),
// the second term reduced as the first (Mean divides it by the same Σ w[y_i]).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyLossOptions& options = {});
Tensor cross_entropy(const Tensor& logits, const std::vector<std::int64_t>& labels,
                     const CrossEntropyLossOptions& options = {});
Tensor cross_entropy(const Tensor& logits, std::initializer_list<std::int64_t> labels,
                     const CrossEntropyLossOptions& options = {});

// ---- binary classification --------------------------------------------------------

// -w · (t · log p + (1 - t) · log(1 - p)) for probabilities p in [0, 1] (a
// ValueError otherwise). NOTE: as PyTorch, each log is clamped at -100, so
// p = 0 or 1 gives a finite loss, and the gradient with respect to p is
// w · (p - t) / max(p · (1 - p), 1e-12), finite at 0 and 1 too: it is this
// op's own rule, since the derivative of the clamped logs would be 0/0 there.
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, const BCELossOptions& options = {});
// The same loss for p = sigmoid(x), computed from the logits without
// overflow: max(x, 0) - x · t + log(1 + e^-|x|). With pos_weight p (per
// class, broadcast along the last axis), PyTorch's
//   (1 - t) · x + (1 + (p - 1) · t) · log(1 + e^-x).
// Exact derivatives of any order everywhere, x = 0 included.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        const BCEWithLogitsLossOptions& options = {});
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const Tensor& pos_weight,
                                        Reduction reduction = Reduction::Mean);

// ---- regression ---------------------------------------------------------------------

// (input - target)².
Tensor mse_loss(const Tensor& input, const Tensor& target, const MSELossOptions& options = {});
// |input - target|; its gradient at 0 is 0.
Tensor l1_loss(const Tensor& input, const Tensor& target, const L1LossOptions& options = {});
// PyTorch's two quadratic-then-linear losses, which differ by a factor: with
// d = |input - target|,
//   smooth_l1_loss: 0.5 · d² / beta  if d < beta,  else d - 0.5 · beta      (beta = 0: l1_loss)
//   huber_loss:     0.5 · d²         if d < delta, else delta · (d - 0.5 · delta)
// so huber_loss with delta = smooth_l1_loss with beta = delta, times delta.
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, const SmoothL1LossOptions& options = {});
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, double beta, Reduction reduction = Reduction::Mean);
Tensor huber_loss(const Tensor& input, const Tensor& target, const HuberLossOptions& options = {});
Tensor huber_loss(const Tensor& input, const Tensor& target, double delta, Reduction reduction = Reduction::Mean);

// ---- distributions --------------------------------------------------------------------

// Kullback-Leibler divergence of the target from the input, which holds
// log-probabilities: t · (log t - input), with 0 where t = 0 (PyTorch's
// xlogy); with log_target, e^t · (t - input). Mean averages over all elements
// as torch's "mean"; BatchMean, which gives the true divergence per sample,
// divides the sum by the first axis (by 1 for a 0-d input).
Tensor kl_div(const Tensor& log_input, const Tensor& target, const KLDivLossOptions& options = {});
Tensor kl_div(const Tensor& log_input, const Tensor& target, Reduction reduction, bool log_target = false);

}  // namespace tg
