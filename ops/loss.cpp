#include "loss.hpp"

#include "../core/autograd.hpp"
#include "elementwise.hpp"
#include "reduce.hpp"
#include "shape.hpp"

namespace tg {

namespace {

// x minus its maximum along `axis`. The shift is a constant: it cancels in
// softmax, so no gradient flows through it.
Tensor shift_by_max(const char* op, const Tensor& x, std::ptrdiff_t axis) {
  const Axes axes{std::ptrdiff_t(normalize_axis(op, axis, x.dim(), x.shape()))};
  Tensor m;
  {
    NoGradGuard no_grad;
    m = max(x, axes, /*keepdims=*/true);
  }
  return sub(x, m);
}

// -Σ_i log_probs[i, labels[i]] / N as Σ log_probs · w with a constant w that
// holds -1/N at each label: one mul and one sum, both differentiable twice.
Tensor picked_mean(const char* op, const Tensor& log_probs, const Tensor& labels0) {
  if (log_probs.dim() != 2)
    throw ShapeError(std::string(op) + ": expected input of shape (N, C), got " + shape_str(log_probs.shape()));
  TG_CHECK(labels0.dtype() == kInt64, DtypeError,
           op << ": labels must be int64 class indices, got " << dtype_name(labels0.dtype()));
  const std::size_t n = log_probs.shape()[0], classes = log_probs.shape()[1];
  if (labels0.dim() != 1 || labels0.numel() != n)
    throw ShapeError(std::string(op) + ": labels of shape " + shape_str(labels0.shape()) + " for input of shape " +
                     shape_str(log_probs.shape()) + " (need one label per row)");
  if (n == 0) throw ShapeError(std::string(op) + ": empty batch (input of shape " + shape_str(log_probs.shape()) + ")");
  const Tensor labels = labels0.contiguous();
  const std::int64_t* label = labels.data<std::int64_t>();
  Tensor weights = zeros(Shape{n, classes}, log_probs.dtype());
  visit_floating(op, log_probs.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* pw = static_cast<T*>(weights.impl()->storage->data());
    for (std::size_t i = 0; i < n; ++i) {
      if (label[i] < 0 || std::size_t(label[i]) >= classes)
        throw ValueError(std::string(op) + ": label " + std::to_string(label[i]) + " at position " + std::to_string(i) +
                         " is outside [0, " + std::to_string(classes) + ")");
      pw[i * classes + std::size_t(label[i])] = T(-1.0 / double(n));
    }
  });
  return sum(mul(log_probs, weights));
}

Tensor label_tensor(const std::vector<std::int64_t>& labels) {
  Tensor t = empty(Shape{labels.size()}, kInt64);
  std::copy(labels.begin(), labels.end(), static_cast<std::int64_t*>(t.impl()->storage->data()));
  return t;
}

}  // namespace

Tensor log_softmax(const Tensor& x, std::ptrdiff_t axis) {
  const Tensor z = shift_by_max("log_softmax", x, axis);
  return sub(z, log(sum(exp(z), {axis}, /*keepdims=*/true)));
}

Tensor softmax(const Tensor& x, std::ptrdiff_t axis) {
  const Tensor e = exp(shift_by_max("softmax", x, axis));
  return div(e, sum(e, {axis}, /*keepdims=*/true));
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& labels) { return picked_mean("nll_loss", log_probs, labels); }

Tensor nll_loss(const Tensor& log_probs, const std::vector<std::int64_t>& labels) {
  return nll_loss(log_probs, label_tensor(labels));
}

Tensor nll_loss(const Tensor& log_probs, std::initializer_list<std::int64_t> labels) {
  return nll_loss(log_probs, std::vector<std::int64_t>(labels));
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  if (logits.dim() != 2)
    throw ShapeError("cross_entropy: expected logits of shape (N, C), got " + shape_str(logits.shape()));
  return picked_mean("cross_entropy", log_softmax(logits, 1), labels);
}

Tensor cross_entropy(const Tensor& logits, const std::vector<std::int64_t>& labels) {
  return cross_entropy(logits, label_tensor(labels));
}

Tensor cross_entropy(const Tensor& logits, std::initializer_list<std::int64_t> labels) {
  return cross_entropy(logits, std::vector<std::int64_t>(labels));
}

Tensor mse_loss(const Tensor& input, const Tensor& target) {
  if (input.shape() != target.shape())
    throw ShapeError("mse_loss: input " + shape_str(input.shape()) + " and target " + shape_str(target.shape()) +
                     " must have the same shape");
  const Tensor diff = sub(input, target);
  return mean(mul(diff, diff));
}

}  // namespace tg
