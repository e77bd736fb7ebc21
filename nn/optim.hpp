// Optimizers, learning-rate schedulers and gradient clipping, as torch.optim
// and torch.nn.utils.clip_grad_norm_ / clip_grad_value_, with PyTorch's
// update formulas and defaults.
//
//   tg::optim::Adam adam(net.parameters(), 1e-3);
//   tg::optim::CosineAnnealingLR schedule(adam, epochs);
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     for (...) {
//       adam.zero_grad();
//       loss.backward();
//       tg::optim::clip_grad_norm(net.parameters(), 1.0);  // optional
//       adam.step();
//     }
//     schedule.step();
//   }
//
// Parameter groups, as torch's: each group has its own parameters and
// options; an option a group does not set takes the optimizer's value (the
// constructor's arguments). No weight decay on biases and norm parameters:
//
//   std::vector<tg::Tensor> decay, no_decay;
//   for (const auto& [name, p] : net.named_parameters()) (p.dim() <= 1 ? no_decay : decay).push_back(p);
//   tg::optim::AdamW adamw({{decay}, {no_decay, {{"weight_decay", 0.0}}}}, 1e-3);
//   adamw.lr(1);                  // group 1's lr; set_lr(1, 0.01) sets it
//   adamw.add_param_group({head_params, {{"lr", 1e-2}}});
//
// The options: SGD lr, momentum, dampening, weight_decay, nesterov;
// Adam and AdamW lr, beta1, beta2, eps, weight_decay; RMSprop lr, alpha,
// eps, weight_decay, momentum, centered (nesterov and centered are 0 or 1).
// An unknown option is a ValueError.
//
// A tensor listed twice (tied weights, the same TensorImpl) is one
// parameter: the later mentions in a group are dropped. A tensor in two
// groups is a ValueError, as in torch ("appears in more than one parameter
// group"). params() is every group's parameters, group after group; state
// and step counts are kept by that index.
//
// Optimizers update float32 and float64 parameters alike (each parameter in
// its own dtype; one list may mix them). Every optimizer derives from
// Optimizer, on which the schedulers act.
//
// An optimizer holds handles to its parameters (they share value and
// gradient with the module's) and updates their values in place, element by
// element, under NoGradGuard, recording nothing. step() skips a parameter
// that does not require grad (frozen, e.g. by Module::freeze()) or has no
// gradient; its state (momentum buffers, moments, step count) waits for it.
// Scalar coefficients (bias corrections, 1 - beta, ...) are computed in
// double; the element-wise arithmetic and the state tensors are in the
// parameter's dtype, as PyTorch does.
//
// Saving and resuming (safetensors, see nn/serialize.hpp):
//
//   tg::nn::save(net, dir + "/model.safetensors");
//   adam.save(dir + "/optimizer.safetensors", schedule);   // or adam.save(path) without a scheduler
//   ...  // a new process: the same model, optimizer and scheduler, constructed as before
//   tg::nn::load(net, dir + "/model.safetensors");
//   adam.load(dir + "/optimizer.safetensors", schedule);
//
// The file holds each parameter's state tensors and step count, each group's
// options (lr included) and the scheduler's counters, all exactly, so the
// resumed run computes the same parameters bit for bit. load checks the file
// against the optimizer (and scheduler) first: the optimizer's name, the
// number of groups and of parameters in each, each parameter's dtype and
// shape; a difference throws StateMismatchError listing it, and then nothing
// has changed.
//
// Bad hyperparameters throw tg::ValueError naming the optimizer (or
// scheduler) and the value: "Adam: invalid beta1 1.5 (must be in [0, 1))".
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "serialize.hpp"

namespace tg::optim {

// ---- errors ------------------------------------------------------------------

// A saved optimizer (or scheduler) state that does not fit the optimizer it
// is loaded into; the message starts with the file's path and lists every
// difference. A missing or malformed file throws nn::FileError or
// nn::FormatError, as load_tensors does.
class StateMismatchError : public nn::MismatchError {
 public:
  using nn::MismatchError::MismatchError;
};

// ---- parameter groups --------------------------------------------------------

// Option name -> value: {{"lr", 0.01}, {"weight_decay", 0.0}}.
using Options = std::map<std::string, double>;

// {params} or {params, {{"lr", 0.01}}}; {w, b} lists tensors, {{w}, options} gives one tensor options.
struct ParamGroup {
  ParamGroup(std::vector<Tensor> params, Options options = {})  // NOLINT: implicit on purpose
      : params(std::move(params)), options(std::move(options)) {}
  ParamGroup(std::initializer_list<Tensor> params) : params(params) {}  // NOLINT
  std::vector<Tensor> params;
  Options options;  // given: overrides; read from an optimizer: every option
};

class Scheduler;

// ---- optimizers ------------------------------------------------------------

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  const std::string& name() const { return name_; }  // "SGD", "Adam", ...

  // ---- groups and their options ----
  std::size_t num_groups() const { return groups_.size(); }
  // Each group's parameters (deduplicated) and all its options.
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Adds a group, as torch's add_param_group: options it does not set take
  // the optimizer's values. ValueError (and nothing added) for a bad option,
  // a bad parameter, or a parameter already in another group.
  void add_param_group(ParamGroup group);
  double lr(std::size_t group) const { return option(group, "lr"); }
  void set_lr(std::size_t group, double lr) { set_option(group, "lr", lr); }
  double lr() const { return lr(0); }  // the first group's
  void set_lr(double lr);              // every group's; ValueError unless lr >= 0
  // Any option of a group; ValueError for an unknown name or a bad value
  // (the option is then unchanged).
  double option(std::size_t group, const std::string& key) const;
  void set_option(std::size_t group, const std::string& key, double value);
  // The optimizer's options: what a group does not set.
  const Options& defaults() const { return defaults_; }
  // The lr a group had when the first scheduler was attached (torch's
  // group["initial_lr"]); schedulers scale it. None before that.
  std::optional<double> initial_lr(std::size_t group) const { return initial_lrs_.at(group); }
  void set_initial_lr(std::size_t group, double lr);

  // ---- parameters and state ----
  const std::vector<Tensor>& params() const { return params_; }  // every group's, in order
  std::size_t group_of(std::size_t index) const { return group_of_.at(index); }
  // How many updates parameter `index` has received (PyTorch's state["step"]).
  std::int64_t steps(std::size_t index) const { return steps_.at(index); }
  // One of its state tensors ("exp_avg", "momentum_buffer", ...); undefined
  // before its first update.
  Tensor state(std::size_t index, const std::string& name) const;

  // For each parameter, in order, that requires grad and has a gradient:
  // checks its shape and dtype, counts the step and calls update() under
  // NoGradGuard. The one update path for every parameter, whatever its shape
  // (dense weights, conv kernels) and dtype.
  virtual void step();
  // Each parameter's zero_grad: drops the gradient (set_to_none, the
  // default: grad() becomes undefined) or zeroes it in place.
  virtual void zero_grad(bool set_to_none = true);

  // ---- saving and loading (nn/optim_state.cpp) ----
  // Writes the state (and the scheduler's) to a safetensors file: tensors
  // "step" (int64, one per parameter) and "state.<index>.<name>"; options,
  // parameter dtypes and shapes and the scheduler's counters in __metadata__.
  void save(const std::string& path) const;
  void save(const std::string& path, const Scheduler& scheduler) const;
  // Reads such a file into this optimizer (and scheduler), constructed as the
  // saved ones were. StateMismatchError, and nothing changed, unless it fits.
  void load(const std::string& path);
  void load(const std::string& path, Scheduler& scheduler);

 protected:
  // `defaults`: every option with the constructor's value.
  Optimizer(std::string name, Options defaults);
  // Checks the defaults, then adds each group. ValueError for no parameter
  // at all, an undefined tensor, a non-leaf, a tensor in two groups,
  // DtypeError for a tensor that is not float32 or float64.
  void init(std::vector<ParamGroup> groups);
  // Throws ValueError "<name>: invalid <what> <value> (must be <rule>)" unless ok.
  void check(bool ok, const char* what, double value, const char* rule) const;
  // Throws ValueError for a bad value among a group's (complete) options.
  virtual void validate(const Options& options) const = 0;
  // The names of the state tensors a parameter may have.
  virtual std::vector<std::string> state_names() const = 0;
  // The state tensor `name` of parameter `index`, undefined until set.
  Tensor& state_tensor(std::size_t index, const std::string& name) { return state_.at(index)[name]; }

  // Updates parameter `index` in place from its gradient (contiguous, of the
  // parameter's shape and dtype), with its group's options. `step` is its
  // update count including this one (1 on its first update).
  virtual void update(std::size_t index, std::int64_t step, const Options& group, Tensor& param,
                      const Tensor& grad) = 0;

 private:
  void save_impl(const std::string& path, const Scheduler* scheduler) const;
  void load_impl(const std::string& path, Scheduler* scheduler);
  Options complete(const ParamGroup& group) const;  // the group's options over the defaults, checked

  std::string name_;
  Options defaults_;
  std::vector<ParamGroup> groups_;
  std::vector<std::optional<double>> initial_lrs_;
  std::vector<Tensor> params_;
  std::vector<std::size_t> group_of_;
  std::vector<std::int64_t> steps_;
  std::vector<std::map<std::string, Tensor>> state_;
  // The shape and dtype each parameter's state was created for.
  std::vector<Shape> state_shapes_;
  std::vector<Dtype> state_dtypes_;
};

// torch.optim.SGD: with g the gradient (+ weight_decay·p),
//   momentum:  b = g on the first step, then b = momentum·b + (1 - dampening)·g;
//              g = g + momentum·b (nesterov) or g = b;
//   p -= lr·g.
// State: "momentum_buffer" (with momentum).
class SGD : public Optimizer {
 public:
  // ValueError for lr, momentum or weight_decay < 0, and for nesterov
  // without momentum > 0 and dampening == 0.
  SGD(std::vector<Tensor> params, double lr, double momentum = 0.0, double dampening = 0.0,
      double weight_decay = 0.0, bool nesterov = false)
      : SGD(std::vector<ParamGroup>{ParamGroup(std::move(params))}, lr, momentum, dampening, weight_decay,
            nesterov) {}
  SGD(std::vector<ParamGroup> groups, double lr, double momentum = 0.0, double dampening = 0.0,
      double weight_decay = 0.0, bool nesterov = false);

 protected:
  void validate(const Options& options) const override;
  std::vector<std::string> state_names() const override { return {"momentum_buffer"}; }
  void update(std::size_t index, std::int64_t step, const Options& group, Tensor& param,
              const Tensor& grad) override;

 private:
  template <class T>
  void update_as(std::size_t index, const Options& group, Tensor& param, const Tensor& grad);
};

// torch.optim.Adam (amsgrad off): with g the gradient (+ weight_decay·p, L2)
// and t the parameter's step count,
//   m = beta1·m + (1 - beta1)·g;  v = beta2·v + (1 - beta2)·g²;
//   p -= lr / (1 - beta1^t) · m / (√v / √(1 - beta2^t) + eps).
// State: "exp_avg", "exp_avg_sq".
class Adam : public Optimizer {
 public:
  // ValueError for lr, eps or weight_decay < 0, or a beta outside [0, 1).
  Adam(std::vector<Tensor> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
       double weight_decay = 0.0)
      : Adam("Adam", false, {ParamGroup(std::move(params))}, lr, beta1, beta2, eps, weight_decay) {}
  Adam(std::vector<ParamGroup> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
       double eps = 1e-8, double weight_decay = 0.0)
      : Adam("Adam", false, std::move(groups), lr, beta1, beta2, eps, weight_decay) {}

 protected:
  // decoupled: AdamW's p *= 1 - lr·weight_decay instead of the L2 term.
  Adam(const char* name, bool decoupled, std::vector<ParamGroup> groups, double lr, double beta1, double beta2,
       double eps, double weight_decay);
  void validate(const Options& options) const override;
  std::vector<std::string> state_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  void update(std::size_t index, std::int64_t step, const Options& group, Tensor& param,
              const Tensor& grad) override;

 private:
  template <class T>
  void update_as(std::size_t index, std::int64_t step, const Options& group, Tensor& param, const Tensor& grad);

  bool decoupled_;
};

// torch.optim.AdamW: p *= 1 - lr·weight_decay, then Adam's step without L2.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 1e-2)
      : Adam("AdamW", true, {ParamGroup(std::move(params))}, lr, beta1, beta2, eps, weight_decay) {}
  AdamW(std::vector<ParamGroup> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 1e-2)
      : Adam("AdamW", true, std::move(groups), lr, beta1, beta2, eps, weight_decay) {}
};

