// The data layer: IDX files, MNIST-style datasets, the DataLoader.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <xtensor/xview.hpp>

#include <tapegrad/data/data.hpp>
#include <tapegrad/tapegrad.hpp>

#include "special_files.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
namespace data = tg::data;
using Bytes = std::vector<std::uint8_t>;

namespace {


void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// An IDX file's bytes written out by hand: magic, type, sizes, then `body`.
Bytes idx_bytes(const std::vector<std::uint32_t>& sizes, const Bytes& body, std::uint8_t type = 0x08) {
  Bytes out{0, 0, type, static_cast<std::uint8_t>(sizes.size())};
  for (std::uint32_t s : sizes)
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(s >> shift));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Bytes iota_bytes(std::size_t n, unsigned start = 0) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>((start + i * 7) % 256);
  return out;
}

std::uint32_t crc32(const Bytes& bytes) {
  std::uint32_t crc = 0xffffffffu;
  for (std::uint8_t b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_le32(Bytes& out, std::uint32_t v) {
  for (int k = 0; k < 4; ++k) out.push_back(static_cast<std::uint8_t>(v >> (8 * k)));
}

// A gzip file made without zlib: deflate "stored" blocks of at most 65535
// bytes, then the CRC-32 and the length, as RFC 1951/1952 describe.
Bytes gzip_stored(const Bytes& payload) {
  Bytes out{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  std::size_t at = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, payload.size() - at);
    const bool last = at + n == payload.size();
    out.push_back(last ? 1 : 0);
    out.push_back(static_cast<std::uint8_t>(n));
    out.push_back(static_cast<std::uint8_t>(n >> 8));
    out.push_back(static_cast<std::uint8_t>(~n));
    out.push_back(static_cast<std::uint8_t>(~n >> 8));
    out.insert(out.end(), payload.begin() + static_cast<std::ptrdiff_t>(at),
               payload.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  } while (at < payload.size());
  put_le32(out, crc32(payload));
  put_le32(out, static_cast<std::uint32_t>(payload.size()));
  return out;
}

// The CRC-32 of `n` zero bytes, table-driven: fast enough for many megabytes.
std::uint32_t crc32_of_zeros(std::size_t n) {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    table[i] = c;
  }
  std::uint32_t crc = 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) crc = table[crc & 0xff] ^ (crc >> 8);
  return ~crc;
}

// Deflate's bit stream (RFC 1951): numbers least significant bit first,
// Huffman codes most significant bit first.
struct BitWriter {
  Bytes out;
  unsigned pending = 0;
  int count = 0;
  void bit(unsigned b) {
    pending |= (b & 1u) << count;
    if (++count == 8) {
      out.push_back(static_cast<std::uint8_t>(pending));
      pending = 0;
      count = 0;
    }
  }
  void number(unsigned value, int bits) {
    for (int i = 0; i < bits; ++i) bit(value >> i);
  }
  void code(unsigned value, int bits) {
    for (int i = bits - 1; i >= 0; --i) bit(value >> i);
  }
  Bytes finish() {
    if (count > 0) out.push_back(static_cast<std::uint8_t>(pending));
    return out;
  }
};

