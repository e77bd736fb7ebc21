#include "optim.hpp"

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <unordered_set>

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

// ---- OptimizerBase ---------------------------------------------------------

OptimizerBase::OptimizerBase(std::string name, double lr) : name_(std::move(name)) { set_lr(lr); }

void OptimizerBase::set_lr(double lr) {
  check(0.0 <= lr, "learning rate", lr, ">= 0");
  lr_ = lr;
}

void OptimizerBase::check(bool ok, const char* what, double value, const char* rule) const {
  check_value(name_, ok, what, value, rule);
}

// ---- BasicOptimizer --------------------------------------------------------

template <class T>
BasicOptimizer<T>::BasicOptimizer(std::string name, std::vector<Tensor> params, double lr)
    : OptimizerBase(std::move(name), lr), params_(std::move(params)) {
  if (params_.empty()) throw ValueError(this->name() + ": got an empty parameter list");
  std::unordered_set<const void*> seen;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const std::string which = this->name() + ": parameter " + std::to_string(i);
    if (!p.defined()) throw ValueError(which + " is undefined (it holds no value)");
    if (!p.is_leaf())
      throw ValueError(which + " of shape " + shape_str(p.shape()) +
                       " is not a leaf (a recorded op produced it); only leaves can be optimized");
    if (!seen.insert(p.impl().get()).second)
      throw ValueError(which + " of shape " + shape_str(p.shape()) + " appears more than once in the list");
  }
  steps_.assign(params_.size(), 0);
  state_shapes_.resize(params_.size());
}

template <class T>
void BasicOptimizer<T>::step() {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    if (!p.requires_grad()) continue;  // frozen
    Tensor g = p.grad();
    if (!g.defined()) continue;  // no gradient reached it
    const Shape shape = p.shape();
    if (g.shape() != shape)
      throw ShapeError(name() + ": parameter " + std::to_string(i) + " has shape " + shape_str(shape) +
                       " but its gradient " + shape_str(g.shape()));
    if (steps_[i] == 0) {
      state_shapes_[i] = shape;
    } else if (state_shapes_[i] != shape) {
      throw ShapeError(name() + ": parameter " + std::to_string(i) + " changed shape from " +
                       shape_str(state_shapes_[i]) + " to " + shape_str(shape) +
                       " since its last update; its optimizer state no longer fits");
    }
    ++steps_[i];
    update(i, steps_[i], p.data(), g.data(), p.numel());
  }
}

template <class T>
void BasicOptimizer<T>::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

// ---- SGD -------------------------------------------------------------------

template <class T>
BasicSGD<T>::BasicSGD(std::vector<Tensor> params, double lr, double momentum, double dampening, double weight_decay,
                      bool nesterov)
    : BasicOptimizer<T>("SGD", std::move(params), lr),
      momentum_(momentum),
      dampening_(dampening),
      weight_decay_(weight_decay),
      nesterov_(nesterov) {
  this->check(0.0 <= momentum, "momentum", momentum, ">= 0");
  this->check(0.0 <= weight_decay, "weight_decay", weight_decay, ">= 0");
  if (nesterov && (momentum <= 0.0 || dampening != 0.0))
    throw ValueError("SGD: nesterov momentum requires momentum > 0 and dampening 0, got momentum " + num(momentum) +
                     " and dampening " + num(dampening));
  momentum_buffers_.resize(this->params().size());
}

template <class T>
void BasicSGD<T>::update(std::size_t index, std::int64_t step, T* value, const T* grad, std::size_t n) {
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
  std::vector<T>& buf = momentum_buffers_[index];
  const bool first = step == 1;  // the buffer starts as the gradient itself, undamped
  if (first) buf.assign(n, T(0));
  for (std::size_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (decay) g += wd * value[i];
    buf[i] = first ? g : buf[i] * momentum + keep * g;
    g = nesterov_ ? g + momentum * buf[i] : buf[i];
    value[i] -= lr * g;
  }
}

// ---- Adam and AdamW --------------------------------------------------------

template <class T>
BasicAdam<T>::BasicAdam(const char* name, bool decoupled, std::vector<Tensor> params, double lr, double beta1,
                        double beta2, double eps, double weight_decay)
    : BasicOptimizer<T>(name, std::move(params), lr),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps),
      weight_decay_(weight_decay),
      decoupled_(decoupled) {
  this->check(0.0 <= eps, "eps", eps, ">= 0");
  this->check(0.0 <= beta1 && beta1 < 1.0, "beta1", beta1, "in [0, 1)");
  this->check(0.0 <= beta2 && beta2 < 1.0, "beta2", beta2, "in [0, 1)");
  this->check(0.0 <= weight_decay, "weight_decay", weight_decay, ">= 0");
  exp_avg_.resize(this->params().size());
  exp_avg_sq_.resize(this->params().size());
}

