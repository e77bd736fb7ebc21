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
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

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

// Along one axis (input size `in`, output size `out`, stride s, padding p,
// dilation d): the outputs [lo, hi) whose kernel tap `tap` reads inside the
// input, and the offset such that output o reads input o·s + offset.
struct TapRange {
  std::size_t lo, hi;
  std::ptrdiff_t offset;
};
inline TapRange valid_outputs(std::size_t tap, std::size_t in, std::size_t out, std::size_t s, std::size_t p,
                              std::size_t d) {
  const std::ptrdiff_t offset = std::ptrdiff_t(tap * d) - std::ptrdiff_t(p);
  const auto step = std::ptrdiff_t(s);
  // smallest o with o·s + offset >= 0, and one past the largest with o·s + offset < in
  const std::ptrdiff_t lo = offset >= 0 ? 0 : (-offset + step - 1) / step;
  const std::ptrdiff_t last = std::ptrdiff_t(in) - 1 - offset;
  const std::ptrdiff_t hi = last < 0 ? 0 : std::min<std::ptrdiff_t>(std::ptrdiff_t(out), last / step + 1);
  return {std::size_t(std::min<std::ptrdiff_t>(lo, hi)), std::size_t(hi), offset};
}

// Walks the rows of cols of one image, (channel c, tap i, tap j), and calls
// row_op(cols row, x plane of c, rows, columns): the output rows and columns
// whose tap reads inside the image, so im2col and col2im share one indexing
// scheme and each loops over its valid block without per-element checks.
template <class RowOp>
void for_each_window_row(std::size_t channels, std::size_t h, std::size_t w, const Window& win, RowOp&& row_op) {
  const std::size_t ho = win.out_h(h), wo = win.out_w(w);
  for (std::size_t c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < win.kh; ++i) {
      const TapRange rows = valid_outputs(i, h, ho, win.sh, win.ph, win.dh);
      for (std::size_t j = 0; j < win.kw; ++j) {
        const TapRange columns = valid_outputs(j, w, wo, win.sw, win.pw, win.dw);
        row_op(((c * win.kh + i) * win.kw + j) * ho * wo, c * h * w, rows, columns);
      }
    }
}

// Where output row oh, column lo of a tap reads the image: the element
// (row oh·sh + rows.offset, column lo·sw + columns.offset) of the plane at `plane`.
inline std::size_t read_from(std::size_t plane, std::size_t oh, const TapRange& rows, const TapRange& columns,
                             std::size_t sh, std::size_t sw, std::size_t w) {
  const std::ptrdiff_t ih = std::ptrdiff_t(oh * sh) + rows.offset, iw = std::ptrdiff_t(columns.lo * sw) + columns.offset;
  return plane + std::size_t(ih) * w + std::size_t(iw);
}

#if defined(__AVX512F__)
// Rows of at most 16 floats, stride 1 along the width: one register holds a
// whole row, and masked loads and stores touch only its valid lanes. For
// the short rows of small images (LeNet-5's 10 and 14), where a copy or an
// add per row costs more in calls and loop tails than in moving data.
constexpr std::size_t kRowLanes = 16;

