#include <tapegrad/distributed/distributed.hpp>

// Built when the installed tapegrad has tg::distributed: its headers and MPI
// are found through find_package(tapegrad). The sampler needs no mpirun:
// exits 0 when rank 1 of 2 gets the odd indices of an unshuffled epoch.
int main() {
  tg::distributed::DistributedSampler sampler(6, 2, 1, /*shuffle=*/false);
  return sampler.indices(0) == std::vector<std::size_t>{1, 3, 5} ? 0 : 1;
}
