#include "random.hpp"

namespace tg {

Generator& default_generator() {
  thread_local Generator generator(kDefaultSeed);
  return generator;
}

void manual_seed(std::uint64_t seed) { default_generator().seed(seed); }

}  // namespace tg
