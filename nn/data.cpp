#include "data.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <future>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>


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

// What the file's type is, for a message about a path that is not a regular file.
const char* file_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Checks that `path` is a regular file and returns its size. Anything else
// is refused before it is opened: opening a FIFO blocks until a writer comes,
// and a device may never end.
std::uint64_t check_regular_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) fail(path, "cannot open: no such file");
    fail(path, std::string("cannot open: ") + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) fail(path, "cannot open: is a directory");
  if (!S_ISREG(st.st_mode)) fail(path, std::string("cannot open: ") + file_kind(st.st_mode) + ", not a regular file");
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
  const std::uint64_t file_size = check_regular_file(path);
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
  try {
    out.images = empty({count, std::size_t{1}, rows, cols}, kFloat32);
  } catch (const std::bad_alloc&) {
    fail(images_path, "out of memory converting " + std::to_string(count) + " images of " + std::to_string(rows) +
                          "x" + std::to_string(cols) + " to float");
  } catch (const Error& e) {  // the storage's own out-of-memory error
    fail(images_path, "cannot convert " + std::to_string(count) + " images of " + std::to_string(rows) + "x" +
                          std::to_string(cols) + " to float: " + e.what());
  }
  float* dst = out.images.mutable_data<float>();  // a fresh leaf: writable
  const std::size_t n = count * rows * cols;
  for (std::size_t i = 0; i < n; ++i) dst[i] = table[images.data[i]];
  return out;
}

// ---- datasets ----------------------------------------------------------------

namespace datasets {

namespace {

Tensor labels_tensor(const std::vector<std::int64_t>& labels) {
  Tensor out = empty({labels.size()}, kInt64);
  if (!labels.empty()) std::memcpy(out.mutable_data<std::int64_t>(), labels.data(), labels.size() * sizeof(std::int64_t));
  return out;
}

// Checks images and labels as the loader always has, in its words.
void check_images_and_labels(const data::Dataset& d) {
  if (!d.images.defined()) throw ShapeError("DataLoader: the dataset's images are undefined");
  const Shape shape = d.images.shape();
  if (shape.empty()) throw ShapeError("DataLoader: the dataset's images are 0-d; expected (N, ...)");
  if (shape[0] != d.labels.size())
    throw ShapeError("DataLoader: images " + shape_str(shape) + " hold " + std::to_string(shape[0]) +
                     " samples but there are " + std::to_string(d.labels.size()) + " labels");
}

}  // namespace

TensorDataset to_dataset(const data::Dataset& d) {
  check_images_and_labels(d);
  return TensorDataset(d.images, labels_tensor(d.labels));
}

MNIST::MNIST(const std::string& root, bool train, std::size_t limit, Normalization norm)
    : TensorDataset(to_dataset(load_mnist(root, train, limit, norm))) {}

}  // namespace datasets

// ---- batching ----------------------------------------------------------------

DataLoader::DataLoader(std::shared_ptr<const datasets::Dataset> dataset, const LoaderOptions& options)
    : dataset_(std::move(dataset)), options_(options), gen_(options.seed) {
  if (options.batch_size == 0) throw ValueError("DataLoader: batch size must be positive, got 0");
  if (!dataset_) throw ValueError("DataLoader: the dataset is null");
  size_ = dataset_->size();
  if (size_ == 0) throw ValueError("DataLoader: the dataset is empty");
}

namespace {

std::shared_ptr<const datasets::Dataset> checked_dataset(const Dataset& d, const LoaderOptions& options) {
  if (options.batch_size == 0) throw ValueError("DataLoader: batch size must be positive, got 0");
  datasets::check_images_and_labels(d);
  if (d.size() == 0) throw ValueError("DataLoader: the dataset is empty");
  return std::make_shared<const datasets::TensorDataset>(datasets::to_dataset(d));
}

}  // namespace

DataLoader::DataLoader(const Dataset& dataset, const LoaderOptions& options)
    : DataLoader(checked_dataset(dataset, options), options) {}

DataLoader::~DataLoader() { wait_for_worker(); }

void DataLoader::start_epoch() {
  wait_for_worker();  // the worker reads the order
  ++generation_;
  const std::size_t n = size_;
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
  const std::size_t n = size_, b = options_.batch_size;
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

  Batch out;
  out.indices.assign(order_.begin() + static_cast<std::ptrdiff_t>(begin),
                     order_.begin() + static_cast<std::ptrdiff_t>(end));
  Example stacked = dataset_->get_batch(out.indices, epoch_ - 1);
  out.inputs = std::move(stacked.input);
  out.targets = std::move(stacked.target);
  out.images = out.inputs;
  if (out.targets.dtype() == kInt64 && out.targets.dim() == 1) {
    const std::int64_t* labels = out.targets.data<std::int64_t>();
    out.labels.assign(labels, labels + out.targets.numel());
  }
  return out;
}

// ---- iteration and prefetch ----------------------------------------------------

void DataLoader::wait_for_worker() noexcept {
  if (pending_.valid()) {
    pending_.wait();
    pending_ = {};  // drops the batch or the exception
  }
}

void DataLoader::prefetch(std::size_t position) {
  if (!options_.prefetch || position >= num_batches()) return;
  pending_position_ = position;
  // The worker only reads: the dataset, the order and the options, none of
  // which change until wait_for_worker() has returned. It frees the batch a
  // worker built last time first, so that its buffer cache can reuse them.
  pending_ = std::async(std::launch::async, [this, position, spent = std::exchange(spent_, Batch{})]() mutable {
    spent = Batch{};
    return batch(position);
  });
}

Batch DataLoader::next(std::uint64_t generation, std::size_t position) {
  if (generation != generation_)
    throw ValueError("DataLoader: the loader has started another epoch since this iterator's");
  Batch out;
  if (pending_.valid() && pending_position_ == position) {
    std::future<Batch> ready = std::move(pending_);
    Batch built = ready.get();  // rethrows what the worker threw
    // Buffers go back to the cache of the thread that frees them. The caller
    // frees its batches here, so the batch is copied into buffers of this
    // thread, and the worker's are freed on a worker (by the next prefetch,
    // in this epoch or the next): otherwise every batch would leave one
    // buffer in this thread's cache, unused.
    out.inputs = built.inputs.clone();
    out.targets = built.targets.clone();
    out.images = out.inputs;
    out.labels = std::move(built.labels);
    out.indices = std::move(built.indices);
    spent_ = std::move(built);
  } else {
    wait_for_worker();
    out = batch(position);
  }
  prefetch(position + 1);
  return out;
}

void DataLoader::release(std::uint64_t generation) noexcept {
  if (generation == generation_) wait_for_worker();
}

DataLoader::Iterator DataLoader::begin() {
  start_epoch();
  const std::size_t count = num_batches();
  Iterator it(this, 0, generation_);
  if (count == 0) return end();
  it.alive_ = alive_;
  it.batch_ = next(generation_, 0);
  return it;
}

DataLoader::Iterator DataLoader::end() const {
  Iterator it;
  it.position_ = num_batches();
  return it;
}

DataLoader::Iterator::Iterator(Iterator&& other) noexcept
    : loader_(std::exchange(other.loader_, nullptr)),
      alive_(std::move(other.alive_)),
      position_(other.position_),
      generation_(other.generation_),
      batch_(std::move(other.batch_)) {}

DataLoader::Iterator& DataLoader::Iterator::operator=(Iterator&& other) noexcept {
  if (this != &other) {
    if (loader_ && !alive_.expired()) loader_->release(generation_);
    loader_ = std::exchange(other.loader_, nullptr);
    alive_ = std::move(other.alive_);
    position_ = other.position_;
    generation_ = other.generation_;
    batch_ = std::move(other.batch_);
  }
  return *this;
}

DataLoader::Iterator::~Iterator() {
  if (loader_ && !alive_.expired()) loader_->release(generation_);
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  if (loader_ == nullptr) throw ValueError("DataLoader::Iterator: incremented past the end");
  if (alive_.expired()) throw ValueError("DataLoader::Iterator: the loader has been destroyed");
  const std::size_t next_position = position_ + 1;
  if (next_position >= loader_->num_batches()) {
    loader_->release(generation_);
    loader_ = nullptr;
    batch_ = Batch{};
  } else {
    batch_ = loader_->next(generation_, next_position);
  }
  position_ = next_position;
  return *this;
}

}  // namespace tg::data
