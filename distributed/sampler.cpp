#include "sampler.hpp"

#include <string>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace tg::distributed {

DistributedSampler::DistributedSampler(std::size_t dataset_size, std::size_t world_size, std::size_t rank, bool shuffle,
                                       std::uint64_t seed, bool drop_last)
    : dataset_size_(dataset_size), world_size_(world_size), rank_(rank), shuffle_(shuffle), seed_(seed),
      drop_last_(drop_last), gen_(seed) {
  if (dataset_size == 0) throw ValueError("DistributedSampler: the dataset is empty");
  if (world_size == 0) throw ValueError("DistributedSampler: the world size must be positive, got 0");
  if (rank >= world_size)
    throw ValueError("DistributedSampler: rank " + std::to_string(rank) + " is outside a world of " +
                     std::to_string(world_size) + " ranks");
}

std::size_t DistributedSampler::size() const {
  return drop_last_ ? dataset_size_ / world_size_ : (dataset_size_ + world_size_ - 1) / world_size_;
}

void DistributedSampler::draw_permutation(std::size_t epoch) {
  if (drawn_ > epoch + 1) {  // an earlier epoch than the one held: start over
    gen_.seed(seed_);
    drawn_ = 0;
  }
  for (; drawn_ <= epoch; ++drawn_) {
    // randperm draws the same Fisher-Yates sequence as a shuffling DataLoader.
    const Tensor perm = randperm(dataset_size_, gen_);
    const std::int64_t* p = perm.data<std::int64_t>();
    permutation_.assign(p, p + dataset_size_);
  }
}

std::vector<std::size_t> DistributedSampler::indices(std::size_t epoch) {
  if (shuffle_) draw_permutation(epoch);
  // Position p of the epoch's sequence (the permutation, extended cyclically
  // by its beginning when padding) is permutation_[p % n].
  std::vector<std::size_t> out(size());
  for (std::size_t k = 0; k < out.size(); ++k) {
    const std::size_t position = (rank_ + k * world_size_) % dataset_size_;
    out[k] = shuffle_ ? permutation_[position] : position;
  }
  return out;
}

}  // namespace tg::distributed
