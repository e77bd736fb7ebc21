#include "data.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include "../core/storage.hpp"

namespace tg::data {

namespace {

namespace fs = std::filesystem;

constexpr std::uint8_t kUnsignedByte = 0x08;
constexpr std::size_t kMaxDims = 4;

std::string hex_byte(unsigned value) {
  static const char digits[] = "0123456789abcdef";
  std::string s = "0x";
  s += digits[(value >> 4) & 0xf];
  s += digits[value & 0xf];
  return s;
}

// The IDX element types, for a clear message about the unsupported ones.
const char* idx_type_name(std::uint8_t type) {
  switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0b: return "16-bit integer";
    case 0x0c: return "32-bit integer";
    case 0x0d: return "32-bit float";
    case 0x0e: return "64-bit float";
    default: return nullptr;
  }
}

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw DataError(path + ": " + what); }

// Checks that `path` names a file that can be opened; throws DataError otherwise.
void check_readable(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec && status.type() != fs::file_type::not_found) fail(path, "cannot open: " + ec.message());
  if (status.type() == fs::file_type::not_found) fail(path, "cannot open: no such file");
  if (status.type() == fs::file_type::directory) fail(path, "cannot open: is a directory");
}

// The decompressed contents of a gzip file (all members, as gunzip does).
std::vector<std::uint8_t> read_gzip(const std::string& path) {
  // Closed by the guard if an allocation throws, else explicitly below.
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(gzopen(path.c_str(), "rb"), gzclose);
  if (!guard) fail(path, std::string("cannot open: ") + std::strerror(errno));
  gzFile file = guard.get();
  gzbuffer(file, 1 << 17);
  std::vector<std::uint8_t> bytes;
  constexpr std::size_t chunk = 1 << 20;
  std::string error;
  for (;;) {
    const std::size_t old_size = bytes.size();
    bytes.resize(old_size + chunk);
    const int got = gzread(file, bytes.data() + old_size, static_cast<unsigned>(chunk));
    if (got < 0) {
      bytes.resize(old_size);
      break;
    }
    bytes.resize(old_size + static_cast<std::size_t>(got));
    if (got == 0) break;
  }
  int errnum = Z_OK;
  const char* message = gzerror(file, &errnum);
  if (errnum != Z_OK) {
    error = errnum == Z_ERRNO ? std::strerror(errno) : (message ? message : "unknown error");
    // zlib's messages start with the path, which ours already does.
    if (error.rfind(path + ": ", 0) == 0) error.erase(0, path.size() + 2);
  }
  const int closed = gzclose(guard.release());
  if (error.empty() && closed != Z_OK) error = "error at close (code " + std::to_string(closed) + ")";
  if (!error.empty()) fail(path, "corrupt gzip stream: " + error);
  return bytes;
}

// The contents of the file: decompressed when it starts with gzip's magic.
std::vector<std::uint8_t> read_contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::array<char, 2> magic{};
  in.read(magic.data(), 2);
  if (in.gcount() == 2 && static_cast<unsigned char>(magic[0]) == 0x1f && static_cast<unsigned char>(magic[1]) == 0x8b) {
    in.close();
    return read_gzip(path);
  }
  in.clear();
  in.seekg(0);
  std::vector<std::uint8_t> bytes;
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!ec) bytes.reserve(static_cast<std::size_t>(size));
  std::array<char, 1 << 16> chunk;
  while (in) {
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    bytes.insert(bytes.end(), chunk.data(), chunk.data() + got);
  }
  if (in.bad()) fail(path, "read error");
  return bytes;
}

std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

