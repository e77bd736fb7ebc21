#include "autograd.hpp"

#include "storage.hpp"

#include <algorithm>
#include <cmath>

namespace tg {

// ---- Node ------------------------------------------------------------------

template <class T>
const char* Node<T>::dtype() const {
  return sizeof(T) == 4 ? "f32" : "f64";
}

template <class T>
Shape Node<T>::input_shape(std::size_t i) const {
  const auto& s = inputs[i]->value.shape();
  return Shape(s.begin(), s.end());
}

template <class T>
std::string Node<T>::input_label(std::size_t i) const {
  const auto& in = *inputs[i];
  if (!in.name.empty()) return in.name;
  if (in.creator) return "#" + std::to_string(in.creator);
  return in.requires_grad ? "leaf" : "const";
}

template <class T>
std::size_t Node<T>::saved_bytes() const {
  std::size_t elements = 0;
  for (const auto& t : saved)
    if (t.defined()) elements += t.numel();
  if (saves_output) {
    std::size_t n = 1;
    for (auto d : out_shape) n *= d;
    elements += n;
  }
  return elements * sizeof(T);
}

// ---- recording -------------------------------------------------------------

template <class T>
BasicTensor<T> Recorder<T>::backward(BackwardRule<T> rule) {
  for (const auto& in : inputs_)
    if (!in.defined()) throw AutogradError(std::string(op_) + ": an input is an undefined tensor");
  BasicTensor<T> out(std::move(value_));
  const bool recorded = grad_enabled() && std::any_of(inputs_.begin(), inputs_.end(),
                                                      [](const auto& t) { return t.requires_grad(); });
  if (!recorded) return out;

  auto node = std::make_unique<Node<T>>();
  node->op = op_;
  node->inputs.reserve(inputs_.size());
  for (const auto& in : inputs_) {
    node->inputs.push_back(in.impl());
    node->needs_grad.push_back(in.requires_grad());
  }
  node->output = out.impl();
  node->out_shape = out.shape();
  node->saved = std::move(saved_);
  node->saves_output = saves_output_;
  node->rule = std::move(rule);
  out.impl()->requires_grad = true;
  out.impl()->creator = tape().append(std::move(node));
  return out;
}

// ---- backward --------------------------------------------------------------

namespace {

template <class T>
using ImplPtr = std::shared_ptr<TensorImpl<T>>;

template <class T>
void check_same_shape(const char* what, const xt::xarray<T>& got, const xt::xarray<T>& want) {
  if (!std::equal(got.shape().begin(), got.shape().end(), want.shape().begin(), want.shape().end()))
    throw ShapeError(std::string(what) + ": gradient of shape " + shape_str(got.shape()) +
                     " for a tensor of shape " + shape_str(want.shape()));
}

// sum = a + b as a fresh tensor. Under create_graph the sum is recorded (its
// rule passes the gradient to both terms) so the backward graph stays whole.
template <class T>
BasicTensor<T> add_gradients(const BasicTensor<T>& a, const BasicTensor<T>& b) {
  xt::xarray<T> sum = empty_array<T>(a.value().shape());
  const T* pa = a.data();
  const T* pb = b.data();
  T* ps = sum.data();
  for (std::size_t i = 0, n = sum.size(); i < n; ++i) ps[i] = pa[i] + pb[i];
  return record("accumulate_grad", {a, b}, std::move(sum))
      .backward([](const GradContext<T>& c) { return Grads<T>{c.grad, c.grad}; });
}

// Adds g into *slot. A slot we alone own is updated in place; a shared one
// (a seed, a gradient handed to two inputs) is replaced by a new sum.
template <class T>
void accumulate(ImplPtr<T>& slot, const BasicTensor<T>& g, bool create_graph) {
  if (!slot) {
    slot = g.impl();
    return;
  }
  check_same_shape("backward", g.value(), slot->value);
  if (create_graph || slot.use_count() > 1 || slot->requires_grad) {
    slot = add_gradients(BasicTensor<T>(slot), g).impl();
    return;
  }
  T* dst = slot->value.data();
  const T* src = g.data();
  for (std::size_t i = 0, n = slot->value.size(); i < n; ++i) dst[i] += src[i];
}

template <class T>
BasicTensor<T> apply_hooks(const TensorImpl<T>& impl, BasicTensor<T> g) {
  for (const auto& hook : impl.hooks) {
    BasicTensor<T> replaced = hook(g);
    if (replaced.defined()) {
      check_same_shape("register_hook", replaced.value(), impl.value);
      g = replaced;
    }
  }
  return g;
}

template <class T>
double l2_norm(const xt::xarray<T>& v) {
  double s = 0.0;
  for (auto e : v) s += double(e) * double(e);
  return std::sqrt(s);
}

// A leaf's .grad keeps its own buffer (later backwards add into it in place),
// and outside create_graph it carries no graph.
template <class T>
void accumulate_leaf_grad(TensorImpl<T>& leaf, BasicTensor<T> g, bool create_graph) {
  if (!create_graph && (g.impl().use_count() > 1 || g.requires_grad())) g = BasicTensor<T>(g.value());
  accumulate(leaf.grad, g, create_graph);
}

}  // namespace

template <class T>
void run_backward(const std::vector<BasicTensor<T>>& roots, const std::vector<BasicTensor<T>>& seeds,
                  bool retain_graph, bool create_graph, bool accumulate_into_leaves,
                  const std::vector<BasicTensor<T>>& wanted, std::vector<BasicTensor<T>>* wanted_grads) {
  // A graph built by create_graph reads the forward graph's tensors: keep it.
  retain_graph = retain_graph || create_graph;
  Tape& tp = tape();
  if (tp.walking())
    throw AutogradError("backward: called from a hook or a rule while another backward is running;"
                        " compute what the hook needs before the outer backward");
  tp.prune();

  // Seed every root, after checking all of them.
  std::vector<BasicTensor<T>> root_grads;
  for (std::size_t k = 0; k < roots.size(); ++k) {
    const BasicTensor<T>& root = roots[k];
    if (!root.defined()) throw AutogradError("backward: called on an undefined tensor");
    if (!root.requires_grad())
      throw AutogradError("backward: tensor of shape " + shape_str(root.value().shape()) +
                          " does not require grad (no input of it requires grad, or it was"
                          " computed under NoGradGuard)");
    if (!root.is_leaf() && !tp.find(root.impl()->creator))
      throw AutogradError("backward: the graph that produced this tensor of shape " +
                          shape_str(root.value().shape()) +
                          " is not on this thread's tape: an earlier backward freed it (pass"
                          " retain_graph=true to that backward to go through the graph again),"
                          " or it was recorded on another thread");
    const BasicTensor<T> seed = k < seeds.size() ? seeds[k] : BasicTensor<T>();
    if (seed.defined()) {
      check_same_shape("backward: seed", seed.value(), root.value());
      root_grads.push_back(seed);
    } else if (root.numel() == 1) {
      root_grads.push_back(BasicTensor<T>(xt::xarray<T>(xt::ones<T>(root.value().shape()))));
    } else {
      throw AutogradError("backward: output of shape " + shape_str(root.value().shape()) +
                          " is not a scalar; pass a seed (the gradient of the output) of that shape");
    }
  }
  for (const auto& w : wanted)
    if (!w.requires_grad())
      throw AutogradError("grad: an input of shape " + shape_str(w.value().shape()) +
                          " does not require grad");

  std::vector<ImplPtr<T>> touched;  // every tensor that received a gradient
  std::vector<BasicTensor<T>> found(wanted.size());
  auto send = [&](const ImplPtr<T>& impl, const BasicTensor<T>& g) {
    if (!impl->pending) touched.push_back(impl);
    accumulate(impl->pending, g, create_graph);
  };
  auto take_pending = [&](TensorImpl<T>& impl) {
    BasicTensor<T> g = apply_hooks(impl, BasicTensor<T>(std::move(impl.pending)));
    impl.pending.reset();
    for (std::size_t w = 0; w < wanted.size(); ++w)
      if (wanted[w].impl().get() == &impl) found[w] = g;
    return g;
  };
  // On any exit, no tensor may keep a half-summed gradient.
  struct Cleanup {
    std::vector<ImplPtr<T>>& touched;
    ~Cleanup() {
      for (auto& t : touched) t->pending.reset();
    }
  } cleanup{touched};

  for (std::size_t k = 0; k < roots.size(); ++k) send(roots[k].impl(), root_grads[k]);

  GradModeGuard mode(create_graph);
  std::vector<std::uint64_t> consumed;
  {
    const Tape::OrderHold hold(tp);  // until every gradient has landed
    for (std::size_t i = tp.size(); i-- > 0;) {
      auto* node = dynamic_cast<Node<T>*>(&tp[i]);
      if (!node) continue;
      ImplPtr<T> out = node->output.lock();
      if (!out || !out->pending) continue;

      const BasicTensor<T> g = take_pending(*out);
      if (retain_graph) node->grad_norm = l2_norm(g.value());
      const std::vector<bool>& needs_grad = node->needs_grad;
      const BasicTensor<T> output(out);
      const Grads<T> grads = node->rule(GradContext<T>{g, output, node->saved, needs_grad, node->inputs});
      if (grads.size() != node->inputs.size())
        throw AutogradError(node->op + " backward: the rule returned " + std::to_string(grads.size()) +
                            " gradients for " + std::to_string(node->inputs.size()) + " inputs");
      for (std::size_t j = 0; j < grads.size(); ++j) {
        if (!needs_grad[j] || !grads[j].defined()) continue;
        check_same_shape((node->op + " backward").c_str(), grads[j].value(), node->inputs[j]->value);
        send(node->inputs[j], grads[j]);
      }
      consumed.push_back(node->id);
    }

    // Every gradient left pending belongs to a leaf, or the graph was broken:
    // check them all before any leaf's .grad changes.
    for (auto& impl : touched) {
      if (impl->pending && impl->creator != 0)
        throw AutogradError("backward: a gradient reached a tensor of shape " +
                            shape_str(impl->value.shape()) + " made by entry #" +
                            std::to_string(impl->creator) +
                            ", which is not on this thread's tape: an earlier backward freed it"
                            " (pass retain_graph=true to that backward), or it was recorded on"
                            " another thread");
    }
    for (auto& impl : touched) {
      if (!impl->pending) continue;
      BasicTensor<T> g = take_pending(*impl);
      if (accumulate_into_leaves && impl->requires_grad) accumulate_leaf_grad(*impl, std::move(g), create_graph);
    }
  }
  if (!retain_graph) tp.remove(consumed);  // frees their saved tensors
  if (wanted_grads) *wanted_grads = std::move(found);
}

template <class T>
std::vector<BasicTensor<T>> grad(const std::vector<BasicTensor<T>>& outputs,
                                 const std::vector<BasicTensor<T>>& inputs,
                                 const std::vector<BasicTensor<T>>& seeds, bool retain_graph,
                                 bool create_graph) {
  std::vector<BasicTensor<T>> result;
  run_backward(outputs, seeds, retain_graph, create_graph, /*accumulate_into_leaves=*/false, inputs,
               &result);
  return result;
}

#define TG_INSTANTIATE(T)                                                                    \
  template class Node<T>;                                                                    \
  template class Recorder<T>;                                                                \
  template void run_backward<T>(const std::vector<BasicTensor<T>>&,                          \
                                const std::vector<BasicTensor<T>>&, bool, bool, bool,        \
                                const std::vector<BasicTensor<T>>&, std::vector<BasicTensor<T>>*); \
  template std::vector<BasicTensor<T>> grad<T>(const std::vector<BasicTensor<T>>&,           \
                                               const std::vector<BasicTensor<T>>&,           \
                                               const std::vector<BasicTensor<T>>&, bool, bool);
TG_INSTANTIATE(float)
TG_INSTANTIATE(double)
#undef TG_INSTANTIATE

}  // namespace tg