// torch.optim.RMSprop: with g the gradient (+ weight_decay·p),
//   s = alpha·s + (1 - alpha)·g²;
//   centered: a = alpha·a + (1 - alpha)·g, d = √(s - a²) + eps; else d = √s + eps;
//   momentum > 0: b = momentum·b + g / d, p -= lr·b;  else p -= lr·g / d.
// State: "square_avg", "grad_avg" (centered), "momentum_buffer" (momentum > 0).
class RMSprop : public Optimizer {
 public:
  // ValueError for lr, alpha, eps, weight_decay or momentum < 0.
  RMSprop(std::vector<Tensor> params, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
          double weight_decay = 0.0, double momentum = 0.0, bool centered = false)
      : RMSprop(std::vector<ParamGroup>{ParamGroup(std::move(params))}, lr, alpha, eps, weight_decay, momentum,
                centered) {}
  RMSprop(std::vector<ParamGroup> groups, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
          double weight_decay = 0.0, double momentum = 0.0, bool centered = false);

 protected:
  void validate(const Options& options) const override;
  std::vector<std::string> state_names() const override { return {"square_avg", "grad_avg", "momentum_buffer"}; }
  void update(std::size_t index, std::int64_t step, const Options& group, Tensor& param,
              const Tensor& grad) override;

