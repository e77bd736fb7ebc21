// Finite-difference gradient checks, in double precision.
//
// gradcheck compares the tape's gradient of f with central differences
// (f(x + eps) - f(x - eps)) / 2eps for every element of every input that
// requires grad. A non-scalar output is projected onto a fixed random
// direction v, so the checked scalar is <f(x), v>: a gradient that is zero
// where it should not be cannot pass by cancelling out. When both gradients
// are exactly zero everywhere the check fails too, unless the caller expects
// that. A NaN or infinite gradient, analytic or numeric, always fails.
//
// The checked inputs must be float64; a float32 model is checked by
// converting it (module.to(kFloat64)) or its inputs (x.to(kFloat64)).
//
// gradgradcheck does the same for the backward pass itself: it checks the
// gradients of x, v -> d<f(x), v>/dx, recorded with create_graph, with
// respect to the inputs and to v.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace tg {

struct GradcheckReport {
  bool passed = false;
  std::string message;  // why it failed, naming the worst element
  // The worst element (largest error relative to its tolerance):
  std::size_t input = 0;       // index into the inputs
  std::size_t flat_index = 0;  // row-major index into that input
  Shape index;                 // the same as a multi-index
  double analytic = 0.0;
  double numeric = 0.0;
  double max_abs_error = 0.0;  // over every checked element
  std::size_t checked = 0;     // number of elements compared

  explicit operator bool() const { return passed; }
};

std::ostream& operator<<(std::ostream& os, const GradcheckReport& report);

using Function = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  bool allow_zero_gradient = false;  // pass when every gradient is zero
  std::uint64_t seed = 0;            // of the random projection directions
};

GradcheckReport gradcheck(const Function& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options);
GradcheckReport gradcheck(const Function& f, const std::vector<Tensor>& inputs,
                          double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);

GradcheckReport gradgradcheck(const Function& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options);
GradcheckReport gradgradcheck(const Function& f, const std::vector<Tensor>& inputs,
                              double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);

}  // namespace tg
