// Modules: named parameters, buffers and submodules, as torch::nn::Module,
// and the holders (nn::Linear for a shared nn::LinearImpl) of the PyTorch C++
// frontend.
//
//   struct NetImpl : tg::nn::Module {
//     tg::nn::Linear fc1{nullptr}, fc2{nullptr};  // empty holders, filled below
//     NetImpl() {
//       fc1 = register_module("fc1", tg::nn::Linear(784, 64));
//       fc2 = register_module("fc2", tg::nn::Linear(64, 10));
//     }
//     tg::Tensor forward(const tg::Tensor& x) override { return fc2(tg::relu(fc1(x))); }
//   };
//   TG_MODULE(Net);  // Net holds a std::shared_ptr<NetImpl>: net(x), net->parameters()
//
// Parameters and buffers carry their dotted path as the tensor's name
// ("features.0.weight"), so the tape's printout names them. A float32 model
// is gradient-checked by converting it: net->to(tg::kFloat64).
#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace tg::nn {

class Module;
template <class Impl>
class ModuleHolder;

namespace detail {
// A C++ type's name as a module would show it: demangled, without its
// namespaces or enclosing function, and without a trailing "Impl"
// ("tg::nn::LinearImpl" -> "Linear").
std::string module_type_name(const std::type_info& type);
// Lets summary() see the output of a call that does not go through
// Module::operator()(const Tensor&), such as a holder's two-input call.
void note_call(const Module* module, const Tensor& output);

template <class T, class = void>
struct is_module_holder : std::false_type {};
template <class T>
struct is_module_holder<T, std::void_t<typename T::Impl>>
    : std::is_base_of<ModuleHolder<typename T::Impl>, T> {};

// Impl for a holder type (nn::Conv2d -> nn::Conv2dImpl), T itself otherwise.
template <class T, bool = is_module_holder<T>::value>
struct impl_of {
  using type = T;
};
template <class T>
struct impl_of<T, true> {
  using type = typename T::Impl;
};
}  // namespace detail
template <class T>
inline constexpr bool is_module_holder_v = detail::is_module_holder<std::decay_t<T>>::value;

// What Module::find returns: a handle to a registered parameter or buffer
// (usable wherever a Tensor is) whose assignment copies the value into that
// tensor instead of rebinding the handle, so the layer sees it.
class TensorRef : public Tensor {
 public:
  explicit TensorRef(const Tensor& registered) : Tensor(registered) {}
  TensorRef(const TensorRef&) = default;
  // Copies `value` in (same shape, converted to this dtype, not recorded).
  TensorRef& operator=(const Tensor& value);
  TensorRef& operator=(const TensorRef& value) { return *this = static_cast<const Tensor&>(value); }
};

class Module {
 public:
  template <class V>
  using Named = std::vector<std::pair<std::string, V>>;

  virtual ~Module();
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The one-tensor forward that Sequential, summary() and operator() call.
  // A module whose forward takes other inputs (two tensors, say) does not
  // override it, and calling it then throws a ValueError saying so; its
  // holder's operator()(a, b) calls its own forward(a, b).
  virtual Tensor forward(const Tensor& x);
  // forward, plus what summary() needs to see each module's output.
  Tensor operator()(const Tensor& x);

  // The class name shown by summary() and printing ("Linear", "Conv2d"): by
  // default the C++ class name without namespaces and without a trailing
  // "Impl", so a user module needs no override.
  virtual std::string type_name() const;
  // Its settings, shown after the name: "in=784, out=10".
  virtual std::string describe() const { return ""; }

  // ---- the tree ----
  // Dotted names, recursively, in registration order: "features.0.weight".
  // Every name is listed, as in torch's state_dict(): a tensor registered
  // under two names (tied weights) appears under both, and save() writes both.
  Named<Tensor> named_parameters(bool recurse = true) const;
  // Each parameter once, in order of first appearance: a tensor registered
  // twice (tied weights) is listed once, as torch's parameters() does.
  std::vector<Tensor> parameters(bool recurse = true) const;
  Named<Tensor> named_buffers(bool recurse = true) const;  // running statistics etc.
  Named<std::shared_ptr<Module>> named_children() const { return children_; }
  // This module (named "") and every module below it, with dotted names
  // ("features", "features.0"), parents before children, each module once
  // (a module shared by two parents appears under its first name). The
  // pointers do not own: they are valid while this module lives.
  Named<Module*> named_modules();
  std::vector<Module*> modules();
  // Calls fn on every module of the tree, each once: the children first
  // (recursively, in registration order), then this module, as PyTorch's
  // Module.apply. For example net->apply(init_fn) to re-initialize weights.
  void apply(const std::function<void(Module&)>& fn);
  // The parameter or buffer with this dotted name; throws naming it if absent.
  // The result is a handle to the registered tensor (it shares its value,
  // gradient and name, as every layer member and optimizer handle does), and
  // assigning to it writes into that tensor, as assigning to a tensor
  // expression does in libtorch (t.index(...) = v copies v in):
  //
  //   net.find("fc.weight") = w;  // copies w's values into the parameter the layer uses
  //
  // The value must have the tensor's shape (ShapeError otherwise); it is
  // converted to the tensor's dtype, and nothing is recorded. To rebind a
  // handle of your own instead, copy it first: `Tensor w = net.find(...)`.
  TensorRef find(const std::string& dotted_name);

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

