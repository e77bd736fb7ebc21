#include "module.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <ostream>
#include <sstream>

#include "../core/tape.hpp"

namespace tg::nn {

namespace {

// While summary() runs, every module call appends its output shape here.
struct CallRecord {
  const void* module;
  Shape output;
};
thread_local std::vector<CallRecord>* summary_calls = nullptr;

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace

Module::~Module() {
  // A child that outlives this module must not name its tensors through it.
  for (auto& [name, child] : children_)
    if (child->parent_ == this) child->parent_ = nullptr;
}

namespace detail {

std::string module_type_name(const std::type_info& type) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string name = status == 0 && demangled ? demangled : type.name();
  std::free(demangled);
  // The part after the last "::" outside template arguments and parameter
  // lists: "tg::nn::LinearImpl" -> "LinearImpl", "f()::Local" -> "Local".
  std::size_t start = 0;
  int depth = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '<' || c == '(') ++depth;
    if (c == '>' || c == ')') --depth;
    if (depth == 0 && c == ':' && i + 1 < name.size() && name[i + 1] == ':') start = i + 2;
  }
  name = name.substr(start);
  const std::string suffix = "Impl";
  if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
    name.resize(name.size() - suffix.size());
  return name;
}

void note_call(const Module* module, const Tensor& output) {
  if (summary_calls && output.defined()) summary_calls->push_back({module, output.shape()});
}

}  // namespace detail

Tensor Module::operator()(const Tensor& x) {
  Tensor y = forward(x);
  detail::note_call(this, y);
  return y;
}

Tensor Module::forward(const Tensor&) {
  throw ValueError(type_name() + " takes other inputs: its forward is not forward(const Tensor&), so it cannot be "
                   "called with one tensor (nor placed in a Sequential); call it with its own arguments");
}

std::string Module::type_name() const { return detail::module_type_name(typeid(*this)); }

// ---- registration ----------------------------------------------------------

void Module::check_new_name(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos)
    throw ValueError("register: name \"" + name + "\" must be non-empty and contain no '.'");
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  if (taken(parameters_) || taken(buffers_) || taken(children_))
    throw ValueError("register: \"" + name + "\" is already registered in " + type_name());
}

Tensor& Module::register_parameter(std::string name, Tensor value, bool requires_grad) {
  check_new_name(name);
  value.requires_grad_(requires_grad);
  value.set_name(join(path(), name));
  parameters_.emplace_back(std::move(name), std::make_unique<Tensor>(std::move(value)));
  return *parameters_.back().second;
}

Tensor& Module::register_buffer(std::string name, Tensor value) {
  check_new_name(name);
  TG_CHECK(value.defined(), ValueError, "register_buffer: \"" << name << "\" is an undefined tensor");
  value.set_name(join(path(), name));
  buffers_.emplace_back(std::move(name), std::make_unique<Tensor>(std::move(value)));
  return *buffers_.back().second;
}

void Module::add_child(std::string name, std::shared_ptr<Module> module) {
  check_new_name(name);
  if (!module) throw ValueError("register_module: \"" + name + "\" is null");
  // Adopting a module that contains this one would make the tree a cycle:
  // every walk of it (parameters, forward, printing) would never end.
  TG_CHECK(!module->contains(this), ValueError,
           "register_module: cannot add \"" << name << "\" (" << module->type_name() << ") to this "
               << type_name() << ": it " << (module.get() == this ? "is" : "contains")
               << " this " << type_name() << ", and a module cannot contain itself");
  module->parent_ = this;
  module->name_in_parent_ = name;
  module->rename_tensors(join(path(), name));
  children_.emplace_back(std::move(name), std::move(module));
}

bool Module::contains(const Module* target) const {
  if (this == target) return true;
  return std::any_of(children_.begin(), children_.end(),
                     [&](const auto& child) { return child.second->contains(target); });
}

std::string Module::path() const {
  std::string p;
  for (const Module* m = this; m->parent_; m = m->parent_)
    p = p.empty() ? m->name_in_parent_ : m->name_in_parent_ + "." + p;
  return p;
}

void Module::rename_tensors(const std::string& prefix) {
  for (auto& [name, t] : named_parameters()) t.set_name(join(prefix, name));  // handles: the name is shared
  for (auto& [name, t] : named_buffers()) t.set_name(join(prefix, name));
}

// ---- the tree ----------------------------------------------------------------

auto Module::named_parameters(bool recurse) const -> Named<Tensor> {
  Named<Tensor> out;
  for (const auto& [name, p] : parameters_) out.emplace_back(name, *p);
  if (recurse)
    for (const auto& [child_name, child] : children_)
      for (auto& [name, p] : child->named_parameters()) out.emplace_back(join(child_name, name), p);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& named : named_parameters(recurse)) {
    const Tensor& t = named.second;
    if (std::none_of(out.begin(), out.end(), [&](const Tensor& seen) { return seen.same(t); })) out.push_back(t);
  }
  return out;
}

