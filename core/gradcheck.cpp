#include "gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <ostream>
#include <sstream>

#include "autograd.hpp"

namespace tg {

namespace {

// The multi-index of row-major element `flat` in `shape`.
Shape unravel(std::size_t flat, const Shape& shape) {
  Shape index(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

using Functions = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

// <outputs, directions>, summed over every output.
double project(const char* name, const std::vector<Tensor>& outputs, const std::vector<Tensor>& directions) {
  double s = 0.0;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    TG_CHECK(outputs[k].dtype() == kFloat64, DtypeError,
             name << ": output " << k << " is " << dtype_name(outputs[k].dtype())
                  << "; finite differences need float64 (convert the inputs or the model with to(kFloat64))");
    const Tensor y_k = outputs[k].contiguous();
    const double* y = y_k.data<double>();
    const double* v = directions[k].data<double>();
    for (std::size_t i = 0, n = outputs[k].numel(); i < n; ++i) s += y[i] * v[i];
  }
  return s;
}

GradcheckReport check(const char* name, const Functions& f, const std::vector<Tensor>& inputs,
                      const GradcheckOptions& opt) {
  if (!(opt.eps > 0)) throw ValueError(std::string(name) + ": eps must be positive");
  std::vector<Tensor> checked;
  std::vector<std::size_t> position;  // index of each checked input among all inputs
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) throw ValueError(std::string(name) + ": input " + std::to_string(i) + " is undefined");
    if (inputs[i].requires_grad()) {
      TG_CHECK(inputs[i].dtype() == kFloat64 && inputs[i].is_contiguous(), DtypeError,
               name << ": input " << i << " is a " << dtype_name(inputs[i].dtype())
                    << (inputs[i].is_contiguous() ? "" : " strided view")
                    << "; finite differences need contiguous float64 inputs (use to(kFloat64))");
      checked.push_back(inputs[i]);
      position.push_back(i);
    }
  }
  if (checked.empty()) throw ValueError(std::string(name) + ": no input requires grad");

  std::vector<Tensor> outputs = f(inputs);
  for (std::size_t k = 0; k < outputs.size(); ++k)
    TG_CHECK(outputs[k].defined() && outputs[k].dtype() == kFloat64, DtypeError,
             name << ": output " << k << " is "
                  << (outputs[k].defined() ? dtype_name(outputs[k].dtype()) : "an undefined tensor")
                  << "; finite differences need float64 (convert the inputs or the model with to(kFloat64))");
  Generator gen(opt.seed);
  std::vector<Tensor> directions;
  for (const auto& y : outputs) directions.push_back(randn(y.shape(), gen, 0.0, 1.0, kFloat64));
  // Outputs that do not depend on any checked input contribute nothing.
  std::vector<Tensor> roots, seeds;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    if (outputs[k].requires_grad()) {
      roots.push_back(outputs[k]);
      seeds.push_back(directions[k]);
    }
  }
  std::vector<Tensor> analytic(checked.size());
  if (!roots.empty()) analytic = grad(roots, checked, seeds);
  outputs.clear();
  roots.clear();

