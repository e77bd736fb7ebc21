// Changing the spatial size of (N, C, H, W) images: adaptive average pooling
// and nearest-neighbour upsampling, composed from views, reductions and
// broadcasting, so their gradients (of any order) are those ops' rules.
#pragma once

#include "../core/tensor.hpp"
#include "conv.hpp"

namespace tg {

// x: (N, C, H, W) or (C, H, W) -> (..., Ho, Wo) for output_size (Ho, Wo):
// output row i averages input rows floor(i·H/Ho) to ceil((i+1)·H/Ho) - 1,
// as torch (windows of H/Ho rows when Ho divides H; they overlap or vary
// otherwise), columns likewise. adaptive_avg_pool2d(x, 1) is global
// average pooling.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);
// x: (N, C, H, W) or (C, H, W) -> (..., H·sh, W·sw): each pixel repeated
// into an sh × sw block, as torch's nearest mode with integer scale factors
// (sh, sw) >= 1. The gradient of a pixel is the sum over its block.
Tensor upsample_nearest2d(const Tensor& x, Size2 scale_factor);

}  // namespace tg
