#include "conv.hpp"

#include <limits>

#include "../core/autograd.hpp"
#include "../core/parallel.hpp"
#include "elementwise.hpp"
#include "kernels/im2col.hpp"
#include "linalg.hpp"
#include "reduce.hpp"
#include "shape.hpp"

namespace tg {

std::string Size2::str() const { return "(" + std::to_string(h) + ", " + std::to_string(w) + ")"; }

namespace {

// A Size2 as unsigned sizes; negative values throw a ValueError naming op.
struct Sizes {
  std::size_t h, w;
};
Sizes sizes(const std::string& op, const char* what, Size2 v) {
  TG_CHECK(v.h >= 0 && v.w >= 0, ValueError, op << ": " << what << " must not be negative, got " << v.str());
  return {std::size_t(v.h), std::size_t(v.w)};
}

// Validates a window over an NCHW input of shape `s`, naming `op` on failure.
kernels::Window make_window(const std::string& op, const Shape& s, Size2 kernel, Size2 stride, Size2 padding,
                            Size2 dilation) {
  if (s.size() != 4) throw ShapeError(op + ": input must have shape (N, C, H, W), got " + shape_str(s));
  auto positive = [&](const char* what, Size2 v) {
    const Sizes u = sizes(op, what, v);
    TG_CHECK(u.h > 0 && u.w > 0, ValueError,
             op << ": " << what << " must be positive, got " << v.str() << " for input " << shape_str(s));
    return u;
  };
  const Sizes k = positive("kernel size", kernel), st = positive("stride", stride), d = positive("dilation", dilation);
  const Sizes p = sizes(op, "padding", padding);
  // Sizes beyond the element limit can only be mistakes, and would overflow below.
  for (std::size_t v : {k.h, k.w, st.h, st.w, d.h, d.w, p.h, p.w})
    TG_CHECK(v <= kMaxElements, ValueError, op << ": size " << v << " is larger than any tensor can be");
  const kernels::Window win{k.h, k.w, st.h, st.w, p.h, p.w, d.h, d.w};
  if (win.out_h(s[2]) == 0 || win.out_w(s[3]) == 0)
    throw ShapeError(op + ": kernel " + kernel.str() + " with dilation " + dilation.str() +
                     " is larger than the padded input " +
                     Size2(std::int64_t(s[2] + 2 * p.h), std::int64_t(s[3] + 2 * p.w)).str() + " of input " +
                     shape_str(s));
  return win;
}

}  // namespace

// ============================================================================
// im2col / col2im — each is the other's gradient
// ============================================================================

Tensor im2col(const Tensor& x0, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation, double pad_value) {
  const Tensor x = x0.contiguous();
  const Shape& s = x.shape();
  const kernels::Window win = make_window("im2col", s, kernel, stride, padding, dilation);
  const std::size_t n = s[0], c = s[1], h = s[2], w = s[3];
  const std::size_t rows = c * win.kh * win.kw, positions = win.out_h(h) * win.out_w(w);
  // x: (N, C, H, W) -> cols: (N, C·kh·kw, Ho·Wo)
  Tensor cols = empty(Shape{n, rows, positions}, x.dtype());
  checked_numel("im2col", cols.shape());
  visit_floating("im2col", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* pc = static_cast<T*>(cols.impl()->storage->data());
    parallel_for(n, n * rows * positions, [&](std::size_t first, std::size_t last) {
      for (std::size_t i = first; i < last; ++i)
        kernels::im2col(px + i * c * h * w, c, h, w, win, T(pad_value), pc + i * rows * positions);
    });
  });
  return record("im2col", {x}, std::move(cols))
      .backward([image = Size2(std::int64_t(h), std::int64_t(w)), kernel, stride, padding, dilation](const GradContext& g) {
        return Grads{col2im(g.grad, image, kernel, stride, padding, dilation)};
      });
}

