#include "loss.hpp"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

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

std::string str(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

// Refuses BatchMean (kl_div's own) and values outside the enum.
void check_reduction(const char* op, Reduction reduction, bool batchmean_allowed = false) {
  switch (reduction) {
    case Reduction::None:
    case Reduction::Mean:
    case Reduction::Sum: return;
    case Reduction::BatchMean:
      if (batchmean_allowed) return;
      throw ValueError(std::string(op) + ": reduction 'batchmean' is only defined for kl_div");
  }
  throw ValueError(std::string(op) + ": unknown reduction " + std::to_string(int(reduction)));
}

// Per-element losses reduced as asked (check_reduction has run).
Tensor reduce(const Tensor& loss, Reduction reduction) {
  switch (reduction) {
    case Reduction::Sum: return sum(loss);
    case Reduction::Mean: return mean(loss);
    default: return loss;
  }
}

// An elementwise loss's input and target: equal shapes, a floating input.
void check_pair(const char* op, const Tensor& input, const Tensor& target, Reduction reduction,
                bool batchmean_allowed = false) {
  TG_CHECK(input.defined() && target.defined(), ValueError, op << ": input and target must be defined tensors");
  if (input.shape() != target.shape())
    throw ShapeError(std::string(op) + ": input " + shape_str(input.shape()) + " and target " +
                     shape_str(target.shape()) + " must have the same shape");
  TG_CHECK(is_floating(input.dtype()), DtypeError,
           op << ": expected a float32 or float64 input, got " << dtype_name(input.dtype()));
  check_reduction(op, reduction, batchmean_allowed);
}

// A weight that must broadcast to the input's shape without changing it.
void check_broadcasts_to(const char* op, const char* what, const Tensor& w, const Shape& shape) {
  if (!w.defined()) return;
  bool ok = w.dim() <= shape.size();
  for (std::size_t k = 0; ok && k < w.dim(); ++k) {
    const std::size_t a = w.shape()[w.dim() - 1 - k], b = shape[shape.size() - 1 - k];
    ok = a == b || a == 1;
  }
  if (!ok)
    throw ShapeError(std::string(op) + ": " + what + " of shape " + shape_str(w.shape()) +
                     " does not broadcast to the input's shape " + shape_str(shape));
}

// log(1 + e^z) as relu(z) + log(1 + e^(z - 2·relu(z))): the exponent is -|z|,
// so nothing overflows, and z - 2·relu(z) has derivative ±1 (+1 at 0), so the
// first and second derivatives are exact everywhere, 0 included (|z| written
// with abs would have a zero derivative there).
Tensor softplus(const Tensor& z) {
  const Tensor r = relu(z);
  return add(r, log1p(exp(sub(z, mul(r, 2.0)))));
}

Tensor cast(const Tensor& x, Dtype dtype) { return x.dtype() == dtype ? x : x.to(dtype); }

// The constant coefficients m of nll_loss and cross_entropy (with smoothing
// s), so that the loss is Σ_ic log_probs[i, c] · m[i, c] (rows summed alone
// for Reduction::None): one mul and one sum, both differentiable twice.
// m[i, c] = -((1 - s)·w[y_i]·[c = y_i] + (s / C)·w[c]), divided by Σ w[y_i]
// for Mean; rows of ignored samples are 0.
Tensor weighted_pick(const char* op, const Tensor& log_probs, const Tensor& labels0, const Tensor& weight0,
                     std::int64_t ignore_index, Reduction reduction, double smoothing) {
  check_reduction(op, reduction);
  TG_CHECK(labels0.defined(), ValueError, op << ": labels must be a defined int64 tensor");
  TG_CHECK(labels0.dtype() == kInt64, DtypeError,
           op << ": labels must be int64 class indices, got " << dtype_name(labels0.dtype()));
  const std::size_t n = log_probs.shape()[0], classes = log_probs.shape()[1];
  if (labels0.dim() != 1 || labels0.numel() != n)
    throw ShapeError(std::string(op) + ": labels of shape " + shape_str(labels0.shape()) + " for input of shape " +
                     shape_str(log_probs.shape()) + " (need one label per row)");
  if (n == 0) throw ShapeError(std::string(op) + ": empty batch (input of shape " + shape_str(log_probs.shape()) + ")");
  std::vector<double> w(classes, 1.0);
  if (weight0.defined()) {
    if (weight0.dim() != 1 || weight0.numel() != classes)
      throw ShapeError(std::string(op) + ": weight of shape " + shape_str(weight0.shape()) + " for input of shape " +
                       shape_str(log_probs.shape()) + " (need one weight per class: (" + std::to_string(classes) +
                       ",))");
    const Tensor weight = weight0.detach().to(kFloat64).contiguous();
    std::copy(weight.data<double>(), weight.data<double>() + classes, w.begin());
  }
  const Tensor labels = labels0.contiguous();
  const std::int64_t* label = labels.data<std::int64_t>();
  Tensor coef = zeros(Shape{n, classes}, log_probs.dtype());
  double total = 0.0;  // Σ w[y_i] over the samples not ignored
  visit_floating(op, log_probs.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    std::vector<double> m(n * classes, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      if (label[i] == ignore_index) continue;
      if (label[i] < 0 || std::size_t(label[i]) >= classes)
        throw ValueError(std::string(op) + ": label " + std::to_string(label[i]) + " at position " + std::to_string(i) +
                         " is outside [0, " + std::to_string(classes) + ") for input of shape " +
                         shape_str(log_probs.shape()) +
                         (ignore_index < 0 || std::size_t(ignore_index) >= classes
                              ? " and is not ignore_index (" + std::to_string(ignore_index) + ")"
                              : ""));
      const std::size_t y = std::size_t(label[i]);
      total += w[y];
      m[i * classes + y] -= (1.0 - smoothing) * w[y];
      if (smoothing != 0.0)
        for (std::size_t c = 0; c < classes; ++c) m[i * classes + c] -= smoothing / double(classes) * w[c];
    }
    const double scale = reduction == Reduction::Mean && total != 0.0 ? 1.0 / total : 1.0;
    T* pm = static_cast<T*>(coef.impl()->storage->data());
    for (std::size_t k = 0; k < n * classes; ++k) pm[k] = T(m[k] * scale);
  });
  if (reduction == Reduction::None) return sum(mul(log_probs, coef), {1});
  const Tensor loss = sum(mul(log_probs, coef));
  if (reduction == Reduction::Mean && total == 0.0)  // nothing counted: 0/0 as PyTorch, with a zero gradient
    return add(loss, std::numeric_limits<double>::quiet_NaN());
  return loss;
}

