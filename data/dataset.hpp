// Datasets: anything with a size and an example per index, as libtorch's
// torch::data::datasets. A DataLoader (data/loader.hpp) batches any of them.
//
//   namespace ds = tg::data::datasets;
//   ds::TensorDataset pairs(inputs, targets);             // (N, ...) and (N, ...)
//   ds::MapDataset augmented(pairs, tg::data::transforms::RandomHorizontalFlip(0.5, /*seed=*/1));
//   tg::data::Example e = augmented.get(3);               // e.input, e.target
//
// A dataset of your own derives from Dataset and implements size() and
// get(index). One that wraps another dataset also forwards get_for_epoch,
// so that random transforms inside it see the epoch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"
#include "transforms.hpp"

namespace tg::data {

// One example: the model's input and what it should predict.
struct Example {
  Tensor input;
  Tensor target;
};

// Examples stacked along a new first axis: inputs (B, ...) and targets
// (B, ...), contiguous copies in the examples' dtypes (int64 targets stay
// int64). Throws tg::ValueError for no examples, tg::ShapeError or
// tg::DtypeError when an example's input or target differs in shape or dtype
// from the first one's (the message names the example).
Example stack_examples(const std::vector<Example>& examples);

namespace datasets {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::size_t size() const = 0;
  // Example `index`, 0 <= index < size(); out of range throws tg::ValueError.
  virtual Example get(std::size_t index) const = 0;
  // The example as epoch `epoch` (0 for a loader's first) sees it. Only a
  // dataset that draws randomness depends on the epoch (a MapDataset with a
  // random transform, or one that wraps such); the default is get(index).
  virtual Example get_for_epoch(std::size_t index, std::uint64_t epoch) const {
    (void)epoch;
    return get(index);
  }
  // The examples `indices` of epoch `epoch`, stacked as stack_examples does.
  // A dataset that can gather faster than one example at a time overrides it
  // (TensorDataset copies rows).
  virtual Example get_batch(const std::vector<std::size_t>& indices, std::uint64_t epoch) const;
};

// Example i is (inputs[i], targets[i]): inputs (N, ...) and targets (N, ...)
// share their first size N; targets may be float class scores or regression
// targets, or int64 class indices of shape (N) (then each target is 0-d). The
// tensors are kept as handles (a strided view becomes a contiguous copy), and
// get returns views of them. Throws tg::ShapeError when either is undefined
// or 0-d, or the first sizes differ.
class TensorDataset : public Dataset {
 public:
  TensorDataset(const Tensor& inputs, const Tensor& targets);
  std::size_t size() const override { return size_; }
  Example get(std::size_t index) const override;
  // Copies the rows straight from the two tensors.
  Example get_batch(const std::vector<std::size_t>& indices, std::uint64_t epoch) const override;
  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_, targets_;
  std::size_t size_ = 0;
};

// A dataset whose inputs go through a transform: example i is
// {transform(input, {epoch, i}), target}. Holds both by shared pointer; the
// constructors taking values copy them in. (torchvision users: the
// `transform=` argument; libtorch users: dataset.map(transform).)
class MapDataset : public Dataset {
 public:
  MapDataset(std::shared_ptr<const Dataset> dataset, std::shared_ptr<const transforms::Transform> transform);
  template <class D, class T,
            class = std::enable_if_t<std::is_base_of_v<Dataset, std::decay_t<D>> &&
                                     std::is_base_of_v<transforms::Transform, std::decay_t<T>>>>
  MapDataset(D&& dataset, T&& transform)
      : MapDataset(std::make_shared<const std::decay_t<D>>(std::forward<D>(dataset)),
                   std::make_shared<const std::decay_t<T>>(std::forward<T>(transform))) {}

  std::size_t size() const override { return dataset_->size(); }
  Example get(std::size_t index) const override { return get_for_epoch(index, 0); }
  Example get_for_epoch(std::size_t index, std::uint64_t epoch) const override;
  const Dataset& dataset() const { return *dataset_; }

 private:
  std::shared_ptr<const Dataset> dataset_;
  std::shared_ptr<const transforms::Transform> transform_;
};
using TransformedDataset = MapDataset;

// The examples `indices` of another dataset, in that order (torch's Subset):
// example i is dataset[indices[i]]. Throws tg::ValueError when an index is
// out of range.
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<const Dataset> dataset, std::vector<std::size_t> indices);
  template <class D, class = std::enable_if_t<std::is_base_of_v<Dataset, std::decay_t<D>>>>
  Subset(D&& dataset, std::vector<std::size_t> indices)
      : Subset(std::make_shared<const std::decay_t<D>>(std::forward<D>(dataset)), std::move(indices)) {}

  std::size_t size() const override { return indices_.size(); }
  Example get(std::size_t index) const override { return get_for_epoch(index, 0); }
  Example get_for_epoch(std::size_t index, std::uint64_t epoch) const override;
  Example get_batch(const std::vector<std::size_t>& indices, std::uint64_t epoch) const override;
  const std::vector<std::size_t>& indices() const { return indices_; }

 private:
  std::size_t checked(std::size_t index) const;
  std::shared_ptr<const Dataset> dataset_;
  std::vector<std::size_t> indices_;
};

// Throws tg::ValueError unless index < size, naming `what`.
void check_index(const char* what, std::size_t index, std::size_t size);

}  // namespace datasets
}  // namespace tg::data
