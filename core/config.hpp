// How this build of tapegrad computes: the float GEMM provider chosen at
// configure time, the thread count, the build options. And the one place
// that sets the thread count for everything tapegrad runs.
//
//   std::cout << tg::config() << "\n";
//   // gemm=dnnl (oneDNN 2.6.3, OpenMP) double_gemm=openblas (OpenBLAS 0.3.21 ...) threads=1 openmp=yes native=yes
#pragma once

#include <iosfwd>
#include <string>

namespace tg {

struct Config {
  std::string gemm;          // float GEMM provider: "dnnl" or "openblas"
  std::string gemm_detail;   // its version and threading runtime
  std::string double_gemm;   // always "openblas": double GEMM goes through CBLAS
  std::string blas_detail;   // openblas_get_config()
  int threads = 1;           // get_num_threads()
  bool openmp = false;       // built with OpenMP (tapegrad's own parallel loops, oneDNN's threads)
  bool native = false;       // built with -march=native
  std::string str() const;   // one line, key=value
};

Config config();
std::ostream& operator<<(std::ostream& os, const Config& c);

// Threads for the GEMM providers (OpenBLAS's own pool; oneDNN's OpenMP
// threads) and for tapegrad's own OpenMP loops. n >= 1. The default is
// OpenBLAS's: OPENBLAS_NUM_THREADS, else OMP_NUM_THREADS, else every core.
void set_num_threads(int n);
int get_num_threads();

}  // namespace tg
