// Batch normalization in training, per channel, as plain loops with no tape.
// A contiguous (N, C, *) tensor holds channel c of sample n in the run of
// `inner` elements at (n·C + c)·inner; each channel's N runs are walked by
// one thread, a few times in a row (from cache when they fit).
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

// y = (x - mean)·scale + b per channel, scale = w / √(var + eps), with the
// batch's mean and biased variance: two passes, so that the centred sum of
// squares does not cancel, and x - mean taken in double, so that a mean
// large next to the spread does not either. w and b may be null (1 and 0). Writes the
// statistics in double: mean, var and invstd = 1/√(var + eps).
template <class T>
void batch_norm_forward(const T* x, const ChannelRuns& r, const T* w, const T* b, double eps, T* y, double* mean,
                        double* var, double* invstd) {
  parallel_for(r.c, 3 * r.numel(), [&](std::size_t first, std::size_t last) {
    for (std::size_t ch = first; ch < last; ++ch) {
      const double count = double(r.count());
      const double mu = channel_sum(r, ch, [x](std::size_t i) { return x[i]; }) / count;
      const double v = channel_sum(r, ch, [x, mu](std::size_t i) { return (x[i] - mu) * (x[i] - mu); }) / count;
      const double inv = 1.0 / std::sqrt(v + eps);
      const double scale = (w ? double(w[ch]) : 1.0) * inv;
      const T shift = b ? b[ch] : T(0);
      channel_write(r, ch, y, [x, mu, scale, shift](std::size_t i) { return T((x[i] - mu) * scale) + shift; });
      mean[ch] = mu;
      var[ch] = v;
      invstd[ch] = inv;
    }
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
  parallel_for(r.c, 3 * r.numel(), [&](std::size_t first, std::size_t last) {
    for (std::size_t ch = first; ch < last; ++ch) {
      const double mu = mean[ch], inv = invstd[ch], count = double(r.count());
      const double sum_dy = channel_sum(r, ch, [dy](std::size_t i) { return dy[i]; });
      if (db) db[ch] = T(sum_dy);
      if (!dx && !dw) continue;
      const double sum_dy_xhat =
          channel_sum(r, ch, [x, dy, mu](std::size_t i) { return dy[i] * (x[i] - mu); }) * inv;
      if (dw) dw[ch] = T(sum_dy_xhat);
      if (!dx) continue;
      // dx = a·dy + slope·(x - mean) + offset, with a = w·invstd,
      // slope = -a·invstd·dw/M and offset = -a·db/M
      const double a = (w ? double(w[ch]) : 1.0) * inv;
      const double slope = -a * inv * sum_dy_xhat / count;
      const T ta = T(a), offset = T(-a * sum_dy / count);
      channel_write(r, ch, dx, [=](std::size_t i) { return ta * dy[i] + T(slope * (x[i] - mu)) + offset; });
    }
  });
}

}  // namespace tg::kernels