// A gzip member of `n` zero bytes, n = 1 + 258 k, made without zlib: one
// fixed-Huffman block holding a literal zero and then k copies of "258 bytes
// from distance 1", deflate's densest code (13 bits for 258 bytes).
Bytes gzip_zeros(std::size_t n) {
  REQUIRE((n - 1) % 258 == 0);
  BitWriter w;
  w.number(1, 1);     // the final block
  w.number(1, 2);     // fixed Huffman codes
  w.code(0x30, 8);    // literal 0
  for (std::size_t k = 0; k < (n - 1) / 258; ++k) {
    w.code(0xc5, 8);  // length code 285: 258 bytes
    w.code(0, 5);     // distance code 0: distance 1
  }
  w.code(0, 7);       // end of block
  Bytes out{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  const Bytes deflated = w.finish();
  out.insert(out.end(), deflated.begin(), deflated.end());
  put_le32(out, crc32_of_zeros(n));
  put_le32(out, static_cast<std::uint32_t>(n));
  return out;
}

// Two gzip members, as gzip writes for concatenated files: `first` stored,
// then `zeros` zero bytes deflated.
Bytes gzip_then_zeros(const Bytes& first, std::size_t zeros) {
  Bytes out = gzip_stored(first);
  const Bytes rest = gzip_zeros(zeros);
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

}  // namespace

// `expr` throws `Type` whose message contains the file's path and `part`.
#define CHECK_FILE_ERROR(Type, expr, path, part)                                         \
  do {                                                                                \
    CHECK_THROWS_WITH_AS(expr, doctest::Contains(std::string(path).c_str()), Type);  \
    CHECK_THROWS_WITH_AS(expr, doctest::Contains(std::string(part).c_str()), Type);  \
  } while (false)

// ---- IDX files ---------------------------------------------------------------

TEST_CASE("read_idx reads plain IDX files of 1 to 4 dimensions exactly") {
  TempDir dir;
  const std::vector<std::vector<std::uint32_t>> shapes{{7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 2}, {0}, {3, 0, 2}};
  for (const auto& sizes : shapes) {
    std::size_t n = 1;
    for (auto s : sizes) n *= s;
    const Bytes body = iota_bytes(n, 3);
    const std::string path = dir / ("a" + std::to_string(sizes.size()) + "_" + std::to_string(n) + ".idx");
    write_bytes(path, idx_bytes(sizes, body));
    const data::IdxArray a = data::read_idx(path);
    CHECK(a.shape == tg::Shape(sizes.begin(), sizes.end()));
    CHECK(a.data == body);
  }
}

TEST_CASE("write_idx writes the IDX layout, plain or gzip, and read_idx reads both back") {
  TempDir dir;
  const data::IdxArray array{{4, 3, 2}, iota_bytes(24, 11)};

  data::write_idx(dir / "plain", array);
  CHECK(read_bytes(dir / "plain") == idx_bytes({4, 3, 2}, array.data));  // big-endian sizes, then the data
  CHECK(data::read_idx(dir / "plain") == array);

  data::write_idx(dir / "packed.gz", array, /*gzip=*/true);
  const Bytes packed = read_bytes(dir / "packed.gz");
  REQUIRE(packed.size() >= 2);
  CHECK(packed[0] == 0x1f);
  CHECK(packed[1] == 0x8b);
  CHECK(data::read_idx(dir / "packed.gz") == array);

  // Compression is recognised by the magic bytes, not by the name.
  data::write_idx(dir / "packed-no-suffix", array, true);
  CHECK(data::read_idx(dir / "packed-no-suffix") == array);
  data::write_idx(dir / "plain-with-suffix.gz", array, false);
  CHECK(data::read_idx(dir / "plain-with-suffix.gz") == array);

  // A larger array through zlib, in more than one read chunk.
  const data::IdxArray big{{3000, 28, 28}, iota_bytes(3000 * 28 * 28, 5)};
  data::write_idx(dir / "big.gz", big, true);
  CHECK(data::read_idx(dir / "big.gz") == big);
}

TEST_CASE("read_idx reads gzip files written by another encoder") {
  TempDir dir;
  // One stored block, and several (more than 65535 bytes).
  for (std::uint32_t rows : {3u, 100u}) {
    const Bytes body = iota_bytes(rows * 28 * 28, rows);
    const std::string path = dir / ("stored" + std::to_string(rows) + ".gz");
    write_bytes(path, gzip_stored(idx_bytes({rows, 28, 28}, body)));
    const data::IdxArray a = data::read_idx(path);
    CHECK(a.shape == tg::Shape{rows, 28, 28});
    CHECK(a.data == body);
  }
}

TEST_CASE("write_idx rejects shapes that do not describe the data") {
  TempDir dir;
  CHECK_FILE_ERROR(tg::ShapeError, data::write_idx(dir / "x", {{2, 3}, Bytes(5)}), dir / "x",
                   "shape (2, 3) does not match the 5 bytes of data");
  CHECK_FILE_ERROR(tg::ShapeError, data::write_idx(dir / "x", {{}, Bytes(1)}), dir / "x", "must have 1 to 4 sizes");
  CHECK_FILE_ERROR(tg::ShapeError, data::write_idx(dir / "x", {{1, 1, 1, 1, 1}, Bytes(1)}), dir / "x",
                   "must have 1 to 4 sizes");
  CHECK_FILE_ERROR(tg::ShapeError, data::write_idx(dir / "x", {{std::size_t{1} << 33}, Bytes(1)}), dir / "x",
                   "does not fit in 32 bits");
  CHECK_FALSE(fs::exists(dir / "x"));
  const std::string unwritable = dir / "no-such-dir/x";
  CHECK_FILE_ERROR(data::DataError, data::write_idx(unwritable, {{1}, Bytes(1)}), unwritable,
                   "cannot open for writing");
  CHECK_FILE_ERROR(data::DataError, data::write_idx(unwritable, {{1}, Bytes(1)}, true), unwritable,
                   "cannot open for writing");
}

TEST_CASE("read_idx names the file and the problem for malformed files") {
  TempDir dir;
  auto bad = [&](const std::string& name, const Bytes& bytes) {
    write_bytes(dir / name, bytes);
    return dir / name;
  };
  const Bytes body = iota_bytes(24);

  std::string p = bad("truncated", idx_bytes({2, 3, 4}, Bytes(body.begin(), body.begin() + 10)));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, ": truncated: expected 24 bytes of data for shape (2, 3, 4), found 10");
  CHECK_THROWS_WITH_AS(data::read_idx(p), doctest::Contains((p + ": truncated").c_str()), data::DataError);

  Bytes longer = body;
  longer.push_back(0);
  longer.push_back(0);
  p = bad("trailing", idx_bytes({2, 3, 4}, longer));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "trailing data: expected 24 bytes of data for shape (2, 3, 4), found 26 (2 too many)");

  Bytes magic = idx_bytes({24}, body);
  magic[0] = 0x01;
  p = bad("magic", magic);
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "not an IDX file: bad magic 0x01 0x00 (expected 0x00 0x00)");

  p = bad("float-type", idx_bytes({6}, body, 0x0d));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "unsupported type byte 0x0d (32-bit float): only 0x08 (unsigned byte) is supported");
  p = bad("unknown-type", idx_bytes({24}, body, 0x07));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "invalid type byte 0x07");

  p = bad("zero-dims", idx_bytes({}, body));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "unsupported dimension count 0 (expected 1 to 4)");
  p = bad("five-dims", idx_bytes({1, 2, 3, 4, 1}, body));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "unsupported dimension count 5 (expected 1 to 4)");

  Bytes short_header = idx_bytes({2, 3, 4}, {});
  short_header.resize(4 + 6);  // 1.5 of the 3 sizes
  p = bad("short-header", short_header);
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "truncated header: expected 12 bytes of sizes for 3 dimensions, found 6");

  p = bad("tiny", {0, 0, 8});
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "not an IDX file: 3 bytes, shorter than the 4-byte header");
  p = bad("empty", {});
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "not an IDX file: 0 bytes");

  // Sizes whose product does not fit in 64 bits, followed by a little data.
  p = bad("overflow", idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu, 2}, body));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "sizes (4294967295, 4294967295, 4294967295, 2) overflow");
  // Large but representable: reported as truncated, without allocating it.
  p = bad("huge", idx_bytes({0xffffffffu, 0xffffffffu}, body));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "truncated: expected 18446744065119617025 bytes of data");
}

