#include "elementwise.hpp"

#include <cmath>

#include "../core/autograd.hpp"
#include "kernels/strided.hpp"
#include "reduce.hpp"

namespace tg {

namespace {

// a and b in their common dtype, contiguous. The conversions are recorded, so
// each input's gradient comes back in its own dtype. `floating` promotes
// integer pairs to float32 as well (division, pow).
std::pair<Tensor, Tensor> promoted(const char* op, const Tensor& a, const Tensor& b, bool floating) {
  TG_CHECK(a.defined() && b.defined(), ValueError, op << ": an operand is an undefined tensor");
  Dtype common = promote_types(a.dtype(), b.dtype());
  if (floating && !is_floating(common)) common = kFloat32;
  return {a.to(common).contiguous(), b.to(common).contiguous()};
}

// x as a contiguous floating tensor (integers become float32).
Tensor floating(const char* op, const Tensor& x) {
  TG_CHECK(x.defined(), ValueError, op << ": the input is an undefined tensor");
  return x.to(is_floating(x.dtype()) ? x.dtype() : kFloat32).contiguous();
}

// f over a and b, whose dtype is numeric (float32, float64, int64).
template <class F>
Tensor numeric_map(const char* op, const Tensor& a, const Tensor& b, F f) {
  return visit_numeric(op, a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return kernels::map<T>(op, a, b, f);
  });
}

// f over a floating x, as a constant (no graph): forward values, and masks
// and slopes that multiply a gradient.
template <class F>
Tensor float_map(const char* op, const Tensor& x, F f) {
  return visit_floating(op, x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return kernels::map<T>(x, [&f](T v) { return T(f(v)); });
  });
}

// The gradient for input i, reduced to its shape, or nothing if not needed.
template <class Make>
Tensor grad_if(const GradContext& c, std::size_t i, Make&& make) {
  return c.needs_grad[i] ? sum_to(make(), c.input_shape(i)) : Tensor();
}

// 1 where pred(x), else 0, in x's dtype: a constant mask.
template <class Pred>
Tensor mask_of(const Tensor& x, Pred pred) {
  return float_map("mask", x, [&pred](auto v) { return pred(v) ? 1 : 0; });
}

// a and b compared elementwise (with promotion and broadcasting) into a bool
// tensor; no gradient.
template <class Pred>
Tensor compare(const char* op, const Tensor& a0, const Tensor& b0, Pred pred) {
  TG_CHECK(a0.defined() && b0.defined(), ValueError, op << ": an operand is an undefined tensor");
  Dtype common = promote_types(a0.dtype(), b0.dtype());
  const Tensor a = a0.detach().to(common).contiguous(), b = b0.detach().to(common).contiguous();
  return visit_dtype(common, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return kernels::map<T, bool>(op, a, b, pred);
  });
}

}  // namespace

// ============================================================================
// binary
// ============================================================================

Tensor add(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = promoted("add", a0, b0, false);
  return record("add", {a, b}, numeric_map("add", a, b, [](auto x, auto y) { return x + y; }))
      .backward([](const GradContext& c) {
        return Grads{grad_if(c, 0, [&] { return c.grad; }), grad_if(c, 1, [&] { return c.grad; })};
      });
}

Tensor sub(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = promoted("sub", a0, b0, false);
  return record("sub", {a, b}, numeric_map("sub", a, b, [](auto x, auto y) { return x - y; }))
      .backward([](const GradContext& c) {
        return Grads{grad_if(c, 0, [&] { return c.grad; }), grad_if(c, 1, [&] { return neg(c.grad); })};
      });
}

Tensor mul(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = promoted("mul", a0, b0, false);
  return record("mul", {a, b}, numeric_map("mul", a, b, [](auto x, auto y) { return x * y; }))
      .save({save_if(b.requires_grad(), a), save_if(a.requires_grad(), b)})
      .backward([](const GradContext& c) {
        const Tensor& a = c.saved[0];
        const Tensor& b = c.saved[1];
        return Grads{grad_if(c, 0, [&] { return mul(c.grad, b); }), grad_if(c, 1, [&] { return mul(c.grad, a); })};
      });
}

// d(a/b)/da = 1/b, d(a/b)/db = -a/b²
Tensor div(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = promoted("div", a0, b0, true);
  return record("div", {a, b}, numeric_map("div", a, b, [](auto x, auto y) { return x / y; }))
      .save({save_if(b.requires_grad(), a), b})
      .backward([](const GradContext& c) {
        const Tensor& a = c.saved[0];
        const Tensor& b = c.saved[1];
        return Grads{grad_if(c, 0, [&] { return div(c.grad, b); }),
                     grad_if(c, 1, [&] { return neg(div(mul(c.grad, a), mul(b, b))); })};
      });
}

