// Matrix products through BLAS.
#pragma once

#include "../core/tensor.hpp"

namespace tg {

// a · b for 2-d operands, or batched over leading axes that broadcast
// ((..., M, K) · (..., K, N) -> (..., M, N)).
template <class T> BasicTensor<T> matmul(const BasicTensor<T>& a, const BasicTensor<T>& b);
// op(a) · op(b), where op transposes the last two axes when asked. The
// transposes are BLAS flags, not copies; matmul and linear are this op.
template <class T> BasicTensor<T> gemm(const BasicTensor<T>& a, const BasicTensor<T>& b,
                                       bool transpose_a, bool transpose_b);
// x · wᵀ + b with w of shape (out, in), as torch.nn.functional.linear;
// b may be undefined for no bias.
template <class T> BasicTensor<T> linear(const BasicTensor<T>& x, const BasicTensor<T>& w,
                                         const BasicTensor<T>& b = {});

}  // namespace tg
