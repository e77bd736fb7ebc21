// Writes fuzz_optim_state's seed corpus: the fixture's state after 0, 1 and 3
// steps, with and without its schedule. Usage: make_optim_seeds OUT_DIR
#include <iostream>
#include <string>

#include "optim_state_fixture.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_optim_seeds OUT_DIR\n";
    return 2;
  }
  const std::string out = argv[1];
  for (int steps : {0, 1, 3}) {
    fuzz::OptimizerFixture fixture;
    for (int i = 0; i < steps; ++i) fixture.step();
    fixture.adam.save(out + "/adam_" + std::to_string(steps) + "_steps", fixture.schedule);
    fixture.adam.save(out + "/adam_" + std::to_string(steps) + "_steps_no_schedule");
  }
  return 0;
}
