// Batches of any dataset, shuffled or not, with optional prefetch on a
// worker thread (see data.hpp for an example).
#pragma once

#include <cstddef>
#include <cstdint>
#include <future>
#include <iterator>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "dataset.hpp"
#include "mnist.hpp"

namespace tg::data {

struct Batch {
  Tensor inputs;                     // (B, ...): the examples' inputs stacked, a contiguous copy
  Tensor targets;                    // (B, ...): their targets, in the targets' dtype (int64 class indices stay int64)
  std::vector<std::size_t> indices;  // the B dataset indices the batch holds, in batch order
  std::size_t size() const { return indices.size(); }

  // The names from before datasets, kept for existing callers: `images` is
  // `inputs` (the same tensor), `labels` the targets as a vector when they
  // are int64 class indices of shape (B), else empty.
  Tensor images;
  std::vector<std::int64_t> labels;
};

// Which dataset indices each epoch visits, in which order, as a torch
// Sampler: given to a DataLoader (LoaderOptions::sampler), it replaces the
// loader's own order. distributed::DistributedSampler, which gives each
// process of a data-parallel job its share of every epoch, is one.
class Sampler {
 public:
  virtual ~Sampler() = default;
  // How many indices every epoch has; it does not change.
  virtual std::size_t size() const = 0;
  // Epoch `epoch`'s indices (0 for the first), size() of them, each below
  // the dataset's size.
  virtual std::vector<std::size_t> indices(std::size_t epoch) = 0;
};

struct LoaderOptions {
  std::size_t batch_size = 64;
  bool shuffle = false;    // a new permutation of the dataset every epoch
  std::uint64_t seed = 0;  // of the shuffle: the same seed gives the same sequence of epochs
  bool drop_last = false;  // leave out a final batch smaller than batch_size
  // While the caller works on batch i, build batch i + 1 on another thread.
  // The batches are the same either way.
  bool prefetch = false;
  // When set, each epoch's order is the sampler's indices (shuffle must then
  // be false: the sampler shuffles, or not).
  std::shared_ptr<Sampler> sampler = nullptr;
};

// Batches of a dataset, one epoch at a time.
//
//   for (const Batch& b : loader) { ... }  // one epoch
//
// begin() starts an epoch (as start_epoch() does) and builds its batches in
// order; with options.prefetch the next one is built on a worker thread
// meanwhile. An exception thrown while building a batch reaches the caller at
// the ++ that would have produced it; leaving the loop early (break, an
// exception) waits for the worker when the iterator is destroyed, as does
// destroying the loader. The loader is not copied or moved while iterated.
//
// Or by index:
//
//   loader.start_epoch();
//   for (std::size_t i = 0; i < loader.num_batches(); ++i) { Batch b = loader.batch(i); ... }
//
// start_epoch() fixes the order of the epoch (the identity without shuffle; a
// fresh permutation drawn from the loader's Generator, seeded with
// options.seed, with it; the sampler's indices when there is one). Batch i holds positions [i * batch_size, (i + 1) *
// batch_size) of that order; the last one is smaller unless drop_last drops
// it (with drop_last and fewer samples than batch_size an epoch has no
// batches). batch(i) may be called in any order and more than once within an
// epoch. Epoch k (0 for the first) reads example j as
// dataset.get_for_epoch(j, k), so random transforms draw anew each epoch,
// the same way with or without prefetch.
class DataLoader {
 public:
  // Throws tg::ValueError for batch_size 0, a null or an empty dataset,
  // shuffle together with a sampler.
  DataLoader(std::shared_ptr<const datasets::Dataset> dataset, const LoaderOptions& options);
  // Any dataset by value (copied in; datasets hold their tensors as handles).
  template <class D, class = std::enable_if_t<std::is_base_of_v<datasets::Dataset, std::decay_t<D>>>>
  DataLoader(D&& dataset, const LoaderOptions& options)
      : DataLoader(std::shared_ptr<const datasets::Dataset>(std::make_shared<const std::decay_t<D>>(std::forward<D>(dataset))),
                   options) {}
  // Images and labels, as load_mnist returns them: the dataset
  // datasets::to_dataset(dataset) makes. The images may have any dtype and
  // layout (a strided view is copied once, contiguous). Throws tg::ValueError
  // for batch_size 0 or an empty dataset, tg::ShapeError when the images are
  // undefined, 0-d, or their first size is not the number of labels.
  DataLoader(const Dataset& dataset, const LoaderOptions& options);

  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = const Batch*;
    using reference = const Batch&;