auto Module::named_buffers(bool recurse) const -> Named<Tensor> {
  Named<Tensor> out;
  for (const auto& [name, b] : buffers_) out.emplace_back(name, *b);
  if (recurse)
    for (const auto& [child_name, child] : children_)
      for (auto& [name, b] : child->named_buffers()) out.emplace_back(join(child_name, name), b);
  return out;
}

TensorRef& TensorRef::operator=(const Tensor& value) {
  TG_CHECK(value.defined(), ValueError, "find(\"" << name() << "\") = value: the value is an undefined tensor");
  TG_CHECK(value.shape() == shape(), ShapeError,
           "find(\"" << name() << "\") = value: the value has shape " << shape_str(value.shape())
                      << ", the tensor " << shape_str(shape()));
  NoGradGuard no_grad;
  copy_(value.detach().to(dtype()));
  return *this;
}

TensorRef Module::find(const std::string& dotted_name) {
  const auto dot = dotted_name.find('.');
  if (dot == std::string::npos) {
    for (auto& list : {&parameters_, &buffers_})
      for (auto& [name, t] : *list)
        if (name == dotted_name) return TensorRef(*t);
  } else {
    const std::string head = dotted_name.substr(0, dot);
    for (auto& [name, child] : children_)
      if (name == head) return child->find(dotted_name.substr(dot + 1));
  }
  throw ValueError(type_name() + ": no parameter or buffer named \"" + dotted_name + "\"");
}

auto Module::named_modules() -> Named<Module*> {
  Named<Module*> out;
  std::vector<std::pair<std::string, Module*>> stack{{"", this}};  // depth first, parents first
  while (!stack.empty()) {
    const auto [where, m] = stack.back();
    stack.pop_back();
    const Module* const module = m;  // a plain variable: lambdas may not capture a structured binding in C++17
    const bool seen = std::any_of(out.begin(), out.end(), [&](const auto& e) { return e.second == module; });
    if (seen) continue;
    out.emplace_back(where, m);
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it)
      stack.emplace_back(join(where, it->first), it->second.get());
  }
  return out;
}

std::vector<Module*> Module::modules() {
  std::vector<Module*> out;
  for (auto& named : named_modules()) out.push_back(named.second);
  return out;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  std::vector<const Module*> seen;
  apply_once(fn, seen);
}

void Module::apply_once(const std::function<void(Module&)>& fn, std::vector<const Module*>& seen) {
  if (std::find(seen.begin(), seen.end(), this) != seen.end()) return;
  seen.push_back(this);
  for (auto& [name, child] : children_) child->apply_once(fn, seen);
  fn(*this);
}

// ---- dtype -----------------------------------------------------------------------

Module& Module::to(Dtype dtype) {
  TG_CHECK(is_floating(dtype), DtypeError,
           type_name() << ".to: a module converts to float32 or float64, not " << dtype_name(dtype));
  auto convert = [dtype](Tensor t) {  // a handle: set_data changes the registered tensor
    if (is_floating(t.dtype()) && t.dtype() != dtype) t.set_data(t.detach().to(dtype));
  };
  for (auto& named : named_parameters()) convert(named.second);
  for (auto& named : named_buffers()) convert(named.second);
  return *this;
}

// ---- training state ------------------------------------------------------------

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad(bool set_to_none) {
  for (auto& [name, p] : parameters_) p->zero_grad(set_to_none);
  for (auto& [name, child] : children_) child->zero_grad(set_to_none);
}

void Module::set_requires_grad(const std::string& name, bool on) {
  bool found = name.empty();
  for (auto& [full, p] : named_parameters()) {
    if (name.empty() || full == name || full.rfind(name + ".", 0) == 0) {
      p.requires_grad_(on);  // a handle: shares the parameter's state
      found = true;
    }
  }
  if (!found)
    throw ValueError(std::string(on ? "unfreeze" : "freeze") + ": no parameter or submodule named \"" + name +
                     "\" in " + type_name());
}