// 0.5·d²/beta where d = |input - target| < beta, d - 0.5·beta elsewhere, times
// `factor`. Each branch is finite everywhere (beta > 0), so the one where()
// does not take sends back a zero gradient, not a NaN.
Tensor quadratic_then_linear(const Tensor& input, const Tensor& target, double beta, double factor) {
  const Tensor d = sub(input, target);
  const Tensor a = abs(d);
  Tensor inner;
  {
    NoGradGuard no_grad;
    inner = lt(a, scalar_like(a, beta));
  }
  return mul(where(inner, mul(mul(d, d), 0.5 / beta), sub(a, 0.5 * beta)), factor);
}

Tensor label_tensor(const std::vector<std::int64_t>& labels) {
  Tensor t = empty(Shape{labels.size()}, kInt64);
  std::copy(labels.begin(), labels.end(), static_cast<std::int64_t*>(t.impl()->storage->data()));
  return t;
}

// -(t·max(log p, -100) + (1 - t)·max(log(1 - p), -100)), elementwise, with
// PyTorch's gradients: (p - t) / max(p(1 - p), 1e-12) for p and
// max(log(1 - p), -100) - max(log p, -100) for t. Both are written with
// tensor ops, so they are recorded under create_graph.
Tensor bce_elementwise(const Tensor& p, const Tensor& t) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  auto clamped_logs = [](const Tensor& p) {
    return std::pair<Tensor, Tensor>{clamp(log(p), -100.0, kInf), clamp(log1p(neg(p)), -100.0, kInf)};
  };
  Tensor value;
  {
    NoGradGuard no_grad;
    const auto [log_p, log_q] = clamped_logs(p);
    value = neg(add(mul(t, log_p), mul(sub(1.0, t), log_q)));
  }
  return record("binary_cross_entropy", {p, t}, value)
      .save({p, t})
      .backward([clamped_logs](const GradContext& c) {
        const Tensor& p = c.saved[0];
        const Tensor& t = c.saved[1];
        Tensor dp, dt;
        if (c.needs_grad[0])
          dp = cast(div(mul(c.grad, sub(p, t)), maximum(mul(p, sub(1.0, p)), scalar_like(p, 1e-12))),
                    c.input_dtype(0));
        if (c.needs_grad[1]) {
          const auto [log_p, log_q] = clamped_logs(p);
          dt = cast(mul(c.grad, sub(log_q, log_p)), c.input_dtype(1));
        }
        return Grads{dp, dt};
      });
}

}  // namespace

