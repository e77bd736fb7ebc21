// The safetensors reader and writer. Reading validates the whole header
// against the file's size before it reads any tensor data, and then reads
// each tensor it needs with one bounded read at a validated offset. Nothing
// from the header is quoted in a message unbounded: names and values are
// shortened, nested values summarised.
#include "safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <optional>
#include <set>
#include <sstream>
#include <system_error>
#include <tuple>

#include <nlohmann/json.hpp>

#include "../core/files.hpp"
#include "../core/storage.hpp"

#include <sys/stat.h>
#ifdef __linux__
#endif
namespace tg::io {

// A validated header, and the file open to read the tensors' data from.
struct detail::SafetensorsHeader {
  std::string path;
  std::ifstream in;
  Metadata metadata;
  std::vector<TensorEntry> entries;  // in the order of their data
  std::uint64_t data_start = 0;
};

namespace {

// Reading: a std::map-backed object, so parsing n entries is O(n log n).
using Json = nlohmann::json;
// Writing: each entry's fields in the reference implementation's order
// (dtype, shape, data_offsets), the metadata first.
using OrderedJson = nlohmann::ordered_json;

// The reference implementation refuses larger headers, too.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests 3 deep (the object, an entry, its shape). Deeper
// nesting is refused before parsing, so nothing that walks the parsed value
// recursively (dump, copy) can exhaust the stack.
constexpr int kMaxHeaderDepth = 16;
// Longest name or string quoted whole in a message.
constexpr std::size_t kMaxQuoted = 80;

static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4, "F32 needs IEEE-754 binary32 floats");
static_assert(std::numeric_limits<double>::is_iec559 && sizeof(double) == 8, "F64 needs IEEE-754 binary64 doubles");

// The safetensors dtypes with a whole number of bytes per element.
struct DTypeInfo {
  const char* name;
  std::size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
    {"F32", 4},  {"I64", 8}, {"U64", 8}, {"F64", 8},     {"C64", 8},
};

// Bytes per element; 0 for a name that is not a dtype.
std::size_t dtype_size(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.size;
  return 0;
}

static_assert(sizeof(bool) == 1, "BOOL elements are stored one byte each");

}  // namespace

const char* safetensors_dtype(Dtype dtype) {
  switch (dtype) {
    case kFloat32: return "F32";
    case kFloat64: return "F64";
    case kInt64: return "I64";
    case kBool: break;
  }
  return "BOOL";
}

std::optional<Dtype> readable_dtype(const std::string& name) {
  for (const Dtype d : {kFloat32, kFloat64, kInt64, kBool})
    if (name == safetensors_dtype(d)) return d;
  return std::nullopt;
}

// Cut at a UTF-8 character boundary: names come from files, and a header
// may hold a 100 MB one.
std::string shortened_name(const std::string& s) {
  if (s.size() <= kMaxQuoted) return s;
  std::size_t cut = kMaxQuoted - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  return s.substr(0, cut) + "... (" + std::to_string(s.size()) + " bytes)";
}

