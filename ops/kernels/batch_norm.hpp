// Batch normalization in training, per channel, as plain loops with no tape.
// A contiguous (N, C, *) tensor holds channel c of sample n in the run of
// `inner` elements at (n·C + c)·inner. Each thread takes a range of channels
// and walks them in blocks, a few passes per block:
//  - with runs (after a convolution), one channel per block, its N runs in
//    turn, so that its later passes read from cache;
//  - on (N, C) (BatchNorm1d on features, runs of one), all its channels at
//    once, sample by sample: one channel at a time would be a gather of
//    stride C, and a sample's channels are contiguous.
// Each channel is summed by one thread in a fixed order, so the bits do not
// depend on the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "../../core/parallel.hpp"
#include "lane_sum.hpp"

namespace tg::kernels {

struct ChannelRuns {
  std::size_t n = 0, c = 0, inner = 0;  // (N, C, *) with Π * = inner

  std::size_t count() const { return n * inner; }  // values per channel
  std::size_t numel() const { return n * c * inner; }
  std::size_t at(std::size_t sample, std::size_t channel) const { return (sample * c + channel) * inner; }
};

// Calls block(lo, hi) over [first, last) in the blocks described above.
template <class Block>
void for_each_channel_block(const ChannelRuns& r, std::size_t first, std::size_t last, Block&& block) {
  if (r.inner == 1) return block(first, last);
  for (std::size_t ch = first; ch < last; ++ch) block(ch, ch + 1);
}

// sums[ch - lo] = Σ term(ch, i) over channel ch's values (i their offsets),
// for ch in [lo, hi), in double.
template <class Term>
void channel_sums(const ChannelRuns& r, std::size_t lo, std::size_t hi, double* sums, Term&& term) {
  std::fill(sums, sums + (hi - lo), 0.0);
  if (r.inner == 1) {  // sample by sample, over contiguous channels: the inner loop vectorizes
    for (std::size_t n = 0; n < r.n; ++n)
      for (std::size_t ch = lo; ch < hi; ++ch) sums[ch - lo] += double(term(ch, r.at(n, ch)));
    return;
  }
  for (std::size_t ch = lo; ch < hi; ++ch) {
    double sum = 0;
    for (std::size_t n = 0; n < r.n; ++n) {
      const std::size_t run = r.at(n, ch);
      sum += lane_sum<double>(r.inner, [&](std::size_t k) { return term(ch, run + k); });
    }
    sums[ch - lo] = sum;
  }
}

// out[i] = channel(ch)(i) over the values of channels [lo, hi): channel(ch)
// returns channel ch's function of the offset, its constants copied. Along a
// channel's runs that function is made once, so the stores to out cannot be
// taken to change its constants; on (N, C) it is made per value, and the
// loop vectorizes over the channels' constants instead.
template <class T, class Channel>
void channel_write(const ChannelRuns& r, std::size_t lo, std::size_t hi, T* out, Channel&& channel) {
  if (r.inner == 1) {  // as in channel_sums
    for (std::size_t n = 0; n < r.n; ++n)
      for (std::size_t ch = lo; ch < hi; ++ch) out[r.at(n, ch)] = channel(ch)(r.at(n, ch));
    return;
  }
  for (std::size_t ch = lo; ch < hi; ++ch) {
    const auto f = channel(ch);
    for (std::size_t n = 0; n < r.n; ++n) {
      const std::size_t run = r.at(n, ch);
      for (std::size_t k = run; k < run + r.inner; ++k) out[k] = f(k);
    }
  }
}

// y = (x - mean)·scale + b per channel, scale = w / √(var + eps), with the
// batch's mean and biased variance: two passes, so that the centred sum of
// squares does not cancel, and x - mean taken in double, so that a mean
// large next to the spread does not either. w and b may be null (1 and 0).
// Writes the statistics in double: mean, var and invstd = 1/√(var + eps).
template <class T>
void batch_norm_forward(const T* x, const ChannelRuns& r, const T* w, const T* b, double eps, T* y, double* mean,
                        double* var, double* invstd) {
  const double count = double(r.count());
  std::vector<double> scale(r.c);  // per channel, allocated once for all the threads
  parallel_for(r.c, 3 * r.numel(), [&](std::size_t first, std::size_t last) {
    for_each_channel_block(r, first, last, [&](std::size_t lo, std::size_t hi) {
      channel_sums(r, lo, hi, mean + lo, [x](std::size_t, std::size_t i) { return x[i]; });
      for (std::size_t ch = lo; ch < hi; ++ch) mean[ch] /= count;
      channel_sums(r, lo, hi, var + lo, [x, mean](std::size_t ch, std::size_t i) {
        const double d = x[i] - mean[ch];
        return d * d;
      });
      for (std::size_t ch = lo; ch < hi; ++ch) {
        var[ch] /= count;
        invstd[ch] = 1.0 / std::sqrt(var[ch] + eps);
        scale[ch] = (w ? double(w[ch]) : 1.0) * invstd[ch];
      }
      channel_write(r, lo, hi, y, [&](std::size_t ch) {
        return [x, mu = mean[ch], sc = scale[ch], shift = b ? b[ch] : T(0)](std::size_t i) {
          return T((x[i] - mu) * sc) + shift;
        };
      });
    });
  });
}

// The gradients of batch_norm_forward's y, given dy = dL/dy, with x̂ = (x - mean)·invstd
// and M values per channel:
//   db = Σ dy,  dw = Σ dy·x̂,  dx = w·invstd·(dy - db/M - x̂·dw/M).
// Any of dx, dw, db may be null (not wanted); x is read only for dx or dw;
// w may be null (1).
template <class T>
void batch_norm_backward(const T* x, const T* dy, const ChannelRuns& r, const double* mean, const double* invstd,
                         const T* w, T* dx, T* dw, T* db) {
  const double count = double(r.count());
  // Per channel: Σ dy and Σ dy·(x - mean), then dx = a·dy + slope·(x - mean) + offset
  // with a = w·invstd, slope = -a·invstd·dw/M and offset = -a·db/M.
  // Separate arrays, not one of structs, so that the (N, C) walk vectorizes over channels.
  std::vector<double> sum_dy(r.c), sum_dy_xc(r.c), slope(r.c);
  std::vector<T> a(r.c), offset(r.c);
  parallel_for(r.c, 3 * r.numel(), [&](std::size_t first, std::size_t last) {
    for_each_channel_block(r, first, last, [&](std::size_t lo, std::size_t hi) {
      channel_sums(r, lo, hi, &sum_dy[lo], [dy](std::size_t, std::size_t i) { return dy[i]; });
      if (dx || dw)
        channel_sums(r, lo, hi, &sum_dy_xc[lo],
                     [x, dy, mean](std::size_t ch, std::size_t i) { return dy[i] * (x[i] - mean[ch]); });
      for (std::size_t ch = lo; ch < hi; ++ch) {
        const double a_ch = (w ? double(w[ch]) : 1.0) * invstd[ch], dw_ch = sum_dy_xc[ch] * invstd[ch];
        if (db) db[ch] = T(sum_dy[ch]);
        if (dw) dw[ch] = T(dw_ch);
        a[ch] = T(a_ch);
        slope[ch] = -a_ch * invstd[ch] * dw_ch / count;
        offset[ch] = T(-a_ch * sum_dy[ch] / count);
      }
      if (dx)
        channel_write(r, lo, hi, dx, [&](std::size_t ch) {
          return [x, dy, mu = mean[ch], a = a[ch], slope = slope[ch], offset = offset[ch]](std::size_t i) {
            return a * dy[i] + T(slope * (x[i] - mu)) + offset;
          };
        });
    });
  });
}

}  // namespace tg::kernels
