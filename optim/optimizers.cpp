#include "optimizers.hpp"

#include <cmath>

#include "../core/tape.hpp"
#include "check.hpp"

namespace tg::optim {

namespace {

// torch.lerp: self + weight·(end - self), evaluated as PyTorch does for accuracy near weight = 1.
template <class T>
T lerp(T self, T end, T weight) {
  return std::abs(weight) < T(0.5) ? self + weight * (end - self) : end - (end - self) * (T(1) - weight);
}

bool is_flag(double v) { return v == 0.0 || v == 1.0; }

}  // namespace

// ---- SGD -------------------------------------------------------------------

SGD::SGD(std::vector<ParamGroup> groups, double lr, double momentum, double dampening, double weight_decay,
         bool nesterov)
    : Optimizer("SGD", {{"lr", lr},
                        {"momentum", momentum},
                        {"dampening", dampening},
                        {"weight_decay", weight_decay},
                        {"nesterov", nesterov ? 1.0 : 0.0}}) {
  init(std::move(groups));
}

void SGD::validate(const Options& o) const {
  const double momentum = o.at("momentum"), dampening = o.at("dampening"), nesterov = o.at("nesterov");
  check(0.0 <= o.at("lr"), "learning rate", o.at("lr"), ">= 0");
  check(0.0 <= momentum, "momentum", momentum, ">= 0");
  check(0.0 <= o.at("weight_decay"), "weight_decay", o.at("weight_decay"), ">= 0");
  check(std::isfinite(dampening), "dampening", dampening, "finite");
  check(is_flag(nesterov), "nesterov", nesterov, "0 or 1");
  if (nesterov == 1.0 && (momentum <= 0.0 || dampening != 0.0))
    throw ValueError("SGD: nesterov momentum requires momentum > 0 and dampening 0, got momentum " + detail::shortest_decimal(momentum) +
                     " and dampening " + detail::shortest_decimal(dampening));
}

template <class T>
void SGD::update_as(std::size_t index, const Options& o, Tensor& param, const Tensor& grad_tensor) {
  T* value = param.mutable_data<T>();
  const T* grad = grad_tensor.data<T>();
  const std::size_t n = param.numel();
  const double momentum_d = o.at("momentum"), weight_decay = o.at("weight_decay");
  const T lr = T(o.at("lr")), wd = T(weight_decay), momentum = T(momentum_d), keep = T(1.0 - o.at("dampening"));
  const bool decay = weight_decay != 0.0, nesterov = o.at("nesterov") == 1.0;
  if (momentum_d == 0.0) {
    for (std::size_t i = 0; i < n; ++i) {
      T g = grad[i];
      if (decay) g += wd * value[i];
      value[i] -= lr * g;
    }
    return;
  }
  Tensor& buffer = state_tensor(index, "momentum_buffer");
  const bool first = !buffer.defined();  // the buffer starts as the gradient itself, undamped
  if (first) buffer = zeros(param.shape(), param.dtype());
  T* buf = buffer.mutable_data<T>();
  for (std::size_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (decay) g += wd * value[i];
    buf[i] = first ? g : buf[i] * momentum + keep * g;
    g = nesterov ? g + momentum * buf[i] : buf[i];
    value[i] -= lr * g;
  }
}

void SGD::update(std::size_t index, std::int64_t, const Options& group, Tensor& param, const Tensor& grad) {
  visit_floating("SGD", param.dtype(), [&](auto tag) {
    update_as<typename decltype(tag)::type>(index, group, param, grad);
  });
}

// ---- Adam and AdamW --------------------------------------------------------

Adam::Adam(const char* name, bool decoupled, std::vector<ParamGroup> groups, double lr, double beta1, double beta2,
           double eps, double weight_decay)
    : Optimizer(name, {{"lr", lr}, {"beta1", beta1}, {"beta2", beta2}, {"eps", eps}, {"weight_decay", weight_decay}}),
      decoupled_(decoupled) {
  init(std::move(groups));
}

void Adam::validate(const Options& o) const {
  const double beta1 = o.at("beta1"), beta2 = o.at("beta2");
  check(0.0 <= o.at("lr"), "learning rate", o.at("lr"), ">= 0");
  check(0.0 <= o.at("eps"), "eps", o.at("eps"), ">= 0");
  check(0.0 <= beta1 && beta1 < 1.0, "beta1", beta1, "in [0, 1)");
  check(0.0 <= beta2 && beta2 < 1.0, "beta2", beta2, "in [0, 1)");
  check(0.0 <= o.at("weight_decay"), "weight_decay", o.at("weight_decay"), ">= 0");
}

template <class T>
void Adam::update_as(std::size_t index, std::int64_t step, const Options& o, Tensor& param,
                     const Tensor& grad_tensor) {
  T* value = param.mutable_data<T>();
  const T* grad = grad_tensor.data<T>();
  const std::size_t n = param.numel();
  Tensor& exp_avg = state_tensor(index, "exp_avg");
  Tensor& exp_avg_sq = state_tensor(index, "exp_avg_sq");
  if (!exp_avg.defined()) exp_avg = zeros(param.shape(), param.dtype());
  if (!exp_avg_sq.defined()) exp_avg_sq = zeros(param.shape(), param.dtype());
  T* m = exp_avg.mutable_data<T>();
  T* v = exp_avg_sq.mutable_data<T>();
  const double lr = o.at("lr"), beta1_d = o.at("beta1"), beta2_d = o.at("beta2"), weight_decay = o.at("weight_decay");
  const double t = double(step);
  const T step_size = T(lr / (1.0 - std::pow(beta1_d, t)));
  const T bias_correction2_sqrt = T(std::sqrt(1.0 - std::pow(beta2_d, t)));
  const T w1 = T(1.0 - beta1_d), beta2 = T(beta2_d), w2 = T(1.0 - beta2_d), eps = T(o.at("eps"));
  const T wd = T(weight_decay), shrink = T(1.0 - lr * weight_decay);
  const bool l2 = !decoupled_ && weight_decay != 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (decoupled_) value[i] *= shrink;
    if (l2) g += wd * value[i];
    m[i] = lerp(m[i], g, w1);
    v[i] = v[i] * beta2 + w2 * g * g;
    const T denom = std::sqrt(v[i]) / bias_correction2_sqrt + eps;
    value[i] -= step_size * m[i] / denom;
  }
}

