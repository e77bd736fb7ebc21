#include "config.hpp"

#include <cblas.h>

#include <atomic>
#include <ostream>
#include <sstream>

#include "error.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(TAPEGRAD_GEMM_DNNL)
#include <dnnl.h>
#endif

namespace tg {

namespace {
std::atomic<int> g_threads{0};  // 0: not set yet, OpenBLAS's default applies
}  // namespace

void set_num_threads(int n) {
  TG_CHECK(n >= 1, ValueError, "set_num_threads: the thread count must be at least 1, got " << n);
  g_threads.store(n);
  openblas_set_num_threads(n);
#if defined(_OPENMP)
  // Per calling thread in OpenMP; the dnnl GEMM wrapper re-applies it on
  // whichever thread calls it (ops/kernels/gemm.cpp).
  omp_set_num_threads(n);
#endif
}

int get_num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    n = openblas_get_num_threads();
    if (n < 1) n = 1;
    int unset = 0;
    if (!g_threads.compare_exchange_strong(unset, n)) n = unset;
  }
  return n;
}

Config config() {
  Config c;
#if defined(TAPEGRAD_GEMM_DNNL)
  const dnnl_version_t* v = dnnl_version();
  c.gemm = "dnnl";
  c.gemm_detail = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                  std::to_string(v->patch) + (v->cpu_runtime == DNNL_RUNTIME_OMP ? ", OpenMP" : "");
#else
  c.gemm = "openblas";
  c.gemm_detail = "cblas_sgemm";
#endif
  c.double_gemm = "openblas";
  c.blas_detail = openblas_get_config();
  c.threads = get_num_threads();
#if defined(_OPENMP)
  c.openmp = true;
#endif
#if defined(TAPEGRAD_NATIVE_BUILD)
  c.native = true;
#endif
  return c;
}

std::string Config::str() const {
  std::ostringstream os;
  os << "gemm=" << gemm << " (" << gemm_detail << ") double_gemm=" << double_gemm << " (" << blas_detail
     << ") threads=" << threads << " openmp=" << (openmp ? "yes" : "no") << " native=" << (native ? "yes" : "no");
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Config& c) { return os << c.str(); }

}  // namespace tg
