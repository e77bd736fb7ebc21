// Everything in tg::optim: the optimizers, their schedulers and gradient
// clipping. The shared machinery (parameter groups, state, saving and
// loading) is documented in optimizer.hpp.
#pragma once

#include "clip.hpp"
#include "optimizer.hpp"
#include "optimizers.hpp"
#include "schedulers.hpp"