TEST_CASE("read_idx checks the contents of gzip files and the gzip stream itself") {
  TempDir dir;
  const Bytes body = iota_bytes(24);
  std::string p = dir / "truncated.gz";
  write_bytes(p, gzip_stored(idx_bytes({2, 3, 4}, Bytes(body.begin(), body.begin() + 20))));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, ": truncated: expected 24 bytes of data for shape (2, 3, 4), found 20");

  Bytes trailing = body;
  trailing.push_back(9);
  p = dir / "trailing.gz";
  write_bytes(p, gzip_stored(idx_bytes({2, 3, 4}, trailing)));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "trailing data");

  p = dir / "type.gz";
  write_bytes(p, gzip_stored(idx_bytes({24}, body, 0x0c)));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "unsupported type byte 0x0c (32-bit integer)");

  // The compressed stream cut short.
  const data::IdxArray array{{50, 28, 28}, iota_bytes(50 * 28 * 28)};
  data::write_idx(dir / "whole.gz", array, true);
  Bytes packed = read_bytes(dir / "whole.gz");
  p = dir / "cut.gz";
  write_bytes(p, Bytes(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(packed.size() / 2)));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "corrupt gzip stream: ");
  CHECK_THROWS_WITH_AS(data::read_idx(p), doctest::Contains((p + ": corrupt gzip stream: ").c_str()), data::DataError);

  // A wrong CRC-32 in the trailer.
  Bytes bad_crc = gzip_stored(idx_bytes({24}, body));
  bad_crc[bad_crc.size() - 8] ^= 0xff;
  p = dir / "crc.gz";
  write_bytes(p, bad_crc);
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "corrupt gzip stream");

  // Only the gzip magic.
  p = dir / "magic-only.gz";
  write_bytes(p, {0x1f, 0x8b});
  CHECK_THROWS_WITH_AS(data::read_idx(p), doctest::Contains(p.c_str()), data::DataError);
}

TEST_CASE("read_idx reports files that cannot be read") {
  TempDir dir;
  const std::string missing = dir / "missing-images-idx3-ubyte";
  CHECK_FILE_ERROR(data::DataError, data::read_idx(missing), missing, "cannot open: no such file");
  CHECK_FILE_ERROR(data::DataError, data::read_idx(dir.path.string()), dir.path.string(), "cannot open: is a directory");
  // DataError is a tg::Error, so callers can catch everything tapegrad throws at once.
  CHECK_THROWS_AS(data::read_idx(missing), tg::Error);
}

