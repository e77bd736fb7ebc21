// Window extraction for convolution and pooling, its adjoint, and the
// maximum of each window. Plain loops over contiguous NCHW memory; no tape.
//
// For one image x: (C, H, W) and a kernel (kh, kw), im2col writes
//   cols: (C·kh·kw, Ho·Wo),  cols[(c·kh + i)·kw + j][oh·Wo + ow] = x[c][ih][iw]
// with ih = oh·sh - ph + i·dh, iw = ow·sw - pw + j·dw, and `pad` where
// (ih, iw) falls outside the image. col2im adds each cols element back into the
// x position it was read from (padding positions are dropped): its adjoint.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tg::kernels {

// Kernel size, stride, padding and dilation along (height, width).
struct Window {
  std::size_t kh, kw;
  std::size_t sh, sw;
  std::size_t ph, pw;
  std::size_t dh, dw;

  // Output size along one axis; 0 if the (dilated) kernel does not fit.
  static std::size_t out_size(std::size_t in, std::size_t k, std::size_t s, std::size_t p, std::size_t d) {
    const std::size_t span = d * (k - 1) + 1;
    return in + 2 * p < span ? 0 : (in + 2 * p - span) / s + 1;
  }
  std::size_t out_h(std::size_t h) const { return out_size(h, kh, sh, ph, dh); }
  std::size_t out_w(std::size_t w) const { return out_size(w, kw, sw, pw, dw); }
};

// For output row `o`, the input row read by kernel tap `tap`, or -1 when it
// falls in the padding.
inline std::ptrdiff_t source_index(std::size_t o, std::size_t tap, std::size_t s, std::size_t p,
                                   std::size_t d, std::size_t in) {
  const std::ptrdiff_t i = std::ptrdiff_t(o * s + tap * d) - std::ptrdiff_t(p);
  return (i >= 0 && i < std::ptrdiff_t(in)) ? i : -1;
}

// The output columns [lo, hi) whose tap j reads inside a row of width w, and
// the offset such that they read input column ow·s + offset.
struct ColumnRange {
  std::size_t lo, hi;
  std::ptrdiff_t offset;
};
inline ColumnRange valid_columns(std::size_t j, std::size_t w, std::size_t wo, const Window& win) {
  const std::ptrdiff_t offset = std::ptrdiff_t(j * win.dw) - std::ptrdiff_t(win.pw);
  const auto s = std::ptrdiff_t(win.sw);
  // smallest ow with ow·s + offset >= 0, and one past the largest with ow·s + offset < w
  const std::ptrdiff_t lo = offset >= 0 ? 0 : (-offset + s - 1) / s;
  const std::ptrdiff_t last = std::ptrdiff_t(w) - 1 - offset;
  const std::ptrdiff_t hi = last < 0 ? 0 : std::min<std::ptrdiff_t>(std::ptrdiff_t(wo), last / s + 1);
  return {std::size_t(std::min<std::ptrdiff_t>(lo, hi)), std::size_t(hi), offset};
}

// Walks every (row of cols, output row oh) of one image and calls
// row_op(offset of that output row in cols, offset of the input row it reads
// or -1 in the padding, the valid column range of its tap), so im2col and
// col2im share one indexing scheme; each does its own work along the row.
template <class RowOp>
void for_each_window_row(std::size_t channels, std::size_t h, std::size_t w, const Window& win, RowOp&& row_op) {
  const std::size_t ho = win.out_h(h), wo = win.out_w(w);
  for (std::size_t c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < win.kh; ++i)
      for (std::size_t j = 0; j < win.kw; ++j) {
        const std::size_t row = (c * win.kh + i) * win.kw + j;
        const ColumnRange columns = valid_columns(j, w, wo, win);
        for (std::size_t oh = 0; oh < ho; ++oh) {
          const std::ptrdiff_t ih = source_index(oh, i, win.sh, win.ph, win.dh, h);
          row_op(row * ho * wo + oh * wo, ih < 0 ? std::ptrdiff_t(-1) : std::ptrdiff_t((c * h + std::size_t(ih)) * w),
                 columns);
        }
      }
}

