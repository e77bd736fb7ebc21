// The data layer: IDX files (the MNIST format), MNIST-style datasets and a
// batching loader.
//
//   auto train = tg::data::load_mnist(tg::data::default_fashion_mnist_dir(), /*train=*/true);
//   tg::data::DataLoader loader(train, {/*batch_size=*/64, /*shuffle=*/true, /*seed=*/1});
//   for (int epoch = 0; epoch < 3; ++epoch) {
//     loader.start_epoch();  // a new permutation when shuffling
//     for (std::size_t i = 0; i < loader.num_batches(); ++i) {
//       tg::data::Batch b = loader.batch(i);  // b.images (B, 1, 28, 28), b.labels (B)
//       ...
//     }
//   }
//
// Errors: a file that cannot be read, is not a well-formed IDX file, or whose
// contents do not make a dataset throws DataError, with a message that starts
// with the file's path (or with "load_mnist:" when two files disagree). Bad
// arguments throw tg::ValueError or tg::ShapeError, as elsewhere in tapegrad.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"

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

// ---- batching ----------------------------------------------------------------

struct Batch {
  Tensor images;                     // (B, 1, rows, cols), the dataset's dtype: a contiguous copy of the selected rows
  std::vector<std::int64_t> labels;  // B
  std::vector<std::size_t> indices;  // the B dataset rows the batch holds, in batch order
  std::size_t size() const { return labels.size(); }
};

struct LoaderOptions {
  std::size_t batch_size = 64;
  bool shuffle = false;    // a new permutation of the dataset every epoch
  std::uint64_t seed = 0;  // of the shuffle: the same seed gives the same sequence of epochs
  bool drop_last = false;  // leave out a final batch smaller than batch_size
};

// Batches of a Dataset, one epoch at a time, by explicit index:
//
//   loader.start_epoch();
//   for (std::size_t i = 0; i < loader.num_batches(); ++i) { Batch b = loader.batch(i); ... }
//
// start_epoch() fixes the order of the epoch (the identity without shuffle; a
// fresh permutation drawn from the loader's Generator, seeded with
// options.seed, with it), so it must be called before each epoch, the first
// included. Batch i holds positions [i * batch_size, (i + 1) * batch_size) of
// that order; the last one is smaller unless drop_last drops it (with
// drop_last and fewer samples than batch_size an epoch has no batches).
// batch(i) may be called in any order and more than once within an epoch.
//
// The images may have any dtype and layout. The loader keeps its own handle
// to the dataset (the images tensor shares its value, or is a contiguous copy
// of a strided view; the labels are copied), so the Dataset need not outlive
// it.
class DataLoader {
 public:
  // Throws tg::ValueError for batch_size 0 or an empty dataset, tg::ShapeError
  // when the images are undefined, 0-d, or their first size is not the
  // number of labels.
  DataLoader(const Dataset& dataset, const LoaderOptions& options);

  // Starts the next epoch: draws its order when shuffling.
  void start_epoch();
  std::size_t num_batches() const;
  // Throws tg::ValueError before the first start_epoch() or when i >= num_batches().
  Batch batch(std::size_t i) const;

  // The epochs started so far (0 before the first start_epoch()).
  std::size_t epoch() const { return epoch_; }
  // The current epoch's order: position -> dataset row.
  const std::vector<std::size_t>& order() const { return order_; }
  const LoaderOptions& options() const { return options_; }
  std::size_t dataset_size() const { return dataset_.size(); }

 private:
  Dataset dataset_;
  LoaderOptions options_;
  Generator gen_;
  std::vector<std::size_t> order_;
  std::size_t epoch_ = 0;
  std::size_t sample_numel_ = 0;  // elements per image
};

}  // namespace tg::data
