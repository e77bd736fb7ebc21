// A sum in registers that vectorizes without -ffast-math.
#pragma once

#include <cstddef>

namespace tg::kernels {

// Σ term(k) for k < n, in Acc, as eight partial sums so that the additions do
// not wait on each other and vectorize. The order is fixed, so the bits do not
// depend on how a caller splits its work over threads.
template <class Acc, class Term>
Acc lane_sum(std::size_t n, Term&& term) {
  constexpr std::size_t kLanes = 8;
  Acc lanes[kLanes] = {};
  std::size_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (std::size_t j = 0; j < kLanes; ++j) lanes[j] += Acc(term(k + j));
  Acc s = 0;
  for (; k < n; ++k) s += Acc(term(k));
  for (std::size_t j = 0; j < kLanes; ++j) s += lanes[j];
  return s;
}

}  // namespace tg::kernels
