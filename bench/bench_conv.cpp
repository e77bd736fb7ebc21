// conv2d forward + backward at the layer shapes of LeNet-5 and of the
// TensorFlow-tutorial CNN (batch 64), beside bare calls of the same GEMM
// shapes on the float GEMM provider tapegrad uses (tg::kernels::sgemm: oneDNN
// or OpenBLAS, as configured), and im2col / col2im alone at those shapes.
// The bare GEMMs also run LeNet-5's layers at batch 256, where the columns
// no longer fit in the caches and the GEMMs read them from memory.
//
// A layer computes, per image n, with K = C_in·kh·kw and L = Ho·Wo:
//   forward      Y_n  = W · cols_n          (C_out x K) · (K x L)
//   weight grad  dW  += dY_n · cols_nᵀ      (C_out x L) · (L x K)
//   input grad   dcols_n = Wᵀ · dY_n        (K x C_out) · (C_out x L), then col2im
// The first layer of a network needs no input gradient.
#include <benchmark/benchmark.h>

#include <vector>

#include <tapegrad/ops/kernels/gemm.hpp>
#include <tapegrad/tapegrad.hpp>

namespace {

struct Layer {
  std::size_t c_in, c_out, size, kernel, padding;
  bool input_grad;  // false for a first layer: its input is data

  std::size_t out() const { return size + 2 * padding - kernel + 1; }
  std::size_t k() const { return c_in * kernel * kernel; }
  std::size_t l() const { return out() * out(); }
  double gemm_flops(std::size_t batch) const {
    return 2.0 * double(batch * c_out * k() * l()) * (input_grad ? 3 : 2);
  }
};

constexpr std::size_t kBatch = 64;
const Layer kLayers[] = {
    {1, 6, 28, 5, 2, false},   // 0: LeNet-5 C1
    {6, 16, 14, 5, 0, true},   // 1: LeNet-5 C3
    {1, 32, 28, 5, 2, false},  // 2: TF tutorial conv1
    {32, 64, 14, 5, 2, true},  // 3: TF tutorial conv2
};

void label(benchmark::State& state, const Layer& layer, std::size_t batch = kBatch) {
  state.SetLabel(std::to_string(layer.c_in) + "->" + std::to_string(layer.c_out) + " " + std::to_string(layer.kernel) +
                 "x" + std::to_string(layer.kernel) + " on " + std::to_string(layer.size) + "x" +
                 std::to_string(layer.size) + (layer.input_grad ? ", input grad" : "") + ", batch " +
                 std::to_string(batch));
  state.counters["GFLOP/s"] = benchmark::Counter(layer.gemm_flops(batch) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Conv2d_ForwardBackward(benchmark::State& state) {
  const Layer& layer = kLayers[state.range(0)];
  tg::Generator gen(1);
  tg::Tensor x = tg::randn({kBatch, layer.c_in, layer.size, layer.size}, gen);
  if (layer.input_grad) x.requires_grad_();
  tg::Tensor w = tg::randn({layer.c_out, layer.c_in, layer.kernel, layer.kernel}, gen).requires_grad_();
  tg::Tensor b = tg::zeros({layer.c_out}, tg::requires_grad());
  const tg::Tensor upstream = tg::randn({kBatch, layer.c_out, layer.out(), layer.out()}, gen);
  for (auto _ : state) {
    tg::Tensor y = tg::conv2d(x, w, b, 1, layer.padding);
    y.backward(upstream);
    benchmark::DoNotOptimize(w.grad().data<float>());
  }
  label(state, layer);
}

// Arguments: layer, batch.
void BM_Conv2d_Bare_Sgemm(benchmark::State& state) {
  const Layer& layer = kLayers[state.range(0)];
  const auto batch = std::size_t(state.range(1));
  const std::size_t c_out = layer.c_out, k = layer.k(), l = layer.l();
  std::vector<float> w(c_out * k, 0.5f), cols(batch * k * l, 0.25f), y(batch * c_out * l), dy(batch * c_out * l, 1.0f),
      dw(c_out * k), dcols(batch * k * l);
  using tg::kernels::sgemm;
  for (auto _ : state) {
    for (std::size_t n = 0; n < batch; ++n)
      sgemm(false, false, c_out, l, k, w.data(), cols.data() + n * k * l, 0.0f, y.data() + n * c_out * l);
    for (std::size_t n = 0; n < batch; ++n)
      sgemm(false, true, c_out, k, l, dy.data() + n * c_out * l, cols.data() + n * k * l, n ? 1.0f : 0.0f, dw.data());
    if (layer.input_grad)
      for (std::size_t n = 0; n < batch; ++n)
        sgemm(true, false, k, l, c_out, w.data(), dy.data() + n * c_out * l, 0.0f, dcols.data() + n * k * l);
    benchmark::DoNotOptimize(dw.data());
  }
  label(state, layer, batch);
}

void BM_Im2col(benchmark::State& state) {
  const Layer& layer = kLayers[state.range(0)];
  tg::Generator gen(2);
  const tg::Tensor x = tg::randn({kBatch, layer.c_in, layer.size, layer.size}, gen);
  for (auto _ : state) benchmark::DoNotOptimize(tg::im2col(x, layer.kernel, 1, layer.padding).data<float>());
  state.SetBytesProcessed(std::int64_t(state.iterations() * kBatch * layer.k() * layer.l() * sizeof(float)));
}

void BM_Col2im(benchmark::State& state) {
  const Layer& layer = kLayers[state.range(0)];
  tg::Generator gen(3);
  const tg::Tensor cols = tg::randn({kBatch, layer.k(), layer.l()}, gen);
  for (auto _ : state)
    benchmark::DoNotOptimize(tg::col2im(cols, layer.size, layer.kernel, 1, layer.padding).data<float>());
  state.SetBytesProcessed(std::int64_t(state.iterations() * kBatch * layer.k() * layer.l() * sizeof(float)));
}

}  // namespace

BENCHMARK(BM_Conv2d_ForwardBackward)->DenseRange(0, 3)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Conv2d_Bare_Sgemm)
    ->ArgsProduct({{0, 1, 2, 3}, {std::int64_t(kBatch)}})
    ->ArgsProduct({{0, 1}, {256}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Im2col)->DenseRange(0, 3)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Col2im)->Arg(1)->Arg(3)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
