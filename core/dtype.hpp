// Element types. A tensor's dtype is a runtime property, as in PyTorch; the
// kernels are templates over the element type, chosen once per op by
// visit_dtype.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "error.hpp"

namespace tg {

enum class Dtype : std::uint8_t { Float32, Float64, Int64, Bool };

inline constexpr Dtype kFloat32 = Dtype::Float32;
inline constexpr Dtype kFloat64 = Dtype::Float64;
inline constexpr Dtype kInt64 = Dtype::Int64;
inline constexpr Dtype kBool = Dtype::Bool;

// "float32", "float64", "int64", "bool".
const char* dtype_name(Dtype dtype);
std::ostream& operator<<(std::ostream& os, Dtype dtype);

std::size_t element_size(Dtype dtype);
inline bool is_floating(Dtype d) { return d == kFloat32 || d == kFloat64; }

// The dtype of a C++ element type; int and int64 both map to kInt64.
template <class T>
constexpr Dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) return kFloat32;
  else if constexpr (std::is_same_v<T, double>) return kFloat64;
  else if constexpr (std::is_same_v<T, bool>) return kBool;
  else {
    static_assert(std::is_integral_v<T>, "tapegrad tensors hold float, double, int64 or bool");
    return kInt64;
  }
}

// PyTorch's promotion of two tensors' dtypes: bool < int64 < float32 < float64.
inline Dtype promote_types(Dtype a, Dtype b) {
  auto rank = [](Dtype d) { return d == kBool ? 0 : d == kInt64 ? 1 : d == kFloat32 ? 2 : 3; };
  return rank(a) >= rank(b) ? a : b;
}

// Names the element type inside a generic lambda: [](auto tag) { using T = typename decltype(tag)::type; }
template <class T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<T>{}) with T the element type of `dtype`.
template <class F>
decltype(auto) visit_dtype(Dtype dtype, F&& f) {
  switch (dtype) {
    case kFloat32: return f(TypeTag<float>{});
    case kFloat64: return f(TypeTag<double>{});
    case kInt64: return f(TypeTag<std::int64_t>{});
    case kBool: break;
  }
  return f(TypeTag<bool>{});
}

// The same for ops defined on floating dtypes only; others throw a DtypeError
// naming `op`.
template <class F>
decltype(auto) visit_floating(const char* op, Dtype dtype, F&& f) {
  if (dtype == kFloat64) return f(TypeTag<double>{});
  if (dtype != kFloat32)
    throw DtypeError(std::string(op) + ": expected a float32 or float64 tensor, got " + dtype_name(dtype));
  return f(TypeTag<float>{});
}

// The same for arithmetic: float32, float64 and int64 (not bool).
template <class F>
decltype(auto) visit_numeric(const char* op, Dtype dtype, F&& f) {
  if (dtype == kFloat64) return f(TypeTag<double>{});
  if (dtype == kInt64) return f(TypeTag<std::int64_t>{});
  if (dtype != kFloat32) throw DtypeError(std::string(op) + ": not defined for bool tensors");
  return f(TypeTag<float>{});
}

}  // namespace tg
