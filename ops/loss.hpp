// Softmax and the losses, composed from primitive ops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "../core/tensor.hpp"

namespace tg {

// e^x / Σ e^x along `axis`.
Tensor softmax(const Tensor& x, std::ptrdiff_t axis = -1);
// x - log Σ e^x along `axis`, computed as (x - m) - log Σ e^(x - m) with m the
// maximum, so no exponential overflows.
Tensor log_softmax(const Tensor& x, std::ptrdiff_t axis = -1);
// -mean_i log_probs[i, labels[i]] for log_probs of shape (N, C); labels is an
// int64 tensor of shape (N,) (or a vector) with values in [0, C).
Tensor nll_loss(const Tensor& log_probs, const Tensor& labels);
Tensor nll_loss(const Tensor& log_probs, const std::vector<std::int64_t>& labels);
Tensor nll_loss(const Tensor& log_probs, std::initializer_list<std::int64_t> labels);  // nll_loss(x, {0, 2})
// nll_loss(log_softmax(logits, 1), labels): logits (N, C).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);
Tensor cross_entropy(const Tensor& logits, const std::vector<std::int64_t>& labels);
Tensor cross_entropy(const Tensor& logits, std::initializer_list<std::int64_t> labels);
// mean((input - target)²); the shapes must be equal.
Tensor mse_loss(const Tensor& input, const Tensor& target);

}  // namespace tg
