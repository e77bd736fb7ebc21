#include "optim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
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

void check_count(const std::string& owner, bool ok, const char* what, std::int64_t value, const char* rule) {
  if (!ok) throw ValueError(owner + ": invalid " + what + " " + std::to_string(value) + " (must be " + rule + ")");
}

// torch.lerp: self + weight·(end - self), evaluated as PyTorch does for accuracy near weight = 1.
template <class T>
T lerp(T self, T end, T weight) {
  return std::abs(weight) < T(0.5) ? self + weight * (end - self) : end - (end - self) * (T(1) - weight);
}

bool is_flag(double v) { return v == 0.0 || v == 1.0; }

std::string key_list(const Options& options) {
  std::string s;
  for (const auto& kv : options) s += (s.empty() ? "" : ", ") + kv.first;
  return s;
}

}  // namespace

// ---- Optimizer -------------------------------------------------------------

Optimizer::Optimizer(std::string name, Options defaults) : name_(std::move(name)), defaults_(std::move(defaults)) {}

void Optimizer::check(bool ok, const char* what, double value, const char* rule) const {
  check_value(name_, ok, what, value, rule);
}

Options Optimizer::complete(const ParamGroup& group) const {
  Options options = defaults_;
  for (const auto& kv : group.options) {
    if (!defaults_.count(kv.first))
      throw ValueError(name_ + ": unknown option \"" + kv.first + "\" (" + name_ + "'s options: " +
                       key_list(defaults_) + ")");
    options[kv.first] = kv.second;
  }
  validate(options);
  return options;
}