const char* reduction_name(Reduction reduction) {
  switch (reduction) {
    case Reduction::None: return "none";
    case Reduction::Mean: return "mean";
    case Reduction::Sum: return "sum";
    case Reduction::BatchMean: return "batchmean";
  }
  return "unknown";
}

Tensor log_softmax(const Tensor& x, std::ptrdiff_t axis) {
  const Tensor z = shift_by_max("log_softmax", x, axis);
  return sub(z, log(sum(exp(z), {axis}, /*keepdims=*/true)));
}

Tensor softmax(const Tensor& x, std::ptrdiff_t axis) {
  const Tensor e = exp(shift_by_max("softmax", x, axis));
  return div(e, sum(e, {axis}, /*keepdims=*/true));
}

// ---- classification with class indices -------------------------------------------

Tensor nll_loss(const Tensor& log_probs, const Tensor& labels, const NLLLossOptions& options) {
  if (log_probs.dim() != 2)
    throw ShapeError("nll_loss: expected input of shape (N, C), got " + shape_str(log_probs.shape()));
  return weighted_pick("nll_loss", log_probs, labels, options.weight(), options.ignore_index(), options.reduction(),
                       0.0);
}

Tensor nll_loss(const Tensor& log_probs, const std::vector<std::int64_t>& labels, const NLLLossOptions& options) {
  return nll_loss(log_probs, label_tensor(labels), options);
}

Tensor nll_loss(const Tensor& log_probs, std::initializer_list<std::int64_t> labels, const NLLLossOptions& options) {
  return nll_loss(log_probs, std::vector<std::int64_t>(labels), options);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyLossOptions& options) {
  if (logits.dim() != 2)
    throw ShapeError("cross_entropy: expected logits of shape (N, C), got " + shape_str(logits.shape()));
  const double s = options.label_smoothing();
  TG_CHECK(s >= 0.0 && s <= 1.0, ValueError,
           "cross_entropy: label_smoothing must be in [0, 1], got " << s << " (logits " << shape_str(logits.shape()) << ")");
  return weighted_pick("cross_entropy", log_softmax(logits, 1), labels, options.weight(), options.ignore_index(),
                       options.reduction(), s);
}

Tensor cross_entropy(const Tensor& logits, const std::vector<std::int64_t>& labels,
                     const CrossEntropyLossOptions& options) {
  return cross_entropy(logits, label_tensor(labels), options);
}

Tensor cross_entropy(const Tensor& logits, std::initializer_list<std::int64_t> labels,
                     const CrossEntropyLossOptions& options) {
  return cross_entropy(logits, std::vector<std::int64_t>(labels), options);
}