void Adam::update(std::size_t index, std::int64_t step, const Options& group, Tensor& param, const Tensor& grad) {
  visit_floating(name().c_str(), param.dtype(), [&](auto tag) {
    update_as<typename decltype(tag)::type>(index, step, group, param, grad);
  });
}

// ---- RMSprop ---------------------------------------------------------------

RMSprop::RMSprop(std::vector<ParamGroup> groups, double lr, double alpha, double eps, double weight_decay,
                 double momentum, bool centered)
    : Optimizer("RMSprop", {{"lr", lr},
                            {"alpha", alpha},
                            {"eps", eps},
                            {"weight_decay", weight_decay},
                            {"momentum", momentum},
                            {"centered", centered ? 1.0 : 0.0}}) {
  init(std::move(groups));
}

void RMSprop::validate(const Options& o) const {
  check(0.0 <= o.at("lr"), "learning rate", o.at("lr"), ">= 0");
  check(0.0 <= o.at("eps"), "eps", o.at("eps"), ">= 0");
  check(0.0 <= o.at("momentum"), "momentum", o.at("momentum"), ">= 0");
  check(0.0 <= o.at("weight_decay"), "weight_decay", o.at("weight_decay"), ">= 0");
  check(0.0 <= o.at("alpha"), "alpha", o.at("alpha"), ">= 0");
  check(is_flag(o.at("centered")), "centered", o.at("centered"), "0 or 1");
}

template <class T>
void RMSprop::update_as(std::size_t index, const Options& o, Tensor& param, const Tensor& grad_tensor) {
  T* value = param.mutable_data<T>();
  const T* grad = grad_tensor.data<T>();
  const std::size_t n = param.numel();
  const double momentum_d = o.at("momentum"), alpha_d = o.at("alpha"), weight_decay = o.at("weight_decay");
  const bool with_momentum = momentum_d > 0.0, centered = o.at("centered") == 1.0;
  auto buffer = [&](const char* name) -> T* {
    Tensor& t = state_tensor(index, name);
    if (!t.defined()) t = zeros(param.shape(), param.dtype());
    return t.mutable_data<T>();
  };
  T* s = buffer("square_avg");
  T* a = centered ? buffer("grad_avg") : nullptr;
  T* b = with_momentum ? buffer("momentum_buffer") : nullptr;
  const T lr = T(o.at("lr")), alpha = T(alpha_d), w = T(1.0 - alpha_d), eps = T(o.at("eps")), wd = T(weight_decay),
          momentum = T(momentum_d);
  const bool decay = weight_decay != 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (decay) g += wd * value[i];
    s[i] = s[i] * alpha + w * g * g;
    T avg;
    if (centered) {
      a[i] = lerp(a[i], g, w);
      avg = std::sqrt(s[i] - a[i] * a[i]);
    } else {
      avg = std::sqrt(s[i]);
    }
    avg += eps;
    if (with_momentum) {
      b[i] = b[i] * momentum + g / avg;
      value[i] -= lr * b[i];
    } else {
      value[i] -= lr * g / avg;
    }
  }
}

void RMSprop::update(std::size_t index, std::int64_t, const Options& group, Tensor& param, const Tensor& grad) {
  visit_floating("RMSprop", param.dtype(), [&](auto tag) {
    update_as<typename decltype(tag)::type>(index, group, param, grad);
  });
}

}  // namespace tg::optim
