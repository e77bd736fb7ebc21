#include "mnist.hpp"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <system_error>

namespace tg::data {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw DataError(path + ": " + what); }

// The first existing of dir/base and dir/base.gz (the plain one first).
std::string find_file(const std::string& dir, const std::string& base, const char* what) {
  const std::string plain = (fs::path(dir) / base).string();
  const std::string gz = plain + ".gz";
  for (const std::string& candidate : {plain, gz}) {
    std::error_code ec;
    if (fs::exists(candidate, ec)) return candidate;
  }
  throw DataError("load_mnist: no " + std::string(what) + " file in " + dir + ": neither " + plain + " nor " + gz +
                  " exists");
}

}  // namespace

std::string default_fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }

Dataset load_mnist(const std::string& dir, bool train, std::size_t limit, Normalization norm) {
  if (!std::isfinite(norm.mean) || !std::isfinite(norm.std) || !(norm.std > 0.0f)) {
    std::ostringstream s;
    s << "load_mnist: normalization needs a finite mean and a positive finite std, got mean=" << norm.mean
      << " std=" << norm.std;
    throw ValueError(s.str());
  }
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte", train ? "training images" : "test images");
  const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte", train ? "training labels" : "test labels");

  const IdxArray labels = read_idx(labels_path);
  if (labels.shape.size() != 1) fail(labels_path, "expected 1-d labels (count), found shape " + shape_str(labels.shape));
  const IdxArray images = read_idx(images_path);
  if (images.shape.size() != 3)
    fail(images_path, "expected 3-d images (count, rows, cols), found shape " + shape_str(images.shape));
  if (images.shape[0] != labels.shape[0])
    throw DataError("load_mnist: " + images_path + " holds " + std::to_string(images.shape[0]) + " images but " +
                    labels_path + " holds " + std::to_string(labels.shape[0]) + " labels");

  const std::size_t count = limit == 0 ? labels.shape[0] : std::min(limit, labels.shape[0]);
  Dataset out;
  out.labels.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t label = labels.data[i];
    if (label >= 10)
      fail(labels_path, "label " + std::to_string(label) + " at index " + std::to_string(i) +
                            " is out of range [0, 10)");
    out.labels[i] = label;
  }

  // One value per possible byte, computed exactly as documented.
  std::array<float, 256> table;
  for (std::size_t p = 0; p < table.size(); ++p)
    table[p] = (static_cast<float>(p) / 255.0f - norm.mean) / norm.std;
  const std::size_t rows = images.shape[1], cols = images.shape[2];
  try {
    out.images = empty({count, std::size_t{1}, rows, cols}, kFloat32);
  } catch (const std::bad_alloc&) {
    fail(images_path, "out of memory converting " + std::to_string(count) + " images of " + std::to_string(rows) +
                          "x" + std::to_string(cols) + " to float");
  } catch (const Error& e) {  // the storage's own out-of-memory error
    fail(images_path, "cannot convert " + std::to_string(count) + " images of " + std::to_string(rows) + "x" +
                          std::to_string(cols) + " to float: " + e.what());
  }
  float* dst = out.images.mutable_data<float>();  // a fresh leaf: writable
  const std::size_t n = count * rows * cols;
  for (std::size_t i = 0; i < n; ++i) dst[i] = table[images.data[i]];
  return out;
}

// ---- datasets ----------------------------------------------------------------

namespace datasets {

namespace {

Tensor labels_tensor(const std::vector<std::int64_t>& labels) {
  Tensor out = empty({labels.size()}, kInt64);
  if (!labels.empty()) std::memcpy(out.mutable_data<std::int64_t>(), labels.data(), labels.size() * sizeof(std::int64_t));
  return out;
}

// Checks images and labels as the loader always has, in its words.
void check_images_and_labels(const data::Dataset& d) {
  if (!d.images.defined()) throw ShapeError("DataLoader: the dataset's images are undefined");
  const Shape shape = d.images.shape();
  if (shape.empty()) throw ShapeError("DataLoader: the dataset's images are 0-d; expected (N, ...)");
  if (shape[0] != d.labels.size())
    throw ShapeError("DataLoader: images " + shape_str(shape) + " hold " + std::to_string(shape[0]) +
                     " samples but there are " + std::to_string(d.labels.size()) + " labels");
}

}  // namespace

TensorDataset to_dataset(const data::Dataset& d) {
  check_images_and_labels(d);
  return TensorDataset(d.images, labels_tensor(d.labels));
}

MNIST::MNIST(const std::string& root, bool train, std::size_t limit, Normalization norm)
    : TensorDataset(to_dataset(load_mnist(root, train, limit, norm))) {}

}  // namespace datasets

}  // namespace tg::data