 private:
  template <class T>
  void update_as(std::size_t index, const Options& group, Tensor& param, const Tensor& grad);
};

// ---- learning-rate schedulers ----------------------------------------------

// What every scheduler has: the optimizer it sets (which must outlive it),
// the epoch count and the lrs it set last, one per group. Its counters are
// saved and loaded with the optimizer (Optimizer::save(path, scheduler)).
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  virtual const char* name() const = 0;  // "StepLR", ...
  std::int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& last_lrs() const { return last_lrs_; }  // one per group
  double last_lr() const { return last_lrs_.at(0); }                // the first group's
  Optimizer& optimizer() const { return optimizer_; }

  // The variables that make up a scheduler's state, by name, for saving and
  // loading; lists have one entry per group. `tags` are fixed strings a
  // loaded state must repeat (the scheduler's name).
  struct Fields {
    std::vector<std::pair<std::string, std::string>> tags;
    std::vector<std::pair<std::string, std::int64_t*>> ints;
    std::vector<std::pair<std::string, double*>> reals;
    std::vector<std::pair<std::string, std::vector<double>*>> lists;
  };
  // Appends this scheduler's fields, each name prefixed by `prefix`.
  virtual void state_fields(Fields& fields, const std::string& prefix);

 protected:
  explicit Scheduler(Optimizer& optimizer) : optimizer_(optimizer) {}
  // ValueError unless the optimizer still has as many groups as lrs.
  void check_groups() const;

  Optimizer& optimizer_;
  std::int64_t last_epoch_ = 0;
  std::vector<double> last_lrs_;
};

