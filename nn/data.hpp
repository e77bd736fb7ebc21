// The data layer: IDX files (the MNIST format), the MNIST dataset and a
// batching loader over any dataset (nn/dataset.hpp), with transforms of the
// inputs (nn/transforms.hpp).
//
//   namespace ds = tg::data::datasets;
//   namespace T = tg::data::transforms;
//   ds::MNIST train(tg::data::default_fashion_mnist_dir(), /*train=*/true);  // pixels in [0, 1]
//   ds::MapDataset augmented(train, T::Compose(T::RandomCrop(28, 2, /*seed=*/1),
//                                              T::Normalize({0.2860}, {0.3530})));
//   tg::data::DataLoader loader(augmented, {/*batch_size=*/64, /*shuffle=*/true, /*seed=*/1,
//                                           /*drop_last=*/false, /*prefetch=*/true});
//   for (int epoch = 0; epoch < 3; ++epoch)
//     for (const tg::data::Batch& b : loader) {  // each range-for is a new epoch
//       // b.inputs (B, 1, 28, 28) float32, b.targets (B) int64
//     }
//
// The loader can also be driven by index, as before datasets existed:
//
//   tg::data::Dataset train = tg::data::load_mnist(dir, /*train=*/true);  // images and labels
//   tg::data::DataLoader loader(train, {64, true, 1});
//   loader.start_epoch();
//   for (std::size_t i = 0; i < loader.num_batches(); ++i) {
//     tg::data::Batch b = loader.batch(i);  // b.images (B, 1, 28, 28), b.labels (B)
//   }
//
// Errors: a file that cannot be read, is not a well-formed IDX file, or whose
// contents do not make a dataset throws DataError, with a message that starts
// with the file's path (or with "load_mnist:" when two files disagree). Bad
// arguments throw tg::ValueError or tg::ShapeError, as elsewhere in tapegrad.
#pragma once

#include <cstddef>
#include <cstdint>
#include <future>
#include <iterator>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "dataset.hpp"
#include "transforms.hpp"

namespace tg::data {

// A data file that cannot be opened or read (missing, not a regular file,
// too large for this machine's memory), is not a valid IDX file (bad
// magic, unsupported type, bad dimension count, truncated, trailing bytes,
// sizes that overflow or that the file cannot hold, a corrupt gzip stream),
// or that does not make a
// dataset (wrong dimensionality, image and label counts differ, a label out
// of range, a dataset file missing).
class DataError : public Error {
 public:
  using Error::Error;
};

// ---- IDX files ---------------------------------------------------------------
// The format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type byte,
// a dimension-count byte, one big-endian uint32 size per dimension, then the
// elements in row-major order. Only type 0x08 (unsigned byte), the one every
// MNIST-style file uses, is supported.

struct IdxArray {
  Shape shape;                     // 1 to 4 sizes
  std::vector<std::uint8_t> data;  // row-major, product of shape bytes

