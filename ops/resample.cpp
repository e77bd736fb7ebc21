#include "resample.hpp"

#include <string>
#include <vector>

#include "../core/error.hpp"
#include "reduce.hpp"
#include "shape.hpp"

namespace tg {

namespace {

// x as (N, C, H, W): a 3-d (C, H, W) input gains a batch axis of 1.
Tensor as_batch(const char* op, const Tensor& x) {
  TG_CHECK(x.defined(), ValueError, op << ": the input is an undefined tensor");
  TG_CHECK(is_floating(x.dtype()), DtypeError,
           op << ": expected a float32 or float64 input, got " << dtype_name(x.dtype()));
  if (x.dim() == 4) return x;
  if (x.dim() == 3) return unsqueeze(x, 0);
  throw ShapeError(std::string(op) + ": input must have shape (N, C, H, W) or (C, H, W), got " + shape_str(x.shape()));
}

Tensor like_input(const Tensor& y, const Tensor& x) { return x.dim() == 3 ? squeeze(y, 0) : y; }

// Axis `axis` of x (of size `in`) pooled adaptively to `out` positions.
Tensor adaptive_axis(const Tensor& x, std::size_t axis, std::size_t in, std::size_t out) {
  if (in == out) return x;
  if (in % out == 0) {
    // Equal windows: split the axis into (out, in / out) and average the second.
    Shape s = x.shape();
    s[axis] = in / out;
    s.insert(s.begin() + std::ptrdiff_t(axis), out);
    return mean(reshape(x, s), {std::ptrdiff_t(axis) + 1});
  }
  // Windows of torch's start/end formula, which may overlap: one mean each.
  std::vector<Tensor> pieces;
  for (std::size_t i = 0; i < out; ++i) {
    const std::size_t start = i * in / out, end = ((i + 1) * in + out - 1) / out;
    pieces.push_back(mean(narrow(x, std::ptrdiff_t(axis), std::int64_t(start), std::int64_t(end - start)),
                          {std::ptrdiff_t(axis)}, true));
  }
  return cat(pieces, std::ptrdiff_t(axis));
}

}  // namespace

Tensor adaptive_avg_pool2d(const Tensor& x0, Size2 output_size) {
  const char* op = "adaptive_avg_pool2d";
  const Tensor x = as_batch(op, x0);
  const std::size_t h = x.shape()[2], w = x.shape()[3];
  TG_CHECK(output_size.h > 0 && output_size.w > 0, ValueError,
           op << ": output size must be positive, got " << output_size.str() << " for input " << shape_str(x0.shape()));
  TG_CHECK(h > 0 && w > 0, ShapeError, op << ": input " << shape_str(x0.shape()) << " has no pixels to pool");
  const auto ho = std::size_t(output_size.h), wo = std::size_t(output_size.w);
  // Separable: the mean over a rectangle is the mean over its columns of the mean over its rows.
  return like_input(adaptive_axis(adaptive_axis(x, 2, h, ho), 3, w, wo), x0);
}

Tensor upsample_nearest2d(const Tensor& x0, Size2 scale_factor) {
  const char* op = "upsample_nearest2d";
  const Tensor x = as_batch(op, x0);
  TG_CHECK(scale_factor.h > 0 && scale_factor.w > 0, ValueError,
           op << ": scale factors must be positive integers, got " << scale_factor.str() << " for input "
              << shape_str(x0.shape()));
  const auto sh = std::size_t(scale_factor.h), sw = std::size_t(scale_factor.w);
  const Shape& s = x.shape();
  checked_numel(op, Shape{s[0], s[1], s[2], sh, s[3], sw});
  // (N, C, H, 1, W, 1) broadcast to (N, C, H, sh, W, sw): pixel (i, j) fills block (i, j).
  const Tensor blocks = broadcast_to(reshape(x, Shape{s[0], s[1], s[2], 1, s[3], 1}),
                                     Shape{s[0], s[1], s[2], sh, s[3], sw});
  return like_input(reshape(blocks, Shape{s[0], s[1], s[2] * sh, s[3] * sw}), x0);
}

}  // namespace tg