// Sets its optimizer's lrs as a function of the epoch, as
// torch.optim.lr_scheduler: construct it after the optimizer, call step()
// once per epoch (or batch) after the optimizer's steps. Construction sets
// each group's initial lr (if no scheduler did before) and makes the epoch-0
// step: base_lrs are the initial lrs.
class LRScheduler : public Scheduler {
 public:
  // The next epoch: computes each group's lr and sets it. ValueError, and
  // nothing changed, if an lr comes out negative or NaN.
  virtual void step();
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  double base_lr() const { return base_lrs_.at(0); }
  void state_fields(Fields& fields, const std::string& prefix) override;

 protected:
  explicit LRScheduler(Optimizer& optimizer);
  // The epoch-0 step; each derived constructor ends with it.
  void initial_step();
  // torch's step(0), as SequentialLR makes at a milestone: epoch 0, from the
  // base lrs.
  virtual void restart();
  // The lrs for `epoch` (0 for the initial step), one per group.
  virtual std::vector<double> lrs_at(std::int64_t epoch);
  // One group's lr for `epoch`, given its current lr (torch's get_lr).
  virtual double lr_at(std::int64_t epoch, std::size_t group, double current) const = 0;
  // Sets the lrs (and whatever else the scheduler sets) on the optimizer.
  virtual void apply(const std::vector<double>& lrs);

  std::vector<double> base_lrs_;
  friend class SequentialLR;
};