TEST_CASE("read_idx reads a gzip file's header first and never inflates more than it declares") {
  TempDir dir;
  constexpr std::size_t k_zeros = 1 + 258 * 3875;  // 999,751 bytes in about 6 KB

  // The test's encoder, checked: a header member followed by a member of zeros.
  std::string p = dir / "zeros.gz";
  write_bytes(p, gzip_then_zeros(idx_bytes({k_zeros}, {}), k_zeros));
  CHECK(data::read_idx(p) == data::IdxArray{{k_zeros}, Bytes(k_zeros, 0)});

  // Declared data beyond what deflate can pack into the file: refused at once.
  p = dir / "liar.gz";
  write_bytes(p, gzip_stored(idx_bytes({60000, 28, 28}, Bytes(100, 1))));
  const std::string size = std::to_string(fs::file_size(p));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p,
                   "shape (60000, 28, 28) declares 47040000 bytes of data, more than a " + size +
                       "-byte gzip file can hold");

  // Plausible for the file's size but short: read up to the end, then named.
  p = dir / "short.gz";
  write_bytes(p, gzip_then_zeros(idx_bytes({2000, 28, 28}, {}), k_zeros));
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p,
                   ": truncated: expected 1568000 bytes of data for shape (2000, 28, 28), found 999751");

  // 64 MiB of zeros after a 16-byte array: the reader stops after counting a
  // bounded amount of the excess, instead of inflating it all into memory.
  constexpr std::size_t m_zeros = 1 + 258 * 260'000;
  p = dir / "bomb.gz";
  write_bytes(p, gzip_then_zeros(idx_bytes({16}, Bytes(16, 7)), m_zeros));
  REQUIRE(fs::file_size(p) < 1'000'000);
  const std::uint64_t growth = peak_memory_growth([&] {
    CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p,
                     "trailing data: expected 16 bytes of data for shape (16,), found at least 1048592 (1048576 or "
                     "more too many)");
  });
  CHECK(growth < 16u << 20);

  // A bad header in front of the same mass of data: named before any of it is read.
  p = dir / "bomb-type.gz";
  write_bytes(p, gzip_then_zeros(idx_bytes({16}, {}, 0x0d), m_zeros));
  const auto start = std::chrono::steady_clock::now();
  CHECK_FILE_ERROR(data::DataError, data::read_idx(p), p, "unsupported type byte 0x0d");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("read_idx checks a plain file's header and its size before reading the data") {
  TempDir dir;
  // Sparse files: they declare terabytes without using the disk.
  const std::string bad_type = dir / "bad-type";
  write_bytes(bad_type, idx_bytes({0xffffffffu}, {}, 0x0c));
  const std::string huge = dir / "huge";
  const std::uint64_t declared = std::uint64_t{0xffffffffu} * 0x800;  // 8 TiB
  write_bytes(huge, idx_bytes({0xffffffffu, 0x800}, {}));
  try {
    fs::resize_file(bad_type, 12 + (std::uint64_t{1} << 32));
    fs::resize_file(huge, 12 + declared);
  } catch (const fs::filesystem_error& e) {
    MESSAGE("no sparse files here, skipped: ", e.what());
    return;
  }
  const std::uint64_t growth = peak_memory_growth([&] {
    CHECK_FILE_ERROR(data::DataError, data::read_idx(bad_type), bad_type, "unsupported type byte 0x0c");
    // The sizes agree with the file's, but no machine here holds 8 TiB.
    CHECK_FILE_ERROR(data::DataError, data::read_idx(huge), huge,
                     "shape (4294967295, 2048) declares " + std::to_string(declared) +
                         " bytes of data, more than this machine's ");
  });
  CHECK(growth < 16u << 20);
}

TEST_CASE("write_idx refuses a FIFO or a directory as its target instead of waiting or failing late") {
  TempDir dir;
  const std::string fifo_path = dir / "fifo";
  Fifo fifo(fifo_path);
  REQUIRE(fifo.created());
  for (const bool gzip : {false, true}) {
    CHECK_FILE_ERROR(data::DataError, data::write_idx(fifo_path, {{1}, Bytes(1)}, gzip), fifo_path,
                     "cannot open for writing: a FIFO, not a regular file");
    CHECK_FILE_ERROR(data::DataError, data::write_idx(dir.path.string(), {{1}, Bytes(1)}, gzip), dir.path.string(),
                     "cannot open for writing: is a directory");
  }
}

TEST_CASE("read_idx and load_mnist refuse FIFOs and devices instead of waiting on them") {
  TempDir dir;
  const std::string fifo_path = dir / "fifo";
  Fifo fifo(fifo_path);
  REQUIRE(fifo.created());
  CHECK_FILE_ERROR(data::DataError, data::read_idx(fifo_path), fifo_path, "cannot open: a FIFO, not a regular file");
  if (fs::exists("/dev/null"))
    CHECK_FILE_ERROR(data::DataError, data::read_idx("/dev/null"), "/dev/null",
                     "cannot open: a character device, not a regular file");

  // A dataset whose image file is a FIFO.
  data::write_idx(dir / "train-labels-idx1-ubyte", {{1}, Bytes{3}});
  Fifo images(dir / "train-images-idx3-ubyte");
  REQUIRE(images.created());
  CHECK_FILE_ERROR(data::DataError, data::load_mnist(dir.path.string(), true), dir / "train-images-idx3-ubyte",
                   "a FIFO, not a regular file");
  CHECK_FILE_ERROR(data::DataError, data::datasets::MNIST(dir.path.string(), true), dir / "train-images-idx3-ubyte",
                   "a FIFO, not a regular file");
}

// ---- load_mnist --------------------------------------------------------------

