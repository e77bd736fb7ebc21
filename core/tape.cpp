#include "tape.hpp"

#include <algorithm>
#include <atomic>
#include <iomanip>
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

Tape& tape() {
  thread_local Tape t;
  return t;
}

const TapeEntry* Tape::find(std::uint64_t id) const {
  // Ids increase along the tape, so a binary search finds one.
  auto it = std::lower_bound(entries_.begin(), entries_.end(), id,
                             [](const auto& e, std::uint64_t v) { return e->id < v; });
  return (it != entries_.end() && (*it)->id == id) ? it->get() : nullptr;
}

TapeEntry* Tape::find(std::uint64_t id) {
  return const_cast<TapeEntry*>(std::as_const(*this).find(id));
}

std::uint64_t Tape::append(std::unique_ptr<TapeEntry> entry) {
  if (entries_.size() >= prune_at_ && !walking_) {
    prune();
    prune_at_ = std::max<std::size_t>(1024, 2 * entries_.size());
  }
  entry->id = next_entry_id.fetch_add(1, std::memory_order_relaxed);
  entry->counted_bytes = entry->saved_bytes();
  saved_bytes_ += entry->counted_bytes;
  peak_saved_bytes_ = std::max(peak_saved_bytes_, saved_bytes_);
  entries_.push_back(std::move(entry));
  return entries_.back()->id;
}

void Tape::clear() {
  if (walking_)
    throw AutogradError("tape().clear(): called while a backward is walking the tape (from a hook or a rule)");
  entries_.clear();
  saved_bytes_ = 0;
}

void Tape::prune() {
  if (walking_) return;
  // Walking backwards, dropping an entry releases its inputs, which may kill
  // the outputs of earlier entries: one pass catches the whole chain.
  for (auto i = entries_.size(); i-- > 0;) {
    if (!entries_[i]->output_alive()) {
      saved_bytes_ -= entries_[i]->counted_bytes;
      entries_[i].reset();
    }
  }
  entries_.erase(std::remove(entries_.begin(), entries_.end(), nullptr), entries_.end());
}

void Tape::remove(const std::vector<std::uint64_t>& ids) {
  if (ids.empty()) return;
  std::vector<std::uint64_t> sorted(ids);
  std::sort(sorted.begin(), sorted.end());
  for (auto& e : entries_) {
    if (std::binary_search(sorted.begin(), sorted.end(), e->id)) {
      saved_bytes_ -= e->counted_bytes;
      e.reset();
    }
  }
  entries_.erase(std::remove(entries_.begin(), entries_.end(), nullptr), entries_.end());
}

// ---- printing --------------------------------------------------------------

namespace {

std::string human_bytes(std::size_t bytes) {
  std::ostringstream s;
  if (bytes < 1024) s << bytes << " B";
  else if (bytes < (1u << 20)) s << std::fixed << std::setprecision(1) << bytes / 1024.0 << " KiB";
  else s << std::fixed << std::setprecision(1) << bytes / double(1u << 20) << " MiB";
  return s.str();
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
    rows.push_back({std::to_string(e.id), e.op + (std::string(e.dtype()) == "f64" ? " (f64)" : ""),
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
    dot << "  op" << e->id << " [shape=ellipse, label=\"#" << e->id << " " << e->op << "\\n"
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
              << "label=\"" << e->input_label(k) << "\\n" << shape_str(e->input_shape(k)) << "\"];\n";
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
