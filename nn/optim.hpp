// Optimizers, learning-rate schedulers and gradient clipping, as torch.optim
// and torch.nn.utils.clip_grad_norm_, with PyTorch's update formulas and
// defaults.
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
// Optimizers update float32 and float64 parameters alike (each parameter in
// its own dtype; one list may mix them). Every optimizer derives from
// Optimizer, on which the schedulers act.
//
// An optimizer holds handles to its parameters (they share value and
// gradient with the module's) and updates their values in place, element by
// element, under NoGradGuard, recording nothing. step() skips a parameter
// that does not require grad (frozen, e.g. by Module::freeze()) or has no
// gradient; its state (momentum buffers, moments, step count) is kept by
// position in the parameter list and waits for it. Scalar coefficients (bias
// corrections, 1 - beta, ...) are computed in double; the element-wise
// arithmetic and the state tensors are in the parameter's dtype, as PyTorch
// does.
//
// Bad hyperparameters throw tg::ValueError naming the optimizer (or
// scheduler) and the value: "Adam: invalid beta1 1.5 (must be in [0, 1))".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace tg::optim {

// ---- optimizers ------------------------------------------------------------

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  const std::string& name() const { return name_; }  // "SGD", "Adam", ...
  double lr() const { return lr_; }
  void set_lr(double lr);  // ValueError unless lr >= 0

  const std::vector<Tensor>& params() const { return params_; }
  // How many updates parameter `index` has received (PyTorch's state["step"]).
  std::int64_t steps(std::size_t index) const { return steps_.at(index); }

  // For each parameter, in order, that requires grad and has a gradient:
  // checks its shape and dtype, counts the step and calls update() under
  // NoGradGuard. The one update path for every parameter, whatever its shape
  // (dense weights, conv kernels) and dtype.
  virtual void step();
  // Each parameter's zero_grad: drops the gradient (set_to_none, the
  // default: grad() becomes undefined) or zeroes it in place.
  virtual void zero_grad(bool set_to_none = true);

 protected:
  // Throws ValueError for an empty list, an undefined tensor, a non-leaf or
  // a parameter listed twice, DtypeError for a tensor that is not float32 or
  // float64.
  Optimizer(std::string name, std::vector<Tensor> params, double lr);
  // Throws ValueError "<name>: invalid <what> <value> (must be <rule>)" unless ok.
  void check(bool ok, const char* what, double value, const char* rule) const;

  // Updates parameter `index` in place from its gradient (contiguous, of the
  // parameter's shape and dtype). `step` is its update count including this
  // one (1 on its first update: the time to create its state).
  virtual void update(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad) = 0;

 private:
  std::string name_;
  double lr_ = 0.0;
  std::vector<Tensor> params_;
  std::vector<std::int64_t> steps_;
  // The shape and dtype each parameter's state was created for.
  std::vector<Shape> state_shapes_;
  std::vector<Dtype> state_dtypes_;
};

// torch.optim.SGD: with g the gradient (+ weight_decay·p),
//   momentum:  b = g on the first step, then b = momentum·b + (1 - dampening)·g;
//              g = g + momentum·b (nesterov) or g = b;
//   p -= lr·g.
class SGD : public Optimizer {
 public:
  // ValueError for lr, momentum or weight_decay < 0, and for nesterov
  // without momentum > 0 and dampening == 0.
  SGD(std::vector<Tensor> params, double lr, double momentum = 0.0, double dampening = 0.0,
      double weight_decay = 0.0, bool nesterov = false);

 protected:
  void update(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad) override;

 private:
  template <class T>
  void update_as(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad);

  double momentum_, dampening_, weight_decay_;
  bool nesterov_;
  std::vector<Tensor> momentum_buffers_;
};

// torch.optim.Adam (amsgrad off): with g the gradient (+ weight_decay·p, L2)
// and t the parameter's step count,
//   m = beta1·m + (1 - beta1)·g;  v = beta2·v + (1 - beta2)·g²;
//   p -= lr / (1 - beta1^t) · m / (√v / √(1 - beta2^t) + eps).
class Adam : public Optimizer {
 public:
  // ValueError for lr, eps or weight_decay < 0, or a beta outside [0, 1).
  Adam(std::vector<Tensor> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
       double weight_decay = 0.0)
      : Adam("Adam", false, std::move(params), lr, beta1, beta2, eps, weight_decay) {}

