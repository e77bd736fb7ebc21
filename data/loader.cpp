#include "loader.hpp"

#include <algorithm>
#include <exception>

namespace tg::data {

DataLoader::DataLoader(std::shared_ptr<const datasets::Dataset> dataset, const LoaderOptions& options)
    : dataset_(std::move(dataset)), options_(options), gen_(options.seed) {
  if (options.batch_size == 0) throw ValueError("DataLoader: batch size must be positive, got 0");
  if (!dataset_) throw ValueError("DataLoader: the dataset is null");
  size_ = dataset_->size();
  if (size_ == 0) throw ValueError("DataLoader: the dataset is empty");
  if (options.sampler && options.shuffle)
    throw ValueError("DataLoader: shuffle and a sampler exclude each other; the sampler decides the order");
  epoch_size_ = options.sampler ? options.sampler->size() : size_;
}

namespace {

std::shared_ptr<const datasets::Dataset> checked_dataset(const Dataset& d, const LoaderOptions& options) {
  if (options.batch_size == 0) throw ValueError("DataLoader: batch size must be positive, got 0");
  // An empty dataset is refused by the constructor this one delegates to.
  return std::make_shared<const datasets::TensorDataset>(datasets::to_dataset(d));
}

}  // namespace

DataLoader::DataLoader(const Dataset& dataset, const LoaderOptions& options)
    : DataLoader(checked_dataset(dataset, options), options) {}

DataLoader::~DataLoader() { wait_for_worker(); }

void DataLoader::start_epoch() {
  wait_for_worker();  // the worker reads the order
  ++generation_;
  if (options_.sampler) {
    std::vector<std::size_t> indices = options_.sampler->indices(epoch_);
    if (indices.size() != epoch_size_)
      throw ValueError("DataLoader: the sampler gave " + std::to_string(indices.size()) + " indices for epoch " +
                       std::to_string(epoch_) + ", but its size() is " + std::to_string(epoch_size_));
    for (std::size_t index : indices)
      if (index >= size_)
        throw ValueError("DataLoader: the sampler gave index " + std::to_string(index) + " for a dataset of " +
                         std::to_string(size_) + " examples");
    order_ = std::move(indices);
    ++epoch_;
    return;
  }
  const std::size_t n = size_;
  order_.resize(n);
  for (std::size_t i = 0; i < n; ++i) order_[i] = i;
  if (options_.shuffle) {
    // Fisher-Yates with the loader's generator: epoch k's order depends only
    // on the seed and k.
    for (std::size_t i = n - 1; i > 0; --i) std::swap(order_[i], order_[gen_.below(i + 1)]);
  }
  ++epoch_;
}

std::size_t DataLoader::num_batches() const {
  const std::size_t n = epoch_size_, b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

Batch DataLoader::batch(std::size_t i) const {
  if (epoch_ == 0) throw ValueError("DataLoader::batch: call start_epoch() before the first batch");
  const std::size_t count = num_batches();
  if (i >= count)
    throw ValueError("DataLoader::batch: index " + std::to_string(i) + " is out of range for " +
                     std::to_string(count) + " batches");
  const std::size_t begin = i * options_.batch_size;
  const std::size_t end = std::min(begin + options_.batch_size, order_.size());

  Batch out;
  out.indices.assign(order_.begin() + static_cast<std::ptrdiff_t>(begin),
                     order_.begin() + static_cast<std::ptrdiff_t>(end));
  Example stacked = dataset_->get_batch(out.indices, epoch_ - 1);
  out.inputs = std::move(stacked.input);
  out.targets = std::move(stacked.target);
  out.images = out.inputs;
  if (out.targets.dtype() == kInt64 && out.targets.dim() == 1) {
    const std::int64_t* labels = out.targets.data<std::int64_t>();
    out.labels.assign(labels, labels + out.targets.numel());
  }
  return out;
}

// ---- iteration and prefetch ----------------------------------------------------

void DataLoader::wait_for_worker() noexcept {
  if (pending_.valid()) {
    pending_.wait();
    pending_ = {};  // drops the batch or the exception
  }
}

void DataLoader::prefetch(std::size_t position) {
  if (!options_.prefetch || position >= num_batches()) return;
  pending_position_ = position;
  // The worker only reads: the dataset, the order and the options, none of
  // which change until wait_for_worker() has returned. It frees the batch a
  // worker built last time first, so that its buffer cache can reuse them.
  pending_ = std::async(std::launch::async, [this, position, spent = std::exchange(spent_, Batch{})]() mutable {
    spent = Batch{};
    return batch(position);
  });
}

Batch DataLoader::next(std::uint64_t generation, std::size_t position) {
  if (generation != generation_)
    throw ValueError("DataLoader: the loader has started another epoch since this iterator's");
  Batch out;
  if (pending_.valid() && pending_position_ == position) {
    std::future<Batch> ready = std::move(pending_);
    Batch built = ready.get();  // rethrows what the worker threw
    // Buffers go back to the cache of the thread that frees them. The caller
    // frees its batches here, so the batch is copied into buffers of this
    // thread, and the worker's are freed on a worker (by the next prefetch,
    // in this epoch or the next): otherwise every batch would leave one
    // buffer in this thread's cache, unused.
    out.inputs = built.inputs.clone();
    out.targets = built.targets.clone();
    out.images = out.inputs;
    out.labels = std::move(built.labels);
    out.indices = std::move(built.indices);
    spent_ = std::move(built);
  } else {
    wait_for_worker();
    out = batch(position);
  }
  prefetch(position + 1);
  return out;
}

void DataLoader::release(std::uint64_t generation) noexcept {
  if (generation == generation_) wait_for_worker();
}

DataLoader::Iterator DataLoader::begin() {
  start_epoch();
  const std::size_t count = num_batches();
  Iterator it(this, 0, generation_);
  if (count == 0) return end();
  it.alive_ = alive_;
  it.batch_ = next(generation_, 0);
  return it;
}

DataLoader::Iterator DataLoader::end() const {
  Iterator it;
  it.position_ = num_batches();
  return it;
}

DataLoader::Iterator::Iterator(Iterator&& other) noexcept
    : loader_(std::exchange(other.loader_, nullptr)),
      alive_(std::move(other.alive_)),
      position_(other.position_),
      generation_(other.generation_),
      batch_(std::move(other.batch_)) {}

DataLoader::Iterator& DataLoader::Iterator::operator=(Iterator&& other) noexcept {
  if (this != &other) {
    if (loader_ && !alive_.expired()) loader_->release(generation_);
    loader_ = std::exchange(other.loader_, nullptr);
    alive_ = std::move(other.alive_);
    position_ = other.position_;
    generation_ = other.generation_;
    batch_ = std::move(other.batch_);
  }
  return *this;
}

DataLoader::Iterator::~Iterator() {
  if (loader_ && !alive_.expired()) loader_->release(generation_);
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  if (loader_ == nullptr) throw ValueError("DataLoader::Iterator: incremented past the end");
  if (alive_.expired()) throw ValueError("DataLoader::Iterator: the loader has been destroyed");
  const std::size_t next_position = position_ + 1;
  if (next_position >= loader_->num_batches()) {
    loader_->release(generation_);
    loader_ = nullptr;
    batch_ = Batch{};
  } else {
    batch_ = loader_->next(generation_, next_position);
  }
  position_ = next_position;
  return *this;
}

}  // namespace tg::data