namespace {

// A tiny MNIST-style directory: `n` 28x28 images whose pixels cover 0..255.
struct TinyMnist {
  TempDir dir;
  data::IdxArray images, labels;
  explicit TinyMnist(std::size_t n = 6, bool gzip_test = true) {
    images = {{n, 28, 28}, iota_bytes(n * 28 * 28)};
    images.data[0] = 0;
    images.data[1] = 255;
    labels = {{n}, {}};
    for (std::size_t i = 0; i < n; ++i) labels.data.push_back(static_cast<std::uint8_t>((i * 3) % 10));
    data::write_idx(dir / "train-images-idx3-ubyte", images);
    data::write_idx(dir / "train-labels-idx1-ubyte", labels);
    const std::string suffix = gzip_test ? ".gz" : "";
    data::write_idx(dir / ("t10k-images-idx3-ubyte" + suffix), images, gzip_test);
    data::write_idx(dir / ("t10k-labels-idx1-ubyte" + suffix), labels, gzip_test);
  }
};

void check_dataset(const data::Dataset& d, const TinyMnist& m, std::size_t n, data::Normalization norm) {
  REQUIRE(d.size() == n);
  CHECK(d.images.shape() == tg::Shape{n, 1, 28, 28});
  CHECK(d.images.dtype() == tg::kFloat32);
  CHECK(d.images.is_contiguous());
  CHECK_FALSE(d.images.requires_grad());
  for (std::size_t i = 0; i < n; ++i) CHECK(d.labels[i] == m.labels.data[i]);
  bool exact = true;
  for (std::size_t i = 0; i < n * 28 * 28; ++i) {
    const float want = (static_cast<float>(m.images.data[i]) / 255.0f - norm.mean) / norm.std;
    exact = exact && d.images.data<float>()[i] == want;
  }
  CHECK(exact);
}

}  // namespace

TEST_CASE("load_mnist scales to [0, 1] and normalizes with the given mean and std") {
  TinyMnist m;
  const std::string dir = m.dir.path.string();

  const data::Dataset train = data::load_mnist(dir, true);  // Fashion-MNIST's statistics by default
  check_dataset(train, m, 6, data::fashion_mnist_normalization);
  CHECK(train.images.data<float>()[0] == (0.0f - 0.2860f) / 0.3530f);
  CHECK(train.images.data<float>()[1] == (1.0f - 0.2860f) / 0.3530f);

  const data::Dataset raw = data::load_mnist(dir, true, 0, {0.0f, 1.0f});
  check_dataset(raw, m, 6, data::no_normalization);
  CHECK(raw.images.data<float>()[0] == 0.0f);
  CHECK(raw.images.data<float>()[1] == 1.0f);
  CHECK(xt::amin(raw.images.value<float>())() >= 0.0f);
  CHECK(xt::amax(raw.images.value<float>())() <= 1.0f);

  check_dataset(data::load_mnist(dir, false, 0, data::mnist_normalization), m, 6, data::mnist_normalization);  // from .gz
  check_dataset(data::load_mnist(dir, false, 4), m, 4, data::fashion_mnist_normalization);                  // a limit
  check_dataset(data::load_mnist(dir, true, 100), m, 6, data::fashion_mnist_normalization);                  // more than there are

  CHECK(data::default_fashion_mnist_dir() == "/usr/share/datasets/fashion-mnist");
  CHECK_THROWS_AS(data::load_mnist(dir, true, 0, {0.0f, 0.0f}), tg::ValueError);
  CHECK_THROWS_AS(data::load_mnist(dir, true, 0, {0.0f, -1.0f}), tg::ValueError);
}

TEST_CASE("load_mnist prefers the plain file when both it and the .gz exist") {
  TinyMnist m(6, /*gzip_test=*/false);
  data::IdxArray other = m.labels;
  for (auto& l : other.data) l = 9;
  data::write_idx(m.dir / "t10k-labels-idx1-ubyte.gz", other, true);
  CHECK(data::load_mnist(m.dir.path.string(), false).labels[0] == 0);
  fs::remove(m.dir / "t10k-labels-idx1-ubyte");
  CHECK(data::load_mnist(m.dir.path.string(), false).labels[0] == 9);
}

TEST_CASE("load_mnist errors name the files") {
  TinyMnist m;
  const std::string dir = m.dir.path.string();
  const std::string images = m.dir / "train-images-idx3-ubyte", labels = m.dir / "train-labels-idx1-ubyte";

  SUBCASE("missing file: both names are listed") {
    fs::remove(labels);
    CHECK_THROWS_WITH_AS(data::load_mnist(dir, true),
                         doctest::Contains(("load_mnist: no training labels file in " + dir + ": neither " + labels +
                                            " nor " + labels + ".gz exists")
                                               .c_str()),
                         data::DataError);
    fs::remove(m.dir / "t10k-images-idx3-ubyte.gz");
    CHECK_FILE_ERROR(data::DataError, data::load_mnist(dir, false), m.dir / "t10k-images-idx3-ubyte.gz",
                     "neither " + (m.dir / "t10k-images-idx3-ubyte") + " nor");
    CHECK_THROWS_AS(data::load_mnist(m.dir / "no-such-dir", true), data::DataError);
  }
  SUBCASE("image and label counts differ") {
    data::write_idx(labels, {{5}, Bytes(5, 1)});
    CHECK_THROWS_WITH_AS(data::load_mnist(dir, true),
                         doctest::Contains(("load_mnist: " + images + " holds 6 images but " + labels + " holds 5 labels").c_str()),
                         data::DataError);
  }
  SUBCASE("a label out of range") {
    Bytes l(6, 2);
    l[4] = 10;
    data::write_idx(labels, {{6}, l});
    CHECK_FILE_ERROR(data::DataError, data::load_mnist(dir, true), labels, "label 10 at index 4 is out of range [0, 10)");
  }
  SUBCASE("wrong dimensionality") {
    data::write_idx(images, {{6, 784}, Bytes(6 * 784)});
    CHECK_FILE_ERROR(data::DataError, data::load_mnist(dir, true), images,
                     "expected 3-d images (count, rows, cols), found shape (6, 784)");
    data::write_idx(labels, {{6, 1}, Bytes(6)});
    CHECK_FILE_ERROR(data::DataError, data::load_mnist(dir, true), labels, "expected 1-d labels (count), found shape (6, 1)");
  }
  SUBCASE("a malformed file") {
    write_bytes(images, {0, 0, 8, 3, 0, 0});
    CHECK_FILE_ERROR(data::DataError, data::load_mnist(dir, true), images, "truncated header");
  }
}