std::size_t Module::num_parameters() const {
  std::size_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

std::size_t Module::num_trainable_parameters() const {
  std::size_t n = 0;
  for (const auto& p : parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

// ---- summary -------------------------------------------------------------------

std::string Module::summary(const Shape& input_shape) {
  // Dotted path of every module in the tree, to name the calls.
  std::map<const void*, std::string> paths;
  std::map<const void*, const Module*> modules;
  std::vector<std::pair<std::string, const Module*>> stack{{"", this}};
  while (!stack.empty()) {
    auto [where, m] = stack.back();
    stack.pop_back();
    paths[m] = where;
    modules[m] = m;
    for (const auto& [name, child] : m->children_) stack.emplace_back(join(where, name), child.get());
  }
  // The input in the model's dtype (after to(kFloat64), double), float32 by default.
  Dtype dtype = kFloat32;
  const auto params = parameters();
  if (!params.empty()) dtype = params.front().dtype();
  // Without side effects: eval mode (BatchNorm keeps its running statistics,
  // dropout draws nothing), every module's own flag restored afterwards.
  struct RestoreTraining {
    std::vector<std::pair<Module*, bool>> flags;
    ~RestoreTraining() {
      for (auto& [m, on] : flags) m->training_ = on;
    }
  } restore;
  for (Module* m : this->modules()) restore.flags.emplace_back(m, m->training_);
  train(false);
  auto run = [&](const Shape& shape) {
    std::vector<CallRecord> calls;
    NoGradGuard no_grad;
    struct Swap {  // summaries may nest: restore the outer one's list
      std::vector<CallRecord>* outer = summary_calls;
      ~Swap() { summary_calls = outer; }
    } swap;
    summary_calls = &calls;
    (*this)(zeros(shape, dtype));
    return calls;
  };
  // Not at the caller's batch size: on batches of 1 and 2, and the sizes that
  // grow with the batch extrapolated to it (they are linear in it).
  std::vector<CallRecord> calls;
  const std::size_t batch = input_shape.empty() ? 0 : input_shape[0];
  if (input_shape.size() >= 2 && batch > 2) {
    Shape one = input_shape, two = input_shape;
    one[0] = 1, two[0] = 2;
    const std::vector<CallRecord> small = run(one);
    calls = run(two);
    const bool same_calls = small.size() == calls.size() &&
                            std::equal(small.begin(), small.end(), calls.begin(), [](const auto& a, const auto& b) {
                              return a.module == b.module && a.output.size() == b.output.size();
                            });
    if (same_calls)
      for (std::size_t i = 0; i < calls.size(); ++i)
        for (std::size_t d = 0; d < calls[i].output.size(); ++d) {
          const std::size_t at1 = small[i].output[d], at2 = calls[i].output[d];
          if (at2 > at1) calls[i].output[d] = at1 + (at2 - at1) * (batch - 1);
        }
  } else {
    calls = run(input_shape);
  }

  std::vector<std::vector<std::string>> rows;
  for (const auto& call : calls) {
    const auto found = modules.find(call.module);
    if (found == modules.end())
      throw ValueError(type_name() + ".summary: forward called a module that is not registered"
                       " (register it with register_module so it has a name)");
    const Module* m = found->second;
    if (!m->children_.empty() && m->parameters_.empty()) continue;  // a container: its layers have rows
    std::size_t own = 0, trainable = 0;
    for (const auto& [name, p] : m->parameters_) {
      own += p->numel();
      if (p->requires_grad()) trainable += p->numel();
    }
    const std::string& path = paths.at(call.module);
    rows.push_back({(path.empty() ? "" : path + " ") + "(" + m->type_name() + ")", shape_str(call.output),
                    std::to_string(own), std::to_string(trainable)});
  }
  const std::vector<std::string> header{"Layer (type)", "Output shape", "Param #", "Trainable"};
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  std::ostringstream out;
  auto print = [&](const std::vector<std::string>& r) {
    for (std::size_t c = 0; c < r.size(); ++c)
      out << (c ? "  " : "") << (c >= 2 ? std::right : std::left) << std::setw(int(width[c])) << r[c];
    out << '\n';
  };
  std::size_t line = 0;
  for (auto w : width) line += w + 2;
  print(header);
  out << std::string(line - 2, '=') << '\n';
  for (const auto& r : rows) print(r);
  out << std::string(line - 2, '=') << '\n'
      << "Input shape: " << shape_str(input_shape) << '\n'
      << "Total params: " << num_parameters() << '\n'
      << "Trainable params: " << num_trainable_parameters() << '\n'
      << "Non-trainable params: " << num_parameters() - num_trainable_parameters() << '\n';
  return out.str();
}

// ---- printing --------------------------------------------------------------------

namespace {

void print_tree(std::ostream& os, const Module& m, const std::string& indent) {
  os << m.type_name() << '(' << m.describe();
  const auto children = m.named_children();
  if (children.empty()) {
    os << ')';
    return;
  }
  os << '\n';
  for (const auto& [name, child] : children) {
    os << indent << "  (" << name << "): ";
    print_tree(os, *child, indent + "  ");
    os << '\n';
  }
  os << indent << ')';
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Module& module) {
  print_tree(os, module, "");
  return os;
}


}  // namespace tg::nn
