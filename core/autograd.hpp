// Recording an op and running backward. tg::record is the one way an op gets
// a gradient, for the built-in ops and for users' own alike:
//
//   // y = x³, dy/dx = 3x²
//   tg::Tensor cube(const tg::Tensor& x) {
//     return tg::record("cube", {x}, tg::pow(x.detach(), 3.0))  // a forward outside the graph
//         .save({x})
//         .backward([](const tg::GradContext& c) {
//           const tg::Tensor& x = c.saved[0];
//           return tg::Grads{c.grad * 3.0 * x * x};
//         });
//   }
//
// A rule returns one gradient per input, each of that input's shape and dtype
// (or an undefined tensor where needs_grad is false). Written with tensor ops,
// a rule is itself recorded under create_graph, which gives second
// derivatives. The tape and the rules never see the element type.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "tape.hpp"
#include "tensor.hpp"

namespace tg {

struct GradContext {
  const Tensor& grad;                     // dL/d(output), the output's shape and dtype
  const Tensor& output;                   // the op's result (when saves_output())
  const std::vector<Tensor>& saved;       // what save() kept, in order
  const std::vector<bool>& needs_grad;    // one flag per input, fixed when the op ran
  const std::vector<TapeInput>& inputs;   // shapes and dtypes; values via saved

  TapeEntry* freeable = nullptr;           // set when the graph is not retained

  const Shape& input_shape(std::size_t i) const { return inputs[i].shape; }
  Dtype input_dtype(std::size_t i) const { return inputs[i].dtype; }
  // Lets go of saved[i] once the rule has read it for the last time, so
  // that its memory serves the rest of the rule (a GEMM's input gradient
  // reuses the buffer its weight gradient just read). Does nothing when the
  // graph is retained; saved[i] is undefined after it.
  void free_saved(std::size_t i) const;
};

// Builds an op's result and, when some input requires grad and grad mode is
// on, records it. Use through tg::record(...).save(...).backward(rule).
class Recorder {
 public:
  Recorder(const char* op, std::vector<Tensor> inputs, Tensor value)
      : op_(op), inputs_(std::move(inputs)), value_(std::move(value)) {}

  // Tensors the rule reads, available as GradContext::saved. Save only what
  // the rule needs: the tape reports and holds these bytes until backward.
  Recorder& save(std::vector<Tensor> tensors) {
    saved_ = std::move(tensors);
    return *this;
  }
  // The rule reads the result (exp, sqrt, tanh): GradContext::output.
  Recorder& saves_output() {
    saves_output_ = true;
    return *this;
  }
  // Returns the result, recording the op with this rule if needed.
  Tensor backward(BackwardRule rule);

 private:
  const char* op_;
  std::vector<Tensor> inputs_;
  Tensor value_;
  std::vector<Tensor> saved_;
  bool saves_output_ = false;
};

inline Recorder record(const char* op, std::vector<Tensor> inputs, Tensor value) {
  return Recorder(op, std::move(inputs), std::move(value));
}

// `t` when `needed`, else an undefined tensor: an input is saved only if the
// rule that reads it will run, e.g. mul keeps a only when b requires grad.
inline Tensor save_if(bool needed, const Tensor& t) { return needed ? t : Tensor(); }

// Anomaly mode: while an AnomalyGuard lives on this thread, every op's result
// and every gradient a backward rule returns is checked for NaN and infinity,
// and the first one found throws an AnomalyError naming the op, its tape
// entry and its input shapes. Off by default; when off it costs one flag test
// per op.
bool anomaly_enabled();
class AnomalyGuard {
 public:
  explicit AnomalyGuard(bool enabled = true);
  ~AnomalyGuard();
  AnomalyGuard(const AnomalyGuard&) = delete;
  AnomalyGuard& operator=(const AnomalyGuard&) = delete;

 private:
  bool previous_;
};

// Whether an op with these inputs would be recorded.
bool should_record(std::initializer_list<Tensor> inputs);

// The gradients of sum_k <outputs[k], seeds[k]> with respect to `inputs`, as
// torch.autograd.grad: nothing is accumulated into .grad. An input the
// outputs do not depend on gets an undefined tensor. Empty seeds mean ones
// for single-element outputs.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& seeds = {}, bool retain_graph = false,
                         bool create_graph = false);

// The engine behind Tensor::backward and tg::grad.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds, bool retain_graph,
                  bool create_graph, bool accumulate_into_leaves, const std::vector<Tensor>& wanted,
                  std::vector<Tensor>* wanted_grads);

}  // namespace tg
