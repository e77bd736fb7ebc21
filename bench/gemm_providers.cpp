// Single-precision GEMM throughput at the GEMM shapes of the LeNet-5 and
// TF-tutorial networks: tapegrad's float GEMM (tg::kernels::sgemm, the
// provider chosen at configure time) beside OpenBLAS's cblas_sgemm, timed in
// alternation, median GFLOP/s of the rounds (2·M·N·K flops per call).
//
//   gemm_providers [threads 1] [rounds 7]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include <tapegrad/ops/kernels/gemm.hpp>
#include <tapegrad/tapegrad.hpp>

namespace {

struct Shape {
  const char* what;
  bool ta, tb;
  std::size_t m, n, k;
};

// Per conv layer (C_out, K = C_in·25, L = Ho·Wo), per image: the forward
// W·cols, the weight gradient dY·colsᵀ, the input gradient Wᵀ·dY. Dense
// layers at batch 64: y = x·wᵀ, dx = dy·w, dw = dyᵀ·x.
const Shape kShapes[] = {
    {"lenet C1 fwd", false, false, 6, 784, 25},        {"lenet C1 dW", false, true, 6, 25, 784},
    {"lenet C3 fwd", false, false, 16, 100, 150},      {"lenet C3 dW", false, true, 16, 150, 100},
    {"lenet C3 dX", true, false, 150, 100, 16},        {"lenet F5 fwd b64", false, true, 64, 120, 400},
    {"tfcnn conv1 fwd", false, false, 32, 784, 25},    {"tfcnn conv1 dW", false, true, 32, 25, 784},
    {"tfcnn conv2 fwd", false, false, 64, 196, 800},   {"tfcnn conv2 dW", false, true, 64, 800, 196},
    {"tfcnn conv2 dX", true, false, 800, 196, 64},     {"tfcnn fc1 fwd b64", false, true, 64, 1024, 3136},
    {"tfcnn fc1 dX b64", false, false, 64, 3136, 1024}, {"tfcnn fc1 dW b64", true, false, 1024, 3136, 64},
};

double gflops(const std::function<void()>& f, double flops) {
  int calls = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    f();
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < 0.05);
  return flops * calls / elapsed * 1e-9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
  tg::set_num_threads(threads);
  std::printf("%s\n", tg::config().str().c_str());
  std::printf("%-20s %5s %5s %5s %3s  %10s  %10s  %5s\n", "shape", "M", "N", "K", "op", tg::kernels::gemm_provider(),
              "openblas", "ratio");
  tg::Generator gen(1);
  for (const Shape& s : kShapes) {
    const tg::Tensor a = tg::randn({s.m * s.k}, gen), b = tg::randn({s.k * s.n}, gen);
    std::vector<float> c(s.m * s.n);
    const float* pa = a.data<float>();
    const float* pb = b.data<float>();
    const auto ours = [&] { tg::kernels::sgemm(s.ta, s.tb, s.m, s.n, s.k, pa, pb, 0.0f, c.data()); };
    const auto blas = [&] {
      cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, int(s.m), int(s.n),
                  int(s.k), 1.0f, pa, s.ta ? int(s.m) : int(s.k), pb, s.tb ? int(s.k) : int(s.n), 0.0f, c.data(),
                  int(s.n));
    };
    const double flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
    std::vector<double> x, y;
    for (int r = 0; r < rounds; ++r) {
      x.push_back(gflops(ours, flops));
      y.push_back(gflops(blas, flops));
    }
    const char* op = s.ta ? (s.tb ? "TT" : "TN") : (s.tb ? "NT" : "NN");
    std::printf("%-20s %5zu %5zu %5zu %3s  %10.1f  %10.1f  %5.2f\n", s.what, s.m, s.n, s.k, op, median(x), median(y),
                median(x) / median(y));
  }
}