  // Elements of parameters() (a tied tensor counts once) and of those requiring grad.
  std::size_t num_parameters() const;
  std::size_t num_trainable_parameters() const;

  // A Keras-style table for an input of `input_shape`: one row per module
  // called (in call order), its output shape, its own parameter count and
  // how many of those are trainable, then the totals.
  //
  // It has no side effects: the forward passes run on zeros (of the first
  // parameter's dtype, float32 without parameters) in eval mode, so
  // BatchNorm's running statistics stay and dropout draws nothing, under
  // NoGradGuard, recording nothing; every module's training flag is restored
  // afterwards. Nor does it need the batch: for an input of two or more
  // dimensions the first is the batch, and the model runs on batches of 1
  // and 2 only; the sizes that grow with the batch are shown for the batch
  // asked for (summary({60000, 1, 28, 28}) costs what {2, 1, 28, 28} does).
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
    static_assert(std::is_base_of_v<Module, M>, "register_module: the module must derive from tg::nn::Module");
    add_child(std::move(name), module);
    return module;
  }
  // A holder (nn::Linear(784, 10)) is registered and returned, sharing the module.
  template <class H, std::enable_if_t<is_module_holder_v<H>, int> = 0>
  std::decay_t<H> register_module(std::string name, H&& holder) {
    add_child(std::move(name), holder.ptr());
    return std::forward<H>(holder);
  }

 private:
  void add_child(std::string name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;
  void set_requires_grad(const std::string& name, bool on);
  bool contains(const Module* target) const;  // target is this module or below it
  std::string path() const;                   // dotted, from the outermost parent
  void rename_tensors(const std::string& prefix);
  void apply_once(const std::function<void(Module&)>& fn, std::vector<const Module*>& seen);

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

// ---- holders -------------------------------------------------------------------

// Shared ownership of an Impl (a Module), as torch::nn::ModuleHolder: copies
// of a holder share one module. Built from the Impl's constructor arguments
// (nn::Linear(784, 10)), from a std::shared_ptr<Impl>, or empty from nullptr
// (nn::Linear fc{nullptr}, filled later by assignment). Define one with
// TG_MODULE(Name) for a class NameImpl.
template <class Contained>
class ModuleHolder {
  static_assert(std::is_base_of_v<Module, Contained>, "ModuleHolder: the module type must derive from tg::nn::Module");

  // Does Contained have a forward(const Tensor&) of its own (or Module's)?
  template <class M, class = void>
  struct has_tensor_forward : std::false_type {};
  template <class M>
  struct has_tensor_forward<M, std::void_t<decltype(static_cast<Tensor (M::*)(const Tensor&)>(&M::forward))>>
      : std::true_type {};

  // A single argument that is a holder of this type, a shared_ptr or nullptr
  // goes to the copy, shared_ptr or empty constructor, not to Contained's.
  template <class Head, class... Tail>
  static constexpr bool forwards_to_impl() {
    if constexpr (sizeof...(Tail) > 0) {
      return true;
    } else {
      using H = std::decay_t<Head>;
      return !std::is_base_of_v<ModuleHolder, H> && !std::is_same_v<H, std::nullptr_t> &&
             !std::is_convertible_v<H, std::shared_ptr<Contained>>;
    }
  }

 public:
  using Impl = Contained;

  // Default-constructs the module; for one without a default constructor,
  // write `nn::Linear fc{nullptr}` for an empty holder.
  ModuleHolder() : impl_(default_construct()) {}
  ModuleHolder(std::nullptr_t) {}  // NOLINT: implicit on purpose, `Linear fc = nullptr`
  ModuleHolder(std::shared_ptr<Contained> module) : impl_(std::move(module)) {}  // NOLINT: implicit
  template <class Head, class... Tail, std::enable_if_t<forwards_to_impl<Head, Tail...>(), int> = 0>
  explicit ModuleHolder(Head&& head, Tail&&... tail)
      : impl_(std::make_shared<Contained>(std::forward<Head>(head), std::forward<Tail>(tail)...)) {}

  Contained* operator->() const { return get(); }
  Contained& operator*() const { return *get(); }
  const std::shared_ptr<Contained>& ptr() const { return impl_; }
  Contained* get() const {
    if (!impl_)
      throw ValueError("ModuleHolder<" + detail::module_type_name(typeid(Contained)) +
                       ">: the holder is empty (constructed from nullptr); assign a module to it first");
    return impl_.get();
  }
  bool is_empty() const noexcept { return impl_ == nullptr; }
  explicit operator bool() const noexcept { return !is_empty(); }

  // Calls the module's forward. One tensor goes through Module::operator(),
  // as Sequential's calls do, so summary() sees the call; other arguments
  // (forward(x, skip)) go straight to Contained::forward.
  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    if constexpr (sizeof...(Args) == 1 && (std::is_convertible_v<Args&&, const Tensor&> && ...) &&
                  has_tensor_forward<Contained>::value) {
      return static_cast<Module&>(*get())(std::forward<Args>(args)...);
    } else {
      using R = decltype(get()->forward(std::forward<Args>(args)...));
      if constexpr (std::is_same_v<std::decay_t<R>, Tensor>) {
        Tensor y = get()->forward(std::forward<Args>(args)...);
        detail::note_call(impl_.get(), y);
        return y;
      } else {
        return get()->forward(std::forward<Args>(args)...);
      }
    }
  }
  // Indexing of containers: seq[0], dict["head"].
  template <class Arg>
  decltype(auto) operator[](Arg&& arg) const {
    return (*get())[std::forward<Arg>(arg)];
  }

 private:
  static std::shared_ptr<Contained> default_construct() {
    if constexpr (std::is_default_constructible_v<Contained>) {
      return std::make_shared<Contained>();
    } else {
      static_assert(std::is_default_constructible_v<Contained>,
                    "this module has no default constructor: give it its arguments, or write "
                    "`nn::Linear fc{nullptr}` for an empty holder that is assigned later");
      return nullptr;
    }
  }

  std::shared_ptr<Contained> impl_;
};