// d(a^b)/da = b·a^(b-1), d(a^b)/db = a^b · ln a.
// NOTE: as PyTorch, d/da is 0 where b = 0, and d/db is 0 where a = 0 and
// b >= 0 (not the NaN of 0·∞): the exponent and the log's argument are shifted
// by constants exactly there, which leaves every other element and derivative
// unchanged. (At a = 0, b < 0 the value is already inf and d/db is NaN.)
Tensor pow(const Tensor& a0, const Tensor& b0) {
  const auto [a, b] = promoted("pow", a0, b0, true);
  return record("pow", {a, b}, numeric_map("pow", a, b, [](auto x, auto y) { return decltype(x)(std::pow(x, y)); }))
      .save({a, b})
      .saves_output()
      .backward([](const GradContext& c) {
        const Tensor& a = c.saved[0];
        const Tensor& b = c.saved[1];
        auto where_zero = [](const Tensor& t) { return mask_of(t, [](auto v) { return v == 0; }); };
        return Grads{grad_if(c, 0, [&] { return mul(c.grad, mul(b, pow(a, add(sub(b, 1), where_zero(b))))); }),
                     grad_if(c, 1, [&] { return mul(c.grad, mul(c.output, log(add(a, where_zero(a))))); })};
      });
}

namespace {

// The larger (or smaller) of a and b, elementwise, through where: a NaN on
// either side wins, as in torch.
Tensor pick(const char* op, const Tensor& a, const Tensor& b, bool larger) {
  const Tensor take_a = compare(op, a, b, [larger](auto x, auto y) {
    return x != x || (y == y && (larger ? x >= y : x <= y));
  });
  return where(take_a, a, b);
}

}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return pick("maximum", a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return pick("minimum", a, b, false); }

// ============================================================================
// unary
// ============================================================================

Tensor neg(const Tensor& x0) {
  TG_CHECK(x0.defined(), ValueError, "neg: the input is an undefined tensor");
  const Tensor x = x0.contiguous();
  const Tensor value = visit_numeric("neg", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return kernels::map<T>(x, [](T v) { return T(-v); });
  });
  return record("neg", {x}, value).backward([](const GradContext& c) { return Grads{neg(c.grad)}; });
}

// d(e^x)/dx = e^x, the result itself.
Tensor exp(const Tensor& x0) {
  const Tensor x = floating("exp", x0);
  return record("exp", {x}, float_map("exp", x, [](auto v) { return std::exp(v); }))
      .saves_output()
      .backward([](const GradContext& c) { return Grads{mul(c.grad, c.output)}; });
}

// d(e^x - 1)/dx = e^x = result + 1.
Tensor expm1(const Tensor& x0) {
  const Tensor x = floating("expm1", x0);
  return record("expm1", {x}, float_map("expm1", x, [](auto v) { return std::expm1(v); }))
      .saves_output()
      .backward([](const GradContext& c) { return Grads{mul(c.grad, add(c.output, 1))}; });
}

// d(ln x)/dx = 1/x
Tensor log(const Tensor& x0) {
  const Tensor x = floating("log", x0);
  return record("log", {x}, float_map("log", x, [](auto v) { return std::log(v); }))
      .save({x})
      .backward([](const GradContext& c) { return Grads{div(c.grad, c.saved[0])}; });
}

// d ln(1 + x)/dx = 1 / (1 + x)
Tensor log1p(const Tensor& x0) {
  const Tensor x = floating("log1p", x0);
  return record("log1p", {x}, float_map("log1p", x, [](auto v) { return std::log1p(v); }))
      .save({x})
      .backward([](const GradContext& c) { return Grads{div(c.grad, add(c.saved[0], 1))}; });
}

// d(√x)/dx = 1 / (2√x), from the result.
Tensor sqrt(const Tensor& x0) {
  const Tensor x = floating("sqrt", x0);
  return record("sqrt", {x}, float_map("sqrt", x, [](auto v) { return std::sqrt(v); }))
      .saves_output()
      .backward([](const GradContext& c) { return Grads{div(c.grad, mul(c.output, 2))}; });
}

// d|x|/dx = sign(x). NOTE: 0 at x = 0.
Tensor abs(const Tensor& x0) {
  const Tensor x = floating("abs", x0);
  return record("abs", {x}, float_map("abs", x, [](auto v) { return std::abs(v); }))
      .save({x})
      .backward([](const GradContext& c) { return Grads{mul(c.grad, sign(c.saved[0]))}; });
}

