// Recording an op and running backward. tg::record is the one way an op gets
// a gradient, for the built-in ops and for users' own alike:
//
//   // y = x³, dy/dx = 3x²
//   tg::DTensor cube(const tg::DTensor& x) {
//     return tg::record("cube", {x}, xt::xarray<double>(xt::pow(x.value(), 3)))
//         .save({x})
//         .backward([](const tg::GradContext<double>& c) {
//           const auto& x = c.saved[0];
//           return tg::Grads<double>{c.grad * 3.0 * x * x};
//         });
//   }
//
// A rule returns one gradient per input, each of that input's shape (or an
// undefined tensor where needs_grad is false). Written with tensor ops, a rule
// is itself recorded under create_graph, which gives second derivatives.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "tape.hpp"
#include "tensor.hpp"

namespace tg {

template <class T>
using Grads = std::vector<BasicTensor<T>>;

template <class T>
struct GradContext {
  const BasicTensor<T>& grad;                // dL/d(output), the output's shape
  const BasicTensor<T>& output;              // the op's result (when saves_output())
  const std::vector<BasicTensor<T>>& saved;  // what save() kept, in order
  const std::vector<bool>& needs_grad;       // one flag per input, fixed when the op ran
  const std::vector<std::shared_ptr<TensorImpl<T>>>& inputs;  // for shapes; values via saved

  Shape input_shape(std::size_t i) const {
    const auto& s = inputs[i]->value.shape();
    return Shape(s.begin(), s.end());
  }
};

template <class T>
using BackwardRule = std::function<Grads<T>(const GradContext<T>&)>;

// The tape entry of one op of dtype T.
template <class T>
class Node final : public TapeEntry {
 public:
  std::vector<std::shared_ptr<TensorImpl<T>>> inputs;
  std::vector<bool> needs_grad;  // per input, as it was when the op ran
  std::weak_ptr<TensorImpl<T>> output;  // weak: a dead output means a dead entry
  Shape out_shape;
  std::vector<BasicTensor<T>> saved;
  bool saves_output = false;
  BackwardRule<T> rule;

  const char* dtype() const override;
  std::size_t num_inputs() const override { return inputs.size(); }
  Shape input_shape(std::size_t i) const override;
  std::string input_label(std::size_t i) const override;
  bool input_requires_grad(std::size_t i) const override { return needs_grad[i]; }
  std::uint64_t input_creator(std::size_t i) const override { return inputs[i]->creator; }
  const void* input_identity(std::size_t i) const override { return inputs[i].get(); }
  Shape output_shape() const override { return out_shape; }
  bool output_alive() const override { return !output.expired(); }
  std::size_t saved_bytes() const override;
};

// Builds an op's result and, when some input requires grad and grad mode is
// on, records it. Use through tg::record(...).save(...).backward(rule).
template <class T>
class Recorder {
 public:
  Recorder(const char* op, std::vector<BasicTensor<T>> inputs, xt::xarray<T>&& value)
      : op_(op), inputs_(std::move(inputs)), value_(std::move(value)) {}

  // Tensors the rule reads, available as GradContext::saved. Save only what
  // the rule needs: the tape reports and holds these bytes until backward.
  Recorder& save(std::vector<BasicTensor<T>> tensors) {
    saved_ = std::move(tensors);
    return *this;
  }
  // The rule reads the result (exp, sqrt, tanh): GradContext::output.
  Recorder& saves_output() {
    saves_output_ = true;
    return *this;
  }
  // Creates the result tensor, recording the op with this rule if needed.
  BasicTensor<T> backward(BackwardRule<T> rule);

 private:
  const char* op_;
  std::vector<BasicTensor<T>> inputs_;
  xt::xarray<T> value_;
  std::vector<BasicTensor<T>> saved_;
  bool saves_output_ = false;
};

template <class T>
Recorder<T> record(const char* op, std::initializer_list<BasicTensor<T>> inputs,
                   xt::xarray<T>&& value) {
  return Recorder<T>(op, std::vector<BasicTensor<T>>(inputs), std::move(value));
}
template <class T>
Recorder<T> record(const char* op, std::vector<BasicTensor<T>> inputs, xt::xarray<T>&& value) {
  return Recorder<T>(op, std::move(inputs), std::move(value));
}

// `t` when `needed`, else an undefined tensor: an input is saved only if the
// rule that reads it will run, e.g. mul keeps a only when b requires grad.
template <class T>
BasicTensor<T> save_if(bool needed, const BasicTensor<T>& t) {
  return needed ? t : BasicTensor<T>();
}

// Whether an op with these inputs would be recorded.
template <class T>
bool should_record(std::initializer_list<BasicTensor<T>> inputs) {
  if (!grad_enabled()) return false;
  for (const auto& t : inputs)
    if (t.requires_grad()) return true;
  return false;
}

// The gradients of sum_k <outputs[k], seeds[k]> with respect to `inputs`, as
// torch.autograd.grad: nothing is accumulated into .grad. An input the
// outputs do not depend on gets an undefined tensor. Empty seeds mean ones
// for single-element outputs.
template <class T>
std::vector<BasicTensor<T>> grad(const std::vector<BasicTensor<T>>& outputs,
                                 const std::vector<BasicTensor<T>>& inputs,
                                 const std::vector<BasicTensor<T>>& seeds = {},
                                 bool retain_graph = false, bool create_graph = false);

// The engine behind Tensor::backward and tg::grad.
template <class T>
void run_backward(const std::vector<BasicTensor<T>>& roots,
                  const std::vector<BasicTensor<T>>& seeds, bool retain_graph,
                  bool create_graph, bool accumulate_into_leaves,
                  const std::vector<BasicTensor<T>>& wanted,
                  std::vector<BasicTensor<T>>* wanted_grads);

}  // namespace tg