TEST_CASE("datasets::MNIST: example i is image i in [0, 1] (1, 28, 28) with its label as a 0-d int64") {
  TinyMnist m;
  const std::string dir = m.dir.path.string();
  const data::datasets::MNIST train(dir, true);
  REQUIRE(train.size() == 6);
  CHECK(train.images().shape() == tg::Shape{6, 1, 28, 28});
  CHECK(train.targets().dtype() == tg::kInt64);
  for (std::size_t i = 0; i < 6; ++i) {
    const data::Example e = train.get(i);
    REQUIRE(e.input.shape() == tg::Shape{1, 28, 28});
    CHECK(e.input.dtype() == tg::kFloat32);
    CHECK(e.target.dim() == 0);
    CHECK(e.target.dtype() == tg::kInt64);
    CHECK(e.target.item<std::int64_t>() == static_cast<std::int64_t>((i * 3) % 10));
    const xt::xarray<float> pixels = e.input.to_xarray<float>();
    bool exact = true;
    for (std::size_t k = 0; k < 28 * 28; ++k)
      exact = exact && pixels.data()[k] == static_cast<float>(m.images.data[i * 784 + k]) / 255.0f;
    CHECK(exact);
  }
  CHECK_THROWS_WITH_AS(train.get(6), doctest::Contains("index 6 is out of range for 6 examples"), tg::ValueError);

  // The test set from .gz, a limit, a normalization: as load_mnist.
  const data::datasets::MNIST test(dir, false, 4, data::fashion_mnist_normalization);
  CHECK(test.size() == 4);
  CHECK(test.get(0).input.value<float>()(0, 0, 1) == (1.0f - 0.2860f) / 0.3530f);
  CHECK_FILE_ERROR(data::DataError, data::datasets::MNIST(m.dir / "no-such-dir", true), m.dir / "no-such-dir",
                   "neither");
  data::write_idx(m.dir / "train-labels-idx1-ubyte", {{6}, Bytes{1, 2, 3, 10, 4, 5}});
  CHECK_FILE_ERROR(data::DataError, data::datasets::MNIST(dir, true), m.dir / "train-labels-idx1-ubyte",
                   "label 10 at index 3 is out of range [0, 10)");

  // Batched by the loader: inputs (B, 1, 28, 28), int64 targets and labels.
  data::DataLoader loader(data::datasets::MNIST(dir, false), {4});
  std::vector<std::size_t> sizes;
  for (const data::Batch& b : loader) {
    sizes.push_back(b.size());
    CHECK(b.inputs.shape() == tg::Shape{b.size(), 1, 28, 28});
    CHECK(b.targets.dtype() == tg::kInt64);
    CHECK(b.images.same(b.inputs));
    for (std::size_t k = 0; k < b.size(); ++k) CHECK(b.labels[k] == static_cast<std::int64_t>((b.indices[k] * 3) % 10));
  }
  CHECK(sizes == std::vector<std::size_t>{4, 2});
}

// ---- DataLoader --------------------------------------------------------------

namespace {

// n images (n, 1, 2, 3) whose elements encode their row: 100 * row + k.
data::Dataset numbered(std::size_t n) {
  xt::xarray<float> v = xt::xarray<float>::from_shape({n, std::size_t{1}, std::size_t{2}, std::size_t{3}});
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < 6; ++k) v.data()[i * 6 + k] = static_cast<float>(100 * i + k);
  data::Dataset d;
  d.images = tg::Tensor(v);
  for (std::size_t i = 0; i < n; ++i) d.labels.push_back(static_cast<std::int64_t>(1000 + i));
  return d;
}

// The dataset rows of one epoch, batch after batch.
std::vector<std::size_t> epoch_rows(data::DataLoader& loader) {
  loader.start_epoch();
  std::vector<std::size_t> rows;
  for (std::size_t i = 0; i < loader.num_batches(); ++i) {
    const data::Batch b = loader.batch(i);
    rows.insert(rows.end(), b.indices.begin(), b.indices.end());
  }
  return rows;
}

}  // namespace