 protected:
  // decoupled: AdamW's p *= 1 - lr·weight_decay instead of the L2 term.
  Adam(const char* name, bool decoupled, std::vector<Tensor> params, double lr, double beta1, double beta2,
       double eps, double weight_decay);
  void update(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad) override;

 private:
  template <class T>
  void update_as(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad);

  double beta1_, beta2_, eps_, weight_decay_;
  bool decoupled_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
};

// torch.optim.AdamW: p *= 1 - lr·weight_decay, then Adam's step without L2.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
        double weight_decay = 1e-2)
      : Adam("AdamW", true, std::move(params), lr, beta1, beta2, eps, weight_decay) {}
};

// torch.optim.RMSprop: with g the gradient (+ weight_decay·p),
//   s = alpha·s + (1 - alpha)·g²;
//   centered: a = alpha·a + (1 - alpha)·g, d = √(s - a²) + eps; else d = √s + eps;
//   momentum > 0: b = momentum·b + g / d, p -= lr·b;  else p -= lr·g / d.
class RMSprop : public Optimizer {
 public:
  // ValueError for lr, alpha, eps, weight_decay or momentum < 0.
  RMSprop(std::vector<Tensor> params, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
          double weight_decay = 0.0, double momentum = 0.0, bool centered = false);

 protected:
  void update(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad) override;

 private:
  template <class T>
  void update_as(std::size_t index, std::int64_t step, Tensor& param, const Tensor& grad);

  double alpha_, eps_, weight_decay_, momentum_;
  bool centered_;
  std::vector<Tensor> square_avg_, grad_avg_, momentum_buffers_;
};

// ---- learning-rate schedulers ----------------------------------------------

// Sets its optimizer's lr as a function of the epoch, as
// torch.optim.lr_scheduler: construct it after the optimizer (whose lr then
// is the base lr, epoch 0), call step() once per epoch after the optimizer's
// steps. The optimizer must outlive it.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;

  void step();  // next epoch: computes its lr and sets it on the optimizer
  double last_lr() const { return last_lr_; }  // the lr it set last (the base lr before any step)
  std::int64_t last_epoch() const { return last_epoch_; }
  double base_lr() const { return base_lr_; }

 protected:
  explicit LRScheduler(Optimizer& optimizer);
  // The lr for `epoch` (>= 1), given the optimizer's current lr.
  virtual double lr_at(std::int64_t epoch, double current) const = 0;

 private:
  Optimizer& optimizer_;
  double base_lr_;
  double last_lr_;
  std::int64_t last_epoch_ = 0;
};

// lr multiplied by gamma every step_size epochs: base_lr·gamma^⌊epoch / step_size⌋
// (PyTorch's chainable form: the current lr times gamma at each multiple).
class StepLR : public LRScheduler {
 public:
  // ValueError for step_size <= 0 or gamma < 0.
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(std::int64_t epoch, double current) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

// PyTorch's closed form: eta_min + (base_lr - eta_min)·(1 + cos(π·epoch / T_max)) / 2,
// which reaches eta_min at T_max and, past it, rises again (period 2·T_max).
class CosineAnnealingLR : public LRScheduler {
 public:
  // ValueError for T_max <= 0 or eta_min < 0.
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min = 0.0);

 protected:
  double lr_at(std::int64_t epoch, double current) const override;

 private:
  std::int64_t T_max_;
  double eta_min_;
};

// ---- gradient clipping -----------------------------------------------------

// torch.nn.utils.clip_grad_norm_: the L2 norm of all defined gradients taken
// together (computed in double). Every gradient is scaled in place by
// max_norm / (total + 1e-6) when that is below 1, i.e. when total exceeds
// max_norm (less 1e-6); smaller gradients are left alone. Returns the total
// norm before clipping. ValueError for max_norm < 0.
// Float32 and float64 gradients, mixed or not.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace tg::optim
