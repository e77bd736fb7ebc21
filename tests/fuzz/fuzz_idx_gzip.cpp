// libFuzzer target: the fuzz input is an IDX file's contents, which the
// target gzip-compresses before tg::data::read_idx reads it, so the fuzzer
// explores headers and sizes behind a valid gzip stream (fuzz_idx explores
// corrupt streams). The decompressed data must come back byte for byte.
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include <tapegrad/data/data.hpp>

#include "fuzz_common.hpp"

namespace {

// The input as one gzip member, at a level its last byte picks (the first
// is the IDX magic, zero in every useful input).
std::vector<std::uint8_t> gzip(const std::uint8_t* data, std::size_t size) {
  z_stream z{};
  const int level = size > 0 ? data[size - 1] % 10 : 6;
  if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::vector<std::uint8_t> out(deflateBound(&z, static_cast<uLong>(size)) + 32);
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = static_cast<uInt>(size);
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratch_path("idx.gz");
  const std::vector<std::uint8_t> compressed = gzip(data, size);
  fuzz::write_file(path, compressed.data(), compressed.size());
  try {
    const tg::data::IdxArray array = tg::data::read_idx(path);
    // Accepted: the header plus the data are exactly the input.
    const std::size_t header = 4 + 4 * array.shape.size();
    if (header + array.data.size() != size) std::abort();
    for (std::size_t i = 0; i < array.data.size(); ++i)
      if (array.data[i] != data[header + i]) std::abort();
  } catch (const tg::data::DataError&) {
  }
  return 0;
}
