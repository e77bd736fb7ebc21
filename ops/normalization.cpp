#include "normalization.hpp"

#include <functional>
#include <string>
#include <utility>

#include "../core/autograd.hpp"
#include "../core/error.hpp"
#include "../core/tape.hpp"
#include "elementwise.hpp"
#include "kernels/batch_norm.hpp"
#include "reduce.hpp"
#include "shape.hpp"

namespace tg {

namespace {

void check_floating(const char* op, const Tensor& x) {
  TG_CHECK(x.defined(), ValueError, op << ": the input is an undefined tensor");
  TG_CHECK(is_floating(x.dtype()), DtypeError,
           op << ": expected a float32 or float64 input, got " << dtype_name(x.dtype()));
}

void check_eps(const char* op, double eps) {
  TG_CHECK(eps >= 0.0, ValueError, op << ": eps must be non-negative, got " << eps);
}

// A weight or bias: undefined, or of shape `want`.
void check_affine(const char* op, const char* what, const Tensor& t, const Shape& want) {
  if (t.defined() && t.shape() != want)
    throw ShapeError(std::string(op) + ": " + what + " must have shape " + shape_str(want) + ", got " +
                     shape_str(t.shape()));
}

// x - mean and 1/√(var + eps) over `axes`, the statistics kept for broadcasting.
struct Centered {
  Tensor centered, invstd;
};
Centered center(const Tensor& x, const Axes& axes, double eps) {
  Tensor centered = sub(x, mean(x, axes, true));
  const Tensor var = mean(mul(centered, centered), axes, true);
  return {centered, div(1.0, sqrt(add(var, eps)))};
}

// (x - mean) · 1/√(var + eps) over `axes`.
Tensor normalize(const Tensor& x, const Axes& axes, double eps) {
  const Centered c = center(x, axes, eps);
  return mul(c.centered, c.invstd);
}

// (C,) as (1, C, 1, ...) for an input of `dims` axes.
Tensor per_channel(const Tensor& t, std::size_t dims) {
  Shape s(dims, 1);
  s[1] = t.numel();
  return reshape(t, s);
}

Tensor affine(Tensor y, const Tensor& weight, const Tensor& bias, const std::function<Tensor(const Tensor&)>& shape) {
  if (weight.defined()) y = mul(y, shape(weight));
  if (bias.defined()) y = add(y, shape(bias));
  return y;
}

// The axes batch_norm reduces over for an (N, C, *) input: all but C.
Axes channel_axes(std::size_t dims) {
  Axes axes{0};
  for (std::size_t i = 2; i < dims; ++i) axes.push_back(std::ptrdiff_t(i));
  return axes;
}

// batch_norm's gradients written with tensor ops, the rule's form under
// create_graph: recorded, they differentiate again. With x̂ = (x - mean)·invstd
// and g = dy·w, dx = invstd·(g - mean(g) - x̂·mean(g·x̂)), dw = Σ dy·x̂, db = Σ dy.
// The kernel computes the same formula in three walks: Σ dy, Σ dy·x̂, then dx.
Grads batch_norm_grads_recorded(const GradContext& c, double eps, bool with_weight, bool with_bias) {
  const Tensor &x = c.saved[0], &w = c.saved[1], &dy = c.grad;
  const bool want_x = c.needs_grad[0], want_w = with_weight && c.needs_grad[1],
             want_b = with_bias && c.needs_grad.back();
  const Axes axes = channel_axes(dy.dim());
  Grads grads(std::size_t(1 + with_weight + with_bias));
  if (want_x || want_w) {
    const Centered xc = center(x, axes, eps);
    const Tensor x_hat = mul(xc.centered, xc.invstd);
    if (want_x) {
      const Tensor g = with_weight ? mul(dy, per_channel(w, x.dim())) : dy;
      grads[0] = mul(xc.invstd, sub(sub(g, mean(g, axes, true)), mul(x_hat, mean(mul(g, x_hat), axes, true))));
    }
    if (want_w) grads[1] = sum(mul(dy, x_hat), axes);
  }
  if (want_b) grads.back() = sum(dy, axes);
  return grads;
}

// The rule's form outside create_graph: the kernel.
Grads batch_norm_grads_kernel(const GradContext& c, const kernels::ChannelRuns& runs, bool with_weight,
                              bool with_bias) {
  const Tensor &x = c.saved[0], &w = c.saved[1], &mean_c = c.saved[2], &invstd_c = c.saved[3];
  const Tensor dy = c.grad.contiguous();
  const auto buffer_if = [&](bool wanted, const Shape& shape) { return wanted ? empty(shape, dy.dtype()) : Tensor(); };
  const Shape channels{runs.c};
  Tensor dx = buffer_if(c.needs_grad[0], dy.shape()), dw = buffer_if(with_weight && c.needs_grad[1], channels),
         db = buffer_if(with_bias && c.needs_grad.back(), channels);
  visit_floating("batch_norm", dy.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto in = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
    const auto out = [](Tensor& t) { return t.defined() ? t.mutable_data<T>() : nullptr; };
    kernels::batch_norm_backward(in(x), dy.data<T>(), runs, mean_c.data<double>(), invstd_c.data<double>(), in(w),
                                 out(dx), out(dw), out(db));
  });
  Grads grads{dx};
  if (with_weight) grads.push_back(dw);
  if (with_bias) grads.push_back(db);
  return grads;
}

struct BatchStatistics {
  Tensor mean, var;       // (C,), x's dtype: the batch's mean and biased variance
  std::size_t count = 0;  // values per channel
};

// Training-mode batch normalization (x: (N, C, *); weight and bias (C,) or
// undefined) as one recorded op. Composed of reductions and elementwise ops
// it walks x about seven times forward and twelve backward and saves two
// tensors of x's size; as one op, three times each way, saving x (when x or
// the weight needs a gradient) and the statistics.
Tensor batch_norm_training(const Tensor& x0, const Tensor& weight, const Tensor& bias, double eps,
                           BatchStatistics& batch) {
  const Shape& s = x0.shape();
  const std::size_t planes = s[0] * s[1];
  const kernels::ChannelRuns runs{s[0], s[1], planes > 0 ? x0.numel() / planes : 0};
  batch.count = runs.count();
  if (batch.count < 2)
    throw ShapeError("batch_norm: training needs more than one value per channel, got input " + shape_str(s));
  const Tensor x = x0.contiguous(), w = weight.defined() ? weight.contiguous() : Tensor(),
               b = bias.defined() ? bias.contiguous() : Tensor();
  // The statistics in double: the rule centres x with them.
  Tensor y = empty(s, x.dtype()), mean_c = empty(Shape{runs.c}, kFloat64), var_c = empty(Shape{runs.c}, kFloat64),
         invstd_c = empty(Shape{runs.c}, kFloat64);
  visit_floating("batch_norm", x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::batch_norm_forward(x.data<T>(), runs, w.defined() ? w.data<T>() : nullptr,
                                b.defined() ? b.data<T>() : nullptr, eps, y.mutable_data<T>(),
                                mean_c.mutable_data<double>(), var_c.mutable_data<double>(),
                                invstd_c.mutable_data<double>());
  });
  batch.mean = mean_c.to(x.dtype());
  batch.var = var_c.to(x.dtype());
  std::vector<Tensor> inputs{x};
  if (w.defined()) inputs.push_back(w);
  if (b.defined()) inputs.push_back(b);
  const bool reads_x = x.requires_grad() || (w.defined() && w.requires_grad());  // dx and dw read x; db does not
  return record("batch_norm", std::move(inputs), std::move(y))
      .save({save_if(reads_x, x), w, mean_c, invstd_c})
      .backward([runs, eps, with_weight = w.defined(), with_bias = b.defined()](const GradContext& c) {
        return grad_enabled() ? batch_norm_grads_recorded(c, eps, with_weight, with_bias)
                              : batch_norm_grads_kernel(c, runs, with_weight, with_bias);
      });
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  check_floating("layer_norm", x);
  check_eps("layer_norm", eps);
  const std::size_t k = normalized_shape.size(), dims = x.dim();
  bool ok = k > 0 && k <= dims;
  for (std::size_t i = 0; ok && i < k; ++i) ok = x.shape()[dims - k + i] == normalized_shape[i];
  if (!ok)
    throw ShapeError("layer_norm: input " + shape_str(x.shape()) + " does not end with normalized_shape " +
                     shape_str(normalized_shape));
  check_affine("layer_norm", "weight", weight, normalized_shape);
  check_affine("layer_norm", "bias", bias, normalized_shape);
  Axes axes;
  for (std::size_t i = dims - k; i < dims; ++i) axes.push_back(std::ptrdiff_t(i));
  return affine(normalize(x, axes, eps), weight, bias, [](const Tensor& t) { return t; });  // broadcast on the right
}

