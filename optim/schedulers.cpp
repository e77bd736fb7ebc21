#include "schedulers.hpp"

#include <algorithm>
#include <cmath>

#include "check.hpp"

namespace tg::optim {

using detail::check_count;
using detail::check_value;

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
                       std::to_string(g) + " the invalid lr " + detail::shortest_decimal(lrs[g]) + " (must be >= 0)");
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

}  // namespace tg::optim
