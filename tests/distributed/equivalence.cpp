// Run as `mpirun -np N distributed_equivalence` (N divides 64): N ranks, each
// on a batch of 64 / N, take 20 Adam steps (two epochs of 640 examples) and
// must reach the parameters that one process reaches on batches of 64, within
// 1e-5 relative, and hold exactly the same parameters on every rank.
//
// The ranks start from different weights on purpose (seed 100 + rank):
// DataParallel copies rank 0's, which the single process starts from too.
// The single-process run is made by rank 0 after the distributed one.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad/distributed/distributed.hpp>

#include "toy_problem.hpp"

namespace {

constexpr std::size_t kGlobalBatch = 64, kExamples = 640, kEpochs = 2;
constexpr std::uint64_t kDataSeed = 7, kShuffleSeed = 5;
constexpr double kLearningRate = 1e-2, kTolerance = 1e-5;

// Trains `net` for kEpochs on the loader's batches; `average` runs after each
// backward. Returns the number of steps taken.
template <class Forward, class Average>
std::size_t train(ToyNet& net, tg::data::DataLoader& loader, Forward forward, Average average) {
  tg::optim::Adam optimizer(net.parameters(), kLearningRate);
  std::size_t steps = 0;
  for (std::size_t epoch = 0; epoch < kEpochs; ++epoch)
    for (const tg::data::Batch& batch : loader) {
      const tg::Tensor loss = tg::cross_entropy(forward(batch.inputs), batch.targets);
      optimizer.zero_grad();
      loss.backward();
      average();
      optimizer.step();
      ++steps;
    }
  return steps;
}

// max |a - b| / max |b| over the elements of two tensors of the same shape.
double relative_difference(const tg::Tensor& a, const tg::Tensor& b) {
  const auto x = a.to_xarray<float>(), y = b.to_xarray<float>();
  double difference = 0.0, largest = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    difference = std::max(difference, std::abs(double(x.flat(i)) - double(y.flat(i))));
    largest = std::max(largest, std::abs(double(y.flat(i))));
  }
  return difference / largest;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    tg::distributed::Environment mpi(argc, argv);
      try {
      const auto ranks = std::size_t(mpi.world_size()), rank = std::size_t(mpi.rank());
      if (kGlobalBatch % ranks != 0)
        throw tg::ValueError("the global batch of " + std::to_string(kGlobalBatch) + " does not divide among " +
                             std::to_string(ranks) + " ranks");
      const auto data = toy_dataset(kExamples, kDataSeed);

      tg::Generator init(100 + rank);
      ToyNet net(init);
      tg::distributed::DataParallel ddp(net, mpi);
      auto sampler = std::make_shared<tg::distributed::DistributedSampler>(kExamples, ranks, rank, /*shuffle=*/true,
                                                                           kShuffleSeed);
      tg::data::DataLoader shard(data, {kGlobalBatch / ranks, false, 0, false, false, sampler});
      const std::size_t steps =
          train(net, shard, [&](const tg::Tensor& x) { return ddp(x); }, [&] { ddp.average_gradients(); });

      // Every rank holds the same parameters, bit for bit: their sum over
      // the ranks is N times this rank's own.
      int differing = 0;
      for (const auto& [name, p] : net.named_parameters()) {
        tg::Tensor sum = p.detach().clone();
        mpi.all_reduce_sum(sum);
        if (sum.to_xarray<float>() != (p.detach() * double(ranks)).to_xarray<float>()) {
          std::fprintf(stderr, "rank %zu: %s differs from the other ranks'\n", rank, name.c_str());
          ++differing;
        }
      }
      if (rank != 0) return differing == 0 ? 0 : 1;

      tg::Generator rank0_init(100);
      ToyNet single(rank0_init);
      tg::data::DataLoader whole(data, {kGlobalBatch, /*shuffle=*/true, kShuffleSeed});
      const std::size_t single_steps =
          train(single, whole, [&](const tg::Tensor& x) { return single(x); }, [] {});
      if (steps != 20 || single_steps != 20)
        throw tg::ValueError("expected 20 steps, took " + std::to_string(steps) + " and " +
                             std::to_string(single_steps));

      double worst = 0.0;
      std::string worst_name;
      const auto reference = single.named_parameters();
      const auto trained = net.named_parameters();
      for (std::size_t i = 0; i < trained.size(); ++i) {
        const double d = relative_difference(trained[i].second, reference[i].second);
        std::printf("%-20s relative difference %.3g\n", trained[i].first.c_str(), d);
        if (d >= worst) worst = d, worst_name = trained[i].first;
      }
      std::printf("%zu steps: %zu ranks with batch %zu against 1 process with batch %zu: largest relative "
                  "difference %.3g (%s), tolerance %.0e\n",
                  steps, ranks, kGlobalBatch / ranks, kGlobalBatch, worst, worst_name.c_str(), kTolerance);
      return worst <= kTolerance && differing == 0 ? 0 : 1;
    } catch (const std::exception& e) {
      mpi.abort(e.what());
    }
  } catch (const std::exception& e) {  // no MPI environment
    std::fprintf(stderr, "distributed_equivalence: %s\n", e.what());
    return 1;
  }
}
