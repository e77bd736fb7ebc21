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

  void seed(std::uint64_t s) { engine_.seed(s); }
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

}  // namespace tg