Tensor sign(const Tensor& x0) {
  const Tensor x = floating("sign", x0);
  return record("sign", {x}, float_map("sign", x, [](auto v) { return (v > 0) - (v < 0); }))
      .backward([](const GradContext& c) { return Grads{zeros_like(c.grad)}; });
}

// d(sin x)/dx = cos x
Tensor sin(const Tensor& x0) {
  const Tensor x = floating("sin", x0);
  return record("sin", {x}, float_map("sin", x, [](auto v) { return std::sin(v); }))
      .save({x})
      .backward([](const GradContext& c) { return Grads{mul(c.grad, cos(c.saved[0]))}; });
}

// d(cos x)/dx = -sin x
Tensor cos(const Tensor& x0) {
  const Tensor x = floating("cos", x0);
  return record("cos", {x}, float_map("cos", x, [](auto v) { return std::cos(v); }))
      .save({x})
      .backward([](const GradContext& c) { return Grads{neg(mul(c.grad, sin(c.saved[0])))}; });
}

// d erf(x)/dx = 2/√π · e^(-x²)
Tensor erf(const Tensor& x0) {
  const Tensor x = floating("erf", x0);
  return record("erf", {x}, float_map("erf", x, [](auto v) { return std::erf(v); }))
      .save({x})
      .backward([](const GradContext& c) {
        const Tensor& x = c.saved[0];
        return Grads{mul(c.grad, mul(exp(neg(mul(x, x))), 2.0 / std::sqrt(M_PI)))};
      });
}

// d(tanh x)/dx = 1 - tanh²x, from the result.
Tensor tanh(const Tensor& x0) {
  const Tensor x = floating("tanh", x0);
  return record("tanh", {x}, float_map("tanh", x, [](auto v) { return std::tanh(v); }))
      .saves_output()
      .backward([](const GradContext& c) { return Grads{mul(c.grad, sub(1, mul(c.output, c.output)))}; });
}

// dσ/dx = σ(1 - σ), from the result.
Tensor sigmoid(const Tensor& x0) {
  const Tensor x = floating("sigmoid", x0);
  return record("sigmoid", {x}, float_map("sigmoid", x, [](auto v) { return 1 / (1 + std::exp(-v)); }))
      .saves_output()
      .backward([](const GradContext& c) { return Grads{mul(c.grad, mul(c.output, sub(1, c.output)))}; });
}

namespace {

// g where keep holds, else 0 (keep: bool, g's shape): relu's rule. Its own
// gradient is the same masking, so relu differentiates twice.
Tensor keep_where(const Tensor& g0, const Tensor& keep) {
  const Tensor g = g0.contiguous();
  Tensor out = empty(g.shape(), g.dtype());
  visit_floating("keep_where", g.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* __restrict__ pg = g.data<T>();
    // bool as bytes, and both read every time: a select, not a branch, and
    // a loop g++ vectorizes (it does not load a vector of bool).
    const auto* __restrict__ pk = reinterpret_cast<const std::uint8_t*>(keep.data<bool>());
    T* __restrict__ po = static_cast<T*>(out.impl()->storage->data());
    for (std::size_t i = 0, n = g.numel(); i < n; ++i) {
      const T v = pg[i];
      po[i] = pk[i] ? v : T(0);
    }
  });
  return record("keep_where", {g}, std::move(out)).save({keep}).backward([](const GradContext& c) {
    return Grads{keep_where(c.grad, c.saved[0])};
  });
}

}  // namespace

// NOTE: the gradient at x = 0 is taken as 0. NaN propagates (as torch), and
// gets no gradient. The rule keeps a one-byte mask of x > 0, not the result.
Tensor relu(const Tensor& x0) {
  const Tensor x = floating("relu", x0).contiguous();
  Tensor y = empty(x.shape(), x.dtype());
  const bool recording = grad_enabled() && x.requires_grad();
  Tensor keep = recording ? empty(x.shape(), kBool) : Tensor();
  visit_floating("relu", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* __restrict__ px = x.data<T>();
    T* __restrict__ py = static_cast<T*>(y.impl()->storage->data());
    const std::size_t n = x.numel();
    for (std::size_t i = 0; i < n; ++i) py[i] = px[i] > T(0) || px[i] != px[i] ? px[i] : T(0);
    if (!recording) return;
    auto* __restrict__ pk = static_cast<std::uint8_t*>(keep.impl()->storage->data());  // bool as bytes, as above
    for (std::size_t i = 0; i < n; ++i) pk[i] = std::uint8_t(px[i] > T(0));
  });
  return record("relu", {x}, std::move(y)).save({keep}).backward([](const GradContext& c) {
    return Grads{keep_where(c.grad, c.saved[0])};
  });
}

