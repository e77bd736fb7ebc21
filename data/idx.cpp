#include "idx.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "../core/files.hpp"
#include "../core/storage.hpp"

namespace tg::data {

namespace {

namespace fs = std::filesystem;

constexpr std::uint8_t kUnsignedByte = 0x08;
constexpr std::size_t kMaxDims = 4;
// Deflate cannot inflate data by more than this factor (RFC 1951: a
// 258-byte match takes at least 2 bits), so a gzip file of n bytes holds at
// most this many times n bytes.
constexpr std::uint64_t kMaxDeflateRatio = 1032;

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

// Checks that `path` is a regular file and returns its size (0 when it does
// not exist and `may_be_missing`: a file about to be written). Anything else
// is refused before it is opened: opening a FIFO blocks until the other end
// comes, and a device may never end. `cannot` starts each message.
std::uint64_t check_regular_file(const std::string& path, const std::string& cannot, bool may_be_missing) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT && may_be_missing) return 0;
    if (errno == ENOENT) fail(path, cannot + ": no such file");
    fail(path, cannot + ": " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) fail(path, cannot + ": is a directory");
  if (!S_ISREG(st.st_mode)) fail(path, cannot + ": " + special_file_kind(st.st_mode) + ", not a regular file");
  return static_cast<std::uint64_t>(st.st_size);
}

// An IDX file opened through zlib, which inflates a gzip file (recognised by
// its magic, as gunzip does, all members) and passes a plain file through
// unchanged, so both are read the same way: in bounded pieces, the header
// first. The guard closes the file if something throws.
class IdxReader {
 public:
  explicit IdxReader(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb"), gzclose) {
    if (!file_) fail(path, std::string("cannot open: ") + std::strerror(errno));
    gzbuffer(file_.get(), 1 << 17);
  }

  // Reads up to n bytes into dst and returns how many: fewer only at the
  // end of the data. Throws DataError if the read or the stream fails.
  std::size_t read(std::uint8_t* dst, std::size_t n) {
    std::size_t total = 0;
    while (total < n) {
      const auto want = static_cast<unsigned>(std::min<std::size_t>(n - total, 1 << 20));
      const int got = gzread(file_.get(), dst + total, want);
      check_stream();
      if (got <= 0) break;
      total += static_cast<std::size_t>(got);
    }
    return total;
  }

  // True for a gzip file, once something has been read.
  bool compressed() { return gzdirect(file_.get()) == 0; }

  // Closes the file; throws DataError if zlib reports an error at close.
  void close() {
    const int closed = gzclose(file_.release());
    if (closed != Z_OK) fail(path_, "corrupt gzip stream: error at close (code " + std::to_string(closed) + ")");
  }

 private:
  // zlib reports a truncated stream only through gzerror, not through gzread's result.
  void check_stream() {
    int errnum = Z_OK;
    const char* message = gzerror(file_.get(), &errnum);
    if (errnum == Z_OK) return;
    std::string error = errnum == Z_ERRNO ? std::strerror(errno) : (message ? message : "unknown error");
    // zlib's messages start with the path, which ours already does.
    if (error.rfind(path_ + ": ", 0) == 0) error.erase(0, path_.size() + 2);
    fail(path_, (compressed() ? "corrupt gzip stream: " : "read error: ") + error);
  }

  std::string path_;
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file_;
};

std::uint32_t big_endian_u32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

