// Transforms of one example's input, as torchvision's: per-channel
// normalization, random crops with zero padding, random horizontal flips, and
// a Compose that chains them. A MapDataset (dataset.hpp) applies one to
// every example it returns.
//
//   namespace T = tg::data::transforms;
//   T::Compose augment(T::RandomCrop(28, /*padding=*/4, /*seed=*/1),
//                      T::RandomHorizontalFlip(0.5, /*seed=*/2),
//                      T::Normalize({0.2860}, {0.3530}));
//   tg::Tensor out = augment(image, {/*epoch=*/3, /*index=*/17});
//
// Randomness is a function of the example, not of a running generator: a
// random transform draws from a Generator seeded with (its seed, the epoch,
// the example's index), so an example comes out the same whichever thread
// builds it and in whatever order examples are read, and differently in
// each epoch.
//
// Inputs are (C, H, W) images, or (H, W) ones; the channel axis is the first
// and the spatial axes are the last two, as in torchvision.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/random.hpp"
#include "../core/tensor.hpp"

namespace tg::data::transforms {

// Which example a transform is applied to: what its randomness depends on.
struct Context {
  std::uint64_t epoch = 0;
  std::size_t index = 0;
};

// The generator a random transform seeded with `seed` draws from for the
// example `at`: a splitmix64 mix of the three numbers.
Generator example_generator(std::uint64_t seed, const Context& at);

class Transform {
 public:
  virtual ~Transform() = default;
  // The transformed input. Deterministic transforms ignore `at`.
  Tensor operator()(const Tensor& input, const Context& at = {}) const { return apply(input, at); }
  // What a transform implements.
  virtual Tensor apply(const Tensor& input, const Context& at) const = 0;
};

// (x - mean[c]) / std[c] for channel c (the first axis), computed in the
// input's floating dtype (integer and bool inputs become float32). One mean
// and std apply to every channel and to inputs of any shape. Throws
// tg::ValueError when mean or std is empty, their sizes differ, a value is
// not finite or a std is not positive; apply throws tg::ShapeError when the
// input's first size is not the number of channels.
class Normalize : public Transform {
 public:
  Normalize(std::vector<double> mean, std::vector<double> std);
  Tensor apply(const Tensor& input, const Context& at) const override;
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& std() const { return std_; }

 private:
  std::vector<double> mean_, std_;
};

// A crop of height x width at a random position of the input padded with
// `padding` zeros on every side (torchvision's RandomCrop(size, padding)).
// The top row is drawn first, uniform in [0, H + 2 padding - height], then
// the left column likewise. Keeps the dtype. Throws tg::ValueError for a
// zero size; apply throws tg::ShapeError for an input with fewer than two
// axes or a crop larger than the padded input.
class RandomCrop : public Transform {
 public:
  RandomCrop(std::size_t size, std::size_t padding = 0, std::uint64_t seed = 0)
      : RandomCrop(size, size, padding, seed) {}
  RandomCrop(std::size_t height, std::size_t width, std::size_t padding, std::uint64_t seed);
  Tensor apply(const Tensor& input, const Context& at) const override;

 private:
  std::size_t height_, width_, padding_;
  std::uint64_t seed_;
};

// The input mirrored along its last axis with probability p (a draw below p
// flips), else unchanged. Keeps the dtype. Throws tg::ValueError for p
// outside [0, 1].
class RandomHorizontalFlip : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5, std::uint64_t seed = 0);
  Tensor apply(const Tensor& input, const Context& at) const override;

 private:
  double p_;
  std::uint64_t seed_;
};

// Any function of the input and the context.
class Lambda : public Transform {
 public:
  using Function = std::function<Tensor(const Tensor&, const Context&)>;
  explicit Lambda(Function f);
  Tensor apply(const Tensor& input, const Context& at) const override { return f_(input, at); }

 private:
  Function f_;
};

// The transforms in order, each given the same context (each random one
// draws from its own seed).
class Compose : public Transform {
 public:
  explicit Compose(std::vector<std::shared_ptr<const Transform>> transforms);
  // Compose(Normalize(...), RandomCrop(...), ...): each copied in.
  template <class... Ts, class = std::enable_if_t<(sizeof...(Ts) > 0) &&
                                                  (std::is_base_of_v<Transform, std::decay_t<Ts>> && ...)>>
  explicit Compose(Ts&&... transforms)
      : Compose(std::vector<std::shared_ptr<const Transform>>{
            std::make_shared<const std::decay_t<Ts>>(std::forward<Ts>(transforms))...}) {}
  Tensor apply(const Tensor& input, const Context& at) const override;
  std::size_t size() const { return transforms_.size(); }

 private:
  std::vector<std::shared_ptr<const Transform>> transforms_;
};

}  // namespace tg::data::transforms
