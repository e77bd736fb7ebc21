// The network tapegrad-train trains on Fashion-MNIST (28x28 grayscale, 10
// classes): two convolution blocks and a classifier.
//
//   features.0  Conv2d 1->32, 5x5, padding 2     (N, 32, 28, 28)
//   features.1  BatchNorm2d(32), features.2 ReLU, features.3 MaxPool2d 2   (N, 32, 14, 14)
//   features.4  Conv2d 32->64, 5x5, padding 2    (N, 64, 14, 14)
//   features.5  BatchNorm2d(64), features.6 ReLU, features.7 MaxPool2d 2   (N, 64, 7, 7)
//   classifier  Flatten, Linear 3136->128, ReLU, Linear 128->10
//
// The two convolutions are the TensorFlow-tutorial ones. Batch normalization
// after each lets Adam take larger steps from the start, and the 128-wide
// hidden layer (instead of 1024) keeps the classifier's cost small next to
// the convolutions. Measured with the trainer's defaults (3 epochs, Adam,
// lr 2e-3 annealed to 0): 91.80, 91.84 and 91.68 % test accuracy with seeds
// 0 to 2 (other rates in docs/PERF.md, "Batch normalization as one
// primitive"). With dropout 0.25 before the last layer (at lr 3e-3), 91.1 %
// at an earlier commit, since three epochs are too few to overfit.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tapegrad/tapegrad.hpp>

class FashionCNN : public tg::nn::Module {
 public:
  tg::nn::Sequential features{nullptr}, classifier{nullptr};

  // The weights are drawn from `gen` (the trainer's --seed), in layer order.
  explicit FashionCNN(tg::Generator& gen) {
    namespace nn = tg::nn;
    features = register_module(
        "features", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 5).padding(2), gen), nn::BatchNorm2d(32),
                                   nn::ReLU(), nn::MaxPool2d(2),
                                   nn::Conv2d(nn::Conv2dOptions(32, 64, 5).padding(2), gen), nn::BatchNorm2d(64),
                                   nn::ReLU(), nn::MaxPool2d(2)));
    classifier = register_module("classifier", nn::Sequential(nn::Flatten(), nn::Linear(64 * 7 * 7, 128, gen),
                                                              nn::ReLU(), nn::Linear(128, 10, gen)));
  }

  tg::Tensor forward(const tg::Tensor& x) override { return classifier(features(x)); }

  // The first layer's kernels, (32, 1, 5, 5): what the filter picture shows.
  tg::Tensor first_filters() { return find("features.0.weight"); }
};

// The image size the network is built for: the two 2x2 poolings take 28x28
// to the 7x7 that the classifier's 64 * 7 * 7 inputs assume.
inline constexpr std::size_t fashion_image_side = 28;

// The file load_mnist read the images of `dir` from: the plain name if it
// exists, else the ".gz" one, as load_mnist looks for them.
inline std::string mnist_images_file(const std::string& dir, bool train) {
  const auto plain = std::filesystem::path(dir) / (train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte");
  std::error_code ec;
  return std::filesystem::exists(plain, ec) ? plain.string() : plain.string() + ".gz";
}

// Throws DataError naming the images file unless `images` are 28x28:
// caught right after loading, a mismatch otherwise surfaces only in the first
// batch, as a shape error deep inside the network.
inline void check_image_shape(const tg::Tensor& images, const std::string& dir, bool train) {
  const tg::Shape shape = images.shape();  // (N, 1, rows, cols), as datasets::MNIST makes it
  if (shape.size() == 4 && shape[2] == fashion_image_side && shape[3] == fashion_image_side) return;
  const std::string found = shape.size() == 4 ? std::to_string(shape[2]) + "x" + std::to_string(shape[3])
                                              : "of shape " + tg::shape_str(shape);
  throw tg::data::DataError(mnist_images_file(dir, train) + ": the images are " + found + ", but the model expects " +
                            std::to_string(fashion_image_side) + "x" + std::to_string(fashion_image_side) +
                            " (Fashion-MNIST)");
}

// An int64 tensor of shape (N,) holding `values`: labels to compare with argmax,
// or row indices for index_select.
inline tg::Tensor int64_tensor(const std::vector<std::int64_t>& values) { return tg::Tensor(xt::adapt(values)); }

// How many rows of (N, C) logits have their largest logit at the label.
inline std::size_t count_correct(const tg::Tensor& logits, const std::vector<std::int64_t>& labels) {
  const tg::Tensor right = tg::eq(tg::argmax(logits, 1), int64_tensor(labels)).sum();
  return std::size_t(right.item<std::int64_t>());
}

// ---- what a reader of the model file needs ----------------------------------

// Fashion-MNIST's classes, in label order (torchvision's names).
inline const std::vector<std::string>& fashion_classes() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

// The shortest decimal that reads back as exactly `v` in float: 0.286, not 0.286000013.
inline std::string shortest_float(float v) {
  char text[32] = "0";
  for (int digits = 1; digits <= 9; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, double(v));
    if (std::strtof(text, nullptr) == v) break;
  }
  return text;
}

// The model file's "__metadata__": how to feed the network, so that a reader
// (tapegrad-eval, PyTorch) need not guess. Each value is JSON text:
//   input_shape   "[1, 28, 28]"    one image, channels first
//   mean, std     "[0.286]"        per channel: the network sees (pixel / 255 - mean) / std
//   classes       "[\"T-shirt/top\", ...]"   the class of each logit
inline tg::nn::Metadata model_metadata(tg::data::Normalization norm) {
  return {{"format", "pt"},
          {"architecture", "FashionCNN (apps/fashion_cnn.hpp)"},
          {"input_shape", "[1, 28, 28]"},
          {"pixel_scale", "1/255"},
          {"mean", "[" + shortest_float(norm.mean) + "]"},
          {"std", "[" + shortest_float(norm.std) + "]"},
          {"classes", nlohmann::json(fashion_classes()).dump()}};
}

// The normalization a model file's metadata names; false (and `norm` left
// as it is) when it names none, as in files from before it was written or
// from elsewhere. Throws tg::ValueError for a malformed or multi-channel entry.
inline bool read_normalization(const tg::nn::Metadata& metadata, tg::data::Normalization& norm) {
  const auto mean = metadata.find("mean"), std = metadata.find("std");
  if (mean == metadata.end() || std == metadata.end()) return false;
  auto one_value = [](const std::string& key, const std::string& text) {
    const auto parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_array() || parsed.size() != 1 || !parsed[0].is_number())
      throw tg::ValueError("the model file's metadata \"" + key + "\" is " + text +
                           ", expected one number per channel for the one channel of Fashion-MNIST, e.g. [0.286]");
    return float(parsed[0].get<double>());
  };
  norm = {one_value("mean", mean->second), one_value("std", std->second)};
  return true;
}