// NOTE: the gradient at x = 0 is negative_slope.
Tensor leaky_relu(const Tensor& x0, double negative_slope) {
  const Tensor x = floating("leaky_relu", x0);
  return record("leaky_relu", {x},
                float_map("leaky_relu", x, [=](auto v) { return v > 0 ? v : decltype(v)(negative_slope) * v; }))
      .save({x})
      .backward([negative_slope](const GradContext& c) {
        return Grads{mul(c.grad, float_map("leaky_relu", c.saved[0], [=](auto v) { return v > 0 ? 1.0 : negative_slope; }))};
      });
}

// NOTE: the gradient passes where low <= x <= high, boundaries included.
Tensor clamp(const Tensor& x0, double low, double high) {
  TG_CHECK(!(low > high), ValueError, "clamp: low (" << low << ") is greater than high (" << high << ")");
  TG_CHECK(!std::isnan(low) && !std::isnan(high), ValueError, "clamp: low and high must not be NaN");
  const Tensor x = floating("clamp", x0);
  return record("clamp", {x}, float_map("clamp", x, [=](auto v) {
           using T = decltype(v);
           return v < T(low) ? T(low) : (v > T(high) ? T(high) : v);
         }))
      .save({x})
      .backward([=](const GradContext& c) {
        return Grads{mul(c.grad, mask_of(c.saved[0], [=](auto v) { return v >= decltype(v)(low) && v <= decltype(v)(high); }))};
      });
}

Tensor square(const Tensor& x) { return mul(x, x); }

// ============================================================================
// comparisons and selection
// ============================================================================

Tensor eq(const Tensor& a, const Tensor& b) { return compare("eq", a, b, [](auto x, auto y) { return x == y; }); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare("ne", a, b, [](auto x, auto y) { return x != y; }); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare("lt", a, b, [](auto x, auto y) { return x < y; }); }
Tensor le(const Tensor& a, const Tensor& b) { return compare("le", a, b, [](auto x, auto y) { return x <= y; }); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare("gt", a, b, [](auto x, auto y) { return x > y; }); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare("ge", a, b, [](auto x, auto y) { return x >= y; }); }

Tensor logical_not(const Tensor& mask) {
  TG_CHECK(mask.dtype() == kBool, DtypeError, "logical_not: expected a bool tensor, got " << dtype_name(mask.dtype()));
  return kernels::map<bool>(mask.contiguous(), [](bool v) { return !v; });
}

// The gradient goes to a where cond holds and to b elsewhere: the mask, as a
// constant of the operands' dtype, multiplies it.
Tensor where(const Tensor& cond0, const Tensor& a0, const Tensor& b0) {
  TG_CHECK(cond0.dtype() == kBool, DtypeError,
           "where: the condition must be a bool tensor (from a comparison), got " << dtype_name(cond0.dtype()));
  // Named, not a structured binding: clang++ 14 does not capture those in C++17.
  const std::pair<Tensor, Tensor> ab = promoted("where", a0, b0, false);
  const Tensor &a = ab.first, &b = ab.second;
  const Tensor cond = cond0.contiguous();
  const Shape shape =
      kernels::broadcast_shapes("where", kernels::broadcast_shapes("where", cond.shape(), a.shape()), b.shape());
  Tensor picked = empty(shape, a.dtype());
  visit_numeric("where", a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const bool* pc = cond.data<bool>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* po = static_cast<T*>(picked.impl()->storage->data());
    std::size_t k = 0;
    for_each_offset(shape, kernels::broadcast_strides(cond.shape(), shape), kernels::broadcast_strides(a.shape(), shape),
                    kernels::broadcast_strides(b.shape(), shape),
                    [&](std::ptrdiff_t ic, std::ptrdiff_t ia, std::ptrdiff_t ib) { po[k++] = pc[ic] ? pa[ia] : pb[ib]; });
  });
  return record("where", {a, b}, std::move(picked))
      .save({cond.to(a.dtype())})
      .backward([](const GradContext& c) {
        const Tensor& m = c.saved[0];
        return Grads{grad_if(c, 0, [&] { return mul(c.grad, m); }), grad_if(c, 1, [&] { return mul(c.grad, sub(1, m)); })};
      });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, scalar_like(x, value), x);
}

}  // namespace tg
