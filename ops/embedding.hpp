// Looking up rows of a table by integer index, as torch.nn.functional.embedding.
#pragma once

#include <cstdint>
#include <optional>

#include "../core/tensor.hpp"

namespace tg {

// indices: int64 of any shape, values in [0, V); weight: (V, D) -> indices'
// shape + (D,), row indices[...] of weight at each position. The gradient
// reaches only the rows used (a row used twice gets both contributions).
// padding_idx (negative counts from V, as torch): that row's value is read
// as usual but passes no gradient, so training leaves it as it is.
Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<std::int64_t> padding_idx = std::nullopt);

}  // namespace tg
