// tapegrad ops beside the bare loops and BLAS calls they wrap.
//
//   Chain_*   y = relu(a * b + c) * 0.5f on 1<<20 floats (4 elementwise ops)
//   Matmul_*  (64 x 800) . (800 x 12544) in float
//   BatchNorm_*  training-mode batch norm, forward and backward, in float:
//              the primitive tg::batch_norm beside the same formula written
//              with tensor ops, at (64, 32, 14, 14) (after a conv), (256, 512)
//              and (4096, 8) (BatchNorm1d on features)
//
// The bare GEMMs go through the float GEMM provider tapegrad uses
// (tg::kernels::sgemm). Run with one thread so they compare like with like:
//   OPENBLAS_NUM_THREADS=1 build/bench/bench_ops
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// (one command line).
#include <sys/resource.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include <tapegrad/ops/kernels/gemm.hpp>
#include <tapegrad/tapegrad.hpp>

namespace {

// Minor page faults of this process so far: first touches of fresh memory.
long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// Reports the page faults taken inside the timed loop, per iteration. Read
// once before and once after the loop, so it adds nothing to the timings.
class FaultCounter {
 public:
  explicit FaultCounter(benchmark::State& state) : state_(state), start_(minor_faults()) {}
  ~FaultCounter() {
    state_.counters["faults/iter"] = benchmark::Counter(
        double(minor_faults() - start_), benchmark::Counter::kAvgIterations);
  }

 private:
  benchmark::State& state_;
  long start_;
};

// ============================================================================
// Elementwise chain: y = relu(a * b + c) * 0.5f
// ============================================================================

constexpr std::size_t kChainSize = std::size_t(1) << 20;

struct ChainInputs {
  tg::Tensor a, b, c;
  explicit ChainInputs(bool requires_grad) {
    tg::Generator gen(1);
    // Values in [-1, 1): about half of a*b + c is negative, so relu masks.
    a = tg::rand({kChainSize}, gen, -1.0, 1.0).requires_grad_(requires_grad);
    b = tg::rand({kChainSize}, gen, -1.0, 1.0).requires_grad_(requires_grad);
    c = tg::rand({kChainSize}, gen, -1.0, 1.0).requires_grad_(requires_grad);
  }
};

tg::Tensor chain(const tg::Tensor& a, const tg::Tensor& b, const tg::Tensor& c) {
  return tg::relu(a * b + c) * 0.5f;
}

void set_items(benchmark::State& state) {
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(kChainSize));
}

// Nothing requires grad: no op is recorded.
void BM_Chain_Forward_NoGrad(benchmark::State& state) {
  ChainInputs in(false);
  FaultCounter faults(state);
  for (auto _ : state) {
    tg::Tensor y = chain(in.a, in.b, in.c);
    benchmark::DoNotOptimize(y.data<float>());
  }
  set_items(state);
}

// The inputs require grad: all four ops are recorded, then the tape is cleared.
void BM_Chain_Forward_Recorded(benchmark::State& state) {
  ChainInputs in(true);
  FaultCounter faults(state);
  for (auto _ : state) {
    tg::Tensor y = chain(in.a, in.b, in.c);
    benchmark::DoNotOptimize(y.data<float>());
    tg::tape().clear();
  }
  set_items(state);
}

// sum(y).backward(), then the leaves' gradients are dropped.
void BM_Chain_ForwardBackward(benchmark::State& state) {
  ChainInputs in(true);
  FaultCounter faults(state);
  for (auto _ : state) {
    tg::Tensor y = chain(in.a, in.b, in.c);
    tg::sum(y).backward();
    benchmark::DoNotOptimize(in.a.grad().data<float>());
    in.a.zero_grad();
    in.b.zero_grad();
    in.c.zero_grad();
  }
  set_items(state);
}

struct BareChain {
  std::vector<float> a, b, c;
  explicit BareChain() {
    ChainInputs in(false);
    a.assign(in.a.data<float>(), in.a.data<float>() + kChainSize);
    b.assign(in.b.data<float>(), in.b.data<float>() + kChainSize);
    c.assign(in.c.data<float>(), in.c.data<float>() + kChainSize);
  }
};

// The same four ops as plain loops, one preallocated output buffer per op:
// the same number of passes over memory as the framework.
void bare_chain_per_op(const float* a, const float* b, const float* c, float* p1, float* p2, float* p3, float* py,
                       std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) p1[i] = a[i] * b[i];
  benchmark::ClobberMemory();
  for (std::size_t i = 0; i < n; ++i) p2[i] = p1[i] + c[i];
  benchmark::ClobberMemory();
  for (std::size_t i = 0; i < n; ++i) p3[i] = p2[i] > 0.0f ? p2[i] : 0.0f;
  benchmark::ClobberMemory();
  for (std::size_t i = 0; i < n; ++i) py[i] = p3[i] * 0.5f;
  benchmark::DoNotOptimize(py);
  benchmark::ClobberMemory();
}

