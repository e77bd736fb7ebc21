// The optimizers: SGD, Adam, AdamW and RMSprop, with torch.optim's update
// formulas, options and defaults (see optimizer.hpp for what they share).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "optimizer.hpp"

namespace tg::optim {

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

}  // namespace tg::optim