template <class T>
void BasicAdam<T>::update(std::size_t index, std::int64_t step, T* value, const T* grad, std::size_t n) {
  std::vector<T>& m = exp_avg_[index];
  std::vector<T>& v = exp_avg_sq_[index];
  if (step == 1) {
    m.assign(n, T(0));
    v.assign(n, T(0));
  }
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

// ---- RMSprop ---------------------------------------------------------------

template <class T>
BasicRMSprop<T>::BasicRMSprop(std::vector<Tensor> params, double lr, double alpha, double eps, double weight_decay,
                              double momentum, bool centered)
    : BasicOptimizer<T>("RMSprop", std::move(params), lr),
      alpha_(alpha),
      eps_(eps),
      weight_decay_(weight_decay),
      momentum_(momentum),
      centered_(centered) {
  this->check(0.0 <= eps, "eps", eps, ">= 0");
  this->check(0.0 <= momentum, "momentum", momentum, ">= 0");
  this->check(0.0 <= weight_decay, "weight_decay", weight_decay, ">= 0");
  this->check(0.0 <= alpha, "alpha", alpha, ">= 0");
  square_avg_.resize(this->params().size());
  grad_avg_.resize(this->params().size());
  momentum_buffers_.resize(this->params().size());
}

template <class T>
void BasicRMSprop<T>::update(std::size_t index, std::int64_t step, T* value, const T* grad, std::size_t n) {
  std::vector<T>& s = square_avg_[index];
  std::vector<T>& a = grad_avg_[index];
  std::vector<T>& b = momentum_buffers_[index];
  const bool with_momentum = momentum_ > 0.0;
  if (step == 1) {
    s.assign(n, T(0));
    if (centered_) a.assign(n, T(0));
    if (with_momentum) b.assign(n, T(0));
  }
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

// ---- schedulers ------------------------------------------------------------

LRScheduler::LRScheduler(OptimizerBase& optimizer)
    : optimizer_(optimizer), base_lr_(optimizer.lr()), last_lr_(optimizer.lr()) {}

void LRScheduler::step() {
  const double lr = lr_at(last_epoch_ + 1, optimizer_.lr());
  optimizer_.set_lr(lr);
  ++last_epoch_;
  last_lr_ = lr;
}

StepLR::StepLR(OptimizerBase& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0)
    throw ValueError("StepLR: invalid step_size " + std::to_string(step_size) + " (must be > 0)");
  check_value("StepLR", 0.0 <= gamma, "gamma", gamma, ">= 0");
}

double StepLR::lr_at(std::int64_t epoch, double current) const {
  return epoch % step_size_ == 0 ? current * gamma_ : current;
}

CosineAnnealingLR::CosineAnnealingLR(OptimizerBase& optimizer, std::int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  if (T_max <= 0) throw ValueError("CosineAnnealingLR: invalid T_max " + std::to_string(T_max) + " (must be > 0)");
  check_value("CosineAnnealingLR", 0.0 <= eta_min, "eta_min", eta_min, ">= 0");
}

double CosineAnnealingLR::lr_at(std::int64_t epoch, double) const {
  constexpr double pi = 3.14159265358979323846;
  return eta_min_ + (base_lr() - eta_min_) * (1.0 + std::cos(pi * double(epoch) / double(T_max_))) / 2.0;
}

// ---- clipping --------------------------------------------------------------

template <class T>
double clip_grad_norm(const std::vector<BasicTensor<T>>& params, double max_norm) {
  check_value("clip_grad_norm", 0.0 <= max_norm, "max_norm", max_norm, ">= 0");
  std::vector<BasicTensor<T>> grads;
  double sum = 0.0;
  for (const BasicTensor<T>& p : params) {
    if (!p.defined()) continue;
    BasicTensor<T> g = p.grad();
    if (!g.defined()) continue;
    const T* d = g.data();
    for (std::size_t i = 0, n = g.numel(); i < n; ++i) sum += double(d[i]) * double(d[i]);
    grads.push_back(std::move(g));
  }
  const double total = std::sqrt(sum);
  // PyTorch clamps the coefficient to 1 and multiplies; a NaN total gives NaN
  // gradients there, and here.
  const double coef = max_norm / (total + 1e-6);
  if (!(coef >= 1.0)) {
    const T c = T(coef);
    for (BasicTensor<T>& g : grads) {
      T* d = g.data();
      for (std::size_t i = 0, n = g.numel(); i < n; ++i) d[i] *= c;
    }
  }
  return total;
}

// ---- instantiations --------------------------------------------------------

template class BasicOptimizer<float>;
template class BasicOptimizer<double>;
template class BasicSGD<float>;
template class BasicSGD<double>;
template class BasicAdam<float>;
template class BasicAdam<double>;
template class BasicAdamW<float>;
template class BasicAdamW<double>;
template class BasicRMSprop<float>;
template class BasicRMSprop<double>;
template double clip_grad_norm<float>(const std::vector<BasicTensor<float>>&, double);
template double clip_grad_norm<double>(const std::vector<BasicTensor<double>>&, double);

}  // namespace tg::optim