// Parses the IDX contents `bytes` (already decompressed) of `path`.
IdxArray parse_idx(const std::string& path, std::vector<std::uint8_t> bytes) {
  if (bytes.size() < 4)
    fail(path, "not an IDX file: " + std::to_string(bytes.size()) +
                   " bytes, shorter than the 4-byte header (two zero bytes, type, dimension count)");
  if (bytes[0] != 0 || bytes[1] != 0)
    fail(path, "not an IDX file: bad magic " + hex_byte(bytes[0]) + " " + hex_byte(bytes[1]) +
                   " (expected 0x00 0x00)");
  const std::uint8_t type = bytes[2];
  if (type != kUnsignedByte) {
    const char* name = idx_type_name(type);
    if (name != nullptr)
      fail(path, std::string("unsupported type byte ") + hex_byte(type) + " (" + name +
                     "): only 0x08 (unsigned byte) is supported");
    fail(path, "invalid type byte " + hex_byte(type) +
                   " (IDX types are 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e; only 0x08 is supported)");
  }
  const std::size_t ndim = bytes[3];
  if (ndim < 1 || ndim > kMaxDims)
    fail(path, "unsupported dimension count " + std::to_string(ndim) + " (expected 1 to " +
                   std::to_string(kMaxDims) + ")");
  const std::size_t header = 4 + 4 * ndim;
  if (bytes.size() < header)
    fail(path, "truncated header: expected " + std::to_string(4 * ndim) + " bytes of sizes for " +
                   std::to_string(ndim) + " dimensions, found " + std::to_string(bytes.size() - 4));

  Shape shape(ndim);
  bool has_zero = false;
  for (std::size_t d = 0; d < ndim; ++d) {
    shape[d] = big_endian_u32(bytes.data() + 4 + 4 * d);
    has_zero = has_zero || shape[d] == 0;
  }
  // Sizes are at most 2^32 - 1 each, so the product may need 128 bits; stop
  // as soon as it passes what this machine can address.
  std::uint64_t expected = has_zero ? 0 : 1;
  if (!has_zero) {
    const std::uint64_t max = std::min<std::uint64_t>(std::numeric_limits<std::uint64_t>::max(),
                                                      std::numeric_limits<std::size_t>::max());
    for (std::size_t size : shape) {
      if (expected > max / size)
        fail(path, "sizes " + shape_str(shape) + " overflow: their product does not fit in " +
                       std::to_string(8 * sizeof(std::size_t)) + " bits");
      expected *= size;
    }
  }
  const std::size_t found = bytes.size() - header;
  if (found < expected)
    fail(path, "truncated: expected " + std::to_string(expected) + " bytes of data for shape " + shape_str(shape) +
                   ", found " + std::to_string(found));
  if (found > expected)
    fail(path, "trailing data: expected " + std::to_string(expected) + " bytes of data for shape " +
                   shape_str(shape) + ", found " + std::to_string(found) + " (" +
                   std::to_string(found - expected) + " too many)");

  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  return IdxArray{std::move(shape), std::move(bytes)};
}

// The first existing of dir/base and dir/base.gz (the plain one first).
std::string find_file(const std::string& dir, const std::string& base, const char* what) {
  const std::string plain = (fs::path(dir) / base).string();
  const std::string gz = plain + ".gz";
  for (const std::string& candidate : {plain, gz}) {
    std::error_code ec;
    if (fs::exists(candidate, ec)) return candidate;
  }
  throw DataError("load_mnist: no " + std::string(what) + " file in " + dir + ": neither " + plain + " nor " + gz +
                  " exists");
}

}  // namespace

// ---- IDX files ---------------------------------------------------------------

IdxArray read_idx(const std::string& path) {
  check_readable(path);
  return parse_idx(path, read_contents(path));
}

void write_idx(const std::string& path, const IdxArray& array, bool gzip) {
  const Shape& shape = array.shape;
  if (shape.empty() || shape.size() > kMaxDims)
    throw ShapeError("write_idx: " + path + ": shape " + shape_str(shape) + " must have 1 to " +
                     std::to_string(kMaxDims) + " sizes");
  for (std::size_t size : shape)
    if (size > std::numeric_limits<std::uint32_t>::max())
      throw ShapeError("write_idx: " + path + ": size " + std::to_string(size) + " of shape " + shape_str(shape) +
                       " does not fit in 32 bits");
  // The element count, unless it overflows (then it cannot match data.size()).
  const bool empty = std::find(shape.begin(), shape.end(), std::size_t{0}) != shape.end();
  std::size_t numel = empty ? 0 : 1;
  bool overflow = false;
  for (std::size_t size : shape) {
    if (empty) break;
    if (numel > std::numeric_limits<std::size_t>::max() / size) {
      overflow = true;
      break;
    }
    numel *= size;
  }
  if (overflow || numel != array.data.size())
    throw ShapeError("write_idx: " + path + ": shape " + shape_str(shape) + " does not match the " +
                     std::to_string(array.data.size()) + " bytes of data");

  std::vector<std::uint8_t> header{0, 0, kUnsignedByte, static_cast<std::uint8_t>(shape.size())};
  for (std::size_t size : shape)
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<std::uint8_t>(size >> shift));

  if (gzip) {
    gzFile file = gzopen(path.c_str(), "wb");
    if (file == nullptr) fail(path, std::string("cannot open for writing: ") + std::strerror(errno));
    bool ok = gzwrite(file, header.data(), static_cast<unsigned>(header.size())) == static_cast<int>(header.size());
    constexpr std::size_t chunk = 1 << 20;
    for (std::size_t at = 0; ok && at < array.data.size(); at += chunk) {
      const auto n = static_cast<unsigned>(std::min(chunk, array.data.size() - at));
      ok = gzwrite(file, array.data.data() + at, n) == static_cast<int>(n);
    }
    int errnum = Z_OK;
    std::string error = ok ? "" : gzerror(file, &errnum);
    if (gzclose(file) != Z_OK && ok) error = "error at close";
    if (!ok || !error.empty()) fail(path, "write error: " + error);
    return;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, std::string("cannot open for writing: ") + std::strerror(errno));
  out.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(array.data.data()), static_cast<std::streamsize>(array.data.size()));
  out.close();
  if (!out) fail(path, "write error");
}

// ---- MNIST-style datasets ----------------------------------------------------

