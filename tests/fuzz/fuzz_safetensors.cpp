// libFuzzer target: the safetensors reader. The fuzz input is written to a
// file, then read by tg::io::load_tensors (and every readable tensor fetched
// with TensorFile::get) and loaded by tg::nn::load into a small module with
// float and int64 tensors. A SerializeError is the expected answer to a bad
// or mismatched file; anything else escaping, a crash, a hang or a sanitizer
// report is a finding.
#include <cstdint>
#include <cstdlib>
#include <memory>

#include <tapegrad/io/safetensors.hpp>
#include <tapegrad/tapegrad.hpp>

#include "fuzz_common.hpp"

namespace {

// "0.weight" (3, 2), "0.bias" (3), "1.weight", "1.bias", "1.running_mean",
// "1.running_var" (3) and "1.num_batches_tracked" (int64, shape ()).
tg::nn::SequentialImpl& module() {
  static tg::Generator gen(1);
  static tg::nn::Sequential net(tg::nn::Linear(2, 3, gen), tg::nn::BatchNorm2d(3));
  return *net;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratch_path("safetensors");
  fuzz::write_file(path, data, size);
  try {
    const tg::io::TensorFile file = tg::io::load_tensors(path);
    for (const tg::io::StoredTensor& t : file.tensors) {
      if (!t.loaded()) continue;
      const tg::Tensor value = file.get(t.name);
      if (value.shape() != t.shape) std::abort();
    }
  } catch (const tg::io::SerializeError&) {
  }
  try {
    tg::nn::load(module(), path);
  } catch (const tg::io::SerializeError&) {
  }
  return 0;
}
