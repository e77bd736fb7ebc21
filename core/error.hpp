// Exceptions thrown by tapegrad. Every message starts with the op (or file)
// that failed and names the shapes or values involved.
#pragma once

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tg {

using Shape = std::vector<std::size_t>;

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

}  // namespace tg