// Lanes [lo, hi) of a row register; none when hi <= lo.
inline __mmask16 lanes(std::ptrdiff_t lo, std::ptrdiff_t hi) {
  lo = std::clamp<std::ptrdiff_t>(lo, 0, kRowLanes);
  hi = std::clamp<std::ptrdiff_t>(hi, lo, kRowLanes);
  return __mmask16(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// Where a vector whose lane l is element l + shift of row `p` starts. As an
// integer: the lanes before the row are masked off and never read.
inline const float* shifted(const float* p, std::ptrdiff_t shift) {
  return reinterpret_cast<const float*>(reinterpret_cast<std::intptr_t>(p) + shift * std::ptrdiff_t(sizeof(float)));
}

// im2col for wo <= 16 and sw == 1: each cols row is one masked load of the
// x row at the tap's shift (padding lanes take `pad`) and one masked store.
inline void im2col_row_registers(const float* x, std::size_t channels, std::size_t h, std::size_t w,
                                 const Window& win, float pad, float* cols) {
  const std::size_t ho = win.out_h(h), wo = win.out_w(w);
  const __m512 padding = _mm512_set1_ps(pad);
  const __mmask16 row = lanes(0, std::ptrdiff_t(wo));
  for_each_window_row(channels, h, w, win, [&](std::size_t tap, std::size_t plane, const TapRange& rows,
                                               const TapRange& r) {
    float* const out = cols + tap;
    std::fill(out, out + rows.lo * wo, pad);
    std::fill(out + rows.hi * wo, out + ho * wo, pad);
    const __mmask16 inside = lanes(std::ptrdiff_t(r.lo), std::ptrdiff_t(r.hi));
    for (std::size_t oh = rows.lo; oh < rows.hi; ++oh) {
      const float* src = x + plane + std::size_t(std::ptrdiff_t(oh * win.sh) + rows.offset) * w;
      _mm512_mask_storeu_ps(out + oh * wo, row, _mm512_mask_loadu_ps(padding, inside, shifted(src, r.offset)));
    }
  });
}

// col2im for w <= 16 and sw == 1: per x row and kernel row, the row is
// loaded once, every column tap's row added at its shift, and stored once
// (tap by tap, below, it is loaded and stored kw times), in the order the
// taps would add one by one: the same sums, bit for bit.
inline void col2im_row_registers(const float* cols, std::size_t channels, std::size_t h, std::size_t w,
                                 const Window& win, float* x) {
  const std::size_t ho = win.out_h(h), wo = win.out_w(w);
  std::vector<TapRange> columns(win.kw);
  std::vector<__mmask16> adds(win.kw);  // the x lanes each column tap adds to
  for (std::size_t j = 0; j < win.kw; ++j) {
    columns[j] = valid_outputs(j, w, wo, 1, win.pw, win.dw);
    adds[j] = lanes(std::ptrdiff_t(columns[j].lo) + columns[j].offset, std::ptrdiff_t(columns[j].hi) + columns[j].offset);
  }
  const __mmask16 row = lanes(0, std::ptrdiff_t(w));
  for (std::size_t c = 0; c < channels; ++c)
    for (std::size_t i = 0; i < win.kh; ++i) {
      const TapRange rows = valid_outputs(i, h, ho, win.sh, win.ph, win.dh);
      const float* taps = cols + (c * win.kh + i) * win.kw * ho * wo;
      // The taps' rows are read kw at a time, which the hardware prefetcher
      // does not follow from memory (2 × slower at the TF CNN's conv2):
      // fetch the next kernel row's taps ahead.
      if (c + 1 < channels || i + 1 < win.kh)
        for (std::size_t k = 0; k < win.kw * ho * wo; k += 64 / sizeof(float))
          _mm_prefetch(reinterpret_cast<const char*>(taps + win.kw * ho * wo + k), _MM_HINT_T0);
      for (std::size_t oh = rows.lo; oh < rows.hi; ++oh) {
        float* dst = x + (c * h + std::size_t(std::ptrdiff_t(oh * win.sh) + rows.offset)) * w;
        __m512 sum = _mm512_maskz_loadu_ps(row, dst);
        for (std::size_t j = 0; j < win.kw; ++j) {
          const float* src = shifted(taps + j * ho * wo + oh * wo, -columns[j].offset);
          sum = _mm512_mask_add_ps(sum, adds[j], sum, _mm512_maskz_loadu_ps(adds[j], src));
        }
        _mm512_mask_storeu_ps(dst, row, sum);
      }
    }
}
#endif

// x: (C, H, W) -> cols: (C·kh·kw, Ho·Wo)
template <class T>
void im2col(const T* x, std::size_t channels, std::size_t h, std::size_t w, const Window& win, T pad, T* cols) {
  const std::size_t ho = win.out_h(h), wo = win.out_w(w), sh = win.sh, sw = win.sw;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>)
    if (sw == 1 && wo <= kRowLanes && !(sh == 1 && wo == w))  // one run per tap (below) is faster still
      return im2col_row_registers(x, channels, h, w, win, pad, cols);
#endif
  for_each_window_row(channels, h, w, win, [&](std::size_t row, std::size_t plane, const TapRange& rows,
                                               const TapRange& r) {
    T* const out = cols + row;
    const std::size_t count = r.hi - r.lo;
    if (count == 0 || rows.lo == rows.hi) {  // the tap reads padding only
      std::fill(out, out + ho * wo, pad);
      return;
    }
    std::fill(out, out + rows.lo * wo, pad);
    std::fill(out + rows.hi * wo, out + ho * wo, pad);
    if (sh == 1 && sw == 1 && wo == w) {
      // Output rows map to consecutive input rows at one fixed shift, so the
      // tap's valid block is one run of x: copy it whole, then overwrite the
      // elements that ran over a row's edge with padding.
      const std::size_t first = rows.lo * wo + r.lo, last = (rows.hi - 1) * wo + r.hi;
      std::memcpy(out + first, x + read_from(plane, rows.lo, rows, r, sh, sw, w), (last - first) * sizeof(T));
      for (std::size_t oh = rows.lo; oh < rows.hi; ++oh) {
        std::fill(out + oh * wo, out + oh * wo + r.lo, pad);
        std::fill(out + oh * wo + r.hi, out + (oh + 1) * wo, pad);
      }
      return;
    }
    for (std::size_t oh = rows.lo; oh < rows.hi; ++oh) {
      T* __restrict__ dst = out + oh * wo;
      std::fill(dst, dst + r.lo, pad);
      std::fill(dst + r.hi, dst + wo, pad);
      const T* __restrict__ src = x + read_from(plane, oh, rows, r, sh, sw, w);
      if (sw == 1)  // runs as short as 10 elements: memcpy's few wide moves beat a loop's scalar tail
        std::memcpy(dst + r.lo, src, count * sizeof(T));
      else if (sw == 2)  // pooling's usual stride: a constant the compiler vectorizes
        for (std::size_t k = 0; k < count; ++k) dst[r.lo + k] = src[2 * k];
      else
        for (std::size_t k = 0; k < count; ++k) dst[r.lo + k] = src[k * sw];
    }
  });
}

// cols: (C·kh·kw, Ho·Wo) -> x: (C, H, W), accumulated into x (zero it first).
template <class T>
void col2im(const T* cols, std::size_t channels, std::size_t h, std::size_t w, const Window& win, T* x) {
  const std::size_t wo = win.out_w(w), sh = win.sh, sw = win.sw;
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>)
    if (sw == 1 && w <= kRowLanes) return col2im_row_registers(cols, channels, h, w, win, x);
#endif
  for_each_window_row(channels, h, w, win, [&](std::size_t row, std::size_t plane, const TapRange& rows,
                                               const TapRange& r) {
    const std::size_t count = r.hi - r.lo;
    if (count == 0) return;  // the tap reads padding only
    for (std::size_t oh = rows.lo; oh < rows.hi; ++oh) {
      const T* __restrict__ src = cols + row + oh * wo + r.lo;
      T* __restrict__ dst = x + read_from(plane, oh, rows, r, sh, sw, w);
      if (sw == 1)
        for (std::size_t k = 0; k < count; ++k) dst[k] += src[k];
      else
        for (std::size_t k = 0; k < count; ++k) dst[k * sw] += src[k];
    }
  });
}

