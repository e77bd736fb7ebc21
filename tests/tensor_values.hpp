// Reading a tensor's elements in tests, whatever its dtype and strides.
#pragma once

#include <vector>

#include <tapegrad/core/tensor.hpp>

// Every element of t in row-major order, as doubles.
inline std::vector<double> values_of(const tg::Tensor& t) {
  std::vector<double> out;
  tg::visit_dtype(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (auto v : t.to_xarray<T>()) out.push_back(double(v));
  });
  return out;
}
