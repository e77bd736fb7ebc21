// The float GEMM provider (oneDNN or OpenBLAS, chosen at configure time)
// against OpenBLAS's cblas_sgemm at the GEMM shapes of the LeNet-5 and
// TF-tutorial networks, and the configuration and thread count it reports.
#include <doctest/doctest.h>

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad/ops/kernels/gemm.hpp>
#include <tapegrad/tapegrad.hpp>

namespace {

struct GemmCase {
  bool ta, tb;
  std::size_t m, n, k;
};

// Per conv layer (C_out, K = C_in·25, L = Ho·Wo): the forward W·cols (N, N),
// the weight gradient dY·colsᵀ (N, T) and the input gradient Wᵀ·dY (T, N);
// the batch-summed weight gradient of a (T, N) product over 64 stacked images;
// and the dense layers at batch 64: y = x·wᵀ, dx = dy·w, dw = dyᵀ·x.
std::vector<GemmCase> network_shapes() {
  std::vector<GemmCase> cases;
  const std::size_t convs[][3] = {{6, 25, 784}, {16, 150, 100}, {32, 25, 784}, {64, 800, 196}};
  for (const auto& c : convs) {
    cases.push_back({false, false, c[0], c[2], c[1]});
    cases.push_back({false, true, c[0], c[1], c[2]});
    cases.push_back({true, false, c[1], c[2], c[0]});
  }
  cases.push_back({true, false, 6, 25, 64 * 784});
  const std::size_t dense[][2] = {{400, 120}, {120, 84}, {84, 10}, {3136, 1024}, {1024, 10}};
  for (const auto& d : dense) {
    const std::size_t batch = 64, in = d[0], out = d[1];
    cases.push_back({false, true, batch, out, in});
    cases.push_back({false, false, batch, in, out});
    cases.push_back({true, false, out, in, batch});
  }
  return cases;
}

std::vector<float> random_floats(std::size_t n, tg::Generator& gen) {
  const tg::Tensor t = tg::randn({n}, gen);
  const float* p = t.data<float>();
  return std::vector<float>(p, p + n);
}

void reference(const GemmCase& c, const float* a, const float* b, float beta, float* out) {
  cblas_sgemm(CblasRowMajor, c.ta ? CblasTrans : CblasNoTrans, c.tb ? CblasTrans : CblasNoTrans, int(c.m), int(c.n),
              int(c.k), 1.0f, a, c.ta ? int(c.m) : int(c.k), b, c.tb ? int(c.k) : int(c.n), beta, out, int(c.n));
}

// max |x - y| / max |y|
double relative_difference(const std::vector<float>& x, const std::vector<float>& y) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::abs(double(x[i]) - double(y[i])));
    scale = std::max(scale, std::abs(double(y[i])));
  }
  return diff / scale;
}

}  // namespace

TEST_CASE("the float GEMM provider agrees with cblas_sgemm within 1e-5 at the networks' GEMM shapes") {
  tg::Generator gen(3);
  const int threads = tg::get_num_threads();
  for (int t : {1, 2}) {
    tg::set_num_threads(t);
    for (const GemmCase& c : network_shapes()) {
      CAPTURE(tg::kernels::gemm_provider());
      CAPTURE(t);
      CAPTURE(c.ta);
      CAPTURE(c.tb);
      CAPTURE(c.m);
      CAPTURE(c.n);
      CAPTURE(c.k);
      const std::vector<float> a = random_floats(c.m * c.k, gen), b = random_floats(c.k * c.n, gen);
      const std::vector<float> c0 = random_floats(c.m * c.n, gen);
      // beta = 0 overwrites, whatever C held (NaN here); beta = 1 accumulates.
      std::vector<float> got(c.m * c.n, std::numeric_limits<float>::quiet_NaN()), want(c.m * c.n);
      tg::kernels::sgemm(c.ta, c.tb, c.m, c.n, c.k, a.data(), b.data(), 0.0f, got.data());
      reference(c, a.data(), b.data(), 0.0f, want.data());
      CHECK(std::none_of(got.begin(), got.end(), [](float v) { return std::isnan(v); }));
      CHECK(relative_difference(got, want) <= 1e-5);
      got = c0;
      want = c0;
      tg::kernels::sgemm(c.ta, c.tb, c.m, c.n, c.k, a.data(), b.data(), 1.0f, got.data());
      reference(c, a.data(), b.data(), 1.0f, want.data());
      CHECK(relative_difference(got, want) <= 1e-5);
    }
  }
  tg::set_num_threads(threads);
}