// For each tap t of the window (row-major) and output o of a plane, the
// flat position in the plane that the tap reads, or -1 in the padding:
// taps[t·Ho·Wo + o]. The same for every plane, so computed once. Index is
// int32 where the plane allows it: half the bytes, and the same lane width
// as float in the loop below.
template <class Index>
std::vector<Index> window_taps(std::size_t h, std::size_t w, const Window& win) {
  const std::size_t ho = win.out_h(h), wo = win.out_w(w);
  std::vector<Index> taps(win.kh * win.kw * ho * wo, Index(-1));
  Index* k = taps.data();
  for (std::size_t i = 0; i < win.kh; ++i) {
    const TapRange rows = valid_outputs(i, h, ho, win.sh, win.ph, win.dh);
    for (std::size_t j = 0; j < win.kw; ++j, k += ho * wo) {
      const TapRange columns = valid_outputs(j, w, wo, win.sw, win.pw, win.dw);
      for (std::size_t oh = rows.lo; oh < rows.hi; ++oh)
        for (std::size_t ow = columns.lo; ow < columns.hi; ++ow)
          k[oh * wo + ow] = Index(std::ptrdiff_t(oh * win.sh) + rows.offset) * Index(w) +
                            Index(std::ptrdiff_t(ow * win.sw) + columns.offset);
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
template <class T, class Index>
void window_max(const T* windows, const Index* taps, std::size_t n_taps, std::size_t outputs, T* y, Index* where) {
  std::fill(y, y + outputs, T(0));
  std::fill(where, where + outputs, Index(-1));  // nothing seen yet
  for (std::size_t t = 0; t < n_taps; ++t) {
    const T* __restrict__ v = windows + t * outputs;
    const Index* __restrict__ k = taps + t * outputs;
    T* __restrict__ best = y;
    Index* __restrict__ at = where;
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
