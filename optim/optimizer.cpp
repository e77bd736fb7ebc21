#include "optimizer.hpp"

#include <algorithm>
#include <unordered_set>

#if defined(__SSE2__)
#include <xmmintrin.h>  // the MXCSR register
#endif

#include "../core/tape.hpp"
#include "check.hpp"

namespace tg::optim {

using detail::check_value;

namespace {

// Subnormal floats count as 0, as inputs and as results, while an optimizer
// steps: x86's flush-to-zero and denormals-are-zero bits, set for the
// calling thread and restored after (elsewhere nothing changes). State that
// decays geometrically, the moments of a weight whose gradient stays 0, ends
// up subnormal, and every operation on a subnormal takes a microcode assist:
// late Adam steps were measured 15 to 50 times slower (bench/adam_step).
// torch.set_flush_denormal(True) does the same for a whole process.
class FlushSubnormals {
 public:
#if defined(__SSE2__)
  FlushSubnormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~FlushSubnormals() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_;
#endif
};

std::string key_list(const Options& options) {
  std::string s;
  for (const auto& kv : options) s += (s.empty() ? "" : ", ") + kv.first;
  return s;
}

}  // namespace

// ---- Optimizer -------------------------------------------------------------

Optimizer::Optimizer(std::string name, Options defaults) : name_(std::move(name)), defaults_(std::move(defaults)) {}

void Optimizer::check(bool ok, const char* what, double value, const char* rule) const {
  check_value(name_, ok, what, value, rule);
}

Options Optimizer::complete(const ParamGroup& group) const {
  Options options = defaults_;
  for (const auto& kv : group.options) {
    if (!defaults_.count(kv.first))
      throw ValueError(name_ + ": unknown option \"" + kv.first + "\" (" + name_ + "'s options: " +
                       key_list(defaults_) + ")");
    options[kv.first] = kv.second;
  }
  validate(options);
  return options;
}

void Optimizer::init(std::vector<ParamGroup> groups) {
  validate(defaults_);
  std::size_t total = 0;
  for (const ParamGroup& g : groups) total += g.params.size();
  if (total == 0) throw ValueError(name_ + ": got an empty parameter list");
  for (ParamGroup& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup group) {
  const std::size_t g = groups_.size();
  Options options = complete(group);
  std::unordered_set<const void*> existing;
  for (const Tensor& p : params_) existing.insert(p.impl().get());
  std::unordered_set<const void*> seen;
  std::vector<Tensor> kept;
  for (std::size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    const std::string which =
        name_ + ": " + (g == 0 ? std::string() : "group " + std::to_string(g) + ", ") + "parameter " + std::to_string(i);
    if (!p.defined()) throw ValueError(which + " is undefined (it holds no value)");
    TG_CHECK(is_floating(p.dtype()), DtypeError,
             which << " of shape " << shape_str(p.shape()) << " holds " << dtype_name(p.dtype())
                   << " elements; only float32 and float64 tensors can be optimized");
    if (!p.is_leaf())
      throw ValueError(which + " of shape " + shape_str(p.shape()) +
                       " is not a leaf (a recorded op produced it); only leaves can be optimized");
    if (existing.count(p.impl().get()))
      throw ValueError(which + " of shape " + shape_str(p.shape()) +
                       ": some parameters appear in more than one parameter group");
    if (seen.insert(p.impl().get()).second) kept.push_back(p);  // a tensor listed twice is one parameter
  }
  for (const Tensor& p : kept) {
    params_.push_back(p);
    group_of_.push_back(g);
    steps_.push_back(0);
    state_.emplace_back();
    state_shapes_.emplace_back();
    state_dtypes_.push_back(p.dtype());
  }
  groups_.emplace_back(std::move(kept), std::move(options));
  initial_lrs_.emplace_back();
}

double Optimizer::option(std::size_t group, const std::string& key) const {
  const Options& options = groups_.at(group).options;
  const auto it = options.find(key);
  if (it == options.end())
    throw ValueError(name_ + ": unknown option \"" + key + "\" (" + name_ + "'s options: " + key_list(defaults_) +
                     ")");
  return it->second;
}

void Optimizer::set_option(std::size_t group, const std::string& key, double value) {
  ParamGroup& g = groups_.at(group);
  ParamGroup changed({}, g.options);
  changed.options[key] = value;
  g.options = complete(changed);
}

void Optimizer::set_lr(double lr) {
  check(0.0 <= lr, "learning rate", lr, ">= 0");
  for (ParamGroup& g : groups_) g.options["lr"] = lr;
}

void Optimizer::set_initial_lr(std::size_t group, double lr) {
  check(0.0 <= lr, "initial learning rate", lr, ">= 0");
  initial_lrs_.at(group) = lr;
}

Tensor Optimizer::state(std::size_t index, const std::string& name) const {
  const auto& state = state_.at(index);
  const auto it = state.find(name);
  return it == state.end() ? Tensor() : it->second;
}

void Optimizer::step() {
  NoGradGuard no_grad;  // updates are not ops of any graph
  [[maybe_unused]] FlushSubnormals flush;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i];
    if (!p.requires_grad()) continue;  // frozen
    const Tensor g = p.grad();
    if (!g.defined()) continue;  // no gradient reached it
    const std::string which = name_ + ": parameter " + std::to_string(i);
    const Shape& shape = p.shape();
    TG_CHECK(g.shape() == shape, ShapeError,
             which << " has shape " << shape_str(shape) << " but its gradient " << shape_str(g.shape()));
    TG_CHECK(g.dtype() == p.dtype(), DtypeError,
             which << " is " << dtype_name(p.dtype()) << " but its gradient " << dtype_name(g.dtype()));
    if (steps_[i] == 0) {
      state_shapes_[i] = shape;
      state_dtypes_[i] = p.dtype();
    } else {
      TG_CHECK(state_shapes_[i] == shape, ShapeError,
               which << " changed shape from " << shape_str(state_shapes_[i]) << " to " << shape_str(shape)
                     << " since its last update; its optimizer state no longer fits");
      TG_CHECK(state_dtypes_[i] == p.dtype(), DtypeError,
               which << " changed dtype from " << dtype_name(state_dtypes_[i]) << " to " << dtype_name(p.dtype())
                     << " since its last update; its optimizer state no longer fits"
                        " (convert a model before creating its optimizer)");
    }
    ++steps_[i];
    update(i, steps_[i], groups_[group_of_[i]].options, p, g.contiguous());
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  for (Tensor& p : params_) p.zero_grad(set_to_none);
}

}  // namespace tg::optim