template <class Contained>
std::ostream& operator<<(std::ostream& os, const ModuleHolder<Contained>& holder) {
  return os << *holder;
}

}  // namespace tg::nn

// Defines `class Name : public ModuleHolder<NameImpl>` with its constructors,
// as TORCH_MODULE: TG_MODULE(Net) after `struct NetImpl : tg::nn::Module {...}`.
#define TG_MODULE_IMPL(Name, ImplType)                 \
  class Name : public ::tg::nn::ModuleHolder<ImplType> { \
   public:                                             \
    using ::tg::nn::ModuleHolder<ImplType>::ModuleHolder; \
    using Impl = ImplType;                             \
  }
#define TG_MODULE(Name) TG_MODULE_IMPL(Name, Name##Impl)

namespace tg::nn {

namespace detail {
// The module a holder or a shared_ptr refers to, for containers and
// register_module. A module object itself cannot be moved into a container:
// its identity (its parent link, its tensors' names, summary's records) is
// its address, so it is passed as a holder or a shared_ptr.
template <class T>
std::shared_ptr<Module> module_ptr(T&& m) {
  using D = std::decay_t<T>;
  if constexpr (is_module_holder<D>::value) {
    return m.ptr();
  } else if constexpr (std::is_convertible_v<D, std::shared_ptr<Module>>) {
    return std::shared_ptr<Module>(std::forward<T>(m));
  } else {
    static_assert(is_module_holder<D>::value || std::is_convertible_v<D, std::shared_ptr<Module>>,
                  "a container takes a holder (nn::Linear(784, 10)) or a std::shared_ptr to a module; a module "
                  "object cannot be moved in, since its parent link and its tensors' names are tied to its address");
    return nullptr;
  }
}

// Typed access for containers: the Impl of T (a holder or an Impl type),
// or a ValueError naming where, what was asked and what is there.
template <class T>
std::shared_ptr<typename impl_of<T>::type> module_cast(const std::shared_ptr<Module>& m, const std::string& where) {
  using Impl = typename impl_of<T>::type;
  static_assert(std::is_base_of_v<Module, Impl>, "ptr<T>: T must be a module type or a holder");
  auto typed = std::dynamic_pointer_cast<Impl>(m);
  if (!typed)
    throw ValueError(where + " is a " + m->type_name() + ", not a " + module_type_name(typeid(Impl)));
  return typed;
}
}  // namespace detail

}  // namespace tg::nn
