// libFuzzer target: tg::data::read_idx on a file holding the fuzz input as it
// is, so plain IDX files and (corrupt) gzip streams are both explored. A
// DataError is the expected answer to a bad file; anything else escaping, a
// crash, a hang or a sanitizer report is a finding.
#include <cstdint>
#include <cstdlib>

#include <tapegrad/data/data.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratch_path("idx");
  fuzz::write_file(path, data, size);
  try {
    const tg::data::IdxArray array = tg::data::read_idx(path);
    // Whatever is accepted holds exactly what its shape declares.
    std::size_t numel = 1;
    for (std::size_t s : array.shape) numel *= s;
    if (array.shape.empty() || array.shape.size() > 4 || array.data.size() != numel) std::abort();
  } catch (const tg::data::DataError&) {
  }
  return 0;
}
