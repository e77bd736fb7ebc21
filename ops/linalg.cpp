#include "linalg.hpp"

#include <algorithm>

#include "../core/autograd.hpp"
#include "elementwise.hpp"
#include "kernels/blas.hpp"
#include "kernels/strided.hpp"
#include "reduce.hpp"
#include "shape.hpp"

namespace tg {

// C = op(A)·op(B). With dC the upstream gradient, the rules are gemms too:
//   C = A·B    dA = dC·Bᵀ    dB = Aᵀ·dC
//   C = A·Bᵀ   dA = dC·B     dB = dCᵀ·A
//   C = Aᵀ·B   dA = B·dCᵀ    dB = A·dC
//   C = Aᵀ·Bᵀ  dA = Bᵀ·dCᵀ   dB = dCᵀ·Aᵀ
// then summed over any batch axes the operand was broadcast along.
template <class T>
BasicTensor<T> gemm(const BasicTensor<T>& a, const BasicTensor<T>& b, bool transpose_a, bool transpose_b) {
  static const char* const names[2][2] = {{"matmul", "matmul(a, bT)"}, {"matmul(aT, b)", "matmul(aT, bT)"}};
  const char* op = names[transpose_a][transpose_b];
  const Shape sa = a.shape(), sb = b.shape();
  auto describe = [&] {
    return shape_str(sa) + (transpose_a ? "T" : "") + " @ " + shape_str(sb) + (transpose_b ? "T" : "");
  };
  if (sa.size() < 2 || sb.size() < 2)
    throw ShapeError(std::string(op) + ": operands need at least 2 dimensions, got " + describe());
  const std::size_t rows_a = sa[sa.size() - 2], cols_a = sa.back();
  const std::size_t rows_b = sb[sb.size() - 2], cols_b = sb.back();
  const std::size_t m = transpose_a ? cols_a : rows_a, k = transpose_a ? rows_a : cols_a;
  const std::size_t n = transpose_b ? rows_b : cols_b, kb = transpose_b ? cols_b : rows_b;
  if (k != kb)
    throw ShapeError(std::string(op) + ": inner dimensions differ (" + std::to_string(k) + " vs " +
                     std::to_string(kb) + ") in " + describe());
  const Shape batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  const Shape batch = kernels::broadcast_shapes(op, batch_a, batch_b);
  Shape out_shape(batch);
  out_shape.push_back(m);
  out_shape.push_back(n);

  // out: (batch..., M, N)
  xt::xarray<T> out(out_shape);
  const T* pa = a.data();
  const T* pb = b.data();
  T* pc = out.data();
  if (k == 0) {
    std::fill(out.begin(), out.end(), T(0));
  } else if (m * n > 0 && batch_b.empty() && !transpose_a) {
    // b is one matrix: stack a's batch into rows for a single GEMM.
    kernels::gemm(false, transpose_b, kernels::product(batch) * m, n, k, pa, pb, T(0), pc);
  } else if (m * n > 0) {
    const auto matrices = [](kernels::Strides s, std::ptrdiff_t size) {
      for (auto& e : s) e *= size;
      return s;
    };
    kernels::for_each_offset(
        batch, matrices(kernels::broadcast_strides(batch_a, batch), std::ptrdiff_t(rows_a * cols_a)),
        matrices(kernels::broadcast_strides(batch_b, batch), std::ptrdiff_t(rows_b * cols_b)),
        matrices(kernels::contiguous_strides(batch), std::ptrdiff_t(m * n)),
        [&](std::ptrdiff_t ia, std::ptrdiff_t ib, std::ptrdiff_t ic) {
          kernels::gemm(transpose_a, transpose_b, m, n, k, pa + ia, pb + ib, T(0), pc + ic);
        });
  }
  return record(op, {a, b}, std::move(out))
      .save({a, b})
      .backward([ta = transpose_a, tb = transpose_b](const GradContext<T>& c) {
        const BasicTensor<T>& a = c.saved[0];
        const BasicTensor<T>& b = c.saved[1];
        const BasicTensor<T>& g = c.grad;
        BasicTensor<T> da, db;
        if (c.needs_grad[0])
          da = sum_to(ta ? (tb ? gemm(b, g, true, true) : gemm(b, g, false, true))
                         : (tb ? gemm(g, b, false, false) : gemm(g, b, false, true)),
                      c.input_shape(0));
        if (c.needs_grad[1])
          db = sum_to(tb ? (ta ? gemm(g, a, true, true) : gemm(g, a, true, false))
                         : (ta ? gemm(a, g, false, false) : gemm(a, g, true, false)),
                      c.input_shape(1));
        return Grads<T>{da, db};
      });
}

template <class T>
BasicTensor<T> matmul(const BasicTensor<T>& a, const BasicTensor<T>& b) {
  return gemm(a, b, false, false);
}

template <class T>
BasicTensor<T> linear(const BasicTensor<T>& x, const BasicTensor<T>& w, const BasicTensor<T>& b) {
  if (w.dim() != 2)
    throw ShapeError("linear: weight must have shape (out_features, in_features), got " + shape_str(w.shape()));
  if (x.dim() == 0 || x.shape().back() != w.shape()[1])
    throw ShapeError("linear: input of shape " + shape_str(x.shape()) + " does not end in the " +
                     std::to_string(w.shape()[1]) + " features that weight " + shape_str(w.shape()) + " expects");
  if (b.defined() && b.shape() != Shape{w.shape()[0]})
    throw ShapeError("linear: bias must have shape (" + std::to_string(w.shape()[0]) + ",), got " +
                     shape_str(b.shape()));
  // x: (..., in) · wᵀ: (in, out) -> (..., out); 1-d x becomes one row.
  if (x.dim() == 1) return reshape(linear(reshape(x, Shape{1, x.numel()}), w, b), Shape{w.shape()[0]});
  const BasicTensor<T> y = gemm(x, w, false, true);
  return b.defined() ? add(y, b) : y;
}

#define TG_INSTANTIATE(T)                                                                          \
  template BasicTensor<T> gemm(const BasicTensor<T>&, const BasicTensor<T>&, bool, bool);          \
  template BasicTensor<T> matmul(const BasicTensor<T>&, const BasicTensor<T>&);                    \
  template BasicTensor<T> linear(const BasicTensor<T>&, const BasicTensor<T>&, const BasicTensor<T>&);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg
