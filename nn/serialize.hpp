// A module's state in a safetensors file (io/safetensors.hpp): every
// parameter and buffer under its dotted name, as PyTorch's state_dict names
// it, so files move both ways between tapegrad and PyTorch.
//
//   tg::nn::save(net, "model.safetensors", {{"classes", "..."}});
//   tg::nn::load(net, "model.safetensors");         // names and shapes must match
//   auto r = tg::nn::load(net, path, /*strict=*/false);  // r.missing_keys, r.unexpected_keys
//
// Errors are those of io/safetensors.hpp: FileError, FormatError, and
// MismatchError for a file that does not fit the module.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "../io/safetensors.hpp"
#include "module.hpp"

namespace tg::nn {

using io::Metadata;

// Every parameter and then every buffer of the module, under its dotted name
// ("features.0.weight"), each in its own dtype: F32 for a float32 model, F64
// after module.to(tg::kFloat64), I64 for BatchNorm2d's num_batches_tracked.
void save(const Module& module, const std::string& path, const Metadata& metadata = {});

// Loads a file written by save (or by anything else with the same names, such
// as PyTorch's safetensors export of a state_dict). The file must hold exactly
// the module's parameters and buffers, with the same shapes, in a dtype that
// converts to the module tensor's; otherwise MismatchError lists every
// difference, one per line: missing in file, unexpected in file, shape (file
// vs module), dtype (file vs module: a dtype tapegrad does not read, such as
// I32 or BF16). This is decided from the header alone; only then are the
// tensors' bytes read.
//
// Values convert to the module tensor's dtype, as torch's load_state_dict
// (which copy_s) does: F32 into a float64 model, F64 into a float32 one
// (rounded), I64 or BOOL into a floating tensor. Into an int64 or bool tensor
// (num_batches_tracked) only exact values convert: an F32 2.0 loads as 2, but
// 2.5, a value outside int64's range, NaN, or 2 into a bool tensor is a
// MismatchError naming the tensor (files saved before num_batches_tracked was
// int64 hold it as F32, and still load).
//
// Values are copied into the module's existing tensors (so handles held
// elsewhere, an optimizer's, see them); dtypes, requires_grad and gradients
// are left as they are. Nothing is changed unless everything matches and
// converts.
//
// With strict = false (torch's load_state_dict(strict=False)), names that
// are missing in the file or unexpected in it are not errors: they are
// returned, and the tensors present in both are loaded. Shapes and dtypes of
// those must still match.
struct LoadResult {
  std::vector<std::string> missing_keys;     // the module's, absent from the file
  std::vector<std::string> unexpected_keys;  // the file's, absent from the module
};
LoadResult load(Module& module, const std::string& path, bool strict = true);

// The same through a holder, as torch::save(net, path) takes one:
// nn::save(net, path) with `nn::Sequential net(...)` or a TG_MODULE holder.
template <class Holder, class = std::enable_if_t<is_module_holder_v<Holder>>>
void save(const Holder& holder, const std::string& path, const Metadata& metadata = {}) {
  save(*holder, path, metadata);
}
template <class Holder, class = std::enable_if_t<is_module_holder_v<Holder>>>
LoadResult load(const Holder& holder, const std::string& path, bool strict = true) {
  return load(*holder, path, strict);
}

}  // namespace tg::nn