void Optimizer::init(std::vector<ParamGroup> groups) {
  validate(defaults_);
  std::size_t total = 0;
  for (const ParamGroup& g : groups) total += g.params.size();
  if (total == 0) throw ValueError(name_ + ": got an empty parameter list");
  for (ParamGroup& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup group) {
  const std::size_t g = groups_.size();
  Options options = complete(group);
  std::unordered_set<const void*> existing;
  for (const Tensor& p : params_) existing.insert(p.impl().get());
  std::unordered_set<const void*> seen;
  std::vector<Tensor> kept;
  for (std::size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    const std::string which =
        name_ + ": " + (g == 0 ? std::string() : "group " + std::to_string(g) + ", ") + "parameter " + std::to_string(i);
    if (!p.defined()) throw ValueError(which + " is undefined (it holds no value)");
    TG_CHECK(is_floating(p.dtype()), DtypeError,
             which << " of shape " << shape_str(p.shape()) << " holds " << dtype_name(p.dtype())
                   << " elements; only float32 and float64 tensors can be optimized");
    if (!p.is_leaf())
      throw ValueError(which + " of shape " + shape_str(p.shape()) +
                       " is not a leaf (a recorded op produced it); only leaves can be optimized");
    if (existing.count(p.impl().get()))
      throw ValueError(which + " of shape " + shape_str(p.shape()) +
                       ": some parameters appear in more than one parameter group");
    if (seen.insert(p.impl().get()).second) kept.push_back(p);  // a tensor listed twice is one parameter
  }
  for (const Tensor& p : kept) {
    params_.push_back(p);
    group_of_.push_back(g);
    steps_.push_back(0);
    state_.emplace_back();
    state_shapes_.emplace_back();
    state_dtypes_.push_back(p.dtype());
  }
  groups_.emplace_back(std::move(kept), std::move(options));
  initial_lrs_.emplace_back();
}

double Optimizer::option(std::size_t group, const std::string& key) const {
  const Options& options = groups_.at(group).options;
  const auto it = options.find(key);
  if (it == options.end())
    throw ValueError(name_ + ": unknown option \"" + key + "\" (" + name_ + "'s options: " + key_list(defaults_) +
                     ")");
  return it->second;
}

void Optimizer::set_option(std::size_t group, const std::string& key, double value) {
  ParamGroup& g = groups_.at(group);
  ParamGroup changed({}, g.options);
  changed.options[key] = value;
  g.options = complete(changed);
}

void Optimizer::set_lr(double lr) {
  check(0.0 <= lr, "learning rate", lr, ">= 0");
  for (ParamGroup& g : groups_) g.options["lr"] = lr;
}

void Optimizer::set_initial_lr(std::size_t group, double lr) {
  check(0.0 <= lr, "initial learning rate", lr, ">= 0");
  initial_lrs_.at(group) = lr;
}

Tensor Optimizer::state(std::size_t index, const std::string& name) const {
  const auto& state = state_.at(index);
  const auto it = state.find(name);
  return it == state.end() ? Tensor() : it->second;
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
    update(i, steps_[i], groups_[group_of_[i]].options, p, g.contiguous());
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  for (Tensor& p : params_) p.zero_grad(set_to_none);
}

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
    throw ValueError("SGD: nesterov momentum requires momentum > 0 and dampening 0, got momentum " + num(momentum) +
                     " and dampening " + num(dampening));
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

// ---- schedulers ------------------------------------------------------------

void Scheduler::check_groups() const {
  if (optimizer_.num_groups() != last_lrs_.size())
    throw ValueError(std::string(name()) + ": the optimizer has " + std::to_string(optimizer_.num_groups()) +
                     " parameter groups but the scheduler was created for " + std::to_string(last_lrs_.size()) +
                     " (add groups before creating a scheduler)");
}

void Scheduler::state_fields(Fields& fields, const std::string& prefix) {
  fields.tags.emplace_back(prefix + "name", name());
  fields.ints.emplace_back(prefix + "last_epoch", &last_epoch_);
  fields.lists.emplace_back(prefix + "last_lrs", &last_lrs_);
}

LRScheduler::LRScheduler(Optimizer& optimizer) : Scheduler(optimizer) {
  for (std::size_t g = 0; g < optimizer.num_groups(); ++g) {
    if (!optimizer.initial_lr(g)) optimizer.set_initial_lr(g, optimizer.lr(g));  // torch's setdefault
    base_lrs_.push_back(*optimizer.initial_lr(g));
    last_lrs_.push_back(optimizer.lr(g));
  }
  last_epoch_ = -1;
}

void LRScheduler::state_fields(Fields& fields, const std::string& prefix) {
  Scheduler::state_fields(fields, prefix);
  fields.lists.emplace_back(prefix + "base_lrs", &base_lrs_);
}

void LRScheduler::apply(const std::vector<double>& lrs) {
  for (std::size_t g = 0; g < lrs.size(); ++g) optimizer_.set_lr(g, lrs[g]);
  last_lrs_ = lrs;
}

std::vector<double> LRScheduler::lrs_at(std::int64_t epoch) {
  std::vector<double> lrs;
  for (std::size_t g = 0; g < base_lrs_.size(); ++g) lrs.push_back(lr_at(epoch, g, optimizer_.lr(g)));
  return lrs;
}

void LRScheduler::step() {
  check_groups();
  const std::vector<double> lrs = lrs_at(last_epoch_ + 1);
  for (std::size_t g = 0; g < lrs.size(); ++g)
    if (!(lrs[g] >= 0.0))
      throw ValueError(std::string(name()) + ": epoch " + std::to_string(last_epoch_ + 1) + " gives group " +
                       std::to_string(g) + " the invalid lr " + num(lrs[g]) + " (must be >= 0)");
  ++last_epoch_;
  apply(lrs);
}

void LRScheduler::initial_step() { LRScheduler::step(); }

void LRScheduler::restart() {
  check_groups();
  std::vector<double> lrs;
  for (std::size_t g = 0; g < base_lrs_.size(); ++g) lrs.push_back(lr_at(0, g, base_lrs_[g]));
  last_epoch_ = 0;
  apply(lrs);
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  check_count("StepLR", step_size > 0, "step_size", step_size, "> 0");
  check_value("StepLR", 0.0 <= gamma, "gamma", gamma, ">= 0");
  initial_step();
}

double StepLR::lr_at(std::int64_t epoch, std::size_t, double current) const {
  return epoch == 0 || epoch % step_size_ != 0 ? current : current * gamma_;
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma) : LRScheduler(optimizer), gamma_(gamma) {
  check_value("ExponentialLR", 0.0 <= gamma, "gamma", gamma, ">= 0");
  initial_step();
}

double ExponentialLR::lr_at(std::int64_t epoch, std::size_t, double current) const {
  return epoch == 0 ? current : current * gamma_;
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  check_count("CosineAnnealingLR", T_max > 0, "T_max", T_max, "> 0");
  check_value("CosineAnnealingLR", 0.0 <= eta_min, "eta_min", eta_min, ">= 0");
  initial_step();
}

double CosineAnnealingLR::lr_at(std::int64_t epoch, std::size_t group, double current) const {
  if (epoch == 0) return current;
  constexpr double pi = 3.14159265358979323846;
  return eta_min_ + (base_lrs_[group] - eta_min_) * (1.0 + std::cos(pi * double(epoch) / double(T_max_))) / 2.0;
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor, std::int64_t total_iters)
    : LRScheduler(optimizer), start_factor_(start_factor), end_factor_(end_factor), total_iters_(total_iters) {
  check_value("LinearLR", 0.0 < start_factor && start_factor <= 1.0, "start_factor", start_factor, "in (0, 1]");
  check_value("LinearLR", 0.0 <= end_factor && end_factor <= 1.0, "end_factor", end_factor, "in [0, 1]");
  check_count("LinearLR", total_iters >= 0, "total_iters", total_iters, ">= 0");
  initial_step();
}

double LinearLR::lr_at(std::int64_t epoch, std::size_t, double current) const {
  if (epoch == 0) return current * start_factor_;
  if (epoch > total_iters_) return current;
  return current * (1.0 + (end_factor_ - start_factor_) /
                              (double(total_iters_) * start_factor_ + double(epoch - 1) * (end_factor_ - start_factor_)));
}

LambdaLR::LambdaLR(Optimizer& optimizer, Lambda lambda)
    : LambdaLR(optimizer, std::vector<Lambda>(optimizer.num_groups(), lambda)) {}

LambdaLR::LambdaLR(Optimizer& optimizer, std::vector<Lambda> lambdas)
    : LRScheduler(optimizer), lambdas_(std::move(lambdas)) {
  if (lambdas_.size() != optimizer.num_groups())
    throw ValueError("LambdaLR: got " + std::to_string(lambdas_.size()) + " functions for " +
                     std::to_string(optimizer.num_groups()) + " parameter groups");
  for (std::size_t g = 0; g < lambdas_.size(); ++g)
    if (!lambdas_[g]) throw ValueError("LambdaLR: function " + std::to_string(g) + " is empty");
  initial_step();
}

double LambdaLR::lr_at(std::int64_t epoch, std::size_t group, double) const {
  return base_lrs_[group] * lambdas_[group](epoch);
}

OneCycleLR::OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps, OneCycleOptions options)
    : OneCycleLR(optimizer, std::vector<double>(optimizer.num_groups(), max_lr), total_steps, options) {}

