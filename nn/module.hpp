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
// BasicModule<T> is the template; Module (float) and DModule (double, for
// gradient checks) are what code names, as Tensor and DTensor.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace tg::nn {

template <class T>
class BasicModule {
 public:
  using Tensor = BasicTensor<T>;
  template <class V>
  using Named = std::vector<std::pair<std::string, V>>;

  virtual ~BasicModule() = default;
  BasicModule() = default;
  BasicModule(const BasicModule&) = delete;
  BasicModule& operator=(const BasicModule&) = delete;

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
  Named<std::shared_ptr<BasicModule>> named_children() const { return children_; }
  // The parameter or buffer with this dotted name; throws naming it if absent.
  Tensor& find(const std::string& dotted_name);

  // ---- training state ----
  virtual void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

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
  // on zeros without recording.
  std::string summary(const Shape& input_shape);

 protected:
  Tensor& register_parameter(std::string name, Tensor value, bool requires_grad = true);
  Tensor& register_buffer(std::string name, Tensor value);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    add_child(std::move(name), module);
    return module;
  }

 private:
  void add_child(std::string name, std::shared_ptr<BasicModule> module);
  void check_new_name(const std::string& name) const;
  void set_requires_grad(const std::string& name, bool on);

  // unique_ptr: the addresses handed out by register_* stay valid.
  Named<std::unique_ptr<Tensor>> parameters_;
  Named<std::unique_ptr<Tensor>> buffers_;
  Named<std::shared_ptr<BasicModule>> children_;
  bool training_ = true;
};

using Module = BasicModule<float>;
using DModule = BasicModule<double>;

// "Linear(in=784, out=10)" and, for containers, their children indented.
template <class T>
std::ostream& operator<<(std::ostream& os, const BasicModule<T>& module);

}  // namespace tg::nn