TEST_CASE("config() names the GEMM provider and the thread count set_num_threads sets") {
  const int threads = tg::get_num_threads();
  CHECK(threads >= 1);
  const tg::Config c = tg::config();
  CHECK(c.gemm == tg::kernels::gemm_provider());
  CHECK(c.double_gemm == "openblas");
  tg::set_num_threads(2);
  CHECK(tg::get_num_threads() == 2);
  CHECK(tg::config().threads == 2);
  CHECK(tg::config().str().find("threads=2") != std::string::npos);
  CHECK(tg::config().str().find("gemm=" + c.gemm) == 0);
  tg::set_num_threads(1);
  CHECK(tg::get_num_threads() == 1);
  CHECK_THROWS_AS(tg::set_num_threads(0), tg::ValueError);
  CHECK(tg::get_num_threads() == 1);
  tg::set_num_threads(threads);
}

TEST_CASE("float and double matmul agree through their two GEMM paths") {
  tg::Generator gen(4);
  const tg::Tensor a = tg::randn({64, 800}, gen), b = tg::randn({800, 196}, gen);
  const tg::Tensor f = tg::matmul(a, b);
  const tg::Tensor d = tg::matmul(a.to(tg::kFloat64), b.to(tg::kFloat64));
  const double diff = tg::max(tg::abs(f.to(tg::kFloat64) - d)).item(), scale = tg::max(tg::abs(d)).item();
  CHECK(diff / scale <= 1e-5);
}

TEST_CASE("a 2-d operand's gradient summed over a batch equals a direct sum, in groups and with groups capped") {
  // matmul(W, X) with W (m, k) used by every matrix of X (B, k, p): dW is
  // Σ_b dY_b · X_bᵀ, which tapegrad sums in groups of images. B = 40 makes
  // three groups; with p = 1 and m = k = 64 the products are outer products,
  // and the groups are fewer and larger so that their sums stay within the
  // operands' size.
  struct Case {
    std::size_t m, k, p;
  };
  for (const Case c : {Case{6, 25, 30}, Case{64, 64, 1}})
    for (const tg::Dtype dtype : {tg::kFloat32, tg::kFloat64}) {
      CAPTURE(c.m);
      CAPTURE(tg::dtype_name(dtype));
      tg::Generator gen(5);
      const std::size_t batch = 40;
      const tg::Tensor w = tg::randn({c.m, c.k}, gen, 0.0, 1.0, dtype).requires_grad_();
      const tg::Tensor x = tg::randn({batch, c.k, c.p}, gen, 0.0, 1.0, dtype);
      const tg::Tensor upstream = tg::randn({batch, c.m, c.p}, gen, 0.0, 1.0, dtype);
      tg::matmul(w, x).backward(upstream);
      const tg::Tensor xd = x.to(tg::kFloat64), gd = upstream.to(tg::kFloat64);
      const double* px = xd.data<double>();
      const double* pg = gd.data<double>();
      std::vector<double> want(c.m * c.k, 0.0);
      for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t i = 0; i < c.m; ++i)
          for (std::size_t j = 0; j < c.k; ++j)
            for (std::size_t q = 0; q < c.p; ++q)
              want[i * c.k + j] += pg[(b * c.m + i) * c.p + q] * px[(b * c.k + j) * c.p + q];
      const tg::Tensor got = w.grad().to(tg::kFloat64);
      double diff = 0, scale = 0;
      for (std::size_t e = 0; e < want.size(); ++e) {
        diff = std::max(diff, std::abs(got.data<double>()[e] - want[e]));
        scale = std::max(scale, std::abs(want[e]));
      }
      CHECK(diff / scale <= (dtype == tg::kFloat32 ? 1e-5 : 1e-13));
    }
}
