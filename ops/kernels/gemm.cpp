#include "gemm.hpp"

#include <stdexcept>
#include <string>

#include "../../core/config.hpp"

#if defined(TAPEGRAD_GEMM_DNNL)
#include <dnnl.h>
#include <omp.h>
#else
#include <cblas.h>
#endif

namespace tg::kernels {

#if defined(TAPEGRAD_GEMM_DNNL)

const char* gemm_provider() { return "dnnl"; }

void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const float* a, const float* b,
           float beta, float* c) {
  // Debian's oneDNN runs on GNU OpenMP and splits a GEMM over
  // omp_get_max_threads() of the calling thread, a per-thread setting: align
  // it with tg::get_num_threads() here, so a GEMM called from any thread uses
  // the count set by tg::set_num_threads.
  const int threads = get_num_threads();
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
  const dnnl_status_t status =
      dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k), 1.0f, a,
                 dnnl_dim_t(trans_a ? m : k), b, dnnl_dim_t(trans_b ? k : n), beta, c, dnnl_dim_t(n));
  if (status != dnnl_success)
    throw std::runtime_error("sgemm: dnnl_sgemm failed with status " + std::to_string(int(status)) + " for M=" +
                             std::to_string(m) + " N=" + std::to_string(n) + " K=" + std::to_string(k));
}

#else

const char* gemm_provider() { return "openblas"; }

void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, const float* a, const float* b,
           float beta, float* c) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(m), int(n),
              int(k), 1.0f, a, trans_a ? int(m) : int(k), b, trans_b ? int(k) : int(n), beta, c, int(n));
}

#endif

}  // namespace tg::kernels
