// Normalization layers' functions, as torch.nn.functional has them:
// x̂ = (x - mean) / √(var + eps) with the biased variance, then an optional
// weight and bias (per element for layer_norm, per channel otherwise).
// layer_norm, group_norm and batch_norm in eval are composed from
// reductions and elementwise ops, and every derivative of theirs comes from
// the primitives' rules. batch_norm in training is one primitive (its
// composite walks the batch many times over); its rule is written again with
// tensor ops under create_graph, so it too differentiates twice.
#pragma once

#include <cstddef>
#include <vector>

#include "../core/tensor.hpp"

namespace tg {

// Normalizes over the last len(normalized_shape) axes, which must equal
// normalized_shape; weight and bias, when defined, have normalized_shape.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);
// x: (N, C, *): the C channels split into num_groups groups of C / num_groups,
// each normalized over its channels and every position, per sample; weight
// and bias, when defined, have shape (C,).
Tensor group_norm(const Tensor& x, std::size_t num_groups, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);
// x: (N, C, *), per channel. training: the batch's mean and biased variance
// normalize, and running_mean / running_var (C,), when defined, move toward the
// batch's mean and unbiased variance by `momentum`, outside the graph (they
// need more than one value per channel). Otherwise the running statistics
// normalize. weight and bias, when defined, have shape (C,).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight = {},
                  const Tensor& bias = {}, bool training = false, double momentum = 0.1, double eps = 1e-5);

}  // namespace tg