void BM_Chain_Bare_PerOp(benchmark::State& state) {
  BareChain in;
  const std::size_t n = kChainSize;
  std::vector<float> t1(n), t2(n), t3(n), y(n);
  const float *a = in.a.data(), *b = in.b.data(), *c = in.c.data();
  float *p1 = t1.data(), *p2 = t2.data(), *p3 = t3.data(), *py = y.data();
  FaultCounter faults(state);
  for (auto _ : state) {
    bare_chain_per_op(a, b, c, p1, p2, p3, py, n);
  }
  set_items(state);
}

// As Bare_PerOp, but each op writes a freshly allocated (uninitialised)
// buffer, freed at the end of the iteration, as the framework's results are.
// Separates the cost of fresh memory from the cost of the framework itself.
void BM_Chain_Bare_PerOpFreshBuffers(benchmark::State& state) {
  BareChain in;
  const std::size_t n = kChainSize;
  const float *a = in.a.data(), *b = in.b.data(), *c = in.c.data();
  FaultCounter faults(state);
  for (auto _ : state) {
    std::unique_ptr<float[]> t1(new float[n]), t2(new float[n]), t3(new float[n]), y(new float[n]);
    float *p1 = t1.get(), *p2 = t2.get(), *p3 = t3.get(), *py = y.get();
    bare_chain_per_op(a, b, c, p1, p2, p3, py, n);
  }
  set_items(state);
}

// The chain fused into one loop: one pass, no intermediates.
void BM_Chain_Bare_Fused(benchmark::State& state) {
  BareChain in;
  const std::size_t n = kChainSize;
  std::vector<float> y(n);
  const float *a = in.a.data(), *b = in.b.data(), *c = in.c.data();
  float* py = y.data();
  FaultCounter faults(state);
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) {
      const float z = a[i] * b[i] + c[i];
      py[i] = (z > 0.0f ? z : 0.0f) * 0.5f;
    }
    benchmark::DoNotOptimize(py);
    benchmark::ClobberMemory();
  }
  set_items(state);
}

// Forward and backward of sum(y) by hand, one preallocated buffer per op:
//   forward  t1 = a*b, t2 = t1+c, t3 = relu(t2), y = 0.5*t3, s = sum(y)
//   backward gy = 1, gt3 = 0.5*gy, gt2 = gt3*[t3 > 0], gc = gt2,
//            ga = gt2*b, gb = gt2*a
void BM_Chain_Bare_ForwardBackward_PerOp(benchmark::State& state) {
  BareChain in;
  const std::size_t n = kChainSize;
  std::vector<float> t1(n), t2(n), t3(n), y(n), gy(n), gt3(n), gt2(n), ga(n), gb(n), gc(n);
  const float *a = in.a.data(), *b = in.b.data(), *c = in.c.data();
  FaultCounter faults(state);
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) t1[i] = a[i] * b[i];
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < n; ++i) t2[i] = t1[i] + c[i];
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < n; ++i) t3[i] = t2[i] > 0.0f ? t2[i] : 0.0f;
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < n; ++i) y[i] = t3[i] * 0.5f;
    benchmark::ClobberMemory();
    double s = 0.0;  // in double, as tg::sum
    for (std::size_t i = 0; i < n; ++i) s += y[i];
    benchmark::DoNotOptimize(s);
    for (std::size_t i = 0; i < n; ++i) gy[i] = 1.0f;
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < n; ++i) gt3[i] = gy[i] * 0.5f;
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < n; ++i) gt2[i] = gt3[i] * float(t3[i] > 0.0f);
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < n; ++i) gc[i] = gt2[i];
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < n; ++i) ga[i] = gt2[i] * b[i];
    benchmark::ClobberMemory();
    for (std::size_t i = 0; i < n; ++i) gb[i] = gt2[i] * a[i];
    benchmark::DoNotOptimize(ga.data());
    benchmark::DoNotOptimize(gb.data());
    benchmark::DoNotOptimize(gc.data());
    benchmark::ClobberMemory();
  }
  set_items(state);
}

// ============================================================================
// matmul: (M x K) . (K x N) = 64 x 800 . 800 x 12544
// ============================================================================

constexpr std::size_t kM = 64, kK = 800, kN = 12544;
constexpr double kGemmGflop = 2.0 * double(kM) * double(kN) * double(kK) * 1e-9;

void set_gflops(benchmark::State& state, int gemms) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(kGemmGflop * gemms * double(state.iterations()), benchmark::Counter::kIsRate);
}

struct MatmulInputs {
  tg::Tensor a, b;
  explicit MatmulInputs(bool requires_grad) {
    tg::Generator gen(2);
    a = tg::randn({kM, kK}, gen).requires_grad_(requires_grad);
    b = tg::randn({kK, kN}, gen).requires_grad_(requires_grad);
  }
};

void BM_Matmul_Forward(benchmark::State& state) {
  MatmulInputs in(false);
  FaultCounter faults(state);
  for (auto _ : state) {
    tg::Tensor c = tg::matmul(in.a, in.b);
    benchmark::DoNotOptimize(c.data<float>());
  }
  set_gflops(state, 1);
}