// Reads and checks the header (magic, type, dimension count, sizes) and
// returns the shape.
Shape read_header(const std::string& path, IdxReader& in) {
  std::array<std::uint8_t, 4 + 4 * kMaxDims> bytes{};
  const std::size_t got = in.read(bytes.data(), 4);
  if (got < 4)
    fail(path, "not an IDX file: " + std::to_string(got) +
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
  const std::size_t sizes = in.read(bytes.data() + 4, 4 * ndim);
  if (sizes < 4 * ndim)
    fail(path, "truncated header: expected " + std::to_string(4 * ndim) + " bytes of sizes for " +
                   std::to_string(ndim) + " dimensions, found " + std::to_string(sizes));
  Shape shape(ndim);
  for (std::size_t d = 0; d < ndim; ++d) shape[d] = big_endian_u32(bytes.data() + 4 + 4 * d);
  return shape;
}

// The number of data bytes `shape` declares, or a DataError if it overflows.
std::uint64_t declared_bytes(const std::string& path, const Shape& shape) {
  if (std::find(shape.begin(), shape.end(), std::size_t{0}) != shape.end()) return 0;
  // Sizes are at most 2^32 - 1 each, so the product may need 128 bits; stop
  // as soon as it passes what this machine can address.
  const std::uint64_t max = std::min<std::uint64_t>(std::numeric_limits<std::uint64_t>::max(),
                                                    std::numeric_limits<std::size_t>::max());
  std::uint64_t product = 1;
  for (std::size_t size : shape) {
    if (product > max / size)
      fail(path, "sizes " + shape_str(shape) + " overflow: their product does not fit in " +
                     std::to_string(8 * sizeof(std::size_t)) + " bits");
    product *= size;
  }
  return product;
}

// Checks the declared data size against what the file can hold, before
// anything is allocated: a plain file's size says it exactly; a gzip file
// cannot inflate to more than kMaxDeflateRatio times its size.
void check_declared_size(const std::string& path, const Shape& shape, std::uint64_t expected, bool compressed,
                         std::uint64_t file_size, std::uint64_t header) {
  if (!compressed) {
    const std::uint64_t found = file_size - std::min(file_size, header);
    if (found < expected)
      fail(path, "truncated: expected " + std::to_string(expected) + " bytes of data for shape " + shape_str(shape) +
                     ", found " + std::to_string(found));
    if (found > expected)
      fail(path, "trailing data: expected " + std::to_string(expected) + " bytes of data for shape " +
                     shape_str(shape) + ", found " + std::to_string(found) + " (" + std::to_string(found - expected) +
                     " too many)");
  } else if (expected / kMaxDeflateRatio > file_size) {
    fail(path, "shape " + shape_str(shape) + " declares " + std::to_string(expected) + " bytes of data, more than a " +
                   std::to_string(file_size) + "-byte gzip file can hold");
  }
  const std::uint64_t memory = system_memory_bytes();
  if (expected > memory)
    fail(path, "shape " + shape_str(shape) + " declares " + std::to_string(expected) +
                   " bytes of data, more than this machine's " + std::to_string(memory) + " bytes of memory");
}

// Reads exactly `expected` bytes of data, growing the array only as the data
// arrives (a gzip header may promise more than the stream holds), then checks
// that nothing follows them.
std::vector<std::uint8_t> read_data(const std::string& path, IdxReader& in, const Shape& shape,
                                    std::uint64_t expected) {
  constexpr std::size_t chunk = 1 << 20;
  std::vector<std::uint8_t> data;
  data.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(expected, chunk)));
  while (data.size() < expected) {
    const std::size_t old_size = data.size();
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(expected - old_size, chunk));
    data.resize(old_size + n);
    const std::size_t got = in.read(data.data() + old_size, n);
    data.resize(old_size + got);
    if (got < n)
      fail(path, "truncated: expected " + std::to_string(expected) + " bytes of data for shape " + shape_str(shape) +
                     ", found " + std::to_string(data.size()));
  }
  // Past the data: nothing, and for a gzip file the trailer checked. Trailing
  // data is counted into a fixed buffer, up to a bound, never stored.
  std::vector<std::uint8_t> scratch(1 << 16);
  std::uint64_t extra = 0;
  constexpr std::uint64_t max_counted = 1 << 20;
  for (std::size_t got; extra < max_counted && (got = in.read(scratch.data(), scratch.size())) > 0;) extra += got;
  if (extra > 0)
    fail(path, "trailing data: expected " + std::to_string(expected) + " bytes of data for shape " +
                   shape_str(shape) + ", found " + (extra < max_counted ? "" : "at least ") +
                   std::to_string(expected + extra) + " (" + std::to_string(extra) +
                   (extra < max_counted ? "" : " or more") + " too many)");
  return data;
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  const std::uint64_t file_size = check_regular_file(path, "cannot open", /*may_be_missing=*/false);
  IdxReader in(path);
  try {
    Shape shape = read_header(path, in);
    const std::uint64_t expected = declared_bytes(path, shape);
    check_declared_size(path, shape, expected, in.compressed(), file_size, 4 + 4 * shape.size());
    std::vector<std::uint8_t> data = read_data(path, in, shape, expected);
    in.close();
    return IdxArray{std::move(shape), std::move(data)};
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory reading the data");
  }
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

  check_regular_file(path, "cannot open for writing", /*may_be_missing=*/true);
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

}  // namespace tg::data
