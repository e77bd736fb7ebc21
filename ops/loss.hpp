// Softmax and the losses, composed from primitive ops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/tensor.hpp"

namespace tg {

// e^x / Σ e^x along `axis`.
template <class T> BasicTensor<T> softmax(const BasicTensor<T>& x, std::ptrdiff_t axis = -1);
// x - log Σ e^x along `axis`, computed as (x - m) - log Σ e^(x - m) with m the
// maximum, so no exponential overflows.
template <class T> BasicTensor<T> log_softmax(const BasicTensor<T>& x, std::ptrdiff_t axis = -1);
// -mean_i log_probs[i, labels[i]] for log_probs of shape (N, C).
template <class T> BasicTensor<T> nll_loss(const BasicTensor<T>& log_probs,
                                           const std::vector<std::int64_t>& labels);
// nll_loss(log_softmax(logits, 1), labels): logits (N, C), labels in [0, C).
template <class T> BasicTensor<T> cross_entropy(const BasicTensor<T>& logits,
                                                const std::vector<std::int64_t>& labels);
// mean((input - target)²); the shapes must be equal.
template <class T> BasicTensor<T> mse_loss(const BasicTensor<T>& input, const BasicTensor<T>& target);

}  // namespace tg