// Every step_size epochs the lr is multiplied by gamma (torch's chainable
// form: base_lr·gamma^⌊epoch / step_size⌋ unless an lr was set by hand).
class StepLR : public LRScheduler {
 public:
  // ValueError for step_size <= 0 or gamma < 0.
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);
  const char* name() const override { return "StepLR"; }

 protected:
  double lr_at(std::int64_t epoch, std::size_t group, double current) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

// The lr multiplied by gamma every epoch (chainable: base_lr·gamma^epoch).
class ExponentialLR : public LRScheduler {
 public:
  // ValueError for gamma < 0.
  ExponentialLR(Optimizer& optimizer, double gamma);
  const char* name() const override { return "ExponentialLR"; }

 protected:
  double lr_at(std::int64_t epoch, std::size_t group, double current) const override;

 private:
  double gamma_;
};

// PyTorch's closed form: eta_min + (base_lr - eta_min)·(1 + cos(π·epoch / T_max)) / 2,
// which reaches eta_min at T_max and, past it, rises again (period 2·T_max).
class CosineAnnealingLR : public LRScheduler {
 public:
  // ValueError for T_max <= 0 or eta_min < 0.
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min = 0.0);
  const char* name() const override { return "CosineAnnealingLR"; }

 protected:
  double lr_at(std::int64_t epoch, std::size_t group, double current) const override;

 private:
  std::int64_t T_max_;
  double eta_min_;
};

// Warm-up: the lr goes linearly from base_lr·start_factor to
// base_lr·end_factor over total_iters epochs, then stays. torch's chainable
// form: epoch 0: lr·start_factor; epochs 1..total_iters:
// lr·(1 + (end - start) / (total_iters·start + (epoch - 1)·(end - start))).
class LinearLR : public LRScheduler {
 public:
  // ValueError for start_factor outside (0, 1], end_factor outside [0, 1],
  // total_iters < 0.
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3.0, double end_factor = 1.0,
           std::int64_t total_iters = 5);
  const char* name() const override { return "LinearLR"; }

 protected:
  double lr_at(std::int64_t epoch, std::size_t group, double current) const override;

 private:
  double start_factor_, end_factor_;
  std::int64_t total_iters_;
};

// base_lr·lambda(epoch), one function for every group or one per group.
class LambdaLR : public LRScheduler {
 public:
  using Lambda = std::function<double(std::int64_t epoch)>;
  LambdaLR(Optimizer& optimizer, Lambda lambda);
  // ValueError unless there is one function per group.
  LambdaLR(Optimizer& optimizer, std::vector<Lambda> lambdas);
  const char* name() const override { return "LambdaLR"; }

 protected:
  double lr_at(std::int64_t epoch, std::size_t group, double current) const override;

 private:
  std::vector<Lambda> lambdas_;
};

struct OneCycleOptions {
  double pct_start = 0.3;           // the share of the steps spent rising
  bool anneal_cos = true;           // cosine annealing (torch's 'cos'); false: linear
  bool cycle_momentum = true;       // momentum (SGD, RMSprop) or beta1 (Adam) cycles inversely
  double base_momentum = 0.85;
  double max_momentum = 0.95;
  double div_factor = 25.0;         // initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;    // min_lr = initial_lr / final_div_factor
  bool three_phase = false;
};

// torch's OneCycleLR, stepped once per batch for total_steps steps:
// phase 1 from initial_lr up to max_lr over pct_start·total_steps - 1 steps,
// phase 2 down to min_lr at step total_steps - 1 (three_phase: back to
// initial_lr at 2·pct_start·total_steps - 2, then down to min_lr); each phase
// anneals with end + (start - end)/2·(cos(π·pct) + 1) (or linearly). Sets the
// groups' lrs to initial_lr at construction (and their initial lrs to it).
// Stepping past total_steps is a ValueError, as is a step that would give
// a negative lr (the last step, total_steps, extrapolates the last phase).
class OneCycleLR : public LRScheduler {
 public:
  // ValueError for total_steps <= 0, pct_start outside [0, 1], a bad
  // momentum or factor, cycle_momentum on an optimizer with no momentum.
  OneCycleLR(Optimizer& optimizer, double max_lr, std::int64_t total_steps, OneCycleOptions options = {});
  OneCycleLR(Optimizer& optimizer, std::vector<double> max_lrs, std::int64_t total_steps,
             OneCycleOptions options = {});
  const char* name() const override { return "OneCycleLR"; }

