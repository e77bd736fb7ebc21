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
// One departure: on x86, step() treats subnormal numbers as 0 (the
// flush-to-zero and denormals-are-zero modes, for its own thread and its
// own duration), so a moment that decays below the smallest normal number,
// as a weight's whose gradient stays 0, becomes 0 instead of making every
// later step many times slower. PyTorch keeps subnormals unless
// torch.set_flush_denormal(True) is called.
//
// Saving and resuming (safetensors, see io/safetensors.hpp):
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
#include "../io/safetensors.hpp"

namespace tg::optim {

// ---- errors ------------------------------------------------------------------

// A saved optimizer (or scheduler) state that does not fit the optimizer it
// is loaded into; the message starts with the file's path and lists every
// difference. A missing or malformed file throws io::FileError or
// io::FormatError, as load_tensors does.
class StateMismatchError : public io::MismatchError {
 public:
  using io::MismatchError::MismatchError;
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

  // ---- saving and loading (optim/state.cpp) ----
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

}  // namespace tg::optim
