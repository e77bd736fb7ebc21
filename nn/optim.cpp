#include "optim.hpp"

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <unordered_set>

#include "../core/tape.hpp"

namespace tg::optim {

namespace {

// The shortest decimal that reads back as v: 0.1 prints as "0.1", not 0.10000000000000001.
std::string num(double v) {
  for (int precision = 6;; ++precision) {
    std::ostringstream s;
    s.precision(precision);
    s << v;
    if (precision >= 17 || std::strtod(s.str().c_str(), nullptr) == v || std::isnan(v)) return s.str();
  }
}

void check_value(const std::string& owner, bool ok, const char* what, double value, const char* rule) {
  if (!ok) throw ValueError(owner + ": invalid " + what + " " + num(value) + " (must be " + rule + ")");
}

// torch.lerp: self + weight·(end - self), evaluated as PyTorch does for accuracy near weight = 1.
template <class T>
T lerp(T self, T end, T weight) {
  return std::abs(weight) < T(0.5) ? self + weight * (end - self) : end - (end - self) * (T(1) - weight);
}

}  // namespace

// ---- Optimizer -------------------------------------------------------------

Optimizer::Optimizer(std::string name, std::vector<Tensor> params, double lr)
    : name_(std::move(name)), params_(std::move(params)) {
  set_lr(lr);
  if (params_.empty()) throw ValueError(name_ + ": got an empty parameter list");
  std::unordered_set<const void*> seen;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const std::string which = name_ + ": parameter " + std::to_string(i);
    if (!p.defined()) throw ValueError(which + " is undefined (it holds no value)");
    TG_CHECK(is_floating(p.dtype()), DtypeError,
             which << " of shape " << shape_str(p.shape()) << " holds " << dtype_name(p.dtype())
                   << " elements; only float32 and float64 tensors can be optimized");
    if (!p.is_leaf())
      throw ValueError(which + " of shape " + shape_str(p.shape()) +
                       " is not a leaf (a recorded op produced it); only leaves can be optimized");
    if (!seen.insert(p.impl().get()).second)
      throw ValueError(which + " of shape " + shape_str(p.shape()) + " appears more than once in the list");
  }
  steps_.assign(params_.size(), 0);
  state_shapes_.resize(params_.size());
  state_dtypes_.resize(params_.size());
}

void Optimizer::set_lr(double lr) {
  check(0.0 <= lr, "learning rate", lr, ">= 0");
  lr_ = lr;
}

void Optimizer::check(bool ok, const char* what, double value, const char* rule) const {
  check_value(name_, ok, what, value, rule);
}

void Optimizer::step() {
  NoGradGuard no_grad;  // updates are not ops of any graph
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    if (!p.requires_grad()) continue;  // frozen
    const Tensor g = p.grad();
    if (!g.defined()) continue;  // no gradient reached it
    const std::string which = name_ + ": parameter " + std::to_string(i);
    const Shape& shape = p.shape();
    TG_CHECK(g.shape() == shape, ShapeError,
             which << " has shape " << shape_str(shape) << " but its gradient " << shape_str(g.shape()));
    TG_CHECK(g.dtype() == p.dtype(), DtypeError,
             which << " is " << dtype_name(p.dtype()) << " but its gradient " << dtype_name(g.dtype()));
    if (steps_[i] == 0) {
      state_shapes_[i] = shape;
      state_dtypes_[i] = p.dtype();
    } else {
      TG_CHECK(state_shapes_[i] == shape, ShapeError,
               which << " changed shape from " << shape_str(state_shapes_[i]) << " to " << shape_str(shape)
                     << " since its last update; its optimizer state no longer fits");
      TG_CHECK(state_dtypes_[i] == p.dtype(), DtypeError,
               which << " changed dtype from " << dtype_name(state_dtypes_[i]) << " to " << dtype_name(p.dtype())
                     << " since its last update; its optimizer state no longer fits"
                        " (convert a model before creating its optimizer)");
    }
    ++steps_[i];
    update(i, steps_[i], p, g.contiguous());
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  for (Tensor& p : params_) p.zero_grad(set_to_none);
}

// ---- SGD -------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> params, double lr, double momentum, double dampening, double weight_decay,
         bool nesterov)
    : Optimizer("SGD", std::move(params), lr),
      momentum_(momentum),
      dampening_(dampening),
      weight_decay_(weight_decay),
      nesterov_(nesterov) {
  check(0.0 <= momentum, "momentum", momentum, ">= 0");
  check(0.0 <= weight_decay, "weight_decay", weight_decay, ">= 0");
  if (nesterov && (momentum <= 0.0 || dampening != 0.0))
    throw ValueError("SGD: nesterov momentum requires momentum > 0 and dampening 0, got momentum " + num(momentum) +
                     " and dampening " + num(dampening));
  momentum_buffers_.resize(this->params().size());
}

template <class T>
void SGD::update_as(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad_tensor) {
  T* value = param.mutable_data<T>();
  const T* grad = grad_tensor.data<T>();
  const std::size_t n = param.numel();
  const T lr = T(this->lr()), wd = T(weight_decay_), momentum = T(momentum_), keep = T(1.0 - dampening_);
  const bool decay = weight_decay_ != 0.0;
  if (momentum_ == 0.0) {
    for (std::size_t i = 0; i < n; ++i) {
      T g = grad[i];
      if (decay) g += wd * value[i];
      value[i] -= lr * g;
    }
    return;
  }
  Tensor& buffer = momentum_buffers_[index];
  const bool first = step == 1;  // the buffer starts as the gradient itself, undamped
  if (first) buffer = zeros(param.shape(), param.dtype());
  T* buf = buffer.mutable_data<T>();
  for (std::size_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (decay) g += wd * value[i];
    buf[i] = first ? g : buf[i] * momentum + keep * g;
    g = nesterov_ ? g + momentum * buf[i] : buf[i];
    value[i] -= lr * g;
  }
}

void SGD::update(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad) {
  visit_floating("SGD", param.dtype(), [&](auto tag) {
    update_as<typename decltype(tag)::type>(index, step, param, grad);
  });
}

// ---- Adam and AdamW --------------------------------------------------------

Adam::Adam(const char* name, bool decoupled, std::vector<Tensor> params, double lr, double beta1, double beta2,
           double eps, double weight_decay)
    : Optimizer(name, std::move(params), lr),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps),
      weight_decay_(weight_decay),
      decoupled_(decoupled) {
  check(0.0 <= eps, "eps", eps, ">= 0");
  check(0.0 <= beta1 && beta1 < 1.0, "beta1", beta1, "in [0, 1)");
  check(0.0 <= beta2 && beta2 < 1.0, "beta2", beta2, "in [0, 1)");
  check(0.0 <= weight_decay, "weight_decay", weight_decay, ">= 0");
  exp_avg_.resize(this->params().size());
  exp_avg_sq_.resize(this->params().size());
}