OneCycleLR::OneCycleLR(Optimizer& optimizer, std::vector<double> max_lrs, std::int64_t total_steps,
                       OneCycleOptions options)
    : LRScheduler(optimizer), total_steps_(total_steps), options_(options), max_lrs_(std::move(max_lrs)) {
  const OneCycleOptions& o = options_;
  check_count("OneCycleLR", total_steps > 0, "total_steps", total_steps, "> 0");
  check_value("OneCycleLR", 0.0 <= o.pct_start && o.pct_start <= 1.0, "pct_start", o.pct_start, "in [0, 1]");
  check_value("OneCycleLR", 0.0 < o.div_factor && std::isfinite(o.div_factor), "div_factor", o.div_factor,
              "finite and > 0");
  check_value("OneCycleLR", 0.0 < o.final_div_factor && std::isfinite(o.final_div_factor), "final_div_factor",
              o.final_div_factor, "finite and > 0");
  if (max_lrs_.size() != optimizer.num_groups())
    throw ValueError("OneCycleLR: got " + std::to_string(max_lrs_.size()) + " max_lrs for " +
                     std::to_string(optimizer.num_groups()) + " parameter groups");
  for (double m : max_lrs_) check_value("OneCycleLR", 0.0 <= m && std::isfinite(m), "max_lr", m, "finite and >= 0");
  if (o.cycle_momentum) {
    const Options& d = optimizer.defaults();
    momentum_key_ = d.count("momentum") ? "momentum" : d.count("beta1") ? "beta1" : nullptr;
    if (!momentum_key_)
      throw ValueError("OneCycleLR: " + optimizer.name() +
                       " has no momentum or beta1 to cycle; construct with cycle_momentum = false");
    check_value("OneCycleLR", 0.0 <= o.base_momentum && o.base_momentum <= o.max_momentum, "base_momentum",
                o.base_momentum, "in [0, max_momentum]");
    check_value("OneCycleLR", momentum_key_ == std::string("momentum") || o.max_momentum < 1.0, "max_momentum",
                o.max_momentum, "< 1 for Adam's beta1");
  }
  const double steps = double(total_steps);
  if (o.three_phase)
    phases_ = {{o.pct_start * steps - 1.0, 0, 1, true, false},
               {2.0 * o.pct_start * steps - 2.0, 1, 0, false, true},
               {steps - 1.0, 0, 2, true, true}};
  else
    phases_ = {{o.pct_start * steps - 1.0, 0, 1, true, false}, {steps - 1.0, 1, 2, false, true}};
  for (std::size_t g = 0; g < max_lrs_.size(); ++g) {
    const double initial = max_lrs_[g] / o.div_factor;
    optimizer.set_initial_lr(g, initial);
    base_lrs_[g] = initial;
    min_lrs_.push_back(initial / o.final_div_factor);
    if (momentum_key_) optimizer.set_option(g, momentum_key_, o.max_momentum);
  }
  initial_step();
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  constexpr double pi = 3.14159265358979323846;
  if (options_.anneal_cos) return end + (start - end) / 2.0 * (std::cos(pi * pct) + 1.0);
  return (end - start) * pct + start;
}