std::string default_fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }

Dataset load_mnist(const std::string& dir, bool train, std::size_t limit, Normalization norm) {
  if (!std::isfinite(norm.mean) || !std::isfinite(norm.std) || !(norm.std > 0.0f)) {
    std::ostringstream s;
    s << "load_mnist: normalization needs a finite mean and a positive finite std, got mean=" << norm.mean
      << " std=" << norm.std;
    throw ValueError(s.str());
  }
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte", train ? "training images" : "test images");
  const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte", train ? "training labels" : "test labels");

  const IdxArray labels = read_idx(labels_path);
  if (labels.shape.size() != 1) fail(labels_path, "expected 1-d labels (count), found shape " + shape_str(labels.shape));
  const IdxArray images = read_idx(images_path);
  if (images.shape.size() != 3)
    fail(images_path, "expected 3-d images (count, rows, cols), found shape " + shape_str(images.shape));
  if (images.shape[0] != labels.shape[0])
    throw DataError("load_mnist: " + images_path + " holds " + std::to_string(images.shape[0]) + " images but " +
                    labels_path + " holds " + std::to_string(labels.shape[0]) + " labels");

  const std::size_t count = limit == 0 ? labels.shape[0] : std::min(limit, labels.shape[0]);
  Dataset out;
  out.labels.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t label = labels.data[i];
    if (label >= 10)
      fail(labels_path, "label " + std::to_string(label) + " at index " + std::to_string(i) +
                            " is out of range [0, 10)");
    out.labels[i] = label;
  }

  // One value per possible byte, computed exactly as documented.
  std::array<float, 256> table;
  for (std::size_t p = 0; p < table.size(); ++p)
    table[p] = (static_cast<float>(p) / 255.0f - norm.mean) / norm.std;
  const std::size_t rows = images.shape[1], cols = images.shape[2];
  xt::xarray<float> values = xt::xarray<float>::from_shape({count, std::size_t{1}, rows, cols});
  float* dst = values.data();
  const std::size_t n = count * rows * cols;
  for (std::size_t i = 0; i < n; ++i) dst[i] = table[images.data[i]];
  out.images = Tensor(std::move(values));
  return out;
}

// ---- batching ----------------------------------------------------------------

DataLoader::DataLoader(const Dataset& dataset, const LoaderOptions& options)
    : dataset_(dataset), options_(options), gen_(options.seed) {
  if (options.batch_size == 0) throw ValueError("DataLoader: batch size must be positive, got 0");
  if (!dataset.images.defined()) throw ShapeError("DataLoader: the dataset's images are undefined");
  const Shape shape = dataset.images.shape();
  if (shape.empty()) throw ShapeError("DataLoader: the dataset's images are 0-d; expected (N, ...)");
  if (shape[0] != dataset.labels.size())
    throw ShapeError("DataLoader: images " + shape_str(shape) + " hold " + std::to_string(shape[0]) +
                     " samples but there are " + std::to_string(dataset.labels.size()) + " labels");
  if (dataset.size() == 0) throw ValueError("DataLoader: the dataset is empty");
  sample_numel_ = dataset.images.numel() / shape[0];
}

void DataLoader::start_epoch() {
  const std::size_t n = dataset_.size();
  order_.resize(n);
  for (std::size_t i = 0; i < n; ++i) order_[i] = i;
  if (options_.shuffle) {
    // Fisher-Yates with the loader's generator: epoch k's order depends only
    // on the seed and k.
    for (std::size_t i = n - 1; i > 0; --i) std::swap(order_[i], order_[gen_.below(i + 1)]);
  }
  ++epoch_;
}

std::size_t DataLoader::num_batches() const {
  const std::size_t n = dataset_.size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

Batch DataLoader::batch(std::size_t i) const {
  if (epoch_ == 0) throw ValueError("DataLoader::batch: call start_epoch() before the first batch");
  const std::size_t count = num_batches();
  if (i >= count)
    throw ValueError("DataLoader::batch: index " + std::to_string(i) + " is out of range for " +
                     std::to_string(count) + " batches");
  const std::size_t begin = i * options_.batch_size;
  const std::size_t end = std::min(begin + options_.batch_size, order_.size());
  const std::size_t size = end - begin;

  Batch out;
  Shape shape = dataset_.images.shape();
  shape[0] = size;
  xt::xarray<float> values = empty_array<float>(shape);
  const float* src = dataset_.images.data();
  float* dst = values.data();
  out.labels.resize(size);
  out.indices.assign(order_.begin() + static_cast<std::ptrdiff_t>(begin),
                     order_.begin() + static_cast<std::ptrdiff_t>(end));
  for (std::size_t k = 0; k < size; ++k) {
    const std::size_t row = out.indices[k];
    std::copy_n(src + row * sample_numel_, sample_numel_, dst + k * sample_numel_);
    out.labels[k] = dataset_.labels[row];
  }
  out.images = Tensor(std::move(values));
  return out;
}

}  // namespace tg::data
