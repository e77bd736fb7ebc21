#include "tape.hpp"

#include "autograd.hpp"

#include <algorithm>
#include <atomic>
#include <iomanip>
#include <iostream>
#include <ostream>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace tg {

// ---- grad mode -------------------------------------------------------------

namespace {
thread_local bool grad_mode = true;
}

bool grad_enabled() { return grad_mode; }

GradModeGuard::GradModeGuard(bool enabled) : previous_(grad_mode) { grad_mode = enabled; }
GradModeGuard::~GradModeGuard() { grad_mode = previous_; }

// ---- the tape --------------------------------------------------------------

namespace {
// Shared by every thread's tape, so that an id names one entry anywhere: a
// tensor recorded on another thread is never mistaken for a local entry.
std::atomic<std::uint64_t> next_entry_id{1};
}  // namespace

namespace {

std::string human_bytes(std::size_t bytes) {
  std::ostringstream s;
  if (bytes < 1024) s << bytes << " B";
  else if (bytes < (1u << 20)) s << std::fixed << std::setprecision(1) << bytes / 1024.0 << " KiB";
  else s << std::fixed << std::setprecision(1) << bytes / double(1u << 20) << " MiB";
  return s.str();
}

thread_local bool tape_torn_down = false;  // trivially destructible: readable at thread exit
}

Tape& tape() {
  thread_local struct Holder {
    Tape tape;
    ~Holder() { tape_torn_down = true; }  // runs before the tape's entries die
  } holder;
  return holder.tape;
}

void notify_output_died(std::uint64_t creator) {
  if (!tape_torn_down) tape().output_died(creator);
}

// ---- entries ----------------------------------------------------------------

std::string TapeEntry::input_label(std::size_t i) const {
  const TapeInput& in = inputs[i];
  const std::string& name = in.impl ? in.impl->name : in.name;
  if (!name.empty()) return name;
  if (in.creator) return "#" + std::to_string(in.creator);
  return in.needs_grad ? "leaf" : "const";
}

std::vector<const Storage*> TapeEntry::saved_storages() const {
  std::vector<const Storage*> buffers;
  buffers.reserve(saved_buffers.size());
  for (const auto& b : saved_buffers)
    if (b) buffers.push_back(b.get());
  std::sort(buffers.begin(), buffers.end());
  buffers.erase(std::unique(buffers.begin(), buffers.end()), buffers.end());
  return buffers;
}

std::size_t TapeEntry::saved_bytes() const {
  std::size_t bytes = 0;
  for (const Storage* s : saved_storages()) bytes += s->bytes();
  return bytes;
}

// ---- the tape -----------------------------------------------------------------

const TapeEntry& Tape::operator[](std::size_t i) const {
  TG_CHECK(i < entries_.size(), ValueError,
           "tape()[" << i << "]: index out of range (the tape holds " << entries_.size() << " entries)");
  return *entries_[i];
}

TapeEntry& Tape::operator[](std::size_t i) { return const_cast<TapeEntry&>(std::as_const(*this)[i]); }

std::size_t Tape::position(std::uint64_t id) const {
  // Ids increase along the tape, so a binary search finds one.
  auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
  const auto i = std::size_t(it - ids_.begin());
  return (it != ids_.end() && *it == id && entries_[i]) ? i : entries_.size();
}

const TapeEntry* Tape::find(std::uint64_t id) const {
  const std::size_t i = position(id);
  return i < entries_.size() ? entries_[i].get() : nullptr;
}

TapeEntry* Tape::find(std::uint64_t id) {
  return const_cast<TapeEntry*>(std::as_const(*this).find(id));
}

// Adds (sign 1) or removes (sign -1) an entry's buffers from the total; a
// buffer saved by several entries counts once.
void Tape::count(const TapeEntry& entry, int sign) {
  for (const Storage* s : entry.saved_storages()) {
    if (sign > 0) {
      if (saved_refs_[s]++ == 0) saved_bytes_ += s->bytes();
    } else if (--saved_refs_[s] == 0) {
      saved_refs_.erase(s);
      saved_bytes_ -= s->bytes();
    }
  }
  peak_saved_bytes_ = std::max(peak_saved_bytes_, saved_bytes_);
  if (!warned_ && saved_bytes_ > warning_bytes_) {
    warned_ = true;
    std::cerr << "tapegrad: warning: the tape holds " << entries_.size() + (sign > 0) << " entries whose saved tensors"
              << " take " << human_bytes(saved_bytes_) << ". Graphs stay alive while any of their results does:"
              << " is a loop keeping losses or outputs (compute summaries under NoGradGuard, or detach()), or"
              << " passing retain_graph=true?\n";
  } else if (warned_ && saved_bytes_ < warning_bytes_ / 2) {
    warned_ = false;
  }
}

std::uint64_t Tape::append(std::unique_ptr<TapeEntry> entry) {
  if (entries_.size() >= prune_at_ && !walking_) {
    prune();
    prune_at_ = std::max<std::size_t>(1024, 2 * entries_.size());
  }
  entry->id = next_entry_id.fetch_add(1, std::memory_order_relaxed);
  count(*entry, +1);
  ids_.push_back(entry->id);
  entries_.push_back(std::move(entry));
  return entries_.back()->id;
}

void Tape::clear() {
  if (walking_)
    throw AutogradError("tape().clear(): called while a backward is walking the tape (from a hook or a rule)");
  // Moved out first: destroying entries kills outputs, which call back here.
  auto doomed = std::move(entries_);
  entries_.clear();
  ids_.clear();
  saved_refs_.clear();
  saved_bytes_ = 0;
  doomed.clear();
  dead_.clear();
}

