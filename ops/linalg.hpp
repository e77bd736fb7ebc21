// Matrix products through BLAS, for float32 and float64 (mixed operands
// promote as elementwise ops do).
#pragma once

#include "../core/tensor.hpp"

namespace tg {

// a · b for 2-d operands, or batched over leading axes that broadcast
// ((..., M, K) · (..., K, N) -> (..., M, N)).
Tensor matmul(const Tensor& a, const Tensor& b);
// op(a) · op(b), where op transposes the last two axes when asked. The
// transposes are BLAS flags, not copies; matmul and linear are this op.
Tensor gemm(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b);
// x · wᵀ + b with w of shape (out, in), as torch.nn.functional.linear;
// b may be undefined for no bias.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = {});

}  // namespace tg