    Iterator() = default;
    Iterator(Iterator&& other) noexcept;
    Iterator& operator=(Iterator&& other) noexcept;
    Iterator(const Iterator&) = delete;
    Iterator& operator=(const Iterator&) = delete;
    ~Iterator();

    const Batch& operator*() const { return batch_; }
    const Batch* operator->() const { return &batch_; }
    // The next batch (the prefetched one, or built now). Throws what building
    // it threw, and tg::ValueError when the loader has started another epoch
    // since this iterator's.
    Iterator& operator++();
    bool operator==(const Iterator& other) const { return position_ == other.position_; }
    bool operator!=(const Iterator& other) const { return !(*this == other); }
    // The batch's position in the epoch (num_batches() at the end).
    std::size_t position() const { return position_; }

   private:
    friend class DataLoader;
    Iterator(DataLoader* loader, std::size_t position, std::uint64_t generation)
        : loader_(loader), position_(position), generation_(generation) {}
    DataLoader* loader_ = nullptr;  // null for end()
    std::weak_ptr<void> alive_;     // expires with the loader
    std::size_t position_ = 0;
    std::uint64_t generation_ = 0;
    Batch batch_;
  };

  // Starts the next epoch (waiting for a prefetch of the last one) and
  // returns its first batch; iterators of an earlier epoch stop working.
  Iterator begin();
  Iterator end() const;

  // Starts the next epoch: draws its order when shuffling, or asks the
  // sampler for it (tg::ValueError when an index is out of range or their
  // number is not the sampler's size()).
  void start_epoch();
  std::size_t num_batches() const;
  // Throws tg::ValueError before the first start_epoch() or when i >= num_batches().
  Batch batch(std::size_t i) const;

  // The epochs started so far (0 before the first start_epoch()).
  std::size_t epoch() const { return epoch_; }
  // The current epoch's order: position -> dataset index.
  const std::vector<std::size_t>& order() const { return order_; }
  const LoaderOptions& options() const { return options_; }
  std::size_t dataset_size() const { return size_; }
  const datasets::Dataset& dataset() const { return *dataset_; }

 private:
  // The batch at `position` for an iterator of `generation`: the prefetched
  // one when it is that, else built now; then starts the prefetch of the next.
  Batch next(std::uint64_t generation, std::size_t position);
  void prefetch(std::size_t position);
  // Waits for a prefetch in flight and drops it (and whatever it threw).
  void wait_for_worker() noexcept;
  void release(std::uint64_t generation) noexcept;

  std::shared_ptr<const datasets::Dataset> dataset_;
  LoaderOptions options_;
  Generator gen_;
  std::vector<std::size_t> order_;
  std::size_t epoch_ = 0;
  std::size_t size_ = 0;        // of the dataset
  std::size_t epoch_size_ = 0;  // indices per epoch: the dataset's, or the sampler's
  std::uint64_t generation_ = 0;  // of begin(): iterators of older ones are stale
  std::future<Batch> pending_;    // the prefetch in flight
  std::size_t pending_position_ = 0;
  Batch spent_;  // the worker's last batch, copied out: the next worker frees it
  std::shared_ptr<void> alive_ = std::make_shared<char>(0);  // for iterators that outlive the loader
};

}  // namespace tg::data
