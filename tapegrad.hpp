// tapegrad: reverse-mode automatic differentiation on xtensor.
// #include <tapegrad/tapegrad.hpp> brings in the whole public API.
#pragma once

#include <xtensor/xio.hpp>  // printing of values

#include "core/autograd.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/gradcheck.hpp"
#include "core/random.hpp"
#include "core/storage.hpp"
#include "core/tape.hpp"
#include "core/tensor.hpp"
#include "ops/activation.hpp"
#include "ops/conv.hpp"
#include "ops/elementwise.hpp"
#include "ops/embedding.hpp"
#include "ops/linalg.hpp"
#include "ops/loss.hpp"
#include "ops/normalization.hpp"
#include "ops/reduce.hpp"
#include "ops/resample.hpp"
#include "ops/shape.hpp"
#include "io/safetensors.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"
#include "nn/serialize.hpp"
#include "optim/optim.hpp"
#include "data/data.hpp"
