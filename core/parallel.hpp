// tapegrad's own loops on several threads: OpenMP, the runtime oneDNN's GEMM
// uses too, so both share one pool of tg::get_num_threads() threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>

#include "config.hpp"
#include "strided.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tg {

// Below about this many elements per thread a loop stays on the calling
// thread: waking a team costs more than it saves.
inline constexpr std::size_t kParallelGrain = std::size_t(1) << 15;

// Calls f(begin, end) on consecutive, disjoint parts of [0, n), one per
// thread, or f(0, n) on this thread when `work` (about the elements the whole
// loop touches) is small. The parts depend only on n and the thread count and
// each is walked in order: a kernel whose parts write disjoint outputs gives
// the same results with any thread count. An exception thrown by f on any
// thread reaches the caller once every part has ended (the first one thrown,
// when several are); an exception leaving an OpenMP region would end the
// process instead.
template <class F>
void parallel_for(std::size_t n, std::size_t work, F&& f) {
  if (n == 0) return;
#if defined(_OPENMP)
  const std::size_t threads =
      std::min({std::size_t(get_num_threads()), n, work / kParallelGrain});
  if (threads > 1 && !omp_in_parallel()) {
    std::exception_ptr error;
#pragma omp parallel num_threads(int(threads))
    {
      const auto t = std::size_t(omp_get_thread_num()), k = std::size_t(omp_get_num_threads());
      const std::size_t begin = n * t / k, end = n * (t + 1) / k;
      try {
        if (begin < end) f(begin, end);
      } catch (...) {
#pragma omp critical(tg_parallel_for_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#else
  (void)work;
#endif
  f(std::size_t(0), n);
}

// for_each_row (strided.hpp) with its rows split over threads as parallel_for
// splits [0, n): for walks whose rows write disjoint outputs.
template <class F>
void parallel_rows(const Shape& shape, const Strides& s0, const Strides& s1, const Strides& s2, F&& row) {
  const std::size_t rows = row_count(shape);
  parallel_for(rows, product(shape), [&](std::size_t first, std::size_t last) {
    for_each_row(shape, s0, s1, s2, row, first, last);
  });
}

}  // namespace tg
