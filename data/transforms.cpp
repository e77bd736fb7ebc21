#include "transforms.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "../core/tape.hpp"

namespace tg::data::transforms {

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The input as a contiguous tensor of its own dtype, read-only.
Tensor contiguous_input(const char* op, const Tensor& input) {
  TG_CHECK(input.defined(), ValueError, op << ": the input is undefined");
  return input.contiguous();
}

}  // namespace

Generator example_generator(std::uint64_t seed, const Context& at) {
  return Generator(splitmix64(splitmix64(splitmix64(seed) ^ at.epoch) ^ static_cast<std::uint64_t>(at.index)));
}

// ---- Normalize ---------------------------------------------------------------

Normalize::Normalize(std::vector<double> mean, std::vector<double> std) : mean_(std::move(mean)), std_(std::move(std)) {
  TG_CHECK(!mean_.empty() && mean_.size() == std_.size(), ValueError,
           "Normalize: mean and std need one value per channel, got " << mean_.size() << " means and " << std_.size()
                                                                    << " stds");
  for (std::size_t c = 0; c < mean_.size(); ++c)
    TG_CHECK(std::isfinite(mean_[c]) && std::isfinite(std_[c]) && std_[c] > 0.0, ValueError,
             "Normalize: channel " << c << " needs a finite mean and a positive finite std, got mean=" << mean_[c]
                                   << " std=" << std_[c]);
}

Tensor Normalize::apply(const Tensor& input0, const Context&) const {
  const Tensor input = contiguous_input("Normalize", input0);
  const std::size_t channels = mean_.size();
  if (channels > 1)
    TG_CHECK(input.dim() >= 1 && input.shape()[0] == channels, ShapeError,
             "Normalize: " << channels << " channels of mean and std, but the input has shape "
                           << shape_str(input.shape()) << " (channels first)");
  const Dtype dtype = input.dtype() == kFloat64 ? kFloat64 : kFloat32;
  NoGradGuard no_grad;
  const Tensor x = input.dtype() == dtype ? input : input.to(dtype).contiguous();
  Tensor out = empty(input.shape(), dtype);
  const std::size_t n = x.numel();
  const std::size_t per_channel = channels > 1 ? n / channels : n;
  auto run = [&](auto* dst, const auto* src) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(src)>>;
    for (std::size_t c = 0; c < channels; ++c) {
      const T m = static_cast<T>(mean_[c]), s = static_cast<T>(std_[c]);
      for (std::size_t k = c * per_channel; k < (c + 1) * per_channel; ++k) dst[k] = (src[k] - m) / s;
    }
  };
  if (dtype == kFloat64)
    run(out.mutable_data<double>(), x.data<double>());
  else
    run(out.mutable_data<float>(), x.data<float>());
  return out;
}

// ---- RandomCrop --------------------------------------------------------------

RandomCrop::RandomCrop(std::size_t height, std::size_t width, std::size_t padding, std::uint64_t seed)
    : height_(height), width_(width), padding_(padding), seed_(seed) {
  TG_CHECK(height > 0 && width > 0, ValueError, "RandomCrop: the size must be positive, got " << height << "x" << width);
}

