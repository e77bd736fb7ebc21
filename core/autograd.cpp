#include "autograd.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "parallel.hpp"

namespace tg {

// ---- anomaly mode ---------------------------------------------------------------

namespace {

thread_local bool anomaly_mode = false;

// The row-major index and value of t's first NaN or infinity; index numel()
// if there is none.
std::pair<std::size_t, double> first_non_finite(const Tensor& t) {
  std::size_t k = 0, found = t.numel();
  double value = 0.0;
  visit_floating("anomaly", t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = static_cast<const T*>(t.impl()->storage->data()) + t.impl()->offset;
    const Strides none(t.dim(), 0);
    for_each_offset(t.shape(), t.strides(), none, none, [&](std::ptrdiff_t o, std::ptrdiff_t, std::ptrdiff_t) {
      if (found == t.numel() && !std::isfinite(p[o])) {
        found = k;
        value = double(p[o]);
      }
      ++k;
    });
  });
  return {found, value};
}

std::string shapes_of(const std::vector<Shape>& shapes) {
  std::string s;
  for (const auto& shape : shapes) s += (s.empty() ? "" : " ") + shape_str(shape);
  return s;
}

// Throws an AnomalyError when t holds a NaN or an infinity.
void check_finite(const Tensor& t, const std::string& where) {
  if (!is_floating(t.dtype())) return;
  const auto [index, value] = first_non_finite(t);
  if (index == t.numel()) return;
  std::ostringstream msg;
  msg << "anomaly: " << where << " holds " << (std::isnan(value) ? "nan" : value < 0 ? "-inf" : "inf") << " at element " << index << " of its shape "
      << shape_str(t.shape());
  throw AnomalyError(msg.str());
}

}  // namespace

bool anomaly_enabled() { return anomaly_mode; }
AnomalyGuard::AnomalyGuard(bool enabled) : previous_(anomaly_mode) { anomaly_mode = enabled; }
AnomalyGuard::~AnomalyGuard() { anomaly_mode = previous_; }

// ---- recording -----------------------------------------------------------------

bool should_record(std::initializer_list<Tensor> inputs) {
  if (!grad_enabled()) return false;
  return std::any_of(inputs.begin(), inputs.end(), [](const Tensor& t) { return t.requires_grad(); });
}

Tensor Recorder::backward(BackwardRule rule) {
  for (const auto& in : inputs_)
    if (!in.defined()) throw AutogradError(std::string(op_) + ": an input is an undefined tensor");
  Tensor out = std::move(value_);
  if (anomaly_mode) {
    std::vector<Shape> shapes;
    for (const auto& in : inputs_) shapes.push_back(in.shape());
    check_finite(out, std::string("the result of ") + op_ + " (forward; inputs " + shapes_of(shapes) + ")");
  }
  // Integer and bool results (argmax, comparisons) carry no gradient.
  const bool recorded = grad_enabled() && is_floating(out.dtype()) &&
                        std::any_of(inputs_.begin(), inputs_.end(), [](const Tensor& t) { return t.requires_grad(); });
  if (!recorded) return out;
  if (out.requires_grad() || !out.is_leaf() || out.impl().use_count() > 1) {
    // The result is an input (an op that returned its argument): record on a fresh handle.
    out = make_view(out, out.shape(), out.strides(), out.impl()->offset);
  }

  auto entry = std::make_unique<TapeEntry>();
  entry->op = op_;
  entry->inputs.reserve(inputs_.size());
  for (const auto& in : inputs_) {
    const TensorImpl& impl = *in.impl();
    TapeInput input;
    input.needs_grad = impl.requires_grad;
    if (input.needs_grad) input.impl = InputHold(in.impl());
    input.identity = &impl;
    input.shape = impl.shape;
    input.dtype = impl.dtype;
    input.creator = impl.creator;
    input.name = impl.name;
    entry->needs_grad.push_back(input.needs_grad);
    entry->inputs.push_back(std::move(input));
  }
  entry->output = out.impl();
  entry->out_shape = out.shape();
  entry->out_dtype = out.dtype();
  entry->saved = std::move(saved_);
  for (const auto& t : entry->saved) entry->saved_buffers.push_back(t.defined() ? t.impl()->storage : nullptr);
  if (saves_output_) entry->saved_buffers.push_back(out.impl()->storage);
  for (const auto& b : entry->saved_buffers) entry->saved_versions.push_back(b ? b->version() : 0);
  entry->rule = std::move(rule);
  out.impl()->requires_grad = true;
  out.impl()->creator = tape().append(std::move(entry));
  return out;
}