// x: (C, H, W) -> cols: (C·kh·kw, Ho·Wo)
template <class T>
void im2col(const T* x, std::size_t channels, std::size_t h, std::size_t w, const Window& win, T pad, T* cols) {
  const std::size_t wo = win.out_w(w), sw = win.sw;
  for_each_window_row(channels, h, w, win, [&](std::size_t out, std::ptrdiff_t in_row, const ColumnRange& r) {
    T* __restrict__ dst = cols + out;
    if (in_row < 0) {
      for (std::size_t ow = 0; ow < wo; ++ow) dst[ow] = pad;
      return;
    }
    const std::size_t count = r.hi - r.lo;
    for (std::size_t ow = 0; ow < r.lo; ++ow) dst[ow] = pad;
    for (std::size_t ow = r.hi; ow < wo; ++ow) dst[ow] = pad;
    if (count == 0) return;  // the whole row is padding
    const T* __restrict__ src = x + (in_row + std::ptrdiff_t(r.lo * sw) + r.offset);  // read by column lo
    if (sw == 1)
      for (std::size_t i = 0; i < count; ++i) dst[r.lo + i] = src[i];
    else
      for (std::size_t i = 0; i < count; ++i) dst[r.lo + i] = src[i * sw];
  });
}

// cols: (C·kh·kw, Ho·Wo) -> x: (C, H, W), accumulated into x (zero it first).
template <class T>
void col2im(const T* cols, std::size_t channels, std::size_t h, std::size_t w, const Window& win, T* x) {
  const std::size_t sw = win.sw;
  for_each_window_row(channels, h, w, win, [&](std::size_t out, std::ptrdiff_t in_row, const ColumnRange& r) {
    if (in_row < 0) return;
    const std::size_t count = r.hi - r.lo;
    if (count == 0) return;
    const T* __restrict__ src = cols + out + r.lo;
    T* __restrict__ dst = x + (in_row + std::ptrdiff_t(r.lo * sw) + r.offset);  // written by column lo
    if (sw == 1)
      for (std::size_t i = 0; i < count; ++i) dst[i] += src[i];
    else
      for (std::size_t i = 0; i < count; ++i) dst[i * sw] += src[i];
  });
}

// For each tap t of the window (row-major) and output o of a plane, the
// flat position in the plane that the tap reads, or -1 in the padding:
// taps[t·Ho·Wo + o]. The same for every plane, so computed once.
inline std::vector<std::int64_t> window_taps(std::size_t h, std::size_t w, const Window& win) {
  const std::size_t ho = win.out_h(h), wo = win.out_w(w);
  std::vector<std::int64_t> taps(win.kh * win.kw * ho * wo);
  std::int64_t* k = taps.data();
  for (std::size_t i = 0; i < win.kh; ++i)
    for (std::size_t j = 0; j < win.kw; ++j)
      for (std::size_t oh = 0; oh < ho; ++oh) {
        const std::ptrdiff_t ih = source_index(oh, i, win.sh, win.ph, win.dh, h);
        for (std::size_t ow = 0; ow < wo; ++ow) {
          const std::ptrdiff_t iw = source_index(ow, j, win.sw, win.pw, win.dw, w);
          *k++ = ih < 0 || iw < 0 ? -1 : ih * std::ptrdiff_t(w) + iw;
        }
      }
  return taps;
}

// windows: one plane's im2col columns (kh·kw, Ho·Wo) -> y: (Ho·Wo), the
// maximum of each window, and where: the flat position in the plane of each
// window's first maximum in row-major window order. taps from window_taps
// (-1 marks padding, which never wins, not even over -inf). A NaN is the
// maximum; the first NaN keeps it. Tap by tap over all outputs, contiguous
// and branch-free, so that the loop vectorizes.
template <class T>
void window_max(const T* windows, const std::int64_t* taps, std::size_t n_taps, std::size_t outputs, T* y,
                std::int64_t* where) {
  std::fill(y, y + outputs, T(0));
  std::fill(where, where + outputs, std::int64_t(-1));  // nothing seen yet
  for (std::size_t t = 0; t < n_taps; ++t) {
    const T* __restrict__ v = windows + t * outputs;
    const std::int64_t* __restrict__ k = taps + t * outputs;
    T* __restrict__ best = y;
    std::int64_t* __restrict__ at = where;
    for (std::size_t o = 0; o < outputs; ++o) {
      const T b = best[o];
      // Bitwise, not short-circuit: each operand is a vector mask.
      const bool take = (k[o] >= 0) & ((at[o] < 0) | (v[o] > b) | ((v[o] != v[o]) & (b == b)));
      best[o] = take ? v[o] : b;
      at[o] = take ? k[o] : at[o];
    }
  }
}

}  // namespace tg::kernels