// ---- binary classification --------------------------------------------------------

Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, const BCELossOptions& options) {
  const char* op = "binary_cross_entropy";
  check_pair(op, probs, target, options.reduction());
  check_broadcasts_to(op, "weight", options.weight(), probs.shape());
  visit_floating(op, probs.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Tensor p = probs.detach().contiguous();
    const T* v = p.data<T>();
    for (std::size_t i = 0; i < p.numel(); ++i)
      if (!(v[i] >= T(0) && v[i] <= T(1)))
        throw ValueError(std::string(op) + ": input (of shape " + shape_str(probs.shape()) +
                         ") must hold probabilities in [0, 1]; element " + std::to_string(i) + " is " +
                         str(double(v[i])));
  });
  Tensor loss = bce_elementwise(probs, target);
  if (options.weight().defined()) loss = mul(loss, options.weight());
  return reduce(loss, options.reduction());
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        const BCEWithLogitsLossOptions& options) {
  const char* op = "binary_cross_entropy_with_logits";
  check_pair(op, logits, target, options.reduction());
  check_broadcasts_to(op, "weight", options.weight(), logits.shape());
  check_broadcasts_to(op, "pos_weight", options.pos_weight(), logits.shape());
  Tensor loss;
  if (options.pos_weight().defined()) {
    // (1 - t)·x + (1 + (p - 1)·t)·log(1 + e^-x)
    const Tensor log_weight = add(mul(sub(options.pos_weight(), 1.0), target), 1.0);
    loss = add(mul(sub(1.0, target), logits), mul(log_weight, softplus(neg(logits))));
  } else {
    // max(x, 0) - x·t + log(1 + e^-|x|) = log(1 + e^x) - x·t
    loss = sub(softplus(logits), mul(logits, target));
  }
  if (options.weight().defined()) loss = mul(loss, options.weight());
  return reduce(loss, options.reduction());
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const Tensor& pos_weight,
                                        Reduction reduction) {
  return binary_cross_entropy_with_logits(logits, target, BCEWithLogitsLossOptions(reduction).pos_weight(pos_weight));
}

// ---- regression ---------------------------------------------------------------------

Tensor mse_loss(const Tensor& input, const Tensor& target, const MSELossOptions& options) {
  check_pair("mse_loss", input, target, options.reduction());
  const Tensor diff = sub(input, target);
  return reduce(mul(diff, diff), options.reduction());
}

Tensor l1_loss(const Tensor& input, const Tensor& target, const L1LossOptions& options) {
  check_pair("l1_loss", input, target, options.reduction());
  return reduce(abs(sub(input, target)), options.reduction());
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, const SmoothL1LossOptions& options) {
  const double beta = options.beta();
  check_pair("smooth_l1_loss", input, target, options.reduction());
  TG_CHECK(beta >= 0.0 && std::isfinite(beta), ValueError,
           "smooth_l1_loss: beta must be finite and >= 0, got " << beta << " (input " << shape_str(input.shape())
                                                                 << ")");
  if (beta == 0.0) return l1_loss(input, target, options.reduction());
  return reduce(quadratic_then_linear(input, target, beta, 1.0), options.reduction());
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, double beta, Reduction reduction) {
  return smooth_l1_loss(input, target, SmoothL1LossOptions(reduction).beta(beta));
}

Tensor huber_loss(const Tensor& input, const Tensor& target, const HuberLossOptions& options) {
  const double delta = options.delta();
  check_pair("huber_loss", input, target, options.reduction());
  TG_CHECK(delta > 0.0 && std::isfinite(delta), ValueError,
           "huber_loss: delta must be finite and > 0, got " << delta << " (input " << shape_str(input.shape())
                                                            << ")");
  return reduce(quadratic_then_linear(input, target, delta, delta), options.reduction());
}

Tensor huber_loss(const Tensor& input, const Tensor& target, double delta, Reduction reduction) {
  return huber_loss(input, target, HuberLossOptions(reduction).delta(delta));
}

// ---- distributions --------------------------------------------------------------------

Tensor kl_div(const Tensor& log_input, const Tensor& target, const KLDivLossOptions& options) {
  check_pair("kl_div", log_input, target, options.reduction(), /*batchmean_allowed=*/true);
  Tensor loss;
  if (options.log_target()) {
    loss = mul(exp(target), sub(target, log_input));
  } else {
    // xlogy(t, t) - t·input, where xlogy(0, 0) = 0: log reads 1 where t = 0.
    Tensor zero;
    {
      NoGradGuard no_grad;
      zero = eq(target, scalar_like(target, 0.0));
    }
    const Tensor t_log_t = mul(target, log(where(zero, scalar_like(target, 1.0), target)));
    loss = sub(t_log_t, mul(target, log_input));
  }
  if (options.reduction() != Reduction::BatchMean) return reduce(loss, options.reduction());
  const Tensor total = sum(loss);
  return log_input.dim() == 0 ? total : div(total, double(log_input.shape()[0]));
}

Tensor kl_div(const Tensor& log_input, const Tensor& target, Reduction reduction, bool log_target) {
  return kl_div(log_input, target, KLDivLossOptions(reduction).log_target(log_target));
}

}  // namespace tg
