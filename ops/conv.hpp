// Convolution and pooling. Convolution is composed from recorded ops: only
// im2col and col2im are primitives for it (each is the other's gradient);
// conv2d is
//   im2col -> matmul with the reshaped weight -> reshape (+ bias)
// so a kernel weight's gradient is matmul's ordinary gradient: the upstream
// gradient times the input patch, summed over every output position and
// every image of the batch. There is no convolution-specific backward code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../core/tensor.hpp"

namespace tg {

// A (height, width) pair: an int means the same along both axes. Signed, so
// that a negative size reaches the op, which refuses it by name.
// Any integer type is taken (so {h, w} from sizes does not narrow); an
// unsigned value that wrapped from a negative one reads as negative again.
struct Size2 {
  std::int64_t h, w;
  template <class I, std::enable_if_t<std::is_integral_v<I>, int> = 0>
  Size2(I both) : h(std::int64_t(both)), w(std::int64_t(both)) {}  // NOLINT: implicit on purpose
  template <class I, class J, std::enable_if_t<std::is_integral_v<I> && std::is_integral_v<J>, int> = 0>
  Size2(I height, J width) : h(std::int64_t(height)), w(std::int64_t(width)) {}
  bool operator==(const Size2& o) const { return h == o.h && w == o.w; }
  std::string str() const;  // "(h, w)"
};

// Windows of x: (N, C, H, W) -> (N, C·kh·kw, Ho·Wo); row (c·kh + i)·kw + j
// holds tap (i, j) of channel c for every output position. Positions in the
// padding read pad_value.
Tensor im2col(const Tensor& x, Size2 kernel, Size2 stride = 1, Size2 padding = 0,
                      Size2 dilation = 1, double pad_value = 0.0);
// The adjoint of im2col: cols (N, C·kh·kw, Ho·Wo) summed back into
// (N, C, image.h, image.w); overlapping windows add up.
Tensor col2im(const Tensor& cols, Size2 image, Size2 kernel, Size2 stride = 1,
                      Size2 padding = 0, Size2 dilation = 1);

// x: (N, C_in, H, W), w: (C_out, C_in / groups, kh, kw), b: (C_out,) or
// undefined -> (N, C_out, Ho, Wo).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = {},
                      Size2 stride = 1, Size2 padding = 0, Size2 dilation = 1, std::int64_t groups = 1);
// x: (N, C_in, L), w: (C_out, C_in / groups, k) -> (N, C_out, Lo), through conv2d.
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b = {}, std::int64_t stride = 1,
              std::int64_t padding = 0, std::int64_t dilation = 1, std::int64_t groups = 1);

// The adjoint of conv2d with the same weight, as torch.nn.functional.conv_transpose2d:
// x: (N, C_in, H, W), w: (C_in, C_out / groups, kh, kw), b: (C_out,) or
// undefined -> (N, C_out, Ho, Wo) with
//   Ho = (H - 1)·stride - 2·padding + dilation·(kh - 1) + output_padding + 1
// (likewise Wo). Composed as matmul(wᵀ, x) -> col2im: each input pixel
// scatters its weighted kernel into the output, so the gradients are those
// of matmul and col2im. output_padding adds rows and columns at the bottom
// and right (no input reaches them; they hold the bias); it must be smaller
// than the stride. NOTE: torch also accepts an output_padding below the
// dilation but not below the stride; that case is refused here.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b = {}, Size2 stride = 1, Size2 padding = 0,
                        Size2 output_padding = 0, std::int64_t groups = 1, Size2 dilation = 1);

// Largest value of each window; stride 0 means stride = kernel; padding is
// never a maximum. A primitive: it finds each maximum in place and saves its
// position, and its rule adds the gradient at those positions
// (index_select_backward).
// NOTE: where several elements of a window tie for the maximum, the first
// (row-major) takes the whole gradient, as in PyTorch's max_pool2d (the
// reduction tg::max splits it, as torch.amax does).
Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride = 0, Size2 padding = 0);
// Mean of each window, padding counted as zeros (count_include_pad).
Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride = 0, Size2 padding = 0);

}  // namespace tg
