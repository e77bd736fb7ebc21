// Modules: named parameters, buffers and submodules, as torch::nn::Module.
//
//   struct Net : tg::nn::Module {
//     std::shared_ptr<tg::nn::Linear> fc1, fc2;
//     explicit Net(tg::Generator& gen)
//         : fc1(register_module("fc1", std::make_shared<tg::nn::Linear>(784, 64, gen))),
//           fc2(register_module("fc2", std::make_shared<tg::nn::Linear>(64, 10, gen))) {}
//     tg::Tensor forward(const tg::Tensor& x) override { return (*fc2)(tg::relu((*fc1)(x))); }
//   };
//
// Parameters and buffers carry their dotted path as the tensor's name
// ("features.0.weight"), so the tape's printout names them. A float32 model
// is gradient-checked by converting it: net.to(tg::kFloat64).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace tg::nn {

class Module {
 public:
  template <class V>
  using Named = std::vector<std::pair<std::string, V>>;

  virtual ~Module();
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  // forward, plus what summary() needs to see each module's output.
  Tensor operator()(const Tensor& x);

  // The class name shown by summary() and printing ("Linear", "Conv2d").
  virtual std::string type_name() const = 0;
  // Its settings, shown after the name: "in=784, out=10".
  virtual std::string describe() const { return ""; }

  // ---- the tree ----
  // Dotted names, recursively, in registration order: "features.0.weight".
  Named<Tensor> named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  Named<Tensor> named_buffers(bool recurse = true) const;  // running statistics etc.
  Named<std::shared_ptr<Module>> named_children() const { return children_; }
  // The parameter or buffer with this dotted name; throws naming it if absent.
  Tensor& find(const std::string& dotted_name);

  // ---- dtype ----
  // Converts every floating parameter and buffer, recursively, to `dtype`
  // (float32 or float64) in place: every handle to them (layer members,
  // parameter lists) sees the new values. requires_grad is kept, gradients
  // are dropped; integer buffers (num_batches_tracked) are left as they are.
  Module& to(Dtype dtype);

  // ---- training state ----
  virtual void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Each parameter's zero_grad: drops the gradient (set_to_none, the
  // default) or zeroes it in place.
  void zero_grad(bool set_to_none = true);

  // Frozen parameters have requires_grad == false: no op that reads only
  // frozen parameters and data is recorded, and optimizers skip them.
  void freeze() { set_requires_grad("", false); }
  void unfreeze() { set_requires_grad("", true); }
  // A parameter ("fc.weight") or everything under a submodule ("features.0").
  void freeze(const std::string& name) { set_requires_grad(name, false); }
  void unfreeze(const std::string& name) { set_requires_grad(name, true); }

  std::size_t num_parameters() const;            // elements, all parameters
  std::size_t num_trainable_parameters() const;  // elements of those requiring grad

  // A Keras-style table for an input of `input_shape`: one row per module
  // called (in call order), its output shape, its own parameter count and
  // how many of those are trainable, then the totals. Runs one forward pass
  // on zeros (of the first parameter's dtype, float32 without parameters)
  // without recording.
  std::string summary(const Shape& input_shape);

 protected:
  // The tensor is named after its dotted path from the outermost module it
  // has been registered in so far.
  Tensor& register_parameter(std::string name, Tensor value, bool requires_grad = true);
  Tensor& register_buffer(std::string name, Tensor value);
  // Adopts `module` as a child: its tensors' names get this module's path
  // prefixed. ValueError when the child already contains this module (a
  // module cannot be its own descendant).
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    add_child(std::move(name), module);
    return module;
  }

 private:
  void add_child(std::string name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;
  void set_requires_grad(const std::string& name, bool on);
  bool contains(const Module* target) const;  // target is this module or below it
  std::string path() const;                   // dotted, from the outermost parent
  void rename_tensors(const std::string& prefix);

  // unique_ptr: the addresses handed out by register_* stay valid.
  Named<std::unique_ptr<Tensor>> parameters_;
  Named<std::unique_ptr<Tensor>> buffers_;
  Named<std::shared_ptr<Module>> children_;
  // The module that adopted this one last, and under which name: only to name
  // tensors registered later. Cleared when that parent is destroyed.
  Module* parent_ = nullptr;
  std::string name_in_parent_;
  bool training_ = true;
};

// "Linear(in=784, out=10)" and, for containers, their children indented.
std::ostream& operator<<(std::ostream& os, const Module& module);

}  // namespace tg::nn
