// Optimizer::save and Optimizer::load: an optimizer's state (and its
// scheduler's) in a safetensors file.
//
// Tensors: "step" (int64, one count per parameter, in params() order) and
// "state.<index>.<name>" (each state tensor, in its parameter's dtype).
// __metadata__: "format" "tapegrad optimizer state", "optimizer" (its name),
// "groups", "group.<g>.params" (how many), "group.<g>.<option>" for every
// option and "group.<g>.initial_lr" when a scheduler set one,
// "param.<index>" (dtype and shape, "float32 (4, 3)"), and the scheduler's
// fields under "scheduler." ("scheduler.name", "scheduler.last_epoch", ...).
// Numbers are written in the shortest decimal form that reads back as the
// same double, so a loaded state is the saved one bit for bit.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "../io/safetensors.hpp"
#include "check.hpp"
#include "optimizer.hpp"
#include "schedulers.hpp"

namespace tg::optim {

namespace {

const char* const kFormat = "tapegrad optimizer state";

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return *end == '\0' && errno != ERANGE;
}

bool parse_int(const std::string& s, std::int64_t& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoll(s.c_str(), &end, 10);
  return *end == '\0' && errno != ERANGE;
}

std::string join(const std::vector<double>& values) {
  std::string s;
  for (std::size_t i = 0; i < values.size(); ++i) s += (i ? "," : "") + detail::shortest_decimal(values[i]);
  return s;
}

bool parse_list(const std::string& s, std::vector<double>& out) {
  out.clear();
  if (s.empty()) return true;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t comma = s.find(',', begin);
    double v;
    if (!parse_double(s.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin), v))
      return false;
    out.push_back(v);
    if (comma == std::string::npos) return true;
    begin = comma + 1;
  }
}

std::string describe(const Tensor& p) { return std::string(dtype_name(p.dtype())) + " " + shape_str(p.shape()); }

std::string group_key(std::size_t g, const std::string& what) { return "group." + std::to_string(g) + "." + what; }

}  // namespace

void Optimizer::save(const std::string& path) const { save_impl(path, nullptr); }
void Optimizer::save(const std::string& path, const Scheduler& scheduler) const { save_impl(path, &scheduler); }
void Optimizer::load(const std::string& path) { load_impl(path, nullptr); }
void Optimizer::load(const std::string& path, Scheduler& scheduler) { load_impl(path, &scheduler); }

void Optimizer::save_impl(const std::string& path, const Scheduler* scheduler) const {
  if (scheduler && &scheduler->optimizer() != this)
    throw ValueError(name_ + ": save: the scheduler (" + scheduler->name() + ") acts on another optimizer");
  io::Metadata meta{{"format", kFormat}, {"optimizer", name_}, {"groups", std::to_string(groups_.size())}};
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    meta[group_key(g, "params")] = std::to_string(groups_[g].params.size());
    for (const auto& kv : groups_[g].options) meta[group_key(g, kv.first)] = detail::shortest_decimal(kv.second);
    if (initial_lrs_[g]) meta[group_key(g, "initial_lr")] = detail::shortest_decimal(*initial_lrs_[g]);
  }
  std::vector<std::pair<std::string, Tensor>> tensors;
  Tensor steps = zeros({params_.size()}, kInt64);
  std::copy(steps_.begin(), steps_.end(), steps.mutable_data<std::int64_t>());
  tensors.emplace_back("step", steps);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    meta["param." + std::to_string(i)] = describe(params_[i]);
    for (const auto& kv : state_[i])
      if (kv.second.defined()) tensors.emplace_back("state." + std::to_string(i) + "." + kv.first, kv.second);
  }
  if (scheduler) {
    Scheduler::Fields fields;
    const_cast<Scheduler*>(scheduler)->state_fields(fields, "scheduler.");  // read only
    for (const auto& f : fields.tags) meta[f.first] = f.second;
    for (const auto& f : fields.ints) meta[f.first] = std::to_string(*f.second);
    for (const auto& f : fields.reals) meta[f.first] = detail::shortest_decimal(*f.second);
    for (const auto& f : fields.lists) meta[f.first] = join(*f.second);
  }
  io::save_tensors(path, tensors, meta);
}