Tensor col2im(const Tensor& cols0, Size2 image, Size2 kernel, Size2 stride, Size2 padding, Size2 dilation) {
  const Tensor cols = cols0.contiguous();
  const Shape& s = cols.shape();
  const Sizes k = sizes("col2im", "kernel size", kernel), img = sizes("col2im", "image size", image);
  const std::size_t taps = k.h * k.w;
  if (s.size() != 3 || taps == 0 || s[1] % taps != 0)
    throw ShapeError("col2im: columns must have shape (N, C·kh·kw, Ho·Wo) for kernel " + kernel.str() + ", got " +
                     shape_str(s));
  const std::size_t n = s[0], c = s[1] / taps, h = img.h, w = img.w;
  const kernels::Window win = make_window("col2im", Shape{n, c, h, w}, kernel, stride, padding, dilation);
  if (s[2] != win.out_h(h) * win.out_w(w))
    throw ShapeError("col2im: columns " + shape_str(s) + " do not match the " + std::to_string(win.out_h(h)) + "x" +
                     std::to_string(win.out_w(w)) + " windows of a " + image.str() + " image");
  // cols: (N, C·kh·kw, Ho·Wo) -> x: (N, C, H, W)
  Tensor x = zeros(Shape{n, c, h, w}, cols.dtype());
  visit_floating("col2im", cols.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pc = cols.data<T>();
    T* px = static_cast<T*>(x.impl()->storage->data());
    parallel_for(n, n * s[1] * s[2], [&](std::size_t first, std::size_t last) {
      for (std::size_t i = first; i < last; ++i) kernels::col2im(pc + i * s[1] * s[2], c, h, w, win, px + i * c * h * w);
    });
  });
  return record("col2im", {cols}, std::move(x)).backward([kernel, stride, padding, dilation](const GradContext& g) {
    return Grads{im2col(g.grad, kernel, stride, padding, dilation)};
  });
}

