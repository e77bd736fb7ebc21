// Run as `mpirun -np 2 distributed_fault throw|kill`: two ranks train the toy
// network, and at step 3 rank 1 fails while rank 0 waits for it in the
// gradient all-reduce:
//   throw  its data loader reads a corrupt example and throws a DataError,
//          which reaches main, where Environment::abort ends the job;
//   kill   it is killed by SIGKILL, and mpirun ends the job.
// Every rank must exit with a message naming rank 1, never hang:
// check_faults.py runs this with a timeout.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include <tapegrad/distributed/distributed.hpp>

#include "toy_problem.hpp"

namespace {

constexpr std::size_t kExamples = 256, kBatchPerRank = 16, kFailingStep = 3;
constexpr std::uint64_t kShuffleSeed = 3;

// A dataset with one unreadable example.
class CorruptExample : public tg::data::datasets::Dataset {
 public:
  CorruptExample(tg::data::datasets::TensorDataset data, std::size_t bad) : data_(std::move(data)), bad_(bad) {}
  std::size_t size() const override { return data_.size(); }
  tg::data::Example get(std::size_t index) const override {
    check(index);
    return data_.get(index);
  }
  tg::data::Example get_batch(const std::vector<std::size_t>& indices, std::uint64_t epoch) const override {
    for (std::size_t index : indices) check(index);
    return data_.get_batch(indices, epoch);
  }

 private:
  void check(std::size_t index) const {
    if (index == bad_) throw tg::data::DataError("example " + std::to_string(index) + " of the shard is corrupt");
  }
  tg::data::datasets::TensorDataset data_;
  std::size_t bad_;
};

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "throw" && mode != "kill") {
    std::fprintf(stderr, "usage: mpirun -np 2 distributed_fault throw|kill\n");
    return 2;
  }
  try {
    tg::distributed::Environment mpi(argc, argv);
    try {
      const auto ranks = std::size_t(mpi.world_size()), rank = std::size_t(mpi.rank());
      auto sampler = std::make_shared<tg::distributed::DistributedSampler>(kExamples, ranks, rank, true, kShuffleSeed);
      // The first example of rank 1's batch kFailingStep in the first epoch.
      const std::size_t bad = tg::distributed::DistributedSampler(kExamples, ranks, 1, true, kShuffleSeed)
                                  .indices(0)[kFailingStep * kBatchPerRank];
      tg::data::DataLoader loader(CorruptExample(toy_dataset(kExamples, 1), mode == "throw" ? bad : kExamples),
                                  {kBatchPerRank, false, 0, false, /*prefetch=*/true, sampler});

      tg::Generator init(1);
      ToyNet net(init);
      tg::distributed::DataParallel ddp(net, mpi);
      tg::optim::SGD optimizer(net.parameters(), 0.1);
      std::size_t step = 0;
      for (const tg::data::Batch& batch : loader) {
        if (mode == "kill" && rank == 1 && step == kFailingStep) std::raise(SIGKILL);
        const tg::Tensor loss = tg::cross_entropy(ddp(batch.inputs), batch.targets);
        optimizer.zero_grad();
        loss.backward();
        ddp.average_gradients();
        optimizer.step();
        ++step;
      }
      std::printf("rank %zu: finished %zu steps without a fault\n", rank, step);
    } catch (const std::exception& e) {
      mpi.abort(e.what());
    }
  } catch (const std::exception& e) {  // no MPI environment
    std::fprintf(stderr, "distributed_fault: %s\n", e.what());
    return 1;
  }
  return 0;
}