// C = A.B into a preallocated buffer.
void BM_Matmul_Bare_Sgemm(benchmark::State& state) {
  MatmulInputs in(false);
  std::vector<float> c(kM * kN);
  FaultCounter faults(state);
  for (auto _ : state) {
    tg::kernels::sgemm(false, false, kM, kN, kK, in.a.data<float>(), in.b.data<float>(), 0.0f, c.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, 1);
}

// C = matmul(A, B) with both requiring grad, then C.backward(dC) with dC of
// ones (no reduction in the way): three gemms, as below.
void BM_Matmul_ForwardBackward(benchmark::State& state) {
  MatmulInputs in(true);
  const tg::Tensor seed = tg::ones({kM, kN});
  FaultCounter faults(state);
  for (auto _ : state) {
    tg::Tensor c = tg::matmul(in.a, in.b);
    c.backward(seed);
    benchmark::DoNotOptimize(in.a.grad().data<float>());
    benchmark::DoNotOptimize(in.b.grad().data<float>());
    in.a.zero_grad();
    in.b.zero_grad();
  }
  set_gflops(state, 3);
}

// C = A.B, dA = dC.B^T, dB = A^T.dC into preallocated buffers.
void BM_Matmul_Bare_3Sgemm(benchmark::State& state) {
  MatmulInputs in(false);
  const float* a = in.a.data<float>();
  const float* b = in.b.data<float>();
  std::vector<float> c(kM * kN), dc(kM * kN, 1.0f), da(kM * kK), db(kK * kN);
  FaultCounter faults(state);
  for (auto _ : state) {
    tg::kernels::sgemm(false, false, kM, kN, kK, a, b, 0.0f, c.data());
    tg::kernels::sgemm(false, true, kM, kK, kN, dc.data(), b, 0.0f, da.data());
    tg::kernels::sgemm(true, false, kK, kN, kM, a, dc.data(), 0.0f, db.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::DoNotOptimize(da.data());
    benchmark::DoNotOptimize(db.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, 3);
}

const tg::Shape kNormShapes[] = {{64, 32, 14, 14}, {256, 512}, {4096, 8}};

struct NormInputs {
  tg::Tensor x, w, b, dy;
  tg::Axes axes;       // every axis but the channels
  tg::Shape per_channel;  // (1, C, 1, ...): broadcasts over those axes
  explicit NormInputs(const tg::Shape& shape) {
    tg::Generator gen(5);
    const std::size_t c = shape[1];
    x = tg::randn(shape, gen).requires_grad_(true);
    w = tg::rand({c}, gen, 0.5, 1.5).requires_grad_(true);
    b = tg::randn({c}, gen).requires_grad_(true);
    dy = tg::randn(shape, gen);
    per_channel = tg::Shape(shape.size(), 1);
    per_channel[1] = c;
    for (std::size_t a = 0; a < shape.size(); ++a)
      if (a != 1) axes.push_back(std::int64_t(a));
  }
  void zero_grads() {
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
  }
};

void set_norm_items(benchmark::State& state, const tg::Tensor& x) {
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(x.numel()));
  state.SetLabel(tg::shape_str(x.shape()));
}

// y = batch_norm(x, w, b) in training, then backward with upstream dy.
void BM_BatchNorm_Primitive(benchmark::State& state) {
  NormInputs in(kNormShapes[state.range(0)]);
  for (auto _ : state) {
    tg::Tensor y = tg::batch_norm(in.x, {}, {}, in.w, in.b, true);
    y.backward(in.dy);
    benchmark::DoNotOptimize(in.x.grad().data<float>());
    in.zero_grads();
  }
  set_norm_items(state, in.x);
}

// The same, as the composition of mean, var and elementwise ops that the
// primitive replaced.
void BM_BatchNorm_Composite(benchmark::State& state) {
  NormInputs in(kNormShapes[state.range(0)]);
  for (auto _ : state) {
    const tg::Tensor mean = tg::mean(in.x, in.axes, true), var = tg::var(in.x, in.axes, 0.0, true);
    tg::Tensor y = (in.x - mean) / tg::sqrt(var + 1e-5) * tg::reshape(in.w, in.per_channel) +
                   tg::reshape(in.b, in.per_channel);
    y.backward(in.dy);
    benchmark::DoNotOptimize(in.x.grad().data<float>());
    in.zero_grads();
  }
  set_norm_items(state, in.x);
}

}  // namespace

BENCHMARK(BM_Chain_Forward_NoGrad)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Chain_Forward_Recorded)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Chain_ForwardBackward)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Chain_Bare_PerOp)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Chain_Bare_PerOpFreshBuffers)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Chain_Bare_Fused)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Chain_Bare_ForwardBackward_PerOp)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Matmul_Forward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Matmul_Bare_Sgemm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Matmul_ForwardBackward)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Matmul_Bare_3Sgemm)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BatchNorm_Primitive)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_BatchNorm_Composite)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // Which GEMM and how many threads it uses (set OPENBLAS_NUM_THREADS=1).
  benchmark::AddCustomContext("tapegrad_config", tg::config().str());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