std::vector<double> OneCycleLR::lrs_at(std::int64_t epoch) {
  if (epoch > total_steps_)
    throw ValueError("OneCycleLR: tried to step " + std::to_string(epoch) +
                     " times; the specified number of total steps is " + std::to_string(total_steps_));
  std::vector<double> lrs, momenta;
  for (std::size_t g = 0; g < max_lrs_.size(); ++g) {
    const double values[3] = {base_lrs_[g], max_lrs_[g], min_lrs_[g]};
    double start_step = 0.0;
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      const Phase& phase = phases_[i];
      if (double(epoch) <= phase.end_step || i + 1 == phases_.size()) {
        const double pct = (double(epoch) - start_step) / (phase.end_step - start_step);
        lrs.push_back(anneal(values[phase.start_lr], values[phase.end_lr], pct));
        momenta.push_back(anneal(phase.start_max_momentum ? options_.max_momentum : options_.base_momentum,
                                 phase.end_max_momentum ? options_.max_momentum : options_.base_momentum, pct));
        break;
      }
      start_step = phase.end_step;
    }
  }
  momenta_ = std::move(momenta);
  return lrs;
}

void OneCycleLR::apply(const std::vector<double>& lrs) {
  LRScheduler::apply(lrs);
  if (momentum_key_)
    for (std::size_t g = 0; g < momenta_.size(); ++g) optimizer_.set_option(g, momentum_key_, momenta_[g]);
}

void OneCycleLR::restart() {
  check_groups();
  const std::vector<double> lrs = lrs_at(0);
  last_epoch_ = 0;
  apply(lrs);
}

double OneCycleLR::lr_at(std::int64_t, std::size_t, double current) const { return current; }

SequentialLR::SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
                           std::vector<std::int64_t> milestones)
    : LRScheduler(optimizer), schedulers_(std::move(schedulers)), milestones_(std::move(milestones)) {
  if (schedulers_.empty()) throw ValueError("SequentialLR: got no schedulers");
  for (std::size_t i = 0; i < schedulers_.size(); ++i) {
    if (!schedulers_[i]) throw ValueError("SequentialLR: scheduler " + std::to_string(i) + " is null");
    if (&schedulers_[i]->optimizer() != &optimizer)
      throw ValueError("SequentialLR: scheduler " + std::to_string(i) + " (" + schedulers_[i]->name() +
                       ") acts on another optimizer");
  }
  if (milestones_.size() + 1 != schedulers_.size())
    throw ValueError("SequentialLR: got " + std::to_string(schedulers_.size()) + " schedulers and " +
                     std::to_string(milestones_.size()) + " milestones (must be one fewer)");
  for (std::size_t i = 0; i < milestones_.size(); ++i)
    check_count("SequentialLR", milestones_[i] > (i == 0 ? 0 : milestones_[i - 1]), "milestone", milestones_[i],
                "> 0 and greater than the one before");
  for (std::size_t g = 0; g < optimizer.num_groups(); ++g) optimizer.set_lr(g, *optimizer.initial_lr(g));
  for (auto& s : schedulers_) s->last_epoch_ -= 1;  // undo the epoch-0 step each made
  schedulers_[0]->initial_step();
  last_epoch_ = 0;
  last_lrs_ = schedulers_[0]->last_lrs_;
}

