#include "elementwise.hpp"

#include <cmath>

#include "../core/autograd.hpp"
#include "kernels/strided.hpp"
#include "reduce.hpp"

namespace tg {

namespace {

// A tensor outside the graph whose elements are f(x): masks and slopes that
// multiply a gradient. Constant, so their own derivative is zero.
template <class T, class F>
BasicTensor<T> constant_map(const BasicTensor<T>& x, F&& f) {
  return BasicTensor<T>(kernels::map(x.value(), f));
}

// The gradient for input i, reduced to its shape, or nothing if not needed.
template <class T, class Make>
BasicTensor<T> grad_if(const GradContext<T>& c, std::size_t i, Make&& make) {
  return c.needs_grad[i] ? sum_to(make(), c.input_shape(i)) : BasicTensor<T>();
}

}  // namespace

// ============================================================================
// binary
// ============================================================================

template <class T>
BasicTensor<T> add(const BasicTensor<T>& a, const BasicTensor<T>& b) {
  return record("add", {a, b}, kernels::map("add", a.value(), b.value(), [](T x, T y) { return x + y; }))
      .backward([](const GradContext<T>& c) {
        return Grads<T>{grad_if(c, 0, [&] { return c.grad; }),
                        grad_if(c, 1, [&] { return c.grad; })};
      });
}

template <class T>
BasicTensor<T> sub(const BasicTensor<T>& a, const BasicTensor<T>& b) {
  return record("sub", {a, b}, kernels::map("sub", a.value(), b.value(), [](T x, T y) { return x - y; }))
      .backward([](const GradContext<T>& c) {
        return Grads<T>{grad_if(c, 0, [&] { return c.grad; }),
                        grad_if(c, 1, [&] { return neg(c.grad); })};
      });
}

template <class T>
BasicTensor<T> mul(const BasicTensor<T>& a, const BasicTensor<T>& b) {
  return record("mul", {a, b}, kernels::map("mul", a.value(), b.value(), [](T x, T y) { return x * y; }))
      .save({save_if(b.requires_grad(), a), save_if(a.requires_grad(), b)})
      .backward([](const GradContext<T>& c) {
        const BasicTensor<T>& a = c.saved[0];
        const BasicTensor<T>& b = c.saved[1];
        return Grads<T>{grad_if(c, 0, [&] { return mul(c.grad, b); }),
                        grad_if(c, 1, [&] { return mul(c.grad, a); })};
      });
}

// d(a/b)/da = 1/b, d(a/b)/db = -a/b²
template <class T>
BasicTensor<T> div(const BasicTensor<T>& a, const BasicTensor<T>& b) {
  return record("div", {a, b}, kernels::map("div", a.value(), b.value(), [](T x, T y) { return x / y; }))
      .save({save_if(b.requires_grad(), a), b})
      .backward([](const GradContext<T>& c) {
        const BasicTensor<T>& a = c.saved[0];
        const BasicTensor<T>& b = c.saved[1];
        return Grads<T>{grad_if(c, 0, [&] { return div(c.grad, b); }),
                        grad_if(c, 1, [&] { return neg(div(mul(c.grad, a), mul(b, b))); })};
      });
}

// d(a^b)/da = b·a^(b-1), d(a^b)/db = a^b · ln a.
// NOTE: as PyTorch, d/da is 0 where b = 0, and d/db is 0 where a = 0 and
// b >= 0 (not the NaN of 0·∞): the exponent and the log's argument are shifted
// by constants exactly there, which leaves every other element and derivative
// unchanged. (At a = 0, b < 0 the value is already inf and d/db is NaN.)
template <class T>
BasicTensor<T> pow(const BasicTensor<T>& a, const BasicTensor<T>& b) {
  return record("pow", {a, b}, kernels::map("pow", a.value(), b.value(), [](T x, T y) { return std::pow(x, y); }))
      .save({a, b})
      .saves_output()
      .backward([](const GradContext<T>& c) {
        const BasicTensor<T>& a = c.saved[0];
        const BasicTensor<T>& b = c.saved[1];
        auto where_zero = [](const BasicTensor<T>& t) { return constant_map(t, [](T v) { return T(v == T(0)); }); };
        return Grads<T>{
            grad_if(c, 0, [&] { return mul(c.grad, mul(b, pow(a, add(sub(b, scalar<T>(1)), where_zero(b))))); }),
            grad_if(c, 1, [&] { return mul(c.grad, mul(c.output, log(add(a, where_zero(a))))); })};
      });
}

// ============================================================================
// unary
// ============================================================================

template <class T>
BasicTensor<T> neg(const BasicTensor<T>& x) {
  return record("neg", {x}, kernels::map(x.value(), [](T v) { return -v; }))
      .backward([](const GradContext<T>& c) { return Grads<T>{neg(c.grad)}; });
}

// d(e^x)/dx = e^x, the result itself.
template <class T>
BasicTensor<T> exp(const BasicTensor<T>& x) {
  return record("exp", {x}, kernels::map(x.value(), [](T v) { return std::exp(v); }))
      .saves_output()
      .backward([](const GradContext<T>& c) { return Grads<T>{mul(c.grad, c.output)}; });
}

// d(ln x)/dx = 1/x
template <class T>
BasicTensor<T> log(const BasicTensor<T>& x) {
  return record("log", {x}, kernels::map(x.value(), [](T v) { return std::log(v); }))
      .save({x})
      .backward([](const GradContext<T>& c) { return Grads<T>{div(c.grad, c.saved[0])}; });
}

// d(√x)/dx = 1 / (2√x), from the result.
template <class T>
BasicTensor<T> sqrt(const BasicTensor<T>& x) {
  return record("sqrt", {x}, kernels::map(x.value(), [](T v) { return std::sqrt(v); }))
      .saves_output()
      .backward([](const GradContext<T>& c) { return Grads<T>{div(c.grad, mul(c.output, scalar<T>(2)))}; });
}

// d|x|/dx = sign(x). NOTE: 0 at x = 0.
template <class T>
BasicTensor<T> abs(const BasicTensor<T>& x) {
  return record("abs", {x}, kernels::map(x.value(), [](T v) { return std::abs(v); }))
      .save({x})
      .backward([](const GradContext<T>& c) {
        return Grads<T>{mul(c.grad, constant_map(c.saved[0], [](T v) { return T((v > 0) - (v < 0)); }))};
      });
}

// d(tanh x)/dx = 1 - tanh²x, from the result.
template <class T>
BasicTensor<T> tanh(const BasicTensor<T>& x) {
  return record("tanh", {x}, kernels::map(x.value(), [](T v) { return std::tanh(v); }))
      .saves_output()
      .backward([](const GradContext<T>& c) {
        return Grads<T>{mul(c.grad, sub(scalar<T>(1), mul(c.output, c.output)))};
      });
}

// dσ/dx = σ(1 - σ), from the result.
template <class T>
BasicTensor<T> sigmoid(const BasicTensor<T>& x) {
  return record("sigmoid", {x}, kernels::map(x.value(), [](T v) { return T(1) / (T(1) + std::exp(-v)); }))
      .saves_output()
      .backward([](const GradContext<T>& c) {
        return Grads<T>{mul(c.grad, mul(c.output, sub(scalar<T>(1), c.output)))};
      });
}

// NOTE: the gradient at x = 0 is taken as 0.
template <class T>
BasicTensor<T> relu(const BasicTensor<T>& x) {
  return record("relu", {x}, kernels::map(x.value(), [](T v) { return v > 0 ? v : T(0); }))
      .saves_output()
      .backward([](const GradContext<T>& c) {
        return Grads<T>{mul(c.grad, constant_map(c.output, [](T y) { return T(y > 0); }))};
      });
}

// NOTE: the gradient at x = 0 is negative_slope.
template <class T>
BasicTensor<T> leaky_relu(const BasicTensor<T>& x, double negative_slope) {
  const T slope = T(negative_slope);
  return record("leaky_relu", {x}, kernels::map(x.value(), [slope](T v) { return v > 0 ? v : slope * v; }))
      .save({x})
      .backward([slope](const GradContext<T>& c) {
        return Grads<T>{mul(c.grad, constant_map(c.saved[0], [slope](T v) { return v > 0 ? T(1) : slope; }))};
      });
}

// NOTE: the gradient passes where low <= x <= high, boundaries included.
template <class T>
BasicTensor<T> clamp(const BasicTensor<T>& x, double low, double high) {
  if (low > high)
    throw ValueError("clamp: low (" + std::to_string(low) + ") is greater than high (" +
                     std::to_string(high) + ")");
  const T lo = T(low), hi = T(high);
  return record("clamp", {x}, kernels::map(x.value(), [lo, hi](T v) { return v < lo ? lo : (v > hi ? hi : v); }))
      .save({x})
      .backward([lo, hi](const GradContext<T>& c) {
        return Grads<T>{mul(c.grad, constant_map(c.saved[0], [lo, hi](T v) { return T(v >= lo && v <= hi); }))};
      });
}

template <class T>
BasicTensor<T> square(const BasicTensor<T>& x) {
  return mul(x, x);
}

#define TG_INSTANTIATE(T)                                                             \
  template BasicTensor<T> add(const BasicTensor<T>&, const BasicTensor<T>&);          \
  template BasicTensor<T> sub(const BasicTensor<T>&, const BasicTensor<T>&);          \
  template BasicTensor<T> mul(const BasicTensor<T>&, const BasicTensor<T>&);          \
  template BasicTensor<T> div(const BasicTensor<T>&, const BasicTensor<T>&);          \
  template BasicTensor<T> pow(const BasicTensor<T>&, const BasicTensor<T>&);          \
  template BasicTensor<T> neg(const BasicTensor<T>&);                                 \
  template BasicTensor<T> exp(const BasicTensor<T>&);                                 \
  template BasicTensor<T> log(const BasicTensor<T>&);                                 \
  template BasicTensor<T> sqrt(const BasicTensor<T>&);                                \
  template BasicTensor<T> abs(const BasicTensor<T>&);                                 \
  template BasicTensor<T> tanh(const BasicTensor<T>&);                                \
  template BasicTensor<T> sigmoid(const BasicTensor<T>&);                             \
  template BasicTensor<T> relu(const BasicTensor<T>&);                                \
  template BasicTensor<T> leaky_relu(const BasicTensor<T>&, double);                  \
  template BasicTensor<T> clamp(const BasicTensor<T>&, double, double);               \
  template BasicTensor<T> square(const BasicTensor<T>&);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg
