// Saving and loading tensors and modules in the safetensors format
// (https://github.com/huggingface/safetensors), readable by the reference
// implementation and by PyTorch, NumPy, JAX...
//
//   tg::nn::save(net, "model.safetensors");  // every parameter and buffer, by dotted name
//   tg::nn::load(net, "model.safetensors");  // names and shapes must match; values convert to the module's dtypes
//
//   tg::nn::save_tensors("t.safetensors", {{"w", w}, {"steps", steps_int64}}, {{"step", "100"}});
//   tg::nn::TensorFile f = tg::nn::load_tensors("t.safetensors");
//   tg::Tensor w2 = f.get("w");                // whatever dtype the file holds
//   tg::Tensor w3 = f.get("w", tg::kFloat32);  // MismatchError if it is another dtype
//
// The format: an 8-byte little-endian unsigned header length N; N bytes of
// UTF-8 JSON, an object mapping each tensor's name to {"dtype": "F32",
// "shape": [2, 3], "data_offsets": [begin, end]} (byte offsets into the data
// section, which starts right after the header), plus an optional
// "__metadata__" object of strings; then the data: each tensor's elements,
// little-endian, row-major, the tensors back to back with no gaps. Files are
// written as the reference implementation writes them: compact JSON padded
// with spaces to a multiple of 8 bytes, tensors in the order given.
//
// The safetensors dtypes F32, F64, I64 and BOOL are read and written as
// tg::kFloat32, kFloat64, kInt64 and kBool (a BOOL element is one byte, 0 or
// 1; any other byte is a FormatError when the tensor is read). A file may hold
// other dtypes (U8, I8, I16, U16, I32, U32, U64, F16, BF16, F8_E4M3, F8_E5M2,
// F8_E8M0, C64): load_tensors validates them like the rest and lists them with
// their dtype and shape, but does not read their values; asking for those
// values (TensorFile::get) throws MismatchError naming the tensor, and
// load(module) reports them as a dtype mismatch if the module has a tensor of
// that name. A dtype outside that list is a FormatError.
//
// Errors, all derived from tg::Error through SerializeError, each message
// starting with the file's path:
//   FileError      the file cannot be opened, read or written (missing, a
//                  directory, a FIFO or device: only regular files are
//                  opened), or a tensor to load is larger than this
//                  machine's memory or cannot be allocated
//   FormatError    not a valid safetensors file: shorter than 8 bytes, a header
//                  length past the end of the file, a header that is not a
//                  JSON object, arrays or objects nested more than 16 deep
//                  (refused before parsing; a shape must be flat), an entry
//                  with a missing or ill-typed field, an unknown dtype, a
//                  shape whose size overflows, data_offsets
//                  that do not match the shape and dtype, overlap, leave a gap
//                  or run past the data, a truncated data section or trailing
//                  bytes after it, a duplicate name, a BOOL byte other than
//                  0 or 1. Everything but the BOOL bytes is checked
//                  before any tensor data is read. Names and values from the
//                  header are quoted shortened.
//   MismatchError  a valid file that does not hold what was asked for: a
//                  module's names, shapes or dtypes (every difference, listed
//                  one per line), a value the module's integer or bool tensor
//                  cannot hold, or TensorFile::get of an absent tensor or of
//                  another dtype
// A bad argument to a save function (an undefined tensor, a duplicate name,
// the reserved name "__metadata__", a string that is not valid UTF-8) throws
// tg::ValueError.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "module.hpp"

namespace tg::nn {

// ---- errors ------------------------------------------------------------------

// Base of the errors below; the message starts with the file's path.
class SerializeError : public Error {
 public:
  using Error::Error;
};

// The file cannot be opened, read or written (missing, a directory, no such
// directory, no permission, a read or write that fails).
class FileError : public SerializeError {
 public:
  using SerializeError::SerializeError;
};

// The file is not a well-formed safetensors file.
class FormatError : public SerializeError {
 public:
  using SerializeError::SerializeError;
};

// The file is well formed but does not match the module being loaded, or the
// tensor or dtype asked for.
class MismatchError : public SerializeError {
 public:
  using SerializeError::SerializeError;
};

// ---- tensors -----------------------------------------------------------------

// "__metadata__": free-form string pairs, e.g. {"format": "pt"}.
using Metadata = std::map<std::string, std::string>;

// Writes the tensors, in this order, each with its own dtype (F32, F64, I64
// or BOOL; a strided view is written as its elements in row-major order), and
// the metadata (no "__metadata__" entry when it is empty). Overwrites an
// existing file. Takes what named_parameters() returns:
//   save_tensors("a.safetensors", {{"w", w}, {"b", b}});
void save_tensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                  const Metadata& metadata = {});

// One tensor of a file.
struct StoredTensor {
  std::string name;
  std::string dtype;  // as in the file: "F32", "F64", "I32", ...
  Shape shape;
  // The values for F32, F64, I64 and BOOL (a new leaf, not requiring grad);
  // undefined for the other dtypes, whose values are not read.
  Tensor value;

  bool loaded() const { return value.defined(); }
};

// The contents of a file.
struct TensorFile {
  std::string path;
  // In the order of their data in the file; empty tensors at the same offset
  // by name.
  std::vector<StoredTensor> tensors;
  Metadata metadata;

  bool contains(const std::string& name) const;
  // Throws MismatchError naming the tensor if the file has none of that name.
  const StoredTensor& at(const std::string& name) const;
  // The tensor's value (a handle shared with this TensorFile), in the file's
  // dtype. Throws MismatchError if the tensor is absent or its dtype is not
  // one tapegrad reads.
  Tensor get(const std::string& name) const;
  // The same, and MismatchError unless the tensor has this dtype: no
  // conversion (call .to(dtype) on get(name) for one).
  Tensor get(const std::string& name, Dtype dtype) const;
};

// Reads and validates a whole file (see the top of this file for the checks).
TensorFile load_tensors(const std::string& path);

// ---- modules -----------------------------------------------------------------

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

}  // namespace tg::nn
