#include "dataset.hpp"

#include <cstring>
#include <string>

#include "../core/tape.hpp"
#include "../ops/shape.hpp"

namespace tg::data {

namespace {

// Rows `indices` of a contiguous tensor (N, ...) as a new tensor (B, ...).
Tensor gather_rows(const Tensor& all, const std::vector<std::size_t>& indices) {
  Shape shape = all.shape();
  const std::size_t n = shape[0];
  const std::size_t row_numel = n == 0 ? 0 : all.numel() / n;
  shape[0] = indices.size();
  Tensor out = empty(shape, all.dtype());
  const std::size_t row_bytes = row_numel * element_size(all.dtype());
  if (row_bytes == 0) return out;
  const char* src = static_cast<const char*>(all.impl()->storage->data()) + all.impl()->offset * element_size(all.dtype());
  char* dst = static_cast<char*>(out.impl()->storage->data());
  for (std::size_t k = 0; k < indices.size(); ++k)
    std::memcpy(dst + k * row_bytes, src + indices[k] * row_bytes, row_bytes);
  return out;
}

void check_same(const char* part, const Tensor& first, const Tensor& t, std::size_t k) {
  TG_CHECK(t.defined(), ValueError, "stack_examples: example " << k << "'s " << part << " is undefined");
  TG_CHECK(t.dtype() == first.dtype(), DtypeError,
           "stack_examples: example " << k << "'s " << part << " is " << dtype_name(t.dtype()) << ", example 0's "
                                      << dtype_name(first.dtype()));
  TG_CHECK(t.shape() == first.shape(), ShapeError,
           "stack_examples: example " << k << "'s " << part << " has shape " << shape_str(t.shape())
                                      << ", example 0's " << shape_str(first.shape()));
}

}  // namespace

Example stack_examples(const std::vector<Example>& examples) {
  TG_CHECK(!examples.empty(), ValueError, "stack_examples: no examples");
  std::vector<Tensor> inputs, targets;
  inputs.reserve(examples.size());
  targets.reserve(examples.size());
  for (std::size_t k = 0; k < examples.size(); ++k) {
    check_same("input", examples[0].input, examples[k].input, k);
    check_same("target", examples[0].target, examples[k].target, k);
    inputs.push_back(examples[k].input);
    targets.push_back(examples[k].target);
  }
  NoGradGuard no_grad;
  return {stack(inputs, 0).contiguous(), stack(targets, 0).contiguous()};
}

namespace datasets {

void check_index(const char* what, std::size_t index, std::size_t size) {
  TG_CHECK(index < size, ValueError, what << ": index " << index << " is out of range for " << size << " examples");
}

Example Dataset::get_batch(const std::vector<std::size_t>& indices, std::uint64_t epoch) const {
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (std::size_t i : indices) examples.push_back(get_for_epoch(i, epoch));
  return stack_examples(examples);
}

// ---- TensorDataset -----------------------------------------------------------

TensorDataset::TensorDataset(const Tensor& inputs, const Tensor& targets) {
  TG_CHECK(inputs.defined() && targets.defined(), ShapeError,
           "TensorDataset: the " << (inputs.defined() ? "targets are" : "inputs are") << " undefined");
  TG_CHECK(inputs.dim() >= 1 && targets.dim() >= 1, ShapeError,
           "TensorDataset: inputs " << shape_str(inputs.shape()) << " and targets " << shape_str(targets.shape())
                                    << " need a first axis of examples");
  TG_CHECK(inputs.shape()[0] == targets.shape()[0], ShapeError,
           "TensorDataset: inputs " << shape_str(inputs.shape()) << " hold " << inputs.shape()[0]
                                    << " examples but targets " << shape_str(targets.shape()) << " hold "
                                    << targets.shape()[0]);
  NoGradGuard no_grad;
  inputs_ = inputs.detach().contiguous();
  targets_ = targets.detach().contiguous();
  size_ = inputs.shape()[0];
}

Example TensorDataset::get(std::size_t index) const {
  check_index("TensorDataset::get", index, size_);
  NoGradGuard no_grad;
  const auto i = static_cast<std::int64_t>(index);
  return {inputs_.select(0, i), targets_.select(0, i)};
}

Example TensorDataset::get_batch(const std::vector<std::size_t>& indices, std::uint64_t) const {
  TG_CHECK(!indices.empty(), ValueError, "TensorDataset::get_batch: no indices");
  for (std::size_t i : indices) check_index("TensorDataset::get_batch", i, size_);
  return {gather_rows(inputs_, indices), gather_rows(targets_, indices)};
}

// ---- MapDataset --------------------------------------------------------------

MapDataset::MapDataset(std::shared_ptr<const Dataset> dataset, std::shared_ptr<const transforms::Transform> transform)
    : dataset_(std::move(dataset)), transform_(std::move(transform)) {
  TG_CHECK(dataset_ != nullptr, ValueError, "MapDataset: the dataset is null");
  TG_CHECK(transform_ != nullptr, ValueError, "MapDataset: the transform is null");
}

Example MapDataset::get_for_epoch(std::size_t index, std::uint64_t epoch) const {
  check_index("MapDataset::get", index, dataset_->size());
  Example e = dataset_->get_for_epoch(index, epoch);
  NoGradGuard no_grad;
  e.input = transform_->apply(e.input, {epoch, index});
  return e;
}

// ---- Subset ------------------------------------------------------------------

Subset::Subset(std::shared_ptr<const Dataset> dataset, std::vector<std::size_t> indices)
    : dataset_(std::move(dataset)), indices_(std::move(indices)) {
  TG_CHECK(dataset_ != nullptr, ValueError, "Subset: the dataset is null");
  for (std::size_t i : indices_) check_index("Subset", i, dataset_->size());
}

std::size_t Subset::checked(std::size_t index) const {
  check_index("Subset::get", index, indices_.size());
  return indices_[index];
}

Example Subset::get_for_epoch(std::size_t index, std::uint64_t epoch) const {
  return dataset_->get_for_epoch(checked(index), epoch);
}

Example Subset::get_batch(const std::vector<std::size_t>& indices, std::uint64_t epoch) const {
  std::vector<std::size_t> rows;
  rows.reserve(indices.size());
  for (std::size_t i : indices) rows.push_back(checked(i));
  return dataset_->get_batch(rows, epoch);
}

}  // namespace datasets
}  // namespace tg::data