Tensor RandomCrop::apply(const Tensor& input0, const Context& at) const {
  const Tensor input = contiguous_input("RandomCrop", input0);
  const Shape& shape = input.shape();
  TG_CHECK(shape.size() >= 2, ShapeError,
           "RandomCrop: the input needs two spatial axes (..., H, W), got shape " << shape_str(shape));
  const std::size_t rows = shape[shape.size() - 2], cols = shape[shape.size() - 1];
  const std::size_t padded_rows = rows + 2 * padding_, padded_cols = cols + 2 * padding_;
  TG_CHECK(height_ <= padded_rows && width_ <= padded_cols, ShapeError,
           "RandomCrop: a " << height_ << "x" << width_ << " crop does not fit an input of shape " << shape_str(shape)
                            << " padded by " << padding_ << " (" << padded_rows << "x" << padded_cols << ")");
  Generator gen = example_generator(seed_, at);
  const std::size_t top = static_cast<std::size_t>(gen.below(padded_rows - height_ + 1));
  const std::size_t left = static_cast<std::size_t>(gen.below(padded_cols - width_ + 1));

  Shape out_shape = shape;
  out_shape[shape.size() - 2] = height_;
  out_shape[shape.size() - 1] = width_;
  Tensor out = zeros(out_shape, input.dtype());
  const std::size_t planes = rows * cols == 0 ? 0 : input.numel() / (rows * cols);
  const std::size_t item = element_size(input.dtype());
  const char* src = static_cast<const char*>(input.impl()->storage->data()) + input.impl()->offset * item;
  char* dst = static_cast<char*>(out.impl()->storage->data()) + out.impl()->offset * item;
  // Output (y, x) reads padded (top + y, left + x), that is input
  // (top + y - padding, left + x - padding) when that lies inside.
  for (std::size_t p = 0; p < planes; ++p)
    for (std::size_t y = 0; y < height_; ++y) {
      const std::size_t r = top + y;  // in padded coordinates
      if (r < padding_ || r >= padding_ + rows) continue;
      // The columns x with left + x in [padding, padding + cols).
      const std::size_t x0 = left >= padding_ ? 0 : padding_ - left;
      const std::size_t x1 = std::min(width_, padding_ + cols > left ? padding_ + cols - left : 0);
      if (x0 >= x1) continue;
      const std::size_t c0 = left + x0 - padding_;
      std::memcpy(dst + ((p * height_ + y) * width_ + x0) * item, src + ((p * rows + r - padding_) * cols + c0) * item,
                  (x1 - x0) * item);
    }
  return out;
}

// ---- RandomHorizontalFlip ----------------------------------------------------

RandomHorizontalFlip::RandomHorizontalFlip(double p, std::uint64_t seed) : p_(p), seed_(seed) {
  TG_CHECK(p >= 0.0 && p <= 1.0, ValueError, "RandomHorizontalFlip: p must be in [0, 1], got " << p);
}

Tensor RandomHorizontalFlip::apply(const Tensor& input0, const Context& at) const {
  const Tensor input = contiguous_input("RandomHorizontalFlip", input0);
  TG_CHECK(input.dim() >= 1, ShapeError, "RandomHorizontalFlip: the input is 0-d; it needs an axis to flip");
  Generator gen = example_generator(seed_, at);
  if (!(gen.uniform() < p_)) return input;
  const std::size_t cols = input.shape().back();
  const std::size_t lines = cols == 0 ? 0 : input.numel() / cols;
  const std::size_t item = element_size(input.dtype());
  Tensor out = empty(input.shape(), input.dtype());
  const char* src = static_cast<const char*>(input.impl()->storage->data()) + input.impl()->offset * item;
  char* dst = static_cast<char*>(out.impl()->storage->data()) + out.impl()->offset * item;
  for (std::size_t l = 0; l < lines; ++l)
    for (std::size_t x = 0; x < cols; ++x) std::memcpy(dst + (l * cols + x) * item, src + (l * cols + cols - 1 - x) * item, item);
  return out;
}

// ---- Lambda and Compose ------------------------------------------------------

Lambda::Lambda(Function f) : f_(std::move(f)) {
  TG_CHECK(static_cast<bool>(f_), ValueError, "Lambda: the function is empty");
}

Compose::Compose(std::vector<std::shared_ptr<const Transform>> transforms) : transforms_(std::move(transforms)) {
  for (std::size_t k = 0; k < transforms_.size(); ++k)
    TG_CHECK(transforms_[k] != nullptr, ValueError, "Compose: transform " << k << " is null");
}

Tensor Compose::apply(const Tensor& input, const Context& at) const {
  Tensor x = input;
  for (const auto& t : transforms_) x = t->apply(x, at);
  return x;
}

}  // namespace tg::data::transforms
