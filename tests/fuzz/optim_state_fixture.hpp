// The optimizer whose state file fuzz_optim_state reads, and that
// make_optim_seeds uses to write the seed corpus: Adam over a (3, 2) weight
// in two groups (one without weight decay) and a float64 bias, with a cosine
// schedule. Both programs build it the same way, so a seed fits it exactly.
#pragma once

#include <memory>

#include <tapegrad/tapegrad.hpp>

namespace fuzz {

struct OptimizerFixture {
  tg::Tensor weight = tg::ones({3, 2}, tg::requires_grad());
  tg::Tensor bias = tg::zeros({3}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::optim::Adam adam{{tg::optim::ParamGroup({weight}), tg::optim::ParamGroup({bias}, {{"weight_decay", 0.0}})},
                       1e-2};
  tg::optim::CosineAnnealingLR schedule{adam, 10};

  // One update with fixed gradients.
  void step() {
    tg::sum(tg::sum(weight * weight) + tg::sum(bias * 2.0)).backward();
    adam.step();
    adam.zero_grad();
    schedule.step();
  }
};

}  // namespace fuzz
