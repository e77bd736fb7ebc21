// DistributedSampler: each process of a data-parallel job gets its own share
// of every epoch, as torch.utils.data.distributed.DistributedSampler gives.
//
//   auto sampler = std::make_shared<tg::distributed::DistributedSampler>(
//       train.size(), mpi.world_size(), mpi.rank(), /*shuffle=*/true, /*seed=*/1);
//   tg::data::DataLoader loader(train, {global_batch / mpi.world_size(), /*shuffle=*/false, 0,
//                                       /*drop_last=*/false, /*prefetch=*/false, sampler});
//
// Every rank draws the same permutation of the dataset for an epoch (from the
// seed and the epoch alone) and keeps the positions rank, rank + N, rank + 2N,
// ... of it. Batch i of rank r then holds positions (i·b + j)·N + r, j < b, so
// the N ranks' batches i together are exactly positions [i·B, (i + 1)·B) of
// the permutation (b = B / N): the batch that one process with batch size B
// would take. That is what makes N ranks step as one process does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/random.hpp"
#include "../data/loader.hpp"

namespace tg::distributed {

class DistributedSampler : public data::Sampler {
 public:
  // The share of `rank` (0 <= rank < world_size) of a dataset of
  // `dataset_size` examples. With shuffle, epoch k's permutation is the one a
  // DataLoader with shuffle and the same seed uses for its epoch k, so one
  // rank alone sees the batches that such a loader gives. When N does not
  // divide the dataset, every rank still gets the same number of indices:
  // the permutation is extended by its own beginning (some examples are seen
  // twice in an epoch), or with drop_last cut to a multiple of N (some are
  // left out), as PyTorch's does. Throws tg::ValueError for an empty dataset,
  // a world size of 0 or a rank outside it.
  DistributedSampler(std::size_t dataset_size, std::size_t world_size, std::size_t rank, bool shuffle = true,
                     std::uint64_t seed = 0, bool drop_last = false);

  // Indices per epoch: ceil(dataset_size / world_size), or the floor with drop_last.
  std::size_t size() const override;
  std::vector<std::size_t> indices(std::size_t epoch) override;

 private:
  // Makes permutation_ that of `epoch`: draws on from the last one asked for
  // (the usual case, one epoch after another) or from the seed again.
  void draw_permutation(std::size_t epoch);

  std::size_t dataset_size_, world_size_, rank_;
  bool shuffle_;
  std::uint64_t seed_;
  bool drop_last_;
  Generator gen_;
  std::size_t drawn_ = 0;                 // epochs drawn from gen_ so far
  std::vector<std::size_t> permutation_;  // of epoch drawn_ - 1
};

}  // namespace tg::distributed