void Tape::erase_null_entries() {
  std::size_t kept = 0;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (!entries_[i]) continue;
    entries_[kept] = std::move(entries_[i]);
    ids_[kept++] = ids_[i];
  }
  entries_.resize(kept);
  ids_.resize(kept);
}

void Tape::prune() {
  if (walking_) return;
  std::vector<std::uint64_t> ids;
  for (const auto& e : entries_)
    if (!e->output_alive()) ids.push_back(e->id);
  remove(ids);
}

void Tape::remove(const std::vector<std::uint64_t>& ids) {
  dead_.insert(dead_.end(), ids.begin(), ids.end());
  release_dead();
}

void Tape::release(TapeEntry& entry) {
  count(entry, -1);
  entry.saved.clear();
  entry.saved_buffers.clear();
  entry.saved_versions.clear();
  entry.rule = nullptr;
  for (auto& in : entry.inputs) in.impl.reset();
  entry.released = true;
}

void Tape::release_saved(TapeEntry& entry, std::size_t i) {
  if (i >= entry.saved.size())
    throw AutogradError(entry.op + " backward: the rule freed saved tensor " + std::to_string(i) + " of " +
                        std::to_string(entry.saved.size()));
  count(entry, -1);
  entry.saved[i] = Tensor();
  entry.saved_buffers[i].reset();
  count(entry, +1);
}

void Tape::output_died(std::uint64_t id) {
  dead_.push_back(id);
  if (!walking_ && !releasing_) release_dead();
}

void Tape::release_dead() {
  if (walking_ || releasing_) return;
  releasing_ = true;
  // Freeing an entry drops its inputs, whose death may queue more entries:
  // a loop, not recursion, so a long chain cannot overflow the stack. Freed
  // slots stay null until the end, so positions stay valid meanwhile.
  bool freed = false;
  while (!dead_.empty()) {
    const std::uint64_t id = dead_.back();
    dead_.pop_back();
    const std::size_t i = position(id);
    if (i == entries_.size()) continue;
    count(*entries_[i], -1);
    std::unique_ptr<TapeEntry> doomed = std::move(entries_[i]);
    freed = true;
    doomed.reset();
  }
  if (freed) erase_null_entries();
  releasing_ = false;
}

// ---- printing --------------------------------------------------------------

namespace {

// A string as the inside of a DOT "..." label: quotes and backslashes
// escaped, newlines as \n, so any tensor name gives a valid file.
std::string dot_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (ch == '\n') out += "\\n";
    else out += ch;
  }
  return out;
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tape& tape) {
  const std::vector<std::string> header{"#", "op", "inputs -> output", "needs grad", "saved",
                                        "|grad out|"};
  std::vector<std::vector<std::string>> rows;
  bool any_norm = false;
  for (std::size_t i = 0; i < tape.size(); ++i) {
    const TapeEntry& e = tape[i];
    std::ostringstream flow, needs;
    for (std::size_t k = 0; k < e.num_inputs(); ++k) {
      flow << (k ? " " : "") << e.input_label(k) << shape_str(e.input_shape(k));
      needs << (e.input_requires_grad(k) ? 'y' : '-');
    }
    flow << " -> " << shape_str(e.output_shape());
    std::ostringstream norm;
    if (e.grad_norm >= 0) {
      any_norm = true;
      norm << std::setprecision(4) << e.grad_norm;
    }
    rows.push_back({std::to_string(e.id), e.op + (e.out_dtype == kFloat32 ? "" : " (" + std::string(e.dtype()) + ")"),
                    flow.str(), needs.str(), human_bytes(e.saved_bytes()), norm.str()});
  }
  const std::size_t columns = any_norm ? header.size() : header.size() - 1;
  std::vector<std::size_t> width(columns);
  for (std::size_t c = 0; c < columns; ++c) {
    width[c] = header[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  auto print_row = [&](const std::vector<std::string>& r) {
    for (std::size_t c = 0; c < columns; ++c) {
      const bool right = c == 0 || c >= 4;
      os << (c ? "  " : "") << (right ? std::right : std::left) << std::setw(int(width[c])) << r[c];
    }
    os << '\n';
  };
  print_row(header);
  for (const auto& r : rows) print_row(r);
  os << std::left << tape.size() << " entries; saved tensors hold " << human_bytes(tape.saved_bytes())
     << " (peak " << human_bytes(tape.peak_saved_bytes()) << ")\n";
  return os;
}

std::string Tape::to_dot() const {
  std::ostringstream dot;
  dot << "digraph tape {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n";
  std::unordered_map<const void*, std::string> leaves;
  for (const auto& e : entries_) {
    dot << "  op" << e->id << " [shape=ellipse, label=\"#" << e->id << " " << dot_escape(e->op) << "\\n"
        << shape_str(e->output_shape()) << "\"];\n";
    for (std::size_t k = 0; k < e->num_inputs(); ++k) {
      const std::uint64_t creator = e->input_creator(k);
      const bool recorded = creator != 0 && find(creator) != nullptr;
      std::string from;
      if (recorded) {
        from = "op" + std::to_string(creator);
      } else {
        auto [it, inserted] = leaves.emplace(e->input_identity(k), "");
        if (inserted) {
          it->second = "t" + std::to_string(leaves.size());
          dot << "  " << it->second << " [shape=box, " << (e->input_requires_grad(k) ? "style=bold, " : "")
              << "label=\"" << dot_escape(e->input_label(k)) << "\\n" << shape_str(e->input_shape(k)) << "\"];\n";
        }
        from = it->second;
      }
      dot << "  " << from << " -> op" << e->id << " [label=\"" << shape_str(e->input_shape(k)) << "\"];\n";
    }
  }
  dot << "}\n";
  return dot.str();
}

}  // namespace tg