template <class T>
void Adam::update_as(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad_tensor) {
  T* value = param.mutable_data<T>();
  const T* grad = grad_tensor.data<T>();
  const std::size_t n = param.numel();
  if (step == 1) {
    exp_avg_[index] = zeros(param.shape(), param.dtype());
    exp_avg_sq_[index] = zeros(param.shape(), param.dtype());
  }
  T* m = exp_avg_[index].mutable_data<T>();
  T* v = exp_avg_sq_[index].mutable_data<T>();
  const double lr = this->lr();
  const double t = double(step);
  const T step_size = T(lr / (1.0 - std::pow(beta1_, t)));
  const T bias_correction2_sqrt = T(std::sqrt(1.0 - std::pow(beta2_, t)));
  const T w1 = T(1.0 - beta1_), beta2 = T(beta2_), w2 = T(1.0 - beta2_), eps = T(eps_);
  const T wd = T(weight_decay_), shrink = T(1.0 - lr * weight_decay_);
  const bool l2 = !decoupled_ && weight_decay_ != 0.0;
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

void Adam::update(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad) {
  visit_floating(name().c_str(), param.dtype(), [&](auto tag) {
    update_as<typename decltype(tag)::type>(index, step, param, grad);
  });
}

// ---- RMSprop ---------------------------------------------------------------

RMSprop::RMSprop(std::vector<Tensor> params, double lr, double alpha, double eps, double weight_decay,
                 double momentum, bool centered)
    : Optimizer("RMSprop", std::move(params), lr),
      alpha_(alpha),
      eps_(eps),
      weight_decay_(weight_decay),
      momentum_(momentum),
      centered_(centered) {
  check(0.0 <= eps, "eps", eps, ">= 0");
  check(0.0 <= momentum, "momentum", momentum, ">= 0");
  check(0.0 <= weight_decay, "weight_decay", weight_decay, ">= 0");
  check(0.0 <= alpha, "alpha", alpha, ">= 0");
  square_avg_.resize(this->params().size());
  grad_avg_.resize(this->params().size());
  momentum_buffers_.resize(this->params().size());
}

template <class T>
void RMSprop::update_as(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad_tensor) {
  T* value = param.mutable_data<T>();
  const T* grad = grad_tensor.data<T>();
  const std::size_t n = param.numel();
  const bool with_momentum = momentum_ > 0.0;
  if (step == 1) {
    square_avg_[index] = zeros(param.shape(), param.dtype());
    if (centered_) grad_avg_[index] = zeros(param.shape(), param.dtype());
    if (with_momentum) momentum_buffers_[index] = zeros(param.shape(), param.dtype());
  }
  T* s = square_avg_[index].mutable_data<T>();
  T* a = centered_ ? grad_avg_[index].mutable_data<T>() : nullptr;
  T* b = with_momentum ? momentum_buffers_[index].mutable_data<T>() : nullptr;
  const T lr = T(this->lr()), alpha = T(alpha_), w = T(1.0 - alpha_), eps = T(eps_), wd = T(weight_decay_),
          momentum = T(momentum_);
  const bool decay = weight_decay_ != 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (decay) g += wd * value[i];
    s[i] = s[i] * alpha + w * g * g;
    T avg;
    if (centered_) {
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

void RMSprop::update(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad) {
  visit_floating("RMSprop", param.dtype(), [&](auto tag) {
    update_as<typename decltype(tag)::type>(index, step, param, grad);
  });
}

// ---- schedulers ------------------------------------------------------------

LRScheduler::LRScheduler(Optimizer& optimizer)
    : optimizer_(optimizer), base_lr_(optimizer.lr()), last_lr_(optimizer.lr()) {}

void LRScheduler::step() {
  const double lr = lr_at(last_epoch_ + 1, optimizer_.lr());
  optimizer_.set_lr(lr);
  ++last_epoch_;
  last_lr_ = lr;
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0)
    throw ValueError("StepLR: invalid step_size " + std::to_string(step_size) + " (must be > 0)");
  check_value("StepLR", 0.0 <= gamma, "gamma", gamma, ">= 0");
}

double StepLR::lr_at(std::int64_t epoch, double current) const {
  return epoch % step_size_ == 0 ? current * gamma_ : current;
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  if (T_max <= 0) throw ValueError("CosineAnnealingLR: invalid T_max " + std::to_string(T_max) + " (must be > 0)");
  check_value("CosineAnnealingLR", 0.0 <= eta_min, "eta_min", eta_min, ">= 0");
}

double CosineAnnealingLR::lr_at(std::int64_t epoch, double) const {
  constexpr double pi = 3.14159265358979323846;
  return eta_min_ + (base_lr() - eta_min_) * (1.0 + std::cos(pi * double(epoch) / double(T_max_))) / 2.0;
}

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

}  // namespace tg::optim