  GradcheckReport report;
  report.passed = true;
  double worst_ratio = -1.0;
  bool all_zero = true;
  for (std::size_t c = 0; c < checked.size(); ++c) {
    Tensor x = checked[c];
    const Tensor dx = analytic[c].defined() ? analytic[c].contiguous() : Tensor();
    double* xs;
    {
      NoGradGuard no_grad;
      xs = x.mutable_data<double>();
    }
    for (std::size_t j = 0, n = x.numel(); j < n; ++j) {
      const double original = xs[j];
      double plus, minus;
      {
        NoGradGuard no_grad;
        struct Restore {  // even when f throws
          double* element;
          double value;
          ~Restore() { *element = value; }
        } restore{xs + j, original};
        xs[j] = original + opt.eps;
        plus = project(name, f(inputs), directions);
        xs[j] = original - opt.eps;
        minus = project(name, f(inputs), directions);
      }
      const double numeric = (plus - minus) / (2 * opt.eps);
      const double a = dx.defined() ? dx.data<double>()[j] : 0.0;
      const double error = std::abs(a - numeric);
      const double tolerance = opt.atol + opt.rtol * std::abs(numeric);
      // A NaN or an infinity fails outright: comparisons with NaN are false,
      // so it would otherwise never look worse than a finite error.
      const bool finite = std::isfinite(a) && std::isfinite(numeric);
      const double ratio = finite ? error / tolerance : std::numeric_limits<double>::infinity();
      if (a != 0.0 || std::abs(numeric) > opt.atol) all_zero = false;
      if (finite) report.max_abs_error = std::max(report.max_abs_error, error);
      ++report.checked;
      if (ratio > worst_ratio || (!finite && worst_ratio != ratio)) {
        worst_ratio = ratio;
        report.input = position[c];
        report.flat_index = j;
        report.index = unravel(j, x.shape());
        report.analytic = a;
        report.numeric = numeric;
      }
    }
  }
  std::ostringstream msg;
  if (worst_ratio > 1.0) {
    report.passed = false;
    msg << name << " failed: input " << report.input << ", element " << report.flat_index << " (index "
        << shape_str(report.index) << ")"
        << ": analytic " << report.analytic << ", numeric " << report.numeric;
    if (!std::isfinite(report.analytic) || !std::isfinite(report.numeric))
      msg << " (not finite)";
    else
      msg << " (|diff| "
        << std::abs(report.analytic - report.numeric) << " > atol " << opt.atol << " + rtol "
        << opt.rtol << " * |numeric|)";
  } else if (all_zero && !opt.allow_zero_gradient) {
    report.passed = false;
    msg << name << " failed: every analytic gradient is zero and every numeric one within atol ("
        << report.checked << " elements); if that is expected, set allow_zero_gradient";
  } else {
    msg << name << " passed: " << report.checked << " elements, max |analytic - numeric| "
        << report.max_abs_error;
  }
  report.message = msg.str();
  return report;
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const GradcheckReport& report) {
  return os << report.message;
}

GradcheckReport gradcheck(const Function& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  return check("gradcheck", [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in)}; },
               inputs, options);
}

GradcheckReport gradcheck(const Function& f, const std::vector<Tensor>& inputs, double eps,
                          double atol, double rtol) {
  return gradcheck(f, inputs, GradcheckOptions{eps, atol, rtol});
}

GradcheckReport gradgradcheck(const Function& f, const std::vector<Tensor>& inputs,
                              const GradcheckOptions& options) {
  // The checked function takes the inputs plus a direction v for the output
  // and returns the first-order gradients d<f(x), v>/dx, built with create_graph.
  if (std::none_of(inputs.begin(), inputs.end(), [](const Tensor& x) { return x.requires_grad(); }))
    throw ValueError("gradgradcheck: no input requires grad");
  Tensor y;
  {
    NoGradGuard no_grad;
    y = f(inputs);
  }
  Generator gen(options.seed + 1);
  Tensor v = randn(y.shape(), gen, 0.0, 1.0, kFloat64);
  v.requires_grad_();
  std::vector<Tensor> extended(inputs);
  extended.push_back(v);

  auto first_order = [&](const std::vector<Tensor>& in) {
    GradModeGuard grad_on(true);
    std::vector<Tensor> xs;
    for (std::size_t i = 0; i + 1 < in.size(); ++i)
      if (in[i].requires_grad()) xs.push_back(in[i]);
    const std::vector<Tensor> args(in.begin(), in.end() - 1);
    std::vector<Tensor> grads = grad({f(args)}, xs, {in.back()}, /*retain_graph=*/true,
                                      /*create_graph=*/true);
    for (std::size_t i = 0; i < grads.size(); ++i)
      if (!grads[i].defined()) grads[i] = zeros(xs[i].shape(), kFloat64);
    return grads;
  };
  return check("gradgradcheck", first_order, extended, options);
}

GradcheckReport gradgradcheck(const Function& f, const std::vector<Tensor>& inputs, double eps,
                              double atol, double rtol) {
  return gradgradcheck(f, inputs, GradcheckOptions{eps, atol, rtol});
}

}  // namespace tg