void Optimizer::load_impl(const std::string& path, Scheduler* scheduler) {
  if (scheduler && &scheduler->optimizer() != this)
    throw ValueError(name_ + ": load: the scheduler (" + scheduler->name() + ") acts on another optimizer");
  const io::TensorFile file = io::load_tensors(path);
  const io::Metadata& meta = file.metadata;
  auto fail = [&](const std::vector<std::string>& problems) {
    std::string message = path + ": the saved state does not fit this " + name_ + ":";
    for (const std::string& p : problems) message += "\n  " + p;
    throw StateMismatchError(message);
  };
  auto value = [&](const std::string& key) -> const std::string* {
    const auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  };
  const std::string* format = value("format");
  if (!format || *format != kFormat)
    throw StateMismatchError(path + ": not an optimizer state (its metadata has no \"format\": \"" + kFormat +
                             "\")");

  // The structure: optimizer, groups, parameters.
  std::vector<std::string> problems;
  const std::string* saved_name = value("optimizer");
  if (!saved_name || *saved_name != name_)
    problems.push_back("optimizer: " + (saved_name ? *saved_name : std::string("none")) + " in the file, " + name_ +
                       " here");
  std::int64_t saved_groups = -1;
  if (!value("groups") || !parse_int(*value("groups"), saved_groups) || saved_groups != std::int64_t(groups_.size()))
    problems.push_back("parameter groups: " + (value("groups") ? *value("groups") : std::string("none")) +
                       " in the file, " + std::to_string(groups_.size()) + " here");
  if (!problems.empty()) fail(problems);
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    std::int64_t n = -1;
    const std::string* s = value(group_key(g, "params"));
    if (!s || !parse_int(*s, n) || n != std::int64_t(groups_[g].params.size()))
      problems.push_back("group " + std::to_string(g) + ": " + (s ? *s : std::string("no count of")) +
                         " parameters in the file, " + std::to_string(groups_[g].params.size()) + " here");
  }
  if (!problems.empty()) fail(problems);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::string* s = value("param." + std::to_string(i));
    if (!s || *s != describe(params_[i]))
      problems.push_back("parameter " + std::to_string(i) + ": " + (s ? *s : std::string("not described")) +
                         " in the file, " + describe(params_[i]) + " here");
  }
  if (!problems.empty()) fail(problems);

  // Options.
  std::vector<Options> options(groups_.size());
  std::vector<std::optional<double>> initial_lrs(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (const auto& kv : defaults_) {
      const std::string* s = value(group_key(g, kv.first));
      double v;
      if (!s || !parse_double(*s, v))
        problems.push_back("group " + std::to_string(g) + ": option " + kv.first + " is " +
                           (s ? "not a number: \"" + s->substr(0, 40) + "\"" : std::string("missing")));
      else
        options[g][kv.first] = v;
    }
    if (options[g].size() == defaults_.size()) {
      try {
        validate(options[g]);
      } catch (const ValueError& e) {
        problems.push_back("group " + std::to_string(g) + ": " + e.what());
      }
    }
    if (const std::string* s = value(group_key(g, "initial_lr"))) {
      double v;
      if (!parse_double(*s, v) || !(v >= 0.0))
        problems.push_back("group " + std::to_string(g) + ": initial_lr \"" + s->substr(0, 40) + "\" is not a number >= 0");
      else
        initial_lrs[g] = v;
    }
  }

  // Step counts and state tensors.
  const std::size_t n = params_.size();
  std::vector<std::int64_t> steps(n, 0);
  if (!file.contains("step")) {
    problems.push_back("no tensor \"step\"");
  } else {
    const io::StoredTensor& st = file.at("step");
    if (st.dtype != "I64" || st.shape != Shape{n}) {
      problems.push_back("tensor \"step\" is " + st.dtype + " " + shape_str(st.shape) + ", not I64 (" +
                         std::to_string(n) + ",)");
    } else {
      const std::int64_t* d = st.value.data<std::int64_t>();
      for (std::size_t i = 0; i < n; ++i) {
        if (d[i] < 0) problems.push_back("parameter " + std::to_string(i) + ": negative step count");
        steps[i] = d[i];
      }
    }
  }
  const std::vector<std::string> names = state_names();
  std::vector<std::map<std::string, Tensor>> state(n);
  for (const io::StoredTensor& st : file.tensors) {
    if (st.name == "step") continue;
    const std::string quoted = "tensor \"" + st.name.substr(0, 60) + "\"";
    std::int64_t index = -1;
    const std::size_t dot = st.name.find('.', 6);
    if (st.name.compare(0, 6, "state.") != 0 || dot == std::string::npos ||
        !parse_int(st.name.substr(6, dot - 6), index) || index < 0 || std::size_t(index) >= n) {
      problems.push_back(quoted + " is not the state of one of the " + std::to_string(n) + " parameters");
      continue;
    }
    const std::string buffer = st.name.substr(dot + 1);
    const std::size_t i = std::size_t(index);
    if (std::find(names.begin(), names.end(), buffer) == names.end()) {
      problems.push_back(quoted + ": " + name_ + " keeps no state named \"" + buffer + "\"");
    } else if (!st.loaded() || st.value.dtype() != params_[i].dtype() || st.shape != params_[i].shape()) {
      problems.push_back(quoted + " is " + st.dtype + " " + shape_str(st.shape) + ", its parameter " +
                         describe(params_[i]));
    } else if (steps[i] == 0) {
      problems.push_back(quoted + " belongs to a parameter that has taken no step");
    } else {
      state[i][buffer] = st.value;
    }
  }

  // The scheduler's fields, parsed into copies.
  Scheduler::Fields fields;
  std::vector<std::int64_t> ints;
  std::vector<double> reals;
  std::vector<std::vector<double>> lists;
  if (scheduler) {
    scheduler->state_fields(fields, "scheduler.");
    auto missing = [&](const std::string& key) { problems.push_back("scheduler: no \"" + key + "\""); };
    for (const auto& f : fields.tags) {
      const std::string* s = value(f.first);
      if (!s) missing(f.first);
      else if (*s != f.second)
        problems.push_back("scheduler: " + f.first + " is " + s->substr(0, 40) + " in the file, " + f.second + " here");
    }
    for (const auto& f : fields.ints) {
      const std::string* s = value(f.first);
      std::int64_t v = 0;
      if (!s) missing(f.first);
      else if (!parse_int(*s, v)) problems.push_back("scheduler: " + f.first + " is not an integer");
      ints.push_back(v);
    }
    for (const auto& f : fields.reals) {
      const std::string* s = value(f.first);
      double v = 0;
      if (!s) missing(f.first);
      else if (!parse_double(*s, v)) problems.push_back("scheduler: " + f.first + " is not a number");
      reals.push_back(v);
    }
    for (const auto& f : fields.lists) {
      const std::string* s = value(f.first);
      std::vector<double> v;
      if (!s) missing(f.first);
      else if (!parse_list(*s, v) || v.size() != f.second->size())
        problems.push_back("scheduler: " + f.first + " does not hold " + std::to_string(f.second->size()) +
                           " numbers");
      lists.push_back(std::move(v));
    }
  }
  if (!problems.empty()) fail(problems);

  // Everything fits: commit.
  for (std::size_t g = 0; g < groups_.size(); ++g) groups_[g].options = std::move(options[g]);
  initial_lrs_ = std::move(initial_lrs);
  steps_ = std::move(steps);
  state_ = std::move(state);
  for (std::size_t i = 0; i < n; ++i) {
    state_shapes_[i] = params_[i].shape();
    state_dtypes_[i] = params_[i].dtype();
  }
  for (std::size_t k = 0; k < fields.ints.size(); ++k) *fields.ints[k].second = ints[k];
  for (std::size_t k = 0; k < fields.reals.size(); ++k) *fields.reals[k].second = reals[k];
  for (std::size_t k = 0; k < fields.lists.size(); ++k) *fields.lists[k].second = std::move(lists[k]);
}

}  // namespace tg::optim
