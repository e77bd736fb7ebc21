#include "normalization.hpp"

#include <functional>
#include <string>
#include <utility>

#include "../core/error.hpp"
#include "../core/tape.hpp"
#include "elementwise.hpp"
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

// (x - mean) · 1/√(var + eps) over `axes`, the statistics kept for broadcasting.
Tensor normalize(const Tensor& x, const Axes& axes, double eps) {
  const Tensor centered = sub(x, mean(x, axes, true));
  const Tensor var = mean(mul(centered, centered), axes, true);
  return mul(centered, div(1.0, sqrt(add(var, eps))));
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
                                {"running_var", &running_var}, {"weight", &weight}, {"bias", &bias}})
    check_affine("batch_norm", what, *t, Shape{c});
  Axes axes{0};
  for (std::size_t i = 2; i < s.size(); ++i) axes.push_back(std::ptrdiff_t(i));
  Tensor y;
  if (training) {
    const std::size_t count = c ? x.numel() / c : 0;
    if (count < 2)
      throw ShapeError("batch_norm: training needs more than one value per channel, got input " + shape_str(s));
    const Tensor mean_c = mean(x, axes, true);
    const Tensor centered = sub(x, mean_c);
    const Tensor var_c = mean(mul(centered, centered), axes, true);  // biased, as the normalization uses
    if (running_mean.defined() || running_var.defined()) {
      NoGradGuard no_grad;  // running statistics are buffers, outside the graph
      const double unbias = double(count) / double(count - 1);
      Tensor rm = running_mean, rv = running_var;
      if (rm.defined()) rm.mul_(1.0 - momentum).add_(mean_c.detach().reshape(Shape{c}), momentum);
      if (rv.defined()) rv.mul_(1.0 - momentum).add_(var_c.detach().reshape(Shape{c}), momentum * unbias);
    }
    y = mul(centered, div(1.0, sqrt(add(var_c, eps))));
  } else {
    TG_CHECK(running_mean.defined() && running_var.defined(), ValueError,
             "batch_norm: evaluation needs running_mean and running_var");
    // x̂ = (x - mean) · 1/√(var + eps), the reciprocal taken on the (C,) statistics
    y = mul(sub(x, per_channel(running_mean, s.size())), per_channel(div(1.0, sqrt(add(running_var, eps))), s.size()));
  }
  return affine(y, weight, bias, [&](const Tensor& t) { return per_channel(t, s.size()); });
}

}  // namespace tg
