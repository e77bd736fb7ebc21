// Batch normalization in training, per channel, as plain loops with no tape.
// A contiguous (N, C, *) tensor holds channel c of sample n in the run of
// `inner` elements at (n·C + c)·inner; each channel's N runs are walked by
// one thread, a few times, while they are still in its cache.
#pragma once

#include <cmath>
#include <cstddef>

#include "../../core/parallel.hpp"
#include "lane_sum.hpp"

namespace tg::kernels {

struct ChannelRuns {
  std::size_t n = 0, c = 0, inner = 0;  // (N, C, *) with Π * = inner

  std::size_t count() const { return n * inner; }  // values per channel
  std::size_t numel() const { return n * c * inner; }
  std::size_t at(std::size_t sample, std::size_t channel) const { return (sample * c + channel) * inner; }
};

// Σ term(i) over channel ch's values, i their offsets, summed in double.
template <class Term>
double channel_sum(const ChannelRuns& r, std::size_t ch, Term&& term) {
  double s = 0;
  for (std::size_t n = 0; n < r.n; ++n) {
    const std::size_t run = r.at(n, ch);
    s += lane_sum<double>(r.inner, [&](std::size_t k) { return term(run + k); });
  }
  return s;
}

// out[i] = f(i) over channel ch's values.
template <class T, class F>
void channel_write(const ChannelRuns& r, std::size_t ch, T* out, F&& f) {
  for (std::size_t n = 0; n < r.n; ++n) {
    const std::size_t run = r.at(n, ch);
    for (std::size_t k = run; k < run + r.inner; ++k) out[k] = f(k);
  }
}

// y = (x - mean) / √(var + eps) · w + b per channel, with the batch's mean and
// biased variance (two passes: the centred sum of squares does not cancel).
// w and b may be null (1 and 0). Writes mean, var and invstd = 1/√(var + eps).
template <class T>
void batch_norm_forward(const T* x, const ChannelRuns& r, const T* w, const T* b, double eps, T* y, T* mean,
                        T* var, T* invstd) {
  parallel_for(r.c, 3 * r.numel(), [&](std::size_t first, std::size_t last) {
    for (std::size_t ch = first; ch < last; ++ch) {
      const double count = double(r.count());
      const double mu = channel_sum(r, ch, [x](std::size_t i) { return x[i]; }) / count;
      const double v = channel_sum(r, ch, [x, mu](std::size_t i) { return (x[i] - mu) * (x[i] - mu); }) / count;
      const double inv = 1.0 / std::sqrt(v + eps);
      const T scale = T((w ? double(w[ch]) : 1.0) * inv), shift = T((b ? double(b[ch]) : 0.0) - mu * double(scale));
      channel_write(r, ch, y, [x, scale, shift](std::size_t i) { return x[i] * scale + shift; });
      mean[ch] = T(mu);
      var[ch] = T(v);
      invstd[ch] = T(inv);
    }
  });
}

// The gradients of batch_norm_forward's y, given dy = dL/dy, with x̂ = (x - mean)·invstd
// and M values per channel:
//   db = Σ dy,  dw = Σ dy·x̂,  dx = w·invstd·(dy - db/M - x̂·dw/M).
// Any of dx, dw, db may be null (not wanted); w may be null (1).
template <class T>
void batch_norm_backward(const T* x, const T* dy, const ChannelRuns& r, const T* mean, const T* invstd, const T* w,
                         T* dx, T* dw, T* db) {
  parallel_for(r.c, 3 * r.numel(), [&](std::size_t first, std::size_t last) {
    for (std::size_t ch = first; ch < last; ++ch) {
      const double mu = double(mean[ch]), inv = double(invstd[ch]), count = double(r.count());
      const double sum_dy = channel_sum(r, ch, [dy](std::size_t i) { return dy[i]; });
      const double sum_dy_xhat =
          channel_sum(r, ch, [x, dy, mu](std::size_t i) { return dy[i] * (x[i] - mu); }) * inv;
      if (db) db[ch] = T(sum_dy);
      if (dw) dw[ch] = T(sum_dy_xhat);
      if (!dx) continue;
      // dx = a·dy + c·(x - mean) + d, with a = w·invstd, c = -a·invstd·dw/M, d = -a·db/M
      const double a = (w ? double(w[ch]) : 1.0) * inv;
      const T ta = T(a), tc = T(-a * inv * sum_dy_xhat / count), td = T(-a * sum_dy / count), tmu = T(mu);
      channel_write(r, ch, dx, [x, dy, ta, tc, td, tmu](std::size_t i) { return ta * dy[i] + tc * (x[i] - tmu) + td; });
    }
  });
}

}  // namespace tg::kernels