// ============================================================================
// convolution: compositions only
// ============================================================================

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Size2 stride, Size2 padding, Size2 dilation,
              std::int64_t groups_given) {
  const Shape& xs = x.shape();
  const Shape& ws = w.shape();
  TG_CHECK(groups_given > 0, ValueError, "conv2d: groups must be positive, got " << groups_given);
  const auto groups = std::size_t(groups_given);
  if (ws.size() != 4)
    throw ShapeError("conv2d: weight must have shape (C_out, C_in / groups, kh, kw), got " + shape_str(ws));
  if (xs.size() != 4) throw ShapeError("conv2d: input must have shape (N, C, H, W), got " + shape_str(xs));
  const std::size_t c_out = ws[0], c_in = xs[1];
  if (c_out % groups != 0)
    throw ShapeError("conv2d: the " + std::to_string(c_out) + " output channels of weight " + shape_str(ws) +
                     " do not divide into groups = " + std::to_string(groups));
  if (ws[1] * groups != c_in)
    throw ShapeError("conv2d: input " + shape_str(xs) + " has " + std::to_string(c_in) + " channels but weight " +
                     shape_str(ws) + " with groups = " + std::to_string(groups) + " expects " +
                     std::to_string(ws[1] * groups));
  if (b.defined() && b.shape() != Shape{c_out})
    throw ShapeError("conv2d: bias must have shape (" + std::to_string(c_out) + ",), got " + shape_str(b.shape()));
  const Size2 kernel{std::int64_t(ws[2]), std::int64_t(ws[3])};
  const kernels::Window win = make_window("conv2d", xs, kernel, stride, padding, dilation);
  const std::size_t n = xs[0], ho = win.out_h(xs[2]), wo = win.out_w(xs[3]);
  const std::size_t k = ws[1] * ws[2] * ws[3];  // one output's inputs per group: C_in/groups · kh · kw

  // x: (N, C_in, H, W) -> cols: (N, C_in·kh·kw, Ho·Wo)
  const Tensor cols = im2col(x, kernel, stride, padding, dilation);
  Tensor y;
  if (groups == 1) {
    // (C_out, K) · (N, K, Ho·Wo) -> (N, C_out, Ho·Wo): one weight matrix for every image
    y = matmul(reshape(w, Shape{c_out, k}), cols);
  } else {
    // (G, C_out/G, K) · (N, G, K, Ho·Wo) -> (N, G, C_out/G, Ho·Wo)
    y = matmul(reshape(w, Shape{groups, c_out / groups, k}), reshape(cols, Shape{n, groups, k, ho * wo}));
  }
  y = reshape(y, Shape{n, c_out, ho, wo});
  // bias (C_out,) -> (C_out, 1, 1), broadcast over the batch and every position
  return b.defined() ? add(y, reshape(b, Shape{c_out, 1, 1})) : y;
}

Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b, std::int64_t stride, std::int64_t padding,
              std::int64_t dilation, std::int64_t groups) {
  const Shape& xs = x.shape();
  const Shape& ws = w.shape();
  if (xs.size() != 3) throw ShapeError("conv1d: input must have shape (N, C, L), got " + shape_str(xs));
  non_negative("conv1d", "stride", stride);
  non_negative("conv1d", "padding", padding);
  non_negative("conv1d", "dilation", dilation);
  if (ws.size() != 3)
    throw ShapeError("conv1d: weight must have shape (C_out, C_in / groups, k), got " + shape_str(ws));
  // (N, C, L) is (N, C, 1, L): a convolution with a 1-row kernel.
  const Tensor y = conv2d(reshape(x, Shape{xs[0], xs[1], 1, xs[2]}), reshape(w, Shape{ws[0], ws[1], 1, ws[2]}), b,
                          Size2(1, stride), Size2(0, padding), Size2(1, dilation), groups);
  const Shape& ys = y.shape();
  return reshape(y, Shape{ys[0], ys[1], ys[3]});
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, Size2 stride, Size2 padding,
                        Size2 output_padding, std::int64_t groups_given, Size2 dilation) {
  const char* op = "conv_transpose2d";
  const Shape& xs = x.shape();
  const Shape& ws = w.shape();
  TG_CHECK(groups_given > 0, ValueError, op << ": groups must be positive, got " << groups_given);
  const auto groups = std::size_t(groups_given);
  if (xs.size() != 4) throw ShapeError(std::string(op) + ": input must have shape (N, C, H, W), got " + shape_str(xs));
  if (ws.size() != 4)
    throw ShapeError(std::string(op) + ": weight must have shape (C_in, C_out / groups, kh, kw), got " + shape_str(ws));
  const std::size_t n = xs[0], c_in = xs[1], h = xs[2], wd = xs[3];
  if (ws[0] != c_in || c_in % groups != 0)
    throw ShapeError(std::string(op) + ": input " + shape_str(xs) + " has " + std::to_string(c_in) +
                     " channels but weight " + shape_str(ws) + " with groups = " + std::to_string(groups) +
                     " expects " + std::to_string(ws[0]) + " (a multiple of groups)");
  const std::size_t c_out = ws[1] * groups, kh = ws[2], kw = ws[3];
  if (b.defined() && b.shape() != Shape{c_out})
    throw ShapeError(std::string(op) + ": bias must have shape (" + std::to_string(c_out) + ",), got " +
                     shape_str(b.shape()));
  const Sizes st = sizes(op, "stride", stride), p = sizes(op, "padding", padding),
              outpad = sizes(op, "output_padding", output_padding), d = sizes(op, "dilation", dilation);
  TG_CHECK(st.h > 0 && st.w > 0 && d.h > 0 && d.w > 0 && kh > 0 && kw > 0, ValueError,
           op << ": stride " << stride.str() << ", dilation " << dilation.str() << " and kernel of weight "
              << shape_str(ws) << " must be positive");
  TG_CHECK(outpad.h < st.h && outpad.w < st.w, ValueError,
           op << ": output_padding " << output_padding.str() << " must be smaller than the stride " << stride.str());
  for (std::size_t v : {st.h, st.w, p.h, p.w, d.h, d.w})
    TG_CHECK(v <= kMaxElements, ValueError, op << ": size " << v << " is larger than any tensor can be");
  // The full (unpadded) output, then `padding` cropped from each side.
  const auto full = [](std::size_t in, std::size_t s, std::size_t dil, std::size_t k, std::size_t extra) {
    return (in - 1) * s + dil * (k - 1) + extra + 1;
  };
  const std::size_t full_h = h ? full(h, st.h, d.h, kh, outpad.h) : 0, full_w = wd ? full(wd, st.w, d.w, kw, outpad.w) : 0;
  if (h == 0 || wd == 0 || full_h <= 2 * p.h || full_w <= 2 * p.w)
    throw ShapeError(std::string(op) + ": padding " + padding.str() + " leaves no output for input " + shape_str(xs) +
                     " and weight " + shape_str(ws) + " (stride " + stride.str() + ", dilation " + dilation.str() +
                     ")");
  const std::size_t ho = full_h - 2 * p.h, wo = full_w - 2 * p.w;
  const std::size_t m = ws[1] * kh * kw;  // one group's rows of columns: C_out/groups · kh · kw

  // x: (N, C_in, H·W); the columns (N, C_out·kh·kw, H·W) hold, for each input
  // pixel, the kernel weighted by that pixel: wᵀ · x.
  Tensor cols;
  if (groups == 1) {
    // (C_in, M)ᵀ · (N, C_in, H·W) -> (N, M, H·W)
    cols = gemm(reshape(w, Shape{c_in, m}), reshape(x, Shape{n, c_in, h * wd}), true, false);
  } else {
    // (G, C_in/G, M)ᵀ · (N, G, C_in/G, H·W) -> (N, G, M, H·W)
    cols = gemm(reshape(w, Shape{groups, c_in / groups, m}), reshape(x, Shape{n, groups, c_in / groups, h * wd}),
                true, false);
    cols = reshape(cols, Shape{n, groups * m, h * wd});
  }
  // Each column added into the output at the window conv2d would read there.
  const Tensor y = col2im(cols, Size2(std::int64_t(ho), std::int64_t(wo)), Size2(std::int64_t(kh), std::int64_t(kw)),
                          stride, padding, dilation);
  return b.defined() ? add(y, reshape(b, Shape{c_out, 1, 1})) : y;
}