  bool operator==(const IdxArray& other) const { return shape == other.shape && data == other.data; }
  bool operator!=(const IdxArray& other) const { return !(*this == other); }
};

// Reads an IDX file, gzip-compressed (recognised by its 0x1f 0x8b magic, not
// by the name) or plain. Everything is checked: that the path is a regular
// file (a FIFO or device is refused, not waited on), the magic, the type
// byte, a dimension count of 1 to 4, the product of the sizes (overflow, and
// that it equals the number of data bytes exactly: neither truncated nor
// followed by trailing bytes), the gzip stream's integrity. The header is
// read and checked first; the declared size is then checked against the
// file's (a plain file's size exactly, a gzip file's times deflate's maximum
// ratio of 1032) and against the machine's memory before anything is
// allocated, and the data is read in bounded pieces: a small file cannot make
// the reader hold more than it declares. Throws DataError naming the file and
// the problem ("<path>: truncated: expected 47040000 bytes of data, found
// 1000").
IdxArray read_idx(const std::string& path);

// Writes `array` as an IDX file of type 0x08, gzip-compressed when `gzip`.
// Throws tg::ShapeError if the shape has not 1 to 4 sizes, a size does not fit
// in 32 bits, or data does not hold the shape's number of elements; DataError
// if the file cannot be written.
void write_idx(const std::string& path, const IdxArray& array, bool gzip = false);

// ---- MNIST-style datasets ----------------------------------------------------

// Images are stored as (pixel / 255 - mean) / std, computed in float.
struct Normalization {
  float mean = 0.0f;
  float std = 1.0f;
};
// Mean and standard deviation of the Fashion-MNIST training images' pixels
// scaled to [0, 1] (the usual 0.2860 / 0.3530): load_mnist's default.
inline constexpr Normalization fashion_mnist_normalization{0.2860f, 0.3530f};
// The same for the original MNIST (0.1307 / 0.3081).
inline constexpr Normalization mnist_normalization{0.1307f, 0.3081f};
// Pixels scaled to [0, 1] only.
inline constexpr Normalization no_normalization{0.0f, 1.0f};

// A whole MNIST-style dataset in memory, as load_mnist returns it. (The
// interface every dataset implements is datasets::Dataset; datasets::MNIST is
// this data as one. A DataLoader takes either.)
struct Dataset {
  Tensor images;                     // (N, 1, rows, cols) float32: 28x28 for (Fashion-)MNIST
  std::vector<std::int64_t> labels;  // N class indices in [0, 10)
  std::size_t size() const { return labels.size(); }
};

// Where Debian's dataset-fashion-mnist package installs the files:
// "/usr/share/datasets/fashion-mnist".
std::string default_fashion_mnist_dir();

// Loads the training set (train-images-idx3-ubyte, train-labels-idx1-ubyte) or
// the test set (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte) from `dir`.
// Each file may be plain or end in ".gz"; when both exist the plain one is
// read. Works for the original MNIST as well, given its directory (and
// mnist_normalization). Keeps the first `limit` samples (0, or a limit of
// at least the file's count: all of them).
//
// Throws DataError when a file is missing (the message lists both names
// tried) or malformed, the images are not 3-d (count, rows, cols), the labels
// not 1-d, their counts differ, or a label is 10 or more; tg::ValueError when
// norm.std is not positive and finite or norm.mean is not finite.
Dataset load_mnist(const std::string& dir, bool train, std::size_t limit = 0,
                   Normalization norm = fashion_mnist_normalization);

namespace datasets {

// The MNIST-style dataset in `root` (files as load_mnist finds them, read with
// every check of read_idx and load_mnist): example i is image i, (1, rows,
// cols) float32, with its class index, a 0-d int64 target. The pixels are
// scaled to [0, 1] and then normalized with `norm` (none by default, as
// torchvision's ToTensor(); pass fashion_mnist_normalization, or map a
// transforms::Normalize, for zero mean and unit std). Throws as load_mnist.
class MNIST : public TensorDataset {
 public:
  MNIST(const std::string& root, bool train, std::size_t limit = 0, Normalization norm = no_normalization);
  // Images (N, 1, rows, cols) and class indices (N): inputs() and targets().
  const Tensor& images() const { return inputs(); }
};

// The images and labels of `d` as a dataset: inputs d.images, targets the
// labels as an int64 tensor (N). Throws as the DataLoader constructor that
// takes a data::Dataset.
TensorDataset to_dataset(const data::Dataset& d);

}  // namespace datasets

// ---- batching ----------------------------------------------------------------

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

struct LoaderOptions {
  std::size_t batch_size = 64;
  bool shuffle = false;    // a new permutation of the dataset every epoch
  std::uint64_t seed = 0;  // of the shuffle: the same seed gives the same sequence of epochs
  bool drop_last = false;  // leave out a final batch smaller than batch_size
  // While the caller works on batch i, build batch i + 1 on another thread.
  // The batches are the same either way.
  bool prefetch = false;
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
// options.seed, with it). Batch i holds positions [i * batch_size, (i + 1) *
// batch_size) of that order; the last one is smaller unless drop_last drops
// it (with drop_last and fewer samples than batch_size an epoch has no
// batches). batch(i) may be called in any order and more than once within an
// epoch. Epoch k (0 for the first) reads example j as
// dataset.get_for_epoch(j, k), so random transforms draw anew each epoch,
// the same way with or without prefetch.
class DataLoader {
 public:
  // Throws tg::ValueError for batch_size 0, a null or an empty dataset.
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

  // Starts the next epoch: draws its order when shuffling.
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
  std::size_t size_ = 0;
  std::uint64_t generation_ = 0;  // of begin(): iterators of older ones are stale
  std::future<Batch> pending_;    // the prefetch in flight
  std::size_t pending_position_ = 0;
  Batch spent_;  // the worker's last batch, copied out: the next worker frees it
  std::shared_ptr<void> alive_ = std::make_shared<char>(0);  // for iterators that outlive the loader
};

}  // namespace tg::data
