// libFuzzer target: the optimizer-state reader. The fuzz input is written to a
// file and loaded by Optimizer::load into the fixture's Adam and schedule,
// which then take a step. A SerializeError is the expected answer to a bad
// or mismatched file (and then nothing may have changed); anything else
// escaping, a crash, a hang or a sanitizer report is a finding.
#include <cstdint>
#include <cstdlib>

#include "fuzz_common.hpp"
#include "optim_state_fixture.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = fuzz::scratch_path("optim_state");
  fuzz::write_file(path, data, size);
  fuzz::OptimizerFixture fixture;
  fixture.step();
  const double lr_before = fixture.adam.lr(0);
  try {
    fixture.adam.load(path, fixture.schedule);
  } catch (const tg::io::SerializeError&) {
    // Refused: the optimizer must be as it was.
    if (fixture.adam.lr(0) != lr_before) std::abort();
    return 0;
  }
  fixture.step();  // a state that loaded must be usable
  return 0;
}
