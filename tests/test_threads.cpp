// tapegrad's own kernels split over threads (OpenMP) give the results of one
// thread, to the bit: each part writes its own outputs and every output is
// computed in the serial order. The tensors here are large enough to be split.
// An exception in a part on any thread reaches parallel_for's caller.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad/core/parallel.hpp>
#include <tapegrad/tapegrad.hpp>

#include "tensor_values.hpp"

using tg::Tensor;

namespace {

// Restores the thread count on exit.
struct ThreadCount {
  int saved = tg::get_num_threads();
  explicit ThreadCount(int n) { tg::set_num_threads(n); }
  ~ThreadCount() { tg::set_num_threads(saved); }
};

// Results and gradients of a conv, relu, max-pool (with ties: relu's zeros)
// and batch-statistics step, plus broadcasting, transposed copies, in-place
// updates and gradient accumulation, computed with `threads` threads. 40
// images: the conv's weight gradient sums them in three groups, which go to
// different threads.
std::vector<Tensor> run(int threads) {
  const ThreadCount count(threads);
  tg::Generator gen(7);
  const Tensor x = tg::randn({40, 3, 30, 30}, gen).requires_grad_();
  const Tensor w = tg::randn({8, 3, 3, 3}, gen).requires_grad_();
  const Tensor b = tg::randn({8}, gen).requires_grad_();
  const Tensor y = tg::relu(tg::conv2d(x, w, b, 1, 1));                    // (40, 8, 30, 30)
  const Tensor pooled = tg::max_pool2d(y, 2);                               // (40, 8, 15, 15)
  const Tensor centered = tg::sub(y, tg::mean(y, {0, 2, 3}, true));         // reduce over leading and trailing axes
  const Tensor columns = tg::sum(tg::reshape(y, {40 * 8, 900}), {0});      // reduce the leading axis of rows
  const Tensor transposed = tg::transpose(tg::reshape(y, {320, 900}), 0, 1).contiguous();
  const Tensor row_max = tg::max(tg::reshape(y, {320, 900}), {1});
  const Tensor loss = tg::add(tg::add(tg::sum(tg::mul(pooled, pooled)), tg::sum(tg::mul(centered, y))),
                              tg::add(tg::sum(columns), tg::sum(row_max)));
  loss.backward();
  Tensor updated = tg::randn({300, 400}, gen);
  updated.mul_(0.9).add_(tg::randn({300, 400}, gen), -0.01);
  return {y, pooled, centered, columns, transposed, row_max, x.grad(), w.grad(), b.grad(), updated};
}

}  // namespace

TEST_CASE("the threaded kernels give the one-thread results, bit for bit") {
  const std::vector<Tensor> one = run(1), two = run(2);
  REQUIRE(one.size() == two.size());
  for (std::size_t k = 0; k < one.size(); ++k) {
    CAPTURE(k);
    CHECK(one[k].shape() == two[k].shape());
    CHECK(values_of(one[k]) == values_of(two[k]));
  }
}

TEST_CASE("an exception thrown in a part on any thread reaches the caller after every part has run") {
  const ThreadCount count(2);
  const std::size_t n = 1000, work = 4 * tg::kParallelGrain;  // enough to split in two
  const std::thread::id caller = std::this_thread::get_id();
  for (const bool first_part : {true, false}) {
    CAPTURE(first_part);
    std::vector<int> visited(n, 0);
    std::thread::id thrower;
    const auto body = [&](std::size_t first, std::size_t last) {
      for (std::size_t i = first; i < last; ++i) visited[i] = 1;
      if ((first == 0) == first_part) {
        thrower = std::this_thread::get_id();
        throw tg::ValueError("part [" + std::to_string(first) + ", " + std::to_string(last) + ") failed");
      }
    };
    CHECK_THROWS_WITH_AS(tg::parallel_for(n, work, body), first_part ? "part [0, 500) failed" : "part [500, 1000) failed",
                         tg::ValueError);
    CHECK(std::count(visited.begin(), visited.end(), 1) == int(n));
#if defined(_OPENMP)
    CHECK((thrower == caller) == first_part);  // the second part ran on the other thread
#endif
  }
}