void SequentialLR::step() {
  check_groups();
  const std::int64_t epoch = last_epoch_ + 1;
  const std::size_t idx = std::size_t(std::upper_bound(milestones_.begin(), milestones_.end(), epoch) -
                                      milestones_.begin());
  LRScheduler& s = *schedulers_[idx];
  if (idx > 0 && milestones_[idx - 1] == epoch)
    s.restart();
  else
    s.step();
  last_epoch_ = epoch;
  last_lrs_ = s.last_lrs_;
}

void SequentialLR::state_fields(Fields& fields, const std::string& prefix) {
  LRScheduler::state_fields(fields, prefix);
  for (std::size_t i = 0; i < schedulers_.size(); ++i)
    schedulers_[i]->state_fields(fields, prefix + std::to_string(i) + ".");
}

double SequentialLR::lr_at(std::int64_t, std::size_t, double current) const { return current; }

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, Config config)
    : Scheduler(optimizer), config_(std::move(config)) {
  const Config& c = config_;
  check_value("ReduceLROnPlateau", 0.0 <= c.factor && c.factor < 1.0, "factor", c.factor, "in [0, 1)");
  check_count("ReduceLROnPlateau", c.patience >= 0, "patience", c.patience, ">= 0");
  check_count("ReduceLROnPlateau", c.cooldown >= 0, "cooldown", c.cooldown, ">= 0");
  check_value("ReduceLROnPlateau", 0.0 <= c.threshold, "threshold", c.threshold, ">= 0");
  check_value("ReduceLROnPlateau", 0.0 <= c.eps, "eps", c.eps, ">= 0");
  if (c.min_lrs.empty()) {
    min_lrs_.assign(optimizer.num_groups(), c.min_lr);
  } else {
    if (c.min_lrs.size() != optimizer.num_groups())
      throw ValueError("ReduceLROnPlateau: got " + std::to_string(c.min_lrs.size()) + " min_lrs for " +
                       std::to_string(optimizer.num_groups()) + " parameter groups");
    min_lrs_ = c.min_lrs;
  }
  for (double m : min_lrs_) check_value("ReduceLROnPlateau", 0.0 <= m, "min_lr", m, ">= 0");
  best_ = c.mode == Mode::kMin ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  for (std::size_t g = 0; g < optimizer.num_groups(); ++g) last_lrs_.push_back(optimizer.lr(g));
}

bool ReduceLROnPlateau::is_better(double a) const {
  const double t = config_.threshold;
  const bool rel = config_.threshold_mode == ThresholdMode::kRel;
  if (config_.mode == Mode::kMin) return rel ? a < best_ * (1.0 - t) : a < best_ - t;
  return rel ? a > best_ * (t + 1.0) : a > best_ + t;
}

void ReduceLROnPlateau::step(double metric) {
  check_groups();
  ++last_epoch_;
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad epochs in cooldown do not count
  }
  if (num_bad_epochs_ > config_.patience) {
    for (std::size_t g = 0; g < min_lrs_.size(); ++g) {
      const double old_lr = optimizer_.lr(g);
      const double new_lr = std::max(old_lr * config_.factor, min_lrs_[g]);
      if (old_lr - new_lr > config_.eps) optimizer_.set_lr(g, new_lr);
    }
    cooldown_counter_ = config_.cooldown;
    num_bad_epochs_ = 0;
  }
  for (std::size_t g = 0; g < min_lrs_.size(); ++g) last_lrs_[g] = optimizer_.lr(g);
}

void ReduceLROnPlateau::state_fields(Fields& fields, const std::string& prefix) {
  Scheduler::state_fields(fields, prefix);
  fields.reals.emplace_back(prefix + "best", &best_);
  fields.ints.emplace_back(prefix + "num_bad_epochs", &num_bad_epochs_);
  fields.ints.emplace_back(prefix + "cooldown_counter", &cooldown_counter_);
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
