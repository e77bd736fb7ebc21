// Saving and loading a module's parameters and buffers by dotted name.
#include "serialize.hpp"

#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "../core/tape.hpp"

namespace tg::nn {

using io::MismatchError;
using io::safetensors_dtype;
using io::readable_dtype;
using io::shortened_name;

namespace {

Module::Named<Tensor> state(const Module& module) {
  auto named = module.named_parameters();
  for (auto& b : module.named_buffers()) named.push_back(std::move(b));
  return named;
}

// Throws MismatchError unless every value of `source` (read from the file)
// converts exactly to `target`, an integer or bool dtype: torch's copy_
// would truncate 2.5 to 2 silently; a count that is not a whole number
// means the file holds something else.
void check_exact(const std::string& path, const std::string& name, const Tensor& source, Dtype target) {
  if (is_floating(target) || source.dtype() == target || (target == kInt64 && source.dtype() == kBool)) return;
  visit_dtype(source.dtype(), [&](auto tag) {
    using S = typename decltype(tag)::type;
    const S* v = source.data<S>();
    for (std::size_t i = 0; i < source.numel(); ++i) {
      const double x = static_cast<double>(v[i]);
      // 2^63 is exact as a double; int64 holds [-2^63, 2^63).
      const bool exact = target == kBool ? (x == 0.0 || x == 1.0)
                                         : (x >= -9223372036854775808.0 && x < 9223372036854775808.0 && std::trunc(x) == x);
      if (!exact) {
        std::ostringstream s;
        s.precision(17);
        s << path << ": tensor \"" << name << "\": element " << i << " of the file's "
          << safetensors_dtype(source.dtype()) << " value is " << x << ", which the module's " << dtype_name(target)
          << " tensor cannot hold exactly";
        throw MismatchError(s.str());
      }
    }
  });
}

}  // namespace

void save(const Module& module, const std::string& path, const Metadata& metadata) {
  io::save_tensors(path, state(module), metadata);
}

LoadResult load(Module& module, const std::string& path, bool strict) {
  // The header alone decides whether the file matches; no data is read
  // before it does (an unwanted tensor may take gigabytes).
  io::SafetensorsReader file(path);
  std::map<std::string, const io::TensorEntry*> in_file;
  for (const io::TensorEntry& e : file.entries()) in_file.emplace(e.name, &e);

  const auto wanted = state(module);
  std::set<std::string> wanted_names;
  std::vector<std::string> problems;
  LoadResult result;
  std::vector<std::size_t> present;  // indices into `wanted` that the file holds
  for (std::size_t i = 0; i < wanted.size(); ++i) {
    const auto& [name, tensor] = wanted[i];
    wanted_names.insert(name);
    const auto it = in_file.find(name);
    if (it == in_file.end()) {
      result.missing_keys.push_back(name);
      if (strict) problems.push_back("missing in file: " + name);
      continue;
    }
    present.push_back(i);
    const io::TensorEntry& stored = *it->second;
    if (stored.shape != tensor.shape())
      problems.push_back("shape of " + name + ": " + shape_str(stored.shape) + " in the file, " +
                         shape_str(tensor.shape()) + " in the module");
    if (!readable_dtype(stored.dtype))
      problems.push_back("dtype of " + name + ": " + stored.dtype + " in the file, " + safetensors_dtype(tensor.dtype()) +
                         " in the module");
  }
  for (const io::TensorEntry& e : file.entries()) {
    if (wanted_names.count(e.name)) continue;
    result.unexpected_keys.push_back(e.name);
    if (strict) problems.push_back("unexpected in file: " + shortened_name(e.name));
  }
  if (!problems.empty()) {
    std::string message = path + ": does not match the module (" + module.type_name() + "), " +
                          std::to_string(problems.size()) + (problems.size() == 1 ? " difference:" : " differences:");
    for (const auto& p : problems) message += "\n  " + p;
    throw MismatchError(message);
  }

  // Every value is read and checked before any is copied: a failed read or
  // an inexact conversion changes nothing.
  std::vector<Tensor> values;
  values.reserve(present.size());
  for (std::size_t i : present) {
    const auto& [name, tensor] = wanted[i];
    const io::TensorEntry& e = *in_file.at(name);
    values.push_back(file.read(e));
    check_exact(path, name, values.back(), tensor.dtype());
  }
  // Into the existing storage, converted to its dtype: every handle to these
  // tensors sees the values. Parameters require grad, hence the guard.
  NoGradGuard no_grad;
  for (std::size_t k = 0; k < present.size(); ++k) {
    Tensor target = wanted[present[k]].second;
    target.copy_(values[k]);
  }
  return result;
}

}  // namespace tg::nn
