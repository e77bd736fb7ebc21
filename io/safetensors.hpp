// The safetensors format (https://github.com/huggingface/safetensors):
// named tensors in one file, readable by the reference implementation and by
// PyTorch, NumPy, JAX... A module's state is saved in it by nn/serialize.hpp;
// the optimizers' state by optim/state.cpp.
//
//   tg::io::save_tensors("t.safetensors", {{"w", w}, {"steps", steps_int64}}, {{"step", "100"}});
//   tg::io::TensorFile f = tg::io::load_tensors("t.safetensors");
//   tg::Tensor w2 = f.get("w");                // whatever dtype the file holds
//   tg::Tensor w3 = f.get("w", tg::kFloat32);  // MismatchError if it is another dtype
//
//   tg::io::SafetensorsReader r("big.safetensors");  // the header only, validated
//   for (const tg::io::TensorEntry& e : r.entries()) ...  // name, dtype, shape
//   tg::Tensor head = r.read(*r.find("head.weight"));   // one tensor's bytes
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
//   MismatchError  a valid file that does not hold what was asked for:
//                  TensorFile::get of an absent tensor or of another dtype,
//                  a tensor whose dtype tapegrad does not read, or (from
//                  nn::load) a module's names, shapes or dtypes
// A bad argument to a save function (an undefined tensor, a duplicate name,
// the reserved name "__metadata__", a string that is not valid UTF-8) throws
// tg::ValueError.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace tg::io {

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

// ---- reading one tensor at a time -------------------------------------------

// A header entry: the tensor's name, dtype as in the file ("F32", "BF16"...),
// shape and byte range in the data section.
struct TensorEntry {
  std::string name;
  std::string dtype;
  Shape shape;
  std::uint64_t begin = 0, end = 0;
};

namespace detail {
struct SafetensorsHeader;
}

// A file opened for reading: the constructor reads and validates the whole
// header against the file's size (every check of load_tensors but the BOOL
// bytes), and read() then reads one tensor's bytes, so a caller can decide
// from names, dtypes and shapes before any data is read.
class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path);
  SafetensorsReader(SafetensorsReader&&) noexcept;
  SafetensorsReader& operator=(SafetensorsReader&&) noexcept;
  ~SafetensorsReader();

  const std::string& path() const;
  const Metadata& metadata() const;
  const std::vector<TensorEntry>& entries() const;  // in the order of their data
  const TensorEntry* find(const std::string& name) const;  // nullptr if absent
  // The tensor's values in the file's dtype (a new leaf). MismatchError for a
  // dtype tapegrad does not read; FileError if it cannot be read or allocated.
  Tensor read(const TensorEntry& entry);

 private:
  std::unique_ptr<detail::SafetensorsHeader> header_;
};

// The safetensors name of a dtype: "F32", "F64", "I64", "BOOL".
const char* safetensors_dtype(Dtype dtype);
// The dtype of a safetensors dtype name, if tapegrad reads its values.
std::optional<Dtype> readable_dtype(const std::string& name);
// A name from a file, to quote in a message: cut short if long.
std::string shortened_name(const std::string& name);

}  // namespace tg::io
