// Exceptions thrown by tapegrad, and the size checks every op shares. Every
// message starts with the op (or file) that failed and names the shapes or
// values involved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tg {

// A tensor's sizes, outermost first. Its own type (not a bare std::vector) so
// that `std::cout << x.shape()` finds the printer below.
struct Shape : std::vector<std::size_t> {
  using std::vector<std::size_t>::vector;
  Shape() = default;
  Shape(const std::vector<std::size_t>& v) : std::vector<std::size_t>(v) {}  // NOLINT: implicit on purpose
};

// Base of every tapegrad exception.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Incompatible shapes: broadcasting, matmul inner dimensions, reshape sizes.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// An axis outside [-ndim, ndim) or repeated.
class AxisError : public Error {
 public:
  using Error::Error;
};

// Misuse of autograd: backward on a non-scalar without a seed, through a freed
// graph, on a tensor that does not require grad, on an undefined tensor.
class AutogradError : public Error {
 public:
  using Error::Error;
};

// A bad argument value that is not a shape: a label out of range, eps <= 0.
class ValueError : public Error {
 public:
  using Error::Error;
};

// An element type an op does not take: log of an int64 tensor, a bool matmul.
class DtypeError : public Error {
 public:
  using Error::Error;
};

// A NaN or an infinity found by anomaly mode (AnomalyGuard, autograd.hpp).
class AnomalyError : public Error {
 public:
  using Error::Error;
};

// "(2, 3)"; a 0-d shape prints as "()".
template <class ShapeLike>
std::string shape_str(const ShapeLike& shape) {
  std::ostringstream s;
  s << '(';
  std::size_t i = 0;
  for (auto d : shape) s << (i++ ? ", " : "") << d;
  if (i == 1) s << ',';
  s << ')';
  return s.str();
}

std::ostream& operator<<(std::ostream& os, const Shape& shape);

// The largest tensor an op may create, in elements (2^40: 4 TiB of floats).
// Anything larger is a mistake (a negative size cast to unsigned, an
// overflowing product) and is refused before any allocation.
inline constexpr std::size_t kMaxElements = std::size_t(1) << 40;

// The element count of `shape`, or a ShapeError naming `op` when the product
// overflows or exceeds kMaxElements.
std::size_t checked_numel(const char* op, const Shape& shape);

// A size given as a signed number (a stride, a padding) as an unsigned one;
// negative values throw a ValueError naming `op` and `what`.
std::size_t non_negative(const char* op, const char* what, std::int64_t value);

}  // namespace tg

// Throws ErrorType with a streamed message when cond is false:
//   TG_CHECK(k > 0, ValueError, "topk: k must be positive, got " << k);
#define TG_CHECK(cond, ErrorType, message)    \
  do {                                        \
    if (!(cond)) {                            \
      std::ostringstream tg_check_message_;   \
      tg_check_message_ << message;           \
      throw ::tg::ErrorType(tg_check_message_.str()); \
    }                                         \
  } while (false)
