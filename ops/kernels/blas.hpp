// Row-major GEMM: C = op(A) · op(B) + beta · C, where op transposes when
// asked. Transposes are flags, never copies. Float goes through the GEMM
// provider chosen at configure time (kernels/gemm.hpp: oneDNN or OpenBLAS);
// double through CBLAS (OpenBLAS), which has the only dgemm of the two.
#pragma once

#include <cblas.h>

#include <cstddef>

#include "gemm.hpp"

namespace tg::kernels {

inline CBLAS_TRANSPOSE blas_flag(bool transpose) { return transpose ? CblasTrans : CblasNoTrans; }

// A is (M, K) after op, B is (K, N) after op, C is (M, N); all contiguous.
inline void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                 const float* a, const float* b, float beta, float* c) {
  sgemm(trans_a, trans_b, m, n, k, a, b, beta, c);
}

inline void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                 const double* a, const double* b, double beta, double* c) {
  cblas_dgemm(CblasRowMajor, blas_flag(trans_a), blas_flag(trans_b), int(m), int(n), int(k), 1.0, a,
              trans_a ? int(m) : int(k), b, trans_b ? int(k) : int(n), beta, c, int(n));
}

}  // namespace tg::kernels
