// Gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_.
#pragma once

#include <vector>

#include "../core/tensor.hpp"

namespace tg::optim {

// torch.nn.utils.clip_grad_norm_: the L2 norm of all defined gradients taken
// together (computed in double). Every gradient is scaled in place by
// max_norm / (total + 1e-6) when that is below 1, i.e. when total exceeds
// max_norm (less 1e-6); smaller gradients are left alone. Returns the total
// norm before clipping. ValueError for max_norm < 0.
// Float32 and float64 gradients, mixed or not.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// torch.nn.utils.clip_grad_value_: clamps every defined gradient in place to
// [-clip_value, clip_value] (NaN stays NaN). ValueError for clip_value < 0
// or NaN.
void clip_grad_value(const std::vector<Tensor>& params, double clip_value);

}  // namespace tg::optim
