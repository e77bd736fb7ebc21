// Learning-rate schedulers, as torch.optim.lr_scheduler: each sets the lrs
// of an optimizer's groups, epoch by epoch (or step by step).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "optimizer.hpp"

namespace tg::optim {

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

}  // namespace tg::optim
