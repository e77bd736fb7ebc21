// Convolution and pooling, composed from recorded ops. Only im2col and col2im
// are primitives here (each is the other's gradient); conv2d is
//   im2col -> matmul with the reshaped weight -> reshape (+ bias)
// so a kernel weight's gradient is matmul's ordinary gradient: the upstream
// gradient times the input patch, summed over every output position and
// every image of the batch. There is no convolution-specific backward code.
#pragma once

#include <cstddef>
#include <string>

#include "../core/tensor.hpp"

namespace tg {

// A (height, width) pair: an int means the same along both axes.
struct Size2 {
  std::size_t h, w;
  Size2(std::size_t both) : h(both), w(both) {}  // NOLINT: implicit on purpose
  Size2(std::size_t height, std::size_t width) : h(height), w(width) {}
  bool operator==(const Size2& o) const { return h == o.h && w == o.w; }
  std::string str() const;  // "(h, w)"
};

// Windows of x: (N, C, H, W) -> (N, C·kh·kw, Ho·Wo); row (c·kh + i)·kw + j
// holds tap (i, j) of channel c for every output position. Positions in the
// padding read pad_value.
template <class T>
BasicTensor<T> im2col(const BasicTensor<T>& x, Size2 kernel, Size2 stride = 1, Size2 padding = 0,
                      Size2 dilation = 1, double pad_value = 0.0);
// The adjoint of im2col: cols (N, C·kh·kw, Ho·Wo) summed back into
// (N, C, image.h, image.w); overlapping windows add up.
template <class T>
BasicTensor<T> col2im(const BasicTensor<T>& cols, Size2 image, Size2 kernel, Size2 stride = 1,
                      Size2 padding = 0, Size2 dilation = 1);

// x: (N, C_in, H, W), w: (C_out, C_in / groups, kh, kw), b: (C_out,) or
// undefined -> (N, C_out, Ho, Wo).
template <class T>
BasicTensor<T> conv2d(const BasicTensor<T>& x, const BasicTensor<T>& w, const BasicTensor<T>& b = {},
                      Size2 stride = 1, Size2 padding = 0, Size2 dilation = 1, std::size_t groups = 1);
// x: (N, C_in, L), w: (C_out, C_in / groups, k) -> (N, C_out, Lo), through conv2d.
template <class T>
BasicTensor<T> conv1d(const BasicTensor<T>& x, const BasicTensor<T>& w, const BasicTensor<T>& b = {},
                      std::size_t stride = 1, std::size_t padding = 0, std::size_t dilation = 1,
                      std::size_t groups = 1);

// Largest value of each window; stride 0 means stride = kernel. Padding
// reads -infinity. NOTE: where several elements of a window tie for the
// maximum, the gradient is split equally between them.
template <class T>
BasicTensor<T> max_pool2d(const BasicTensor<T>& x, Size2 kernel, Size2 stride = 0, Size2 padding = 0);
// Mean of each window, padding counted as zeros (count_include_pad).
template <class T>
BasicTensor<T> avg_pool2d(const BasicTensor<T>& x, Size2 kernel, Size2 stride = 0, Size2 padding = 0);

}  // namespace tg
