// Training steps of one benchmark network in tapegrad alone, for profiling:
//
//   train_step lenet|tfcnn [batch 64] [steps 50] [threads 1] [buffer cache MiB]
//
// prints images per second over the steps after two warm-up steps, and the
// most tensor memory the run held (tg::memory_stats): in tensors at once
// (max_allocated_mb), and with the buffer cache (max_reserved_mb). The last
// argument sets tg::set_buffer_cache_limit (0 turns buffer reuse off).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "models.hpp"

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "lenet";
  const std::size_t batch = argc > 2 ? std::size_t(std::atol(argv[2])) : 64;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 50;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  if (argc > 5) tg::set_buffer_cache_limit(std::size_t(std::atol(argv[5])) << 20);
  if ((name != "lenet" && name != "tfcnn") || batch == 0 || steps <= 0 || threads <= 0) {
    std::fprintf(stderr, "usage: train_step lenet|tfcnn [batch] [steps] [threads] [buffer cache MiB]\n");
    return 2;
  }
  tg::set_num_threads(threads);
  tg::Generator gen(1);
  const tg::Tensor x = tg::randn({batch, 1, 28, 28}, gen);
  const tg::Tensor labels = tg::randint(0, 10, {batch}, gen);
  bench::Model m = bench::make_model(name, 0);
  for (int i = 0; i < 2; ++i) bench::train_step(m, x, labels);
  const auto start = std::chrono::steady_clock::now();
  double loss = 0;
  for (int i = 0; i < steps; ++i) loss = bench::train_step(m, x, labels);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const tg::MemoryStats memory = tg::memory_stats();
  std::printf("model=%s batch=%zu threads=%d steps=%d ips=%.1f loss=%.4f max_allocated_mb=%.1f max_reserved_mb=%.1f %s\n",
              name.c_str(), batch, threads, steps, double(batch) * steps / seconds, loss,
              double(memory.max_allocated) / 1e6, double(memory.max_reserved) / 1e6, tg::config().str().c_str());
}
