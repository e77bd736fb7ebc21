// The tape: a thread-local list of recorded ops in execution order (a Wengert
// list). backward() walks it in reverse; nothing needs a topological sort.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "error.hpp"

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

// What the tape and its printers know of a recorded op, whatever its dtype.
// The typed part (inputs, saved tensors, backward rule) is Node<T> in
// autograd.hpp.
class TapeEntry {
 public:
  virtual ~TapeEntry() = default;

  std::uint64_t id = 0;  // increasing along the tape; tensors name their creator by it
  std::string op;
  double grad_norm = -1.0;  // norm of the output's gradient at the last retained backward
  // saved_bytes() when appended: what the tape's total holds for this entry,
  // even if a saved tensor is resized in place afterwards.
  std::size_t counted_bytes = 0;

  virtual const char* dtype() const = 0;
  virtual std::size_t num_inputs() const = 0;
  virtual Shape input_shape(std::size_t i) const = 0;
  virtual std::string input_label(std::size_t i) const = 0;  // name, or "#id" of its creator
  virtual bool input_requires_grad(std::size_t i) const = 0;
  virtual std::uint64_t input_creator(std::size_t i) const = 0;
  virtual const void* input_identity(std::size_t i) const = 0;  // same tensor, same pointer
  virtual Shape output_shape() const = 0;
  virtual bool output_alive() const = 0;
  virtual std::size_t saved_bytes() const = 0;
};

class Tape {
 public:
  Tape() = default;
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const TapeEntry& operator[](std::size_t i) const { return *entries_[i]; }
  TapeEntry& operator[](std::size_t i) { return *entries_[i]; }
  // The entry with this id, or nullptr once it has been freed.
  TapeEntry* find(std::uint64_t id);
  const TapeEntry* find(std::uint64_t id) const;

  std::size_t saved_bytes() const { return saved_bytes_; }  // held now
  std::size_t peak_saved_bytes() const { return peak_saved_bytes_; }
  void reset_peak() { peak_saved_bytes_ = saved_bytes_; }

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

  // While a backward walks the tape by index, entries must not move: the walk
  // holds the order for its lifetime, and the engine refuses a second walk
  // (a backward from a hook) while one is on.
  bool walking() const { return walking_; }
  class OrderHold {
   public:
    explicit OrderHold(Tape& tape) : tape_(tape) { tape_.walking_ = true; }
    ~OrderHold() { tape_.walking_ = false; }
    OrderHold(const OrderHold&) = delete;
    OrderHold& operator=(const OrderHold&) = delete;

   private:
    Tape& tape_;
  };

 private:
  std::vector<std::unique_ptr<TapeEntry>> entries_;
  std::size_t saved_bytes_ = 0;
  std::size_t peak_saved_bytes_ = 0;
  std::size_t prune_at_ = 1024;  // prune when the tape grows past this
  bool walking_ = false;
};

// This thread's tape.
Tape& tape();

// A table: index, op, input shapes -> output shape, inputs needing grad,
// bytes saved (and gradient norms after a retain_graph backward).
std::ostream& operator<<(std::ostream& os, const Tape& tape);

}  // namespace tg
