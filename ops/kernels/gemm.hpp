// Float GEMM through one interface, on the provider chosen at configure time
// (-DTAPEGRAD_GEMM=dnnl|openblas): oneDNN's dnnl_sgemm by default when CMake
// finds it, else OpenBLAS's cblas_sgemm. Double GEMM stays on CBLAS
// (kernels/blas.hpp): dnnl has no dgemm.
//
// Row-major, contiguous: C = op(A) · op(B) + beta · C, with A (M, K) after op,
// B (K, N) after op and C (M, N). beta = 0 overwrites C without reading it
// (C may hold anything, NaN included), with either provider.
#pragma once

#include <cstddef>

namespace tg::kernels {

void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const float* a, const float* b,
           float beta, float* c);

// "dnnl" or "openblas".
const char* gemm_provider();

}  // namespace tg::kernels