// ============================================================================
// pooling: max_pool2d a primitive that saves where each maximum is;
// avg_pool2d window extraction + mean
// ============================================================================

namespace {

// A pooling window over an input of shape s: padding at most half the kernel,
// so that every window holds at least one input element.
kernels::Window pool_window(const char* op, const Shape& s, Size2 kernel, Size2 stride, Size2 padding) {
  const kernels::Window win = make_window(op, s, kernel, stride, padding, 1);
  if (2 * win.ph > win.kh || 2 * win.pw > win.kw)
    throw ValueError(std::string(op) + ": padding " + padding.str() + " must be at most half the kernel " +
                     kernel.str() + " for input " + shape_str(s));
  return win;
}

}  // namespace

// y: the maximum of each window, found in place (no window columns). The
// forward saves where each maximum is (flat int64 positions into x), and the
// rule adds the gradient there with index_select_backward (zeros plus the
// gradient at those positions), whose own gradient is index_select, so max
// pooling differentiates twice.
Tensor max_pool2d(const Tensor& x0, Size2 kernel, Size2 stride, Size2 padding) {
  const Tensor x = x0.contiguous();
  if (stride == Size2(0)) stride = kernel;
  const kernels::Window win = pool_window("max_pool2d", x.shape(), kernel, stride, padding);
  const Shape& s = x.shape();
  const std::size_t planes = s[0] * s[1], plane = s[2] * s[3], ho = win.out_h(s[2]), wo = win.out_w(s[3]);
  // One plane's windows and their positions are buffers of this size.
  checked_numel("max_pool2d", Shape{win.kh, win.kw, ho, wo});
  // x: (N, C, H, W) -> y: (N, C, Ho, Wo)
  Tensor y = empty(Shape{s[0], s[1], ho, wo}, x.dtype());
  Tensor where = empty(Shape{planes * ho * wo}, kInt64);
  visit_floating("max_pool2d", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    T* py = static_cast<T*>(y.impl()->storage->data());
    std::int64_t* pw = static_cast<std::int64_t*>(where.impl()->storage->data());
    const auto pool = [&](auto index_tag) {
      using Index = decltype(index_tag);
      const std::size_t n_taps = win.kh * win.kw;
      const std::vector<Index> taps = kernels::window_taps<Index>(s[2], s[3], win);
      parallel_for(planes, planes * plane, [&](std::size_t first, std::size_t last) {
        // one plane's windows and maxima's positions, small enough to stay in cache
        std::vector<T> windows(n_taps * ho * wo);
        std::vector<Index> at(ho * wo);
        for (std::size_t p = first; p < last; ++p) {
          kernels::im2col(px + p * plane, 1, s[2], s[3], win, T(0), windows.data());
          kernels::window_max(windows.data(), taps.data(), n_taps, ho * wo, py + p * ho * wo, at.data());
          const auto base = std::int64_t(p * plane);  // plane -> x positions
          std::int64_t* out = pw + p * ho * wo;
          for (std::size_t k = 0; k < ho * wo; ++k) out[k] = base + std::int64_t(at[k]);
        }
      });
    };
    if (plane <= std::size_t(std::numeric_limits<std::int32_t>::max()))
      pool(std::int32_t{});
    else
      pool(std::int64_t{});
  });
  // NOTE: where a window has tied maxima, the first (row-major) takes the
  // whole gradient, as in torch.nn.functional.max_pool2d.
  return record("max_pool2d", {x}, std::move(y))
      .save({where})
      .backward([numel = x.numel()](const GradContext& c) {
        const Tensor& at = c.saved[0];
        return Grads{reshape(index_select_backward(reshape(c.grad, at.shape()), Shape{numel}, 0, at), c.input_shape(0))};
      });
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  if (stride == Size2(0)) stride = kernel;
  const Shape& s = x.shape();
  const kernels::Window win = pool_window("avg_pool2d", s, kernel, stride, padding);
  // x: (N, C, H, W) -> windows: (N, C, kh·kw, Ho·Wo), padding read as 0 -> mean over each window
  const Tensor cols = im2col(x, kernel, stride, padding, 1, 0.0);
  const Tensor windows = reshape(cols, Shape{s[0], s[1], win.kh * win.kw, win.out_h(s[2]) * win.out_w(s[3])});
  return reshape(mean(windows, {2}), Shape{s[0], s[1], win.out_h(s[2]), win.out_w(s[3])});
}

}  // namespace tg