// ---- backward --------------------------------------------------------------------

void GradContext::free_saved(std::size_t i) const {
  if (freeable) tape().release_saved(*freeable, i);
}

namespace {

using ImplPtr = std::shared_ptr<TensorImpl>;

// `what` + `suffix` names the check in the message, built only on failure.
void check_matches(const std::string& what, const char* suffix, const Tensor& got, const Shape& shape, Dtype dtype) {
  if (got.shape() != shape)
    throw ShapeError(what + suffix + ": gradient of shape " + shape_str(got.shape()) + " for a tensor of shape " +
                     shape_str(shape));
  if (got.dtype() != dtype)
    throw DtypeError(what + suffix + ": gradient of dtype " + dtype_name(got.dtype()) + " for a tensor of dtype " +
                     dtype_name(dtype));
}

// a + b as a fresh contiguous tensor. Under create_graph the sum is recorded
// (its rule passes the gradient to both terms) so the backward graph stays whole.
Tensor add_gradients(const Tensor& a, const Tensor& b) {
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  Tensor sum = empty(a.shape(), a.dtype());
  visit_floating("accumulate_grad", a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = ca.data<T>();
    const T* pb = cb.data<T>();
    T* ps = static_cast<T*>(sum.impl()->storage->data());
    parallel_for(sum.numel(), sum.numel(), [&](std::size_t first, std::size_t last) {
      for (std::size_t i = first; i < last; ++i) ps[i] = pa[i] + pb[i];
    });
  });
  return record("accumulate_grad", {a, b}, std::move(sum)).backward([](const GradContext& c) {
    return Grads{c.grad, c.grad};
  });
}

// Whether slot's buffer is ours alone to add into: no other handle, no other
// view of its storage, and outside any graph.
bool exclusively_owned(const ImplPtr& slot) {
  return slot.use_count() == 1 && slot->storage.use_count() == 1 && !slot->requires_grad &&
         Tensor(slot).is_contiguous();
}

// Adds g into *slot: in place when the slot's buffer is ours alone, else by
// replacing it with a new sum.
void accumulate(ImplPtr& slot, const Tensor& g, bool create_graph) {
  if (!slot) {
    slot = g.impl();
    return;
  }
  check_matches("backward", "", g, slot->shape, slot->dtype);
  if (create_graph || !exclusively_owned(slot)) {
    slot = add_gradients(Tensor(slot), g).impl();
    return;
  }
  const Tensor src = g.contiguous();
  visit_floating("accumulate_grad", slot->dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* dst = static_cast<T*>(slot->storage->data()) + slot->offset;
    const T* s = src.data<T>();
    parallel_for(src.numel(), src.numel(), [&](std::size_t first, std::size_t last) {
      for (std::size_t i = first; i < last; ++i) dst[i] += s[i];
    });
  });
}

Tensor apply_hooks(const TensorImpl& impl, Tensor g) {
  for (const auto& [id, hook] : impl.hooks) {
    Tensor replaced = hook(g);
    if (replaced.defined()) {
      check_matches("register_hook", "", replaced, impl.shape, impl.dtype);
      g = replaced;
    }
  }
  return g;
}

double l2_norm(const Tensor& t) {
  const Tensor c = t.contiguous();
  return visit_floating("grad_norm", c.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    double s = 0.0;
    const T* p = c.data<T>();
    for (std::size_t i = 0, n = c.numel(); i < n; ++i) s += double(p[i]) * double(p[i]);
    return std::sqrt(s);
  });
}

