#include "linalg.hpp"

#include <algorithm>
#include <type_traits>

#include "../core/autograd.hpp"
#include "elementwise.hpp"
#include "kernels/blas.hpp"
#include "kernels/strided.hpp"
#include "reduce.hpp"
#include "shape.hpp"

namespace tg {

namespace {

// The sizes of C = op(A)·op(B), checked.
struct GemmShape {
  std::size_t m, n, k;
  Shape batch_a, batch_b;
};

GemmShape gemm_shape(const char* op, const Shape& sa, const Shape& sb, bool ta, bool tb) {
  auto describe = [&] { return shape_str(sa) + (ta ? "T" : "") + " @ " + shape_str(sb) + (tb ? "T" : ""); };
  if (sa.size() < 2 || sb.size() < 2)
    throw ShapeError(std::string(op) + ": operands need at least 2 dimensions, got " + describe());
  const std::size_t rows_a = sa[sa.size() - 2], cols_a = sa.back();
  const std::size_t rows_b = sb[sb.size() - 2], cols_b = sb.back();
  const std::size_t k = ta ? rows_a : cols_a, kb = tb ? cols_b : rows_b;
  if (k != kb)
    throw ShapeError(std::string(op) + ": inner dimensions differ (" + std::to_string(k) + " vs " +
                     std::to_string(kb) + ") in " + describe());
  return {ta ? cols_a : rows_a, tb ? rows_b : cols_b, k, Shape(sa.begin(), sa.end() - 2), Shape(sb.begin(), sb.end() - 2)};
}

Tensor gemm_batch_sum(const Tensor& a, const Tensor& b, bool ta, bool tb);

// The gradient of one operand of C = op(A)·op(B), from dC (= g):
//   C = A·B    dA = dC·Bᵀ    dB = Aᵀ·dC
//   C = A·Bᵀ   dA = dC·B     dB = dCᵀ·A
//   C = Aᵀ·B   dA = B·dCᵀ    dB = A·dC
//   C = Aᵀ·Bᵀ  dA = Bᵀ·dCᵀ   dB = dCᵀ·Aᵀ
// summed over the batch axes the operand was broadcast along. A 2-d operand
// used by every matrix of a batch (a conv kernel, a dense weight) gets that
// sum from one accumulating GEMM per batch element, never a batched product.
Tensor product_for(const Shape& target, const Tensor& x, const Tensor& y, bool tx, bool ty) {
  const Shape& sx = x.shape();
  const Shape& sy = y.shape();
  const bool batched = sx.size() > 2 || sy.size() > 2;
  if (target.size() == 2 && batched && Shape(sx.begin(), sx.end() - 2) == Shape(sy.begin(), sy.end() - 2))
    return gemm_batch_sum(x, y, tx, ty);
  return sum_to(gemm(x, y, tx, ty), target);
}

Grads gemm_grads(const GradContext& c, bool ta, bool tb) {
  const Tensor& a = c.saved[0];
  const Tensor& b = c.saved[1];
  const Tensor& g = c.grad;
  Tensor da, db;
  if (c.needs_grad[0]) {
    const Shape s = c.input_shape(0);
    da = ta ? (tb ? product_for(s, b, g, true, true) : product_for(s, b, g, false, true))
            : (tb ? product_for(s, g, b, false, false) : product_for(s, g, b, false, true));
  }
  // db reads a and g only: b's memory (a convolution's columns) can take
  // db (their gradient), which has its size.
  if (b.defined()) c.free_saved(1);
  if (c.needs_grad[1]) {
    const Shape s = c.input_shape(1);
    db = tb ? (ta ? product_for(s, g, a, true, true) : product_for(s, g, a, true, false))
            : (ta ? product_for(s, a, g, false, false) : product_for(s, a, g, true, false));
  }
  return {da, db};
}

// Products a batch-summed GEMM adds in one chain, at least (see below).
constexpr std::size_t kSumGroup = 16;

// Σ_i op(A_i)·op(B_i) over a batch both operands share: a 2-d result.
Tensor gemm_batch_sum(const Tensor& a0, const Tensor& b0, bool ta, bool tb) {
  const Tensor a = a0.contiguous(), b = b0.contiguous();
  const GemmShape gs = gemm_shape("matmul_batch_sum", a.shape(), b.shape(), ta, tb);
  if (gs.batch_a != gs.batch_b)
    throw ShapeError("matmul_batch_sum: batch shapes differ: " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  const std::size_t batch = kernels::product(gs.batch_a);
  // The first GEMM writes with beta = 0: no zeros to write first.
  Tensor out = gs.m * gs.n * gs.k > 0 && batch > 0 ? empty(Shape{gs.m, gs.n}, a.dtype()) : zeros(Shape{gs.m, gs.n}, a.dtype());
  if (gs.m * gs.n * gs.k > 0 && batch > 0) {
    visit_floating("matmul_batch_sum", a.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* pc = static_cast<T*>(out.impl()->storage->data());
      if (ta && !tb) {
        // Σ A_iᵀ·B_i is one GEMM over the stacked rows of A and B.
        kernels::gemm(true, false, gs.m, gs.n, batch * gs.k, pa, pb, T(0), pc);
        return;
      }
      // Each group of consecutive products is summed in order into its own
      // matrix, the groups on the threads (each GEMM on one thread, as for a
      // batch in gemm below), and the groups' sums are then added in order:
      // the same bits for every thread count. One chain of accumulating
      // GEMMs would run on oneDNN's threads, which gain little from a second
      // at a convolution's shapes (1.06 × at the TF CNN's conv2). Groups
      // hold kSumGroup products, or more where the extra sums would outgrow
      // the operands (a batch of outer products).
      const std::size_t size = gs.m * gs.n;
      const std::size_t most = std::min((batch + kSumGroup - 1) / kSumGroup, 1 + (a.numel() + b.numel()) / size);
      const std::size_t per_group = (batch + most - 1) / most, groups = (batch + per_group - 1) / per_group;
      const Tensor rest = groups > 1 ? empty(Shape{(groups - 1) * size}, a.dtype()) : Tensor();  // group 0: into out
      T* const sums = groups > 1 ? static_cast<T*>(rest.impl()->storage->data()) : nullptr;
      const std::size_t work = std::is_same_v<T, float> ? batch * size * gs.k : 0;  // multiply-adds
      kernels::parallel_for(groups, work, [&](std::size_t first, std::size_t last) {
        for (std::size_t g = first; g < last; ++g) {
          T* sum = g == 0 ? pc : sums + (g - 1) * size;
          for (std::size_t i = g * per_group; i < std::min(batch, (g + 1) * per_group); ++i)
            kernels::gemm(ta, tb, gs.m, gs.n, gs.k, pa + i * gs.m * gs.k, pb + i * gs.k * gs.n,
                          T(i % per_group ? 1 : 0), sum);
        }
      });
      for (std::size_t g = 1; g < groups; ++g) {
        const T* __restrict__ from = sums + (g - 1) * size;
        for (std::size_t e = 0; e < size; ++e) pc[e] += from[e];
      }
    });
  }
  return record("matmul_batch_sum", {a, b}, std::move(out))
      .save({save_if(b.requires_grad(), a), save_if(a.requires_grad(), b)})
      .backward([ta, tb](const GradContext& c) { return gemm_grads(c, ta, tb); });
}

}  // namespace

// C = op(A)·op(B), batched over leading axes that broadcast.
Tensor gemm(const Tensor& a0, const Tensor& b0, bool transpose_a, bool transpose_b) {
  static const char* const names[2][2] = {{"matmul", "matmul(a, bT)"}, {"matmul(aT, b)", "matmul(aT, bT)"}};
  const char* op = names[transpose_a][transpose_b];
  TG_CHECK(a0.defined() && b0.defined(), ValueError, op << ": an operand is an undefined tensor");
  Dtype dtype = promote_types(a0.dtype(), b0.dtype());
  TG_CHECK(is_floating(dtype), DtypeError,
           op << ": operands must be float32 or float64, got " << dtype_name(a0.dtype()) << " and "
              << dtype_name(b0.dtype()));
  const Tensor a = a0.to(dtype).contiguous(), b = b0.to(dtype).contiguous();
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  const GemmShape gs = gemm_shape(op, sa, sb, transpose_a, transpose_b);
  const std::size_t m = gs.m, n = gs.n, k = gs.k;
  Shape batch;
  try {
    batch = kernels::broadcast_shapes(op, gs.batch_a, gs.batch_b);
  } catch (const ShapeError&) {
    throw ShapeError(std::string(op) + ": batch dimensions " + shape_str(gs.batch_a) + " and " +
                     shape_str(gs.batch_b) + " do not broadcast in " + shape_str(sa) + " @ " + shape_str(sb));
  }
  Shape out_shape(batch);
  out_shape.push_back(m);
  out_shape.push_back(n);

  // out: (batch..., M, N)
  Tensor out = k == 0 ? zeros(out_shape, dtype) : empty(out_shape, dtype);
  visit_floating(op, dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = static_cast<T*>(out.impl()->storage->data());
    if (k == 0 || m * n == 0) return;
    if (gs.batch_b.empty() && !transpose_a) {
      // b is one matrix: stack a's batch into rows for a single GEMM.
      kernels::gemm(false, transpose_b, kernels::product(batch) * m, n, k, pa, pb, T(0), pc);
      return;
    }
    const auto matrices = [](kernels::Strides s, std::size_t size) {
      for (auto& e : s) e *= std::ptrdiff_t(size);
      return s;
    };
    const kernels::Strides step_a = matrices(kernels::broadcast_strides(gs.batch_a, batch), m * k),
                           step_b = matrices(kernels::broadcast_strides(gs.batch_b, batch), k * n);
    // The matrices of a float batch (a convolution's images) go to the
    // threads, each GEMM on one thread: such small GEMMs split poorly, and
    // oneDNN runs serially inside a parallel region. Double GEMM stays on
    // OpenBLAS and its own threads.
    const std::size_t count = kernels::product(batch);
    const std::size_t work = std::is_same_v<T, float> ? count * m * n : 0;
    kernels::parallel_for(count, work, [&](std::size_t first, std::size_t last) {
      for (std::size_t i = first; i < last; ++i) {
        std::ptrdiff_t ia = 0, ib = 0;
        for (std::size_t d = batch.size(), rest = i; d-- > 0; rest /= batch[d]) {
          ia += step_a[d] * std::ptrdiff_t(rest % batch[d]);
          ib += step_b[d] * std::ptrdiff_t(rest % batch[d]);
        }
        kernels::gemm(transpose_a, transpose_b, m, n, k, pa + ia, pb + ib, T(0), pc + i * m * n);
      }
    });
  });
  return record(op, {a, b}, std::move(out))
      .save({save_if(b.requires_grad(), a), save_if(a.requires_grad(), b)})
      .backward([ta = transpose_a, tb = transpose_b](const GradContext& c) { return gemm_grads(c, ta, tb); });
}

Tensor matmul(const Tensor& a, const Tensor& b) { return gemm(a, b, false, false); }

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
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
  const Tensor y = gemm(x, w, false, true);
  return b.defined() ? add(y, b) : y;
}

}  // namespace tg
