// MNIST-style datasets (MNIST, Fashion-MNIST) from their IDX files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/tensor.hpp"
#include "dataset.hpp"
#include "idx.hpp"

namespace tg::data {

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

}  // namespace tg::data