TEST_CASE("DataLoader batch sizes, the last partial batch and drop_last") {
  const data::Dataset d = numbered(10);
  data::DataLoader loader(d, {4});
  CHECK(loader.num_batches() == 3);
  loader.start_epoch();
  CHECK(loader.batch(0).size() == 4);
  CHECK(loader.batch(1).size() == 4);
  CHECK(loader.batch(2).size() == 2);
  CHECK(loader.batch(2).images.shape() == tg::Shape{2, 1, 2, 3});
  CHECK(loader.batch(0).images.shape() == tg::Shape{4, 1, 2, 3});
  CHECK(epoch_rows(loader) == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});  // no shuffle: in order

  data::DataLoader dropping(d, {4, false, 0, /*drop_last=*/true});
  CHECK(dropping.num_batches() == 2);
  CHECK(epoch_rows(dropping) == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7});

  data::DataLoader exact(d, {5, true, 3, true});
  CHECK(exact.num_batches() == 2);
  CHECK(epoch_rows(exact).size() == 10);

  data::DataLoader whole(d, {64});
  CHECK(whole.num_batches() == 1);
  whole.start_epoch();
  CHECK(whole.batch(0).size() == 10);
  CHECK(data::DataLoader(d, {64, false, 0, true}).num_batches() == 0);
}

TEST_CASE("DataLoader batches are copies of the dataset's rows with their labels") {
  const data::Dataset d = numbered(11);
  data::DataLoader loader(d, {3, true, 42});
  for (int epoch = 0; epoch < 2; ++epoch) {
    loader.start_epoch();
    for (std::size_t i = 0; i < loader.num_batches(); ++i) {
      const data::Batch b = loader.batch(i);
      REQUIRE(b.indices.size() == b.size());
      REQUIRE(b.images.numel() == b.size() * 6);
      for (std::size_t k = 0; k < b.size(); ++k) {
        const std::size_t row = b.indices[k];
        CHECK(b.indices[k] == loader.order()[i * 3 + k]);
        CHECK(b.labels[k] == d.labels[row]);
        CHECK(xt::view(b.images.value<float>(), k) == xt::view(d.images.value<float>(), row));
      }
    }
  }
  // A batch is a copy: changing it leaves the dataset alone.
  loader.start_epoch();
  data::Batch b = loader.batch(0);
  const std::size_t row = b.indices[0];
  b.images.mutable_value<float>()(0, 0, 0, 0) = -1.0f;
  CHECK(d.images.value<float>()(row, 0, 0, 0) == static_cast<float>(100 * row));
}

TEST_CASE("DataLoader batches images of any dtype and layout, in the dataset's dtype") {
  const data::Dataset d = numbered(5);
  for (const tg::Dtype dtype : {tg::kFloat32, tg::kFloat64, tg::kInt64, tg::kBool}) {
    INFO(tg::dtype_name(dtype));
    data::Dataset converted = d;
    converted.images = d.images.to(dtype);
    data::DataLoader loader(converted, {2, true, 5});
    loader.start_epoch();
    const xt::xarray<double> all = converted.images.to(tg::kFloat64).to_xarray<double>();
    for (std::size_t i = 0; i < loader.num_batches(); ++i) {
      const data::Batch b = loader.batch(i);
      CHECK(b.images.dtype() == dtype);
      const xt::xarray<double> got = b.images.to(tg::kFloat64).to_xarray<double>();
      for (std::size_t k = 0; k < b.size(); ++k) CHECK(xt::view(got, k) == xt::view(all, b.indices[k]));
    }
  }

  // A strided view (rows and columns swapped) is batched as its elements read
  // in row-major order, as torch would index it.
  data::Dataset transposed = d;
  transposed.images = d.images.transpose(2, 3);
  REQUIRE_FALSE(transposed.images.is_contiguous());
  data::DataLoader loader(transposed, {5});
  loader.start_epoch();
  const data::Batch b = loader.batch(0);
  CHECK(b.images.shape() == tg::Shape{5, 1, 3, 2});
  CHECK(b.images.to_xarray<float>() == transposed.images.to_xarray<float>());
  CHECK(b.images.value<float>()(1, 0, 2, 0) == 102.0f);  // row 1, element (0, 2) before the transpose
}

TEST_CASE("DataLoader shuffling: each index once per epoch, reproducible from the seed") {
  const data::Dataset d = numbered(50);
  data::DataLoader a(d, {8, true, 7}), b(d, {8, true, 7}), c(d, {8, true, 8});
  std::vector<std::size_t> identity(50);
  for (std::size_t i = 0; i < 50; ++i) identity[i] = i;
  std::vector<std::vector<std::size_t>> epochs;
  for (int epoch = 0; epoch < 3; ++epoch) {
    const std::vector<std::size_t> rows = epoch_rows(a);
    std::vector<std::size_t> sorted = rows;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == identity);  // every index exactly once
    CHECK(rows == epoch_rows(b));  // same seed, same order
    CHECK(rows != epoch_rows(c));  // another seed, another order
    epochs.push_back(rows);
  }
  CHECK(a.epoch() == 3);
  CHECK(epochs[0] != epochs[1]);  // a new permutation every epoch
  CHECK(epochs[1] != epochs[2]);
  CHECK(epochs[0] != identity);  // shuffled at all
}

