#include "loss.hpp"

#include "../core/autograd.hpp"
#include "elementwise.hpp"
#include "reduce.hpp"
#include "shape.hpp"

namespace tg {

namespace {

// x minus its maximum along `axis`. The shift is a constant: it cancels in
// softmax, so no gradient flows through it.
template <class T>
BasicTensor<T> shift_by_max(const char* op, const BasicTensor<T>& x, std::ptrdiff_t axis) {
  const Axes axes{std::ptrdiff_t(normalize_axis(op, axis, x.dim(), x.shape()))};
  BasicTensor<T> m;
  {
    NoGradGuard no_grad;
    m = max(x, axes, /*keepdims=*/true);
  }
  return sub(x, m);
}

// -Σ_i log_probs[i, labels[i]] / N as Σ log_probs · w with a constant w that
// holds -1/N at each label: one mul and one sum, both differentiable twice.
template <class T>
BasicTensor<T> picked_mean(const char* op, const BasicTensor<T>& log_probs,
                           const std::vector<std::int64_t>& labels) {
  if (log_probs.dim() != 2)
    throw ShapeError(std::string(op) + ": expected input of shape (N, C), got " + shape_str(log_probs.shape()));
  const std::size_t n = log_probs.shape()[0], classes = log_probs.shape()[1];
  if (labels.size() != n)
    throw ShapeError(std::string(op) + ": " + std::to_string(labels.size()) + " labels for input of shape " +
                     shape_str(log_probs.shape()));
  if (n == 0) throw ShapeError(std::string(op) + ": empty batch (input of shape " + shape_str(log_probs.shape()) + ")");
  xt::xarray<T> weights = xt::zeros<T>({n, classes});
  for (std::size_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || std::size_t(labels[i]) >= classes)
      throw ValueError(std::string(op) + ": label " + std::to_string(labels[i]) + " at position " + std::to_string(i) +
                       " is outside [0, " + std::to_string(classes) + ")");
    weights(i, std::size_t(labels[i])) = T(-1.0 / double(n));
  }
  return sum(mul(log_probs, BasicTensor<T>(std::move(weights))));
}

}  // namespace

template <class T>
BasicTensor<T> log_softmax(const BasicTensor<T>& x, std::ptrdiff_t axis) {
  const BasicTensor<T> z = shift_by_max("log_softmax", x, axis);
  return sub(z, log(sum(exp(z), {axis}, /*keepdims=*/true)));
}

template <class T>
BasicTensor<T> softmax(const BasicTensor<T>& x, std::ptrdiff_t axis) {
  const BasicTensor<T> e = exp(shift_by_max("softmax", x, axis));
  return div(e, sum(e, {axis}, /*keepdims=*/true));
}

template <class T>
BasicTensor<T> nll_loss(const BasicTensor<T>& log_probs, const std::vector<std::int64_t>& labels) {
  return picked_mean("nll_loss", log_probs, labels);
}

template <class T>
BasicTensor<T> cross_entropy(const BasicTensor<T>& logits, const std::vector<std::int64_t>& labels) {
  if (logits.dim() != 2)
    throw ShapeError("cross_entropy: expected logits of shape (N, C), got " + shape_str(logits.shape()));
  return picked_mean("cross_entropy", log_softmax(logits, 1), labels);
}

template <class T>
BasicTensor<T> mse_loss(const BasicTensor<T>& input, const BasicTensor<T>& target) {
  if (input.shape() != target.shape())
    throw ShapeError("mse_loss: input " + shape_str(input.shape()) + " and target " + shape_str(target.shape()) +
                     " must have the same shape");
  const BasicTensor<T> diff = sub(input, target);
  return mean(mul(diff, diff));
}

#define TG_INSTANTIATE(T)                                                                       \
  template BasicTensor<T> softmax(const BasicTensor<T>&, std::ptrdiff_t);                       \
  template BasicTensor<T> log_softmax(const BasicTensor<T>&, std::ptrdiff_t);                   \
  template BasicTensor<T> nll_loss(const BasicTensor<T>&, const std::vector<std::int64_t>&);    \
  template BasicTensor<T> cross_entropy(const BasicTensor<T>&, const std::vector<std::int64_t>&); \
  template BasicTensor<T> mse_loss(const BasicTensor<T>&, const BasicTensor<T>&);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg
