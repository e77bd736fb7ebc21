#include "embedding.hpp"

#include <string>

#include "../core/error.hpp"
#include "elementwise.hpp"
#include "shape.hpp"

namespace tg {

Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<std::int64_t> padding_idx) {
  TG_CHECK(indices.defined() && weight.defined(), ValueError, "embedding: indices and weight must be defined tensors");
  TG_CHECK(indices.dtype() == kInt64, DtypeError,
           "embedding: indices must be int64, got " << dtype_name(indices.dtype()) << " of shape "
                                                    << shape_str(indices.shape()));
  if (weight.dim() != 2)
    throw ShapeError("embedding: weight must have shape (num_embeddings, embedding_dim), got " +
                     shape_str(weight.shape()));
  const std::size_t rows = weight.shape()[0], dim = weight.shape()[1];
  const Tensor flat = reshape(indices.contiguous(), Shape{indices.numel()});
  const std::int64_t* idx = flat.data<std::int64_t>();
  for (std::size_t i = 0; i < flat.numel(); ++i)
    TG_CHECK(idx[i] >= 0 && std::uint64_t(idx[i]) < rows, ValueError,
             "embedding: index " << idx[i] << " is out of range for " << rows << " embeddings (weight "
                                 << shape_str(weight.shape()) << ", indices " << shape_str(indices.shape()) << ")");
  Tensor table = weight;
  if (padding_idx) {
    const std::int64_t p = *padding_idx < 0 ? *padding_idx + std::int64_t(rows) : *padding_idx;
    TG_CHECK(p >= 0 && std::uint64_t(p) < rows, ValueError,
             "embedding: padding_idx " << *padding_idx << " is out of range for " << rows << " embeddings");
    // The padding row read from a detached copy: same value, no gradient.
    Tensor is_pad = zeros(Shape{rows, 1}, kBool);
    is_pad.mutable_data<bool>()[p] = true;
    table = where(is_pad, weight.detach(), weight);
  }
  Shape out = indices.shape();
  out.push_back(dim);
  return reshape(index_select(table, 0, flat), out);
}

}  // namespace tg
