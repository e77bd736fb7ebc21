#include "clip.hpp"

#include <cmath>

#include "../core/tape.hpp"
#include "check.hpp"

namespace tg::optim {

using detail::check_value;

// ---- clipping --------------------------------------------------------------

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  check_value("clip_grad_norm", 0.0 <= max_norm, "max_norm", max_norm, ">= 0");
  NoGradGuard no_grad;  // scaling gradients is no op of any graph
  std::vector<Tensor> grads;
  double sum = 0.0;
  for (const Tensor& p : params) {
    if (!p.defined()) continue;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    visit_floating("clip_grad_norm", g.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      for (T v : g.value<T>()) sum += double(v) * double(v);
    });
    grads.push_back(std::move(g));
  }
  const double total = std::sqrt(sum);
  // PyTorch clamps the coefficient to 1 and multiplies; a NaN total gives NaN
  // gradients there, and here.
  const double coef = max_norm / (total + 1e-6);
  if (!(coef >= 1.0))
    for (Tensor& g : grads) g.mul_(coef);  // in the gradient's dtype
  return total;
}

void clip_grad_value(const std::vector<Tensor>& params, double clip_value) {
  check_value("clip_grad_value", 0.0 <= clip_value, "clip_value", clip_value, ">= 0");
  NoGradGuard no_grad;
  for (const Tensor& p : params) {
    if (!p.defined()) continue;
    Tensor g = p.grad();
    if (g.defined()) g.clamp_(-clip_value, clip_value);
  }
}

}  // namespace tg::optim