 protected:
  std::vector<double> lrs_at(std::int64_t epoch) override;  // and the momenta to set
  void apply(const std::vector<double>& lrs) override;
  void restart() override;
  double lr_at(std::int64_t epoch, std::size_t group, double current) const override;

 private:
  struct Phase {
    double end_step;
    int start_lr, end_lr;  // 0 initial, 1 max, 2 min
    bool start_max_momentum, end_max_momentum;
  };
  double anneal(double start, double end, double pct) const;

  std::int64_t total_steps_;
  OneCycleOptions options_;
  std::vector<double> max_lrs_, min_lrs_, momenta_;
  std::vector<Phase> phases_;
  const char* momentum_key_ = nullptr;  // "momentum" or "beta1" when cycling
};

// Switches between schedulers at the milestones: schedulers[0] until
// milestones[0], then schedulers[1] restarted at epoch 0, ... All act on this
// optimizer; construction resets each group's lr to its initial lr and
// makes only the first scheduler's epoch-0 step, as torch's.
class SequentialLR : public LRScheduler {
 public:
  // ValueError unless milestones has one entry fewer than schedulers, every
  // scheduler acts on this optimizer and milestones increase.
  SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
               std::vector<std::int64_t> milestones);
  const char* name() const override { return "SequentialLR"; }
  void step() override;
  void state_fields(Fields& fields, const std::string& prefix) override;

 protected:
  double lr_at(std::int64_t epoch, std::size_t group, double current) const override;

 private:
  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
  std::vector<std::int64_t> milestones_;
};

// torch's ReduceLROnPlateau: step(metric) once per epoch. When the metric
// has not improved for more than `patience` epochs, each group's lr becomes
// max(lr·factor, min_lr) (unchanged if that moves it by eps or less), and
// `cooldown` epochs pass before bad epochs count again. Improved means, for
// mode kMin, metric < best·(1 - threshold) (relative) or
// metric < best - threshold (absolute); for kMax, metric > best·(1 + threshold)
// or metric > best + threshold. A NaN never improves.
struct PlateauOptions {
  enum class Mode { kMin, kMax };
  enum class ThresholdMode { kRel, kAbs };
  Mode mode = Mode::kMin;
  double factor = 0.1;
  std::int64_t patience = 10;
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::kRel;
  std::int64_t cooldown = 0;
  double min_lr = 0.0;
  std::vector<double> min_lrs;  // one per group instead of min_lr, if given
  double eps = 1e-8;
};

class ReduceLROnPlateau : public Scheduler {
 public:
  using Config = PlateauOptions;
  using Mode = PlateauOptions::Mode;
  using ThresholdMode = PlateauOptions::ThresholdMode;
  // ValueError for factor >= 1 or < 0, patience or cooldown < 0, threshold
  // < 0, min_lr < 0, min_lrs not one per group.
  explicit ReduceLROnPlateau(Optimizer& optimizer, Config config = {});
  const char* name() const override { return "ReduceLROnPlateau"; }

  void step(double metric);
  double best() const { return best_; }
  std::int64_t num_bad_epochs() const { return num_bad_epochs_; }
  std::int64_t cooldown_counter() const { return cooldown_counter_; }
  void state_fields(Fields& fields, const std::string& prefix) override;

 private:
  bool is_better(double a) const;

  Config config_;
  std::vector<double> min_lrs_;
  double best_;
  std::int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0;
};

// ---- gradient clipping -----------------------------------------------------

// torch.nn.utils.clip_grad_norm_: the L2 norm of all defined gradients taken
// together (computed in double). Every gradient is scaled in place by
// max_norm / (total + 1e-6) when that is below 1, i.e. when total exceeds
// max_norm (less 1e-6); smaller gradients are left alone. Returns the total
// norm before clipping. ValueError for max_norm < 0.
// Float32 and float64 gradients, mixed or not.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// torch.nn.utils.clip_grad_value_: clamps every defined gradient in place to
// [-clip_value, clip_value] (NaN stays NaN). ValueError for clip_value < 0
// or NaN.
void clip_grad_value(const std::vector<Tensor>& params, double clip_value);

}  // namespace tg::optim
