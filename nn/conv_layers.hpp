// Layers that change the spatial size of (N, C, H, W) images beyond
// layers.hpp's Conv2d and pooling: ConvTranspose2d, AdaptiveAvgPool2d and
// Upsample (nearest).
#pragma once

#include <cstddef>
#include <string>

#include "../core/random.hpp"
#include "../ops/conv.hpp"
#include "../ops/resample.hpp"
#include "module.hpp"
#include "options.hpp"

namespace tg::nn {

struct ConvTranspose2dOptions {
  ConvTranspose2dOptions(std::size_t in_channels, std::size_t out_channels, Size2 kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TG_ARG(std::size_t, in_channels);
  TG_ARG(std::size_t, out_channels);
  TG_ARG(Size2, kernel_size);
  TG_ARG(Size2, stride) = 1;
  TG_ARG(Size2, padding) = 0;
  TG_ARG(Size2, output_padding) = 0;  // smaller than the stride
  TG_ARG(std::size_t, groups) = 1;
  TG_ARG(bool, bias) = true;
  TG_ARG(Size2, dilation) = 1;
};

// The adjoint of Conv2d (tg::conv_transpose2d): weight (in, out / groups, kh,
// kw), bias (out); output size (H - 1)·stride - 2·padding + dilation·(kh - 1)
// + output_padding + 1. Weights start as PyTorch's, uniform in ±1/√fan_in
// with fan_in = out / groups · kh · kw (PyTorch reads it from the weight's
// second axis).
class ConvTranspose2dImpl : public Module {
 public:
  ConvTranspose2dImpl(std::size_t in_channels, std::size_t out_channels, Size2 kernel_size,
                      Generator& gen = default_generator())
      : ConvTranspose2dImpl(ConvTranspose2dOptions(in_channels, out_channels, kernel_size), gen) {}
  explicit ConvTranspose2dImpl(const ConvTranspose2dOptions& options, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  std::string describe() const override;

  const ConvTranspose2dOptions options;
  Tensor weight;
  Tensor bias;  // undefined without bias
};
TG_MODULE(ConvTranspose2d);

// Average pooling to a fixed output size, whatever the input's
// (tg::adaptive_avg_pool2d); AdaptiveAvgPool2d(1) is global average pooling.
class AdaptiveAvgPool2dImpl : public Module {
 public:
  explicit AdaptiveAvgPool2dImpl(Size2 output_size);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "output_size=" + output_size.str(); }
  const Size2 output_size;
};
TG_MODULE(AdaptiveAvgPool2d);

// Nearest-neighbour upsampling by integer factors (tg::upsample_nearest2d):
// Upsample(2) doubles height and width.
class UpsampleImpl : public Module {
 public:
  explicit UpsampleImpl(Size2 scale_factor);
  Tensor forward(const Tensor& x) override;
  std::string describe() const override { return "scale_factor=" + scale_factor.str() + ", mode=nearest"; }
  const Size2 scale_factor;
};
TG_MODULE(Upsample);

}  // namespace tg::nn
