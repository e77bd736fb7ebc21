// The time of one Adam step on a 128 x 3136 weight (the Fashion-MNIST
// network's first dense layer) whose gradient is non-zero for 50 steps and
// then 0, as for the weights of a unit relu has turned off: its moments
// shrink step by step until they are subnormal floats.
//
//   adam_step [steps 1200]
//
// prints the mean time of an Adam step per 100 steps.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <tapegrad/tapegrad.hpp>

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 1200;
  tg::set_num_threads(1);
  tg::Generator gen(1);
  tg::Tensor w = tg::randn({128, 3136}, gen).requires_grad_();
  tg::optim::Adam adam({w}, 3e-3);
  const tg::Tensor g = tg::mul(tg::randn({128, 3136}, gen), 1e-3), none = tg::zeros({128, 3136});
  double seconds = 0;
  for (int step = 1; step <= steps; ++step) {
    adam.zero_grad();
    tg::sum(tg::mul(w, step <= 50 ? g : none)).backward();
    const auto start = std::chrono::steady_clock::now();
    adam.step();
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step % 100 == 0) {
      std::printf("steps %d-%d: %.2f ms per Adam step\n", step - 99, step, seconds * 10);
      seconds = 0;
    }
  }
}