namespace {

// The even indices, in reverse order, shifted by the epoch; or `broken`
// indices when set. Records the epochs it was asked for.
class EvenSampler : public data::Sampler {
 public:
  explicit EvenSampler(std::size_t dataset_size) : n_(dataset_size) {}
  std::size_t size() const override { return (n_ + 1) / 2; }
  std::vector<std::size_t> indices(std::size_t epoch) override {
    asked.push_back(epoch);
    if (!broken.empty()) return broken;
    std::vector<std::size_t> out;
    for (std::size_t k = size(); k-- > 0;) out.push_back((2 * k + 2 * epoch) % (2 * size()));
    return out;
  }
  std::vector<std::size_t> asked, broken;

 private:
  std::size_t n_;
};

}  // namespace

TEST_CASE("DataLoader with a sampler: each epoch's order is the sampler's indices") {
  const data::Dataset d = numbered(7);
  auto sampler = std::make_shared<EvenSampler>(d.size());
  data::DataLoader loader(d, {3, false, 0, false, /*prefetch=*/true, sampler});
  CHECK(loader.num_batches() == 2);  // 4 indices of the 7 in batches of 3
  std::vector<std::vector<std::size_t>> seen;
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::vector<std::size_t> rows;
    for (const data::Batch& b : loader) {
      rows.insert(rows.end(), b.indices.begin(), b.indices.end());
      for (std::size_t k = 0; k < b.size(); ++k) CHECK(b.labels[k] == d.labels[b.indices[k]]);
    }
    seen.push_back(rows);
  }
  CHECK(seen[0] == std::vector<std::size_t>{6, 4, 2, 0});
  CHECK(seen[1] == std::vector<std::size_t>{0, 6, 4, 2});
  CHECK(sampler->asked == std::vector<std::size_t>{0, 1});

  CHECK_THROWS_WITH_AS(data::DataLoader(d, {3, /*shuffle=*/true, 0, false, false, sampler}),
                       doctest::Contains("DataLoader: shuffle and a sampler exclude each other"), tg::ValueError);
  sampler->broken = {0, 1, 7, 2};
  CHECK_THROWS_WITH_AS(loader.start_epoch(),
                       doctest::Contains("DataLoader: the sampler gave index 7 for a dataset of 7 examples"),
                       tg::ValueError);
  sampler->broken = {0, 1};
  CHECK_THROWS_WITH_AS(loader.start_epoch(),
                       doctest::Contains("DataLoader: the sampler gave 2 indices for epoch 2, but its size() is 4"),
                       tg::ValueError);
}

TEST_CASE("DataLoader errors") {
  const data::Dataset d = numbered(4);
  CHECK_THROWS_WITH_AS(data::DataLoader(d, {0}), doctest::Contains("DataLoader: batch size must be positive"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(data::DataLoader(numbered(0), {4}), doctest::Contains("DataLoader: the dataset is empty"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(data::DataLoader(data::Dataset{}, {4}), doctest::Contains("DataLoader: the dataset's images are undefined"),
                       tg::ShapeError);
  data::Dataset mismatched = numbered(4);
  mismatched.labels.pop_back();
  CHECK_THROWS_WITH_AS(data::DataLoader(mismatched, {4}),
                       doctest::Contains("DataLoader: images (4, 1, 2, 3) hold 4 samples but there are 3 labels"),
                       tg::ShapeError);
  data::DataLoader loader(d, {3});
  CHECK_THROWS_WITH_AS(loader.batch(0), doctest::Contains("call start_epoch()"), tg::ValueError);
  loader.start_epoch();
  CHECK_THROWS_WITH_AS(loader.batch(2), doctest::Contains("DataLoader::batch: index 2 is out of range for 2 batches"),
                       tg::ValueError);
}

// ---- the real data set -------------------------------------------------------

TEST_CASE("the Debian Fashion-MNIST test set, when installed") {
  const std::string dir = data::default_fashion_mnist_dir();
  if (!fs::is_directory(dir)) {
    MESSAGE("skipped: " << dir << " is absent (apt-get install dataset-fashion-mnist)");
    return;
  }
  const data::Dataset test = data::load_mnist(dir, false, 0, data::no_normalization);
  REQUIRE(test.size() == 10000);
  CHECK(test.images.shape() == tg::Shape{10000, 1, 28, 28});
  std::array<std::size_t, 10> per_class{};
  std::size_t out_of_range = 0;
  for (std::int64_t l : test.labels) {
    if (l < 0 || l >= 10)
      ++out_of_range;
    else
      ++per_class[static_cast<std::size_t>(l)];
  }
  CHECK(out_of_range == 0);
  for (std::size_t c = 0; c < 10; ++c) CHECK(per_class[c] == 1000);
  CHECK(xt::amin(test.images.value<float>())() == 0.0f);
  CHECK(xt::amax(test.images.value<float>())() == 1.0f);
  // The default normalization gives the test set roughly zero mean, unit std.
  const data::Dataset normalized = data::load_mnist(dir, false);
  const double mean = xt::mean(normalized.images.value<float>())();
  const double stddev = xt::stddev(normalized.images.value<float>())();
  CHECK(std::abs(mean) < 0.02);
  CHECK(std::abs(stddev - 1.0) < 0.02);

  const data::Dataset head = data::load_mnist(dir, false, 100);
  CHECK(head.size() == 100);
  CHECK(std::equal(head.labels.begin(), head.labels.end(), test.labels.begin()));
}
