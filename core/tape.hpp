// The tape: a thread-local list of recorded ops in execution order (a Wengert
// list). backward() walks it in reverse; nothing needs a topological sort.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include <functional>
#include <unordered_map>

#include "error.hpp"
#include "tensor.hpp"

namespace tg {

// ---- grad mode -------------------------------------------------------------

// Whether ops on this thread record onto the tape.
bool grad_enabled();

// Sets grad mode for its lifetime and restores the previous one after.
class GradModeGuard {
 public:
  explicit GradModeGuard(bool enabled);
  ~GradModeGuard();
  GradModeGuard(const GradModeGuard&) = delete;
  GradModeGuard& operator=(const GradModeGuard&) = delete;

 private:
  bool previous_;
};

// Nothing is recorded while one is alive: inference, optimizer updates.
class NoGradGuard : public GradModeGuard {
 public:
  NoGradGuard() : GradModeGuard(false) {}
};

// ---- entries ---------------------------------------------------------------

struct GradContext;  // autograd.hpp
using Grads = std::vector<Tensor>;
using BackwardRule = std::function<Grads(const GradContext&)>;

// A tape entry's hold on an input its gradient flows to, counted in the
// input's tape_refs so that the input's last handle can tell when only the
// tape still holds it (and free the values: the tape needs only the place).
class InputHold {
 public:
  InputHold() = default;
  explicit InputHold(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {
    if (impl_) impl_->tape_refs.fetch_add(1, std::memory_order_relaxed);
  }
  InputHold(InputHold&& other) noexcept : impl_(std::move(other.impl_)) {}
  InputHold& operator=(InputHold&& other) noexcept {
    if (this != &other) {
      reset();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  InputHold(const InputHold&) = delete;
  InputHold& operator=(const InputHold&) = delete;
  ~InputHold() { reset(); }

  void reset() noexcept {
    if (!impl_) return;
    impl_->tape_refs.fetch_sub(1, std::memory_order_relaxed);
    impl_.reset();
  }
  const std::shared_ptr<TensorImpl>& get() const { return impl_; }
  TensorImpl* operator->() const { return impl_.get(); }
  explicit operator bool() const { return impl_ != nullptr; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// One input of a recorded op, as the tape keeps it.
struct TapeInput {
  InputHold impl;  // held only where a gradient flows to it
  const void* identity = nullptr;    // tells inputs apart in printouts; never dereferenced
  Shape shape;
  Dtype dtype = kFloat32;
  bool needs_grad = false;  // fixed when the op ran
  std::uint64_t creator = 0;
  std::string name;  // when recorded; a live input's current name wins
};

// One recorded op: its inputs, what its rule reads, and the rule.
class TapeEntry {
 public:
  std::uint64_t id = 0;  // increasing along the tape; tensors name their creator by it
  std::string op;
  std::vector<TapeInput> inputs;
  std::vector<bool> needs_grad;         // inputs[i].needs_grad, as the rule sees it
  std::weak_ptr<TensorImpl> output;     // weak: a dead output means a dead entry
  Shape out_shape;
  Dtype out_dtype = kFloat32;
  std::vector<Tensor> saved;
  // The buffers the rule will read, as they were when the op ran: saved[0..]'s
  // (null where undefined), then the output's when the rule reads it. Holding
  // them keeps the tape's byte count and the checks below exact even if a
  // saved tensor is later given new storage (set_data).
  std::vector<std::shared_ptr<Storage>> saved_buffers;
  // Their versions when recorded. An in-place write in between makes
  // backward refuse: the rule would read new values.
  std::vector<std::uint64_t> saved_versions;
  BackwardRule rule;
  // Set once a backward that did not retain the graph has run the rule:
  // what only the rule needed (saved tensors, the rule, the inputs) is gone.
  bool released = false;
  double grad_norm = -1.0;  // norm of the output's gradient at the last retained backward

  const char* dtype() const { return dtype_name(out_dtype); }
  std::size_t num_inputs() const { return inputs.size(); }
  const Shape& input_shape(std::size_t i) const { return inputs[i].shape; }
  std::string input_label(std::size_t i) const;  // name, or "#id" of its creator
  bool input_requires_grad(std::size_t i) const { return inputs[i].needs_grad; }
  std::uint64_t input_creator(std::size_t i) const { return inputs[i].creator; }
  const void* input_identity(std::size_t i) const { return inputs[i].identity; }
  const Shape& output_shape() const { return out_shape; }
  bool output_alive() const { return !output.expired(); }
  // The buffers this entry keeps alive for its rule, each counted once.
  std::vector<const Storage*> saved_storages() const;
  std::size_t saved_bytes() const;
};

class Tape {
 public:
  Tape() = default;
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // The i-th entry in recording order; throws ValueError past the end.
  const TapeEntry& operator[](std::size_t i) const;
  TapeEntry& operator[](std::size_t i);
  // The entry with this id, or nullptr once it has been freed.
  TapeEntry* find(std::uint64_t id);
  const TapeEntry* find(std::uint64_t id) const;

  // Bytes of the distinct buffers that entries keep for their rules.
  std::size_t saved_bytes() const { return saved_bytes_; }  // held now
  std::size_t peak_saved_bytes() const { return peak_saved_bytes_; }
  void reset_peak() { peak_saved_bytes_ = saved_bytes_; }

  // When the saved bytes pass this (default 4 GiB), one warning goes to
  // stderr: a loop is most likely keeping graphs alive (results kept in a
  // list, retain_graph=true). It re-arms once the tape has shrunk to half.
  void set_warning_bytes(std::size_t bytes) { warning_bytes_ = bytes; }

  // Drops every entry: gradients can no longer flow through what they recorded.
  void clear();
  // Drops the entries whose output no longer exists: no gradient can reach them.
  void prune();

  // Graphviz DOT: leaves as boxes, ops as ellipses, edges labelled with shapes.
  std::string to_dot() const;

  // ---- used by the autograd engine ----
  std::uint64_t append(std::unique_ptr<TapeEntry> entry);
  // Frees the saved tensors of the entries whose id is in `ids` and removes them.
  void remove(const std::vector<std::uint64_t>& ids);
  // Frees what the entry kept for its rule, once the rule has run in a
  // backward that does not retain the graph: memory returns during the walk,
  // not after it. The entry itself stays (ordered) until the walk ends.
  void release(TapeEntry& entry);
  // Frees one saved tensor of an entry whose rule is running and has read it
  // for the last time (GradContext::free_saved).
  void release_saved(TapeEntry& entry, std::size_t i);
  // The output of entry `id` died: nothing can reach that entry any more, so
  // it goes now, and with it whatever only it kept alive (iteratively, so a
  // long chain cannot overflow the stack). Deferred while a backward walks.
  void output_died(std::uint64_t id);

  // While a backward walks the tape by index, entries must not move: the walk
  // holds the order for its lifetime, and the engine refuses a second walk
  // (a backward from a hook) while one is on.
  bool walking() const { return walking_; }
  class OrderHold {
   public:
    explicit OrderHold(Tape& tape) : tape_(tape) { tape_.walking_ = true; }
    ~OrderHold() {
      tape_.walking_ = false;
      tape_.release_dead();
    }
    OrderHold(const OrderHold&) = delete;
    OrderHold& operator=(const OrderHold&) = delete;

   private:
    Tape& tape_;
  };

 private:
  std::size_t position(std::uint64_t id) const;  // of a live entry, or size()
  void count(const TapeEntry& entry, int sign);
  void release_dead();
  void erase_null_entries();

  std::vector<std::unique_ptr<TapeEntry>> entries_;
  std::vector<std::uint64_t> ids_;  // entries_[i]->id, readable while an entry is being freed
  std::unordered_map<const Storage*, std::size_t> saved_refs_;  // buffer -> entries saving it
  std::vector<std::uint64_t> dead_;  // outputs that died, not yet released
  bool releasing_ = false;
  std::size_t saved_bytes_ = 0;
  std::size_t warning_bytes_ = std::size_t(4) << 30;
  bool warned_ = false;
  std::size_t peak_saved_bytes_ = 0;
  std::size_t prune_at_ = 1024;  // prune when the tape grows past this
  bool walking_ = false;
};

// This thread's tape.
Tape& tape();
// Called by a dying tensor that an entry produced.
void notify_output_died(std::uint64_t creator);

// A table: index, op, input shapes -> output shape, inputs needing grad,
// bytes saved (and gradient norms after a retain_graph backward).
std::ostream& operator<<(std::ostream& os, const Tape& tape);

}  // namespace tg