namespace {

bool little_endian_host() {
  const std::uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// Reverses the bytes of each of the `count` elements of `size` bytes.
void swap_bytes(char* bytes, std::size_t count, std::size_t size) {
  for (std::size_t i = 0; i < count; ++i) std::reverse(bytes + i * size, bytes + (i + 1) * size);
}

std::string in_quotes(const std::string& s) { return "\"" + shortened_name(s) + "\""; }

// ": No such file or directory", from errno, or nothing.
std::string os_reason() {
  const int err = errno;
  return err ? std::string(": ") + std::strerror(err) : std::string();
}

// Appends compact JSON for `j` to `out`, as dump() would, but only its first
// levels and only until `out` holds `budget` bytes: a header value may be
// large or deeply nested, and only its beginning belongs in a message.
void excerpt_into(std::string& out, const Json& j, int levels, std::size_t budget) {
  // The start of a string as a JSON literal (a cut UTF-8 character replaced).
  auto literal = [budget](const std::string& s) {
    return Json(s.substr(0, budget)).dump(-1, ' ', false, Json::error_handler_t::replace);
  };
  if (out.size() >= budget) return;
  if (j.is_string()) {
    out += literal(j.get_ref<const std::string&>());
  } else if (!j.is_structured()) {
    out += j.dump();
  } else if (levels == 0) {
    out += j.is_array() ? "[...]" : "{...}";
  } else {
    out += j.is_array() ? '[' : '{';
    bool first = true;
    for (auto it = j.begin(); it != j.end() && out.size() < budget; ++it, first = false) {
      if (!first) out += ',';
      if (j.is_object()) out += literal(it.key()) + ':';
      excerpt_into(out, it.value(), levels - 1, budget);
    }
    out += j.is_array() ? ']' : '}';
  }
}

// A JSON value, shortened, to quote in a message.
std::string excerpt(const Json& j) {
  std::string s;
  excerpt_into(s, j, 2, 60);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// "an array", "a string", "an object"...
std::string a_type(const Json& j) {
  const std::string t = j.type_name();
  return (t == "array" || t == "object" ? "an " : "a ") + t;
}

bool valid_utf8(const std::string& s) {
  try {
    (void)Json(s).dump(-1, ' ', false, Json::error_handler_t::strict);
    return true;
  } catch (const Json::exception&) {
    return false;
  }
}

// `s` as a JSON string literal (valid UTF-8 already checked).
std::string json_string(const std::string& s) { return Json(s).dump(); }

std::string offsets_str(std::uint64_t begin, std::uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// ---- writing -------------------------------------------------------------------

// A tensor to write: contiguous (a view's elements copied in row-major order),
// held so that its bytes stay alive until they are written.
struct Pending {
  Tensor tensor;
  const char* data;
  std::size_t count;
  std::size_t size;  // bytes per element
};

Pending pending(const std::string& path, const std::string& name, const Tensor& t) {
  if (!t.defined()) throw ValueError("save_tensors: " + path + ": tensor " + in_quotes(name) + " is undefined");
  Tensor c = t.contiguous();
  const char* bytes = visit_dtype(c.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    return reinterpret_cast<const char*>(c.data<T>());
  });
  return {c, bytes, c.numel(), element_size(c.dtype())};
}

// Writes `count` elements of `size` bytes little-endian.
void write_elements(std::ofstream& out, const char* data, std::size_t count, std::size_t size) {
  if (little_endian_host()) {
    out.write(data, static_cast<std::streamsize>(count * size));
    return;
  }
  std::vector<char> chunk;
  const std::size_t per_chunk = std::max<std::size_t>(1, (1u << 16) / size);
  for (std::size_t i = 0; i < count && out; i += per_chunk) {
    const std::size_t n = std::min(per_chunk, count - i);
    chunk.assign(data + i * size, data + (i + n) * size);
    swap_bytes(chunk.data(), n, size);
    out.write(chunk.data(), static_cast<std::streamsize>(n * size));
  }
}

// ---- reading -------------------------------------------------------------------

[[noreturn]] void format_error(const std::string& path, const std::string& what) {
  throw FormatError(path + ": " + what);
}

// The non-negative integer array `key` of an entry, or a FormatError.
std::vector<std::uint64_t> unsigned_array(const std::string& path, const std::string& name, const Json& entry,
                                          const char* key, std::size_t required_size, const char* expected) {
  const auto it = entry.find(key);
  if (it == entry.end()) format_error(path, "tensor " + in_quotes(name) + ": no " + in_quotes(key) + " field");
  bool ok = it->is_array() && (required_size == 0 || it->size() == required_size);
  bool nested = false;
  if (it->is_array())
    for (const auto& v : *it) {
      ok = ok && v.is_number_unsigned();
      nested = nested || v.is_structured();
    }
  if (nested)
    format_error(path, "tensor " + in_quotes(name) + ": " + in_quotes(key) + " must be " + expected +
                           ", not a nested array");
  if (!ok)
    format_error(path, "tensor " + in_quotes(name) + ": " + in_quotes(key) + " must be " + expected + ", not " +
                           excerpt(*it));
  std::vector<std::uint64_t> out;
  for (const auto& v : *it) out.push_back(v.get<std::uint64_t>());
  return out;
}

TensorEntry parse_entry(const std::string& path, const std::string& name, const Json& entry) {
  if (!entry.is_object())
    format_error(path, "tensor " + in_quotes(name) + ": the entry is " + a_type(entry) +
                           ", not an object with dtype, shape and data_offsets");
  TensorEntry e;
  e.name = name;
  const auto dtype = entry.find("dtype");
  if (dtype == entry.end()) format_error(path, "tensor " + in_quotes(name) + ": no \"dtype\" field");
  if (!dtype->is_string())
    format_error(path, "tensor " + in_quotes(name) + ": \"dtype\" must be a string, not " + excerpt(*dtype));
  e.dtype = dtype->get<std::string>();
  const std::size_t size = dtype_size(e.dtype);
  if (size == 0) format_error(path, "tensor " + in_quotes(name) + ": unknown dtype " + in_quotes(e.dtype));

  const auto dims = unsigned_array(path, name, entry, "shape", 0, "an array of non-negative integers");
  const auto offsets = unsigned_array(path, name, entry, "data_offsets", 2, "[begin, end], two non-negative integers");
  e.begin = offsets[0];
  e.end = offsets[1];

  // The element count, refusing shapes whose extents (zeros aside) overflow:
  // xtensor computes strides from them.
  constexpr std::uint64_t limit = static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max());
  std::uint64_t numel = 1, nonzero = 1;
  bool has_zero = false;
  for (const auto d : dims) {
    if (d == 0) {
      has_zero = true;
    } else if (nonzero > limit / d) {
      format_error(path, "tensor " + in_quotes(name) + ": shape " + shape_str(dims) + " is too large");
    } else {
      nonzero *= d;
    }
  }
  numel = has_zero ? 0 : nonzero;
  if (numel > limit / size) format_error(path, "tensor " + in_quotes(name) + ": shape " + shape_str(dims) + " is too large");
  const std::uint64_t nbytes = numel * size;
  e.shape.assign(dims.begin(), dims.end());

  if (e.begin > e.end)
    format_error(path, "tensor " + in_quotes(name) + ": data_offsets " + offsets_str(e.begin, e.end) +
                           " out of range: begin is after end");
  if (e.end - e.begin != nbytes)
    format_error(path, "tensor " + in_quotes(name) + ": data_offsets " + offsets_str(e.begin, e.end) + " hold " +
                           std::to_string(e.end - e.begin) + " bytes, but " + e.dtype + " " + shape_str(dims) +
                           " needs " + std::to_string(nbytes));
  return e;
}

Metadata parse_metadata(const std::string& path, const Json& j) {
  if (!j.is_object()) format_error(path, "\"__metadata__\" must be an object of strings, not " + a_type(j));
  Metadata out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string())
      format_error(path, "\"__metadata__\" must map strings to strings, but " + in_quotes(it.key()) + " is " +
                             a_type(it.value()));
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

// The first key that an object at the top level repeats. (A parser callback
// could see the keys too, but makes nlohmann's parse quadratic in their number.)
struct TopLevelKeys : nlohmann::json_sax<Json> {
  int depth = 0;
  std::set<std::string> seen;
  std::string duplicate;

  bool key(string_t& k) override {
    if (depth == 1 && !seen.insert(k).second && duplicate.empty()) duplicate = k;
    return true;
  }
  bool start_object(std::size_t) override { return ++depth, true; }
  bool end_object() override { return --depth, true; }
  bool start_array(std::size_t) override { return ++depth, true; }
  bool end_array() override { return --depth, true; }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

// Throws FileError unless `path` is a regular file; `doing` is "reading" or
// "writing", and a file that does not exist yet passes when `may_be_missing`.
// Checked before opening: opening a FIFO waits for the other end, and a
// device may never end.
void check_regular_file(const std::string& path, const char* doing, bool may_be_missing) {
  errno = 0;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (may_be_missing && errno == ENOENT) return;
    throw FileError(path + ": cannot open for " + doing + os_reason());
  }
  if (S_ISDIR(st.st_mode)) throw FileError(path + ": cannot open for " + doing + ": it is a directory");
  if (!S_ISREG(st.st_mode))
    throw FileError(path + ": cannot open for " + doing + ": it is " + special_file_kind(st.st_mode) +
                    ", not a regular file");
}

// Refuses a header whose arrays and objects nest more than kMaxHeaderDepth
// deep, naming the entry and field, before the parser sees it: a linear scan
// that skips over strings. Malformed JSON is left to the parser to report.
void check_depth(const std::string& path, const std::string& text) {
  int depth = 0;
  // The last string at depth 1 (the key of the entry being read) and at
  // depth 2 (the entry's field being read).
  std::string key[2];
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      const std::size_t begin = ++i;
      for (; i < text.size() && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
      if (depth == 1 || depth == 2) key[depth - 1] = text.substr(begin, std::min(i, text.size()) - begin);
    } else if (c == '[' || c == '{') {
      if (++depth == 2) key[1].clear();
      if (depth > kMaxHeaderDepth) {
        const std::string nests = "nests arrays or objects more than " + std::to_string(kMaxHeaderDepth) + " deep";
        if (key[0].empty()) format_error(path, "the header " + nests);
        if (key[0] == "__metadata__") format_error(path, "\"__metadata__\" " + nests + " (it must be an object of strings)");
        format_error(path, "tensor " + in_quotes(key[0]) + ": " + (key[1].empty() ? "the entry" : in_quotes(key[1])) +
                               " " + nests + " (a shape must be a flat array of integers)");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

// The first line of a parser's message without its "[json.exception...] "
// prefix, shortened: it may quote a token of any length from the header.
std::string parse_error_message(const Json::exception& e) {
  std::string what = e.what();
  const auto bracket = what.find("] ");
  if (what.rfind("[json.exception.", 0) == 0 && bracket != std::string::npos) what = what.substr(bracket + 2);
  if (what.size() > 200) what = what.substr(0, 197) + "...";
  return what;
}

using Header = detail::SafetensorsHeader;

// Refuses a BOOL byte other than 0 or 1: it is no bool value (and reading it
// as one would be undefined behaviour).
void check_bool_bytes(const std::string& path, const TensorEntry& e, const unsigned char* bytes, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i)
    if (bytes[i] > 1)
      format_error(path, "tensor " + in_quotes(e.name) + ": BOOL element " + std::to_string(i) + " is byte " +
                             std::to_string(bytes[i]) + ", not 0 or 1");
}

// Reads one validated tensor of a dtype tapegrad reads. Its size was checked
// against the file's; here it is checked against the machine's memory, and a
// failed allocation is reported with the file and the tensor.
Tensor read_values(Header& h, const std::string& path, const TensorEntry& e, Dtype dtype) {
  const std::uint64_t nbytes = e.end - e.begin;  // == numel * element size, validated
  const std::string what = "tensor " + in_quotes(e.name) + " (" + e.dtype + " " + shape_str(e.shape) + ")";
  const std::uint64_t memory = system_memory_bytes();
  if (nbytes > memory)
    throw FileError(path + ": " + what + " takes " + std::to_string(nbytes) + " bytes, more than this machine's " +
                    std::to_string(memory) + " bytes of memory");
  Tensor value;
  try {
    value = empty(e.shape, dtype);
  } catch (const std::bad_alloc&) {
    throw FileError(path + ": " + what + ": out of memory allocating " + std::to_string(nbytes) + " bytes");
  } catch (const Error& err) {  // tapegrad's own refusal: out of memory, too many elements
    throw FileError(path + ": " + what + ": cannot allocate " + std::to_string(nbytes) + " bytes: " + err.what());
  }
  char* bytes = visit_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return reinterpret_cast<char*>(value.mutable_data<T>());  // a fresh leaf: writable
  });
  h.in.seekg(static_cast<std::streamoff>(h.data_start + e.begin));
  h.in.read(bytes, static_cast<std::streamsize>(nbytes));
  if (!h.in || static_cast<std::uint64_t>(h.in.gcount()) != nbytes)
    throw FileError(path + ": reading tensor " + in_quotes(e.name) + " failed (did the file change while being read?)");
  if (dtype == kBool) check_bool_bytes(path, e, reinterpret_cast<const unsigned char*>(bytes), value.numel());
  if (!little_endian_host()) swap_bytes(bytes, value.numel(), element_size(dtype));
  return value;
}

}  // namespace

// ---- tensors -------------------------------------------------------------------

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                  const Metadata& metadata) {
  const std::string op = "save_tensors: " + path + ": ";
  // The header is assembled entry by entry: linear in the number of tensors.
  std::string text = "{";
  if (!metadata.empty()) {
    OrderedJson meta = OrderedJson::object();
    for (const auto& [key, value] : metadata) {
      if (!valid_utf8(key)) throw ValueError(op + "metadata key " + in_quotes(key) + " is not valid UTF-8");
      if (!valid_utf8(value)) throw ValueError(op + "metadata value of " + in_quotes(key) + " is not valid UTF-8");
      meta[key] = value;
    }
    text += "\"__metadata__\":" + meta.dump();
  }

  std::vector<Pending> data;
  data.reserve(tensors.size());
  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw ValueError(op + "\"__metadata__\" is reserved, not a tensor name");
    if (!valid_utf8(name)) throw ValueError(op + "tensor name " + in_quotes(name) + " is not valid UTF-8");
    if (!names.insert(name).second) throw ValueError(op + "duplicate tensor name " + in_quotes(name));
    Pending p = pending(path, name, tensor);
    const char* dtype = safetensors_dtype(p.tensor.dtype());
    const Shape& shape = p.tensor.shape();
    const std::uint64_t nbytes = static_cast<std::uint64_t>(p.count) * p.size;
    const OrderedJson entry{
        {"dtype", dtype}, {"shape", shape}, {"data_offsets", OrderedJson::array({offset, offset + nbytes})}};
    text += (text.size() > 1 ? "," : "") + json_string(name) + ":" + entry.dump();
    offset += nbytes;
    data.push_back(std::move(p));
  }
  text += "}";
  text.append((8 - text.size() % 8) % 8, ' ');  // as the reference implementation pads

  check_regular_file(path, "writing", /*may_be_missing=*/true);
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw FileError(path + ": cannot open for writing" + os_reason());
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xff);
  out.write(length, 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& p : data) write_elements(out, p.data, p.count, p.size);
  out.close();
  if (!out) {
    const std::string reason = os_reason();
    std::error_code ignored;
    std::filesystem::remove(path, ignored);  // no truncated file left behind
    throw FileError(path + ": writing failed" + reason);
  }
}

namespace {

// Reads and validates the header and checks it against the file's size; no
// tensor data is read.
Header read_header(const std::string& path) {
  check_regular_file(path, "reading", /*may_be_missing=*/false);
  errno = 0;
  Header h;
  h.path = path;
  std::ifstream& in = h.in;
  in.open(path, std::ios::binary);
  if (!in) throw FileError(path + ": cannot open for reading" + os_reason());
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  if (!in || end < 0) throw FileError(path + ": cannot determine the file's size");
  const auto file_size = static_cast<std::uint64_t>(end);
  in.seekg(0);

  if (file_size < 8)
    format_error(path, "the file is " + std::to_string(file_size) +
                           " bytes long, shorter than the 8-byte header length a safetensors file starts with");
  unsigned char length[8];
  in.read(reinterpret_cast<char*>(length), 8);
  if (!in) throw FileError(path + ": reading the header length failed");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | length[i];
  if (n > file_size - 8)
    format_error(path, "header length " + std::to_string(n) + " is larger than the " + std::to_string(file_size - 8) +
                           " bytes that follow it");
  if (n > kMaxHeaderBytes)
    format_error(path, "header length " + std::to_string(n) + " exceeds the limit of " +
                           std::to_string(kMaxHeaderBytes) + " bytes");
  std::string text(static_cast<std::size_t>(n), '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  if (!in) throw FileError(path + ": reading the header failed");

  check_depth(path, text);
  Json header;
  try {
    header = Json::parse(text);
  } catch (const Json::exception& e) {
    format_error(path, "the header is not valid JSON: " + parse_error_message(e));
  }
  if (!header.is_object()) format_error(path, "the header is " + a_type(header) + ", not a JSON object");
  // A JSON object keeps one of two equal keys; a second, key-only pass finds them.
  TopLevelKeys keys;
  Json::sax_parse(text, &keys);
  if (!keys.duplicate.empty()) format_error(path, "the header names " + in_quotes(keys.duplicate) + " twice");

  std::vector<TensorEntry>& entries = h.entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      h.metadata = parse_metadata(path, it.value());
    else
      entries.push_back(parse_entry(path, it.key(), it.value()));
  }

  // The data section: the tensors back to back, from 0 to its very end.
  const std::uint64_t data_start = 8 + n;
  h.data_start = data_start;
  const std::uint64_t data_size = file_size - data_start;
  std::sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& e : entries) {
    if (e.begin < covered)
      format_error(path, "tensors " + in_quotes(previous->name) + " " + offsets_str(previous->begin, previous->end) +
                             " and " + in_quotes(e.name) + " " + offsets_str(e.begin, e.end) + " overlap");
    if (e.begin > covered) {
      if (e.end > data_size)
        format_error(path, "tensor " + in_quotes(e.name) + ": data_offsets " + offsets_str(e.begin, e.end) +
                               " out of range: the data section holds " + std::to_string(data_size) + " bytes");
      format_error(path, "gap in the data section: bytes [" + std::to_string(covered) + ", " +
                             std::to_string(e.begin) + ") belong to no tensor");
    }
    covered = e.end;
    previous = &e;
  }
  if (covered > data_size)
    format_error(path, "truncated data section: the tensors take " + std::to_string(covered) + " bytes, but " +
                           std::to_string(data_size) + " follow the header");
  if (covered < data_size)
    format_error(path, std::to_string(data_size - covered) + " trailing bytes after the tensors' data (" +
                           std::to_string(covered) + " bytes)");

  return h;
}

}  // namespace

namespace {

MismatchError unreadable(const std::string& path, const std::string& name, const std::string& dtype) {
  return MismatchError(path + ": tensor " + in_quotes(name) + " is " + dtype +
                       ", whose values are not read (only F32, F64, I64 and BOOL are)");
}

}  // namespace

SafetensorsReader::SafetensorsReader(const std::string& path)
    : header_(std::make_unique<detail::SafetensorsHeader>(read_header(path))) {}

SafetensorsReader::SafetensorsReader(SafetensorsReader&&) noexcept = default;
SafetensorsReader& SafetensorsReader::operator=(SafetensorsReader&&) noexcept = default;
SafetensorsReader::~SafetensorsReader() = default;

const std::string& SafetensorsReader::path() const { return header_->path; }
const Metadata& SafetensorsReader::metadata() const { return header_->metadata; }
const std::vector<TensorEntry>& SafetensorsReader::entries() const { return header_->entries; }

const TensorEntry* SafetensorsReader::find(const std::string& name) const {
  for (const TensorEntry& e : header_->entries)
    if (e.name == name) return &e;
  return nullptr;
}

Tensor SafetensorsReader::read(const TensorEntry& entry) {
  const auto dtype = readable_dtype(entry.dtype);
  if (!dtype)
    throw unreadable(path(), entry.name, entry.dtype);
  return read_values(*header_, path(), entry, *dtype);
}

TensorFile load_tensors(const std::string& path) {
  SafetensorsReader reader(path);
  TensorFile file;
  file.path = path;
  file.metadata = reader.metadata();
  for (const TensorEntry& e : reader.entries()) {
    StoredTensor t;
    t.name = e.name;
    t.dtype = e.dtype;
    t.shape = e.shape;
    if (readable_dtype(e.dtype)) t.value = reader.read(e);
    file.tensors.push_back(std::move(t));
  }
  return file;
}

bool TensorFile::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(), [&](const StoredTensor& t) { return t.name == name; });
}

const StoredTensor& TensorFile::at(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return t;
  throw MismatchError(path + ": no tensor named " + in_quotes(name));
}

Tensor TensorFile::get(const std::string& name) const {
  const StoredTensor& t = at(name);
  if (!t.loaded())
    throw unreadable(path, name, t.dtype);
  return t.value;
}

Tensor TensorFile::get(const std::string& name, Dtype dtype) const {
  const StoredTensor& t = at(name);
  if (!t.loaded() || t.value.dtype() != dtype)
    throw MismatchError(path + ": tensor " + in_quotes(name) + " is " + t.dtype + ", not " + safetensors_dtype(dtype) +
                        (t.loaded() ? "" : " (only F32, F64, I64 and BOOL values are read)"));
  return t.value;
}

}  // namespace tg::io
