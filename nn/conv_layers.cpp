#include "conv_layers.hpp"

#include "init.hpp"

namespace tg::nn {

namespace {

// An (N, C, H, W) input, or (C, H, W) where the layer takes one, else a
// ShapeError naming the layer and the shapes.
void check_image(const char* layer, const Tensor& x, bool unbatched_ok, std::size_t channels = 0) {
  const bool rank_ok = x.dim() == 4 || (unbatched_ok && x.dim() == 3);
  const std::string c = channels ? std::to_string(channels) : "C";
  if (!rank_ok || (channels && x.shape()[x.dim() - 3] != channels))
    throw ShapeError(std::string(layer) + ": expected input of shape (N, " + c + ", H, W)" +
                     (unbatched_ok ? " or (" + c + ", H, W)" : "") + ", got " + shape_str(x.shape()));
}

}  // namespace

// ---- ConvTranspose2d -------------------------------------------------------------

ConvTranspose2dImpl::ConvTranspose2dImpl(const ConvTranspose2dOptions& options, Generator& gen) : options(options) {
  const std::size_t in = options.in_channels(), out = options.out_channels(), groups = options.groups();
  if (groups == 0 || in == 0 || out == 0 || in % groups || out % groups)
    throw ValueError("ConvTranspose2d: in_channels=" + std::to_string(in) + " and out_channels=" +
                     std::to_string(out) + " must be positive multiples of groups=" + std::to_string(groups));
  const Size2 kernel = options.kernel_size();
  if (kernel.h <= 0 || kernel.w <= 0)
    throw ValueError("ConvTranspose2d: kernel size must be positive, got " + kernel.str());
  const Size2 stride = options.stride(), output_padding = options.output_padding();
  if (!(output_padding.h >= 0 && output_padding.w >= 0 && output_padding.h < stride.h && output_padding.w < stride.w))
    throw ValueError("ConvTranspose2d: output_padding " + output_padding.str() +
                     " must be non-negative and smaller than the stride " + stride.str());
  const auto kh = std::size_t(kernel.h), kw = std::size_t(kernel.w);
  const std::size_t fan_in = out / groups * kh * kw;
  weight = register_parameter("weight", init::torch_default(zeros({in, out / groups, kh, kw}), fan_in, gen));
  if (options.bias()) bias = register_parameter("bias", init::torch_default(zeros({out}), fan_in, gen));
}

Tensor ConvTranspose2dImpl::forward(const Tensor& x) {
  check_image("ConvTranspose2d", x, false, options.in_channels());
  return conv_transpose2d(x, weight, bias, options.stride(), options.padding(), options.output_padding(),
                          std::int64_t(options.groups()), options.dilation());
}

std::string ConvTranspose2dImpl::describe() const {
  const std::size_t groups = options.groups();
  return std::to_string(options.in_channels()) + ", " + std::to_string(options.out_channels()) +
         ", kernel=" + options.kernel_size().str() + ", stride=" + options.stride().str() +
         ", padding=" + options.padding().str() +
         (options.output_padding() == Size2(0) ? "" : ", output_padding=" + options.output_padding().str()) +
         (options.dilation() == Size2(1) ? "" : ", dilation=" + options.dilation().str()) +
         (groups == 1 ? "" : ", groups=" + std::to_string(groups)) + (bias.defined() ? "" : ", bias=false");
}

// ---- AdaptiveAvgPool2d -----------------------------------------------------------

AdaptiveAvgPool2dImpl::AdaptiveAvgPool2dImpl(Size2 output_size) : output_size(output_size) {
  if (output_size.h <= 0 || output_size.w <= 0)
    throw ValueError("AdaptiveAvgPool2d: output size must be positive, got " + output_size.str());
}

Tensor AdaptiveAvgPool2dImpl::forward(const Tensor& x) {
  check_image("AdaptiveAvgPool2d", x, true);
  return adaptive_avg_pool2d(x, output_size);
}

// ---- Upsample ----------------------------------------------------------------------

UpsampleImpl::UpsampleImpl(Size2 scale_factor) : scale_factor(scale_factor) {
  if (scale_factor.h <= 0 || scale_factor.w <= 0)
    throw ValueError("Upsample: scale factors must be positive integers, got " + scale_factor.str());
}

Tensor UpsampleImpl::forward(const Tensor& x) {
  check_image("Upsample", x, true);
  return upsample_nearest2d(x, scale_factor);
}

}  // namespace tg::nn