Tensor group_norm(const Tensor& x, std::size_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  check_floating("group_norm", x);
  check_eps("group_norm", eps);
  const Shape& s = x.shape();
  if (s.size() < 2) throw ShapeError("group_norm: input must have shape (N, C, *), got " + shape_str(s));
  const std::size_t n = s[0], c = s[1];
  TG_CHECK(num_groups > 0 && c % num_groups == 0, ValueError,
           "group_norm: the " << c << " channels of input " << shape_str(s) << " do not divide into num_groups = "
                              << num_groups);
  check_affine("group_norm", "weight", weight, Shape{c});
  check_affine("group_norm", "bias", bias, Shape{c});
  // (N, C, *) -> (N, G, C/G · Π *), normalized along the last axis.
  const Tensor grouped = reshape(x, Shape{n, num_groups, c / num_groups * (n ? x.numel() / (n * c) : 0)});
  const Tensor y = reshape(normalize(grouped, {2}, eps), s);
  return affine(y, weight, bias, [&](const Tensor& t) { return per_channel(t, s.size()); });
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  check_floating("batch_norm", x);
  check_eps("batch_norm", eps);
  const Shape& s = x.shape();
  if (s.size() < 2) throw ShapeError("batch_norm: input must have shape (N, C, *), got " + shape_str(s));
  const std::size_t c = s[1];
  for (const auto& [what, t] : {std::pair<const char*, const Tensor*>{"running_mean", &running_mean},
                                {"running_var", &running_var}, {"weight", &weight}, {"bias", &bias}}) {
    check_affine("batch_norm", what, *t, Shape{c});
    TG_CHECK(!t->defined() || t->dtype() == x.dtype(), DtypeError,
             "batch_norm: " << what << " is " << dtype_name(t->dtype()) << " but the input is "
                            << dtype_name(x.dtype()));
  }
  if (!training) {
    TG_CHECK(running_mean.defined() && running_var.defined(), ValueError,
             "batch_norm: evaluation needs running_mean and running_var");
    // y = (x - mean) · scale + bias, the scale w/√(var + eps) taken on the (C,) statistics
    Tensor scale = div(1.0, sqrt(add(running_var, eps)));
    if (weight.defined()) scale = mul(scale, weight);
    const Tensor y = mul(sub(x, per_channel(running_mean, s.size())), per_channel(scale, s.size()));
    return bias.defined() ? add(y, per_channel(bias, s.size())) : y;
  }
  BatchStatistics batch;
  Tensor y = batch_norm_training(x, weight, bias, eps, batch);
  if (running_mean.defined() || running_var.defined()) {
    NoGradGuard no_grad;  // running statistics are buffers, outside the graph
    const double unbias = double(batch.count) / double(batch.count - 1);
    Tensor rm = running_mean, rv = running_var;
    if (rm.defined()) rm.mul_(1.0 - momentum).add_(batch.mean, momentum);
    if (rv.defined()) rv.mul_(1.0 - momentum).add_(batch.var, momentum * unbias);
  }
  return y;
}

}  // namespace tg
