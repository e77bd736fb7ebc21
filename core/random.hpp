// A seeded random source. The distributions are written out here (not taken
// from <random>'s distributions, whose output differs between standard
// libraries) so that a seed gives the same numbers everywhere.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

#include "error.hpp"

namespace tg {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : engine_(seed) {}

  // Restarts the sequence: after seed(s) the draws are those of Generator(s).
  void seed(std::uint64_t s) {
    engine_.seed(s);
    has_spare_ = false;
  }
  std::uint64_t next_u64() { return engine_(); }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  // Standard normal by Box-Muller; the second value of each pair is kept.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 0.0;
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    const double angle = 2.0 * M_PI * u2;
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }

  // Uniform integer in [0, n), without modulo bias.
  std::uint64_t below(std::uint64_t n) {
    if (n == 0) throw ValueError("Generator::below: the range [0, 0) is empty");
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    std::uint64_t r = engine_();
    while (r >= limit) r = engine_();
    return r % n;
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// The generator that layers and the random creators use when none is given.
//
// One per thread, not one per process behind a mutex: a Generator is handed
// out by reference and drawn from many times, so a lock around each draw
// would not make a sequence of draws atomic, and two threads drawing from one
// generator would interleave in an order that changes from run to run. Per
// thread, a model built on one thread after manual_seed(s) gets the same
// weights every time, whatever other threads draw. This matches the tape,
// which is per thread too. Every thread's default generator starts from the
// same seed (kDefaultSeed) until manual_seed is called on that thread.
Generator& default_generator();

// Reseeds the calling thread's default generator, as torch::manual_seed:
// manual_seed(0) and then building a model twice gives identical weights.
void manual_seed(std::uint64_t seed);

inline constexpr std::uint64_t kDefaultSeed = 67280421310721ULL;  // PyTorch's default seed

}  // namespace tg