// A .grad keeps its own contiguous buffer (later backwards add into it in
// place), and outside create_graph it carries no graph.
void accumulate_into_grad(TensorImpl& impl, Tensor g, bool create_graph) {
  if (!create_graph && (g.requires_grad() || !exclusively_owned(g.impl()))) g = g.detach().clone();
  accumulate(impl.grad, g, create_graph);
}

// Throws when a buffer the entry's rule reads was written in place after the
// op ran, or a saved tensor was given other storage (set_data).
void check_versions(const TapeEntry& e) {
  for (std::size_t k = 0; k < e.saved_buffers.size(); ++k) {
    const Storage* buffer = e.saved_buffers[k].get();
    if (!buffer) continue;
    const bool is_output = k == e.saved.size();
    const bool moved = !is_output && e.saved[k].impl()->storage.get() != buffer;
    if (!moved && buffer->version() == e.saved_versions[k]) continue;
    const std::string what = is_output ? std::string("its result")
                                       : "a tensor it saved, of shape " + shape_str(e.saved[k].shape()) + ",";
    const std::string where = e.op + " backward (entry #" + std::to_string(e.id) + "): ";
    if (moved)
      throw AutogradError(where + what + " was given new storage (set_data) after the op ran; the gradient would be"
                          " wrong. Replace values before recording, or record again.");
    throw AutogradError(where + what + " was modified in place after the op ran (version " +
                        std::to_string(e.saved_versions[k]) + ", now " + std::to_string(buffer->version()) +
                        "); the gradient would be wrong. Modify a clone() instead.");
  }
}

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds, bool retain_graph,
                  bool create_graph, bool accumulate_into_leaves, const std::vector<Tensor>& wanted,
                  std::vector<Tensor>* wanted_grads) {
  // A graph built by create_graph reads the forward graph's tensors: keep it.
  retain_graph = retain_graph || create_graph;
  Tape& tp = tape();
  if (tp.walking())
    throw AutogradError("backward: called from a hook or a rule while another backward is running;"
                        " compute what the hook needs before the outer backward");
  tp.prune();

  // Seed every root, after checking all of them.
  std::vector<Tensor> root_grads;
  for (std::size_t k = 0; k < roots.size(); ++k) {
    const Tensor& root = roots[k];
    if (!root.defined()) throw AutogradError("backward: called on an undefined tensor");
    if (!root.requires_grad())
      throw AutogradError("backward: tensor of shape " + shape_str(root.shape()) +
                          " does not require grad (no input of it requires grad, or it was"
                          " computed under NoGradGuard)");
    if (!root.is_leaf() && !tp.find(root.impl()->creator))
      throw AutogradError("backward: the graph that produced this tensor of shape " + shape_str(root.shape()) +
                          " is not on this thread's tape: an earlier backward freed it (pass"
                          " retain_graph=true to that backward to go through the graph again),"
                          " or it was recorded on another thread");
    const Tensor seed = k < seeds.size() ? seeds[k] : Tensor();
    if (seed.defined()) {
      check_matches("backward: seed", "", seed, root.shape(), root.dtype());
      root_grads.push_back(seed);
    } else if (root.numel() == 1) {
      root_grads.push_back(ones(root.shape(), root.dtype()));
    } else {
      throw AutogradError("backward: output of shape " + shape_str(root.shape()) +
                          " is not a scalar; pass a seed (the gradient of the output) of that shape");
    }
  }
  for (const auto& w : wanted)
    if (!w.requires_grad())
      throw AutogradError("grad: an input of shape " + shape_str(w.shape()) + " does not require grad");

  std::vector<ImplPtr> touched;  // every tensor that received a gradient
  std::vector<Tensor> found(wanted.size());
  auto send = [&](const ImplPtr& impl, const Tensor& g) {
    if (!impl->pending) touched.push_back(impl);
    accumulate(impl->pending, g, create_graph);
  };
  // Drops a processed tensor from `touched` (it holds no pending gradient any
  // more); recent ones sit at the back.
  auto forget = [&](const TensorImpl* impl) {
    for (std::size_t k = touched.size(); k-- > 0;)
      if (touched[k].get() == impl) {
        touched[k] = std::move(touched.back());
        touched.pop_back();
        return;
      }
  };
  auto take_pending = [&](TensorImpl& impl) {
    Tensor g = apply_hooks(impl, Tensor(std::move(impl.pending)));
    impl.pending.reset();
    for (std::size_t w = 0; w < wanted.size(); ++w)
      if (wanted[w].impl().get() == &impl) found[w] = g;
    return g;
  };
  // On any exit, no tensor may keep a half-summed gradient.
  struct Cleanup {
    std::vector<ImplPtr>& touched;
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
      TapeEntry& entry = tp[i];
      ImplPtr out = entry.output.lock();
      if (!out || !out->pending) continue;

      if (entry.released)
        throw AutogradError("backward: entry #" + std::to_string(entry.id) + " (" + entry.op +
                            ") was freed by an earlier backward through this graph that stopped with an error;"
                            " record the graph again");
      check_versions(entry);
      const Tensor g = take_pending(*out);
      if (retain_graph) entry.grad_norm = l2_norm(g);
      if (accumulate_into_leaves && out->retains_grad) accumulate_into_grad(*out, g, create_graph);
      // A result nothing else holds has let its values go; a rule that reads
      // them saved its buffer.
      if (!out->storage && entry.saved_buffers.size() > entry.saved.size()) out->storage = entry.saved_buffers.back();
      const Tensor output(out);
      Grads grads;
      try {
        // The ops inside a rule are not checked one by one: the gradients
        // it returns are, below, so that the message names this entry.
        const AnomalyGuard rule_ops_unchecked(false);
        grads = entry.rule(GradContext{g, output, entry.saved, entry.needs_grad, entry.inputs,
                                       retain_graph ? nullptr : &entry});
      } catch (...) {
        if (!retain_graph) tp.release(entry);  // the rule may have freed part of what it saved
        throw;
      }
      if (grads.size() != entry.inputs.size())
        throw AutogradError(entry.op + " backward: the rule returned " + std::to_string(grads.size()) +
                            " gradients for " + std::to_string(entry.inputs.size()) + " inputs");
      for (std::size_t j = 0; j < grads.size(); ++j) {
        const TapeInput& in = entry.inputs[j];
        if (!in.needs_grad || !grads[j].defined()) continue;
        check_matches(entry.op, " backward", grads[j], in.shape, in.dtype);
        if (anomaly_mode) {
          std::vector<Shape> shapes;
          for (const auto& input : entry.inputs) shapes.push_back(input.shape);
          check_finite(grads[j], "the gradient that the backward of tape entry #" + std::to_string(entry.id) + " (" +
                                     entry.op + ", inputs " + shapes_of(shapes) + ") returned for its input " +
                                     std::to_string(j) + ", the first non-finite gradient of this backward,");
        }
        send(in.impl.get(), grads[j]);
      }
      consumed.push_back(entry.id);
      if (!retain_graph) {
        // Nothing reads this op's saved tensors or its result's gradient slot
        // again: let them go now, so that the walk's peak memory stays low.
        tp.release(entry);
        forget(out.get());
      }
    }

    // Every gradient left pending belongs to a leaf, or the graph was broken:
    // check them all before any leaf's .grad changes.
    for (auto& impl : touched) {
      if (impl->pending && impl->creator != 0)
        throw AutogradError("backward: a gradient reached a tensor of shape " + shape_str(impl->shape) +
                            " made by entry #" + std::to_string(impl->creator) +
                            ", which is not on this thread's tape: an earlier backward freed it"
                            " (pass retain_graph=true to that backward), or it was recorded on"
                            " another thread");
    }
    for (auto& impl : touched) {
      if (!impl->pending) continue;
      Tensor g = take_pending(*impl);
      if (accumulate_into_leaves && impl->requires_grad) accumulate_into_grad(*impl, std::move(g), create_graph);
    }
  }
  if (!retain_graph) tp.remove(consumed);  // frees their saved tensors
  if (wanted_grads) *wanted_grads = std::move(found);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& seeds, bool retain_graph, bool create_graph) {
  std::vector<Tensor> result;
  run_backward(outputs, seeds, retain_graph, create_graph, /*accumulate_into_leaves=*/false, inputs, &result);
  return result;
}

}  // namespace tg
