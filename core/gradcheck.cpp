#include "gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <ostream>
#include <sstream>

#include "autograd.hpp"

namespace tg {

namespace {

using DFunctions = std::function<std::vector<DTensor>(const std::vector<DTensor>&)>;

// <outputs, directions>, summed over every output.
double project(const std::vector<DTensor>& outputs, const std::vector<DTensor>& directions) {
  double s = 0.0;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const double* y = outputs[k].data();
    const double* v = directions[k].data();
    for (std::size_t i = 0, n = outputs[k].numel(); i < n; ++i) s += y[i] * v[i];
  }
  return s;
}

GradcheckReport check(const char* name, const DFunctions& f, const std::vector<DTensor>& inputs,
                      const GradcheckOptions& opt) {
  if (!(opt.eps > 0)) throw ValueError(std::string(name) + ": eps must be positive");
  std::vector<DTensor> checked;
  std::vector<std::size_t> position;  // index of each checked input among all inputs
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) throw ValueError(std::string(name) + ": input " + std::to_string(i) + " is undefined");
    if (inputs[i].requires_grad()) {
      checked.push_back(inputs[i]);
      position.push_back(i);
    }
  }
  if (checked.empty()) throw ValueError(std::string(name) + ": no input requires grad");

  std::vector<DTensor> outputs = f(inputs);
  Generator gen(opt.seed);
  std::vector<DTensor> directions;
  for (const auto& y : outputs) directions.push_back(randn<double>(y.shape(), gen));
  // Outputs that do not depend on any checked input contribute nothing.
  std::vector<DTensor> roots, seeds;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    if (outputs[k].requires_grad()) {
      roots.push_back(outputs[k]);
      seeds.push_back(directions[k]);
    }
  }
  std::vector<DTensor> analytic(checked.size());
  if (!roots.empty()) analytic = grad(roots, checked, seeds);
  outputs.clear();
  roots.clear();

  GradcheckReport report;
  report.passed = true;
  double worst_ratio = -1.0;
  bool all_zero = true;
  for (std::size_t c = 0; c < checked.size(); ++c) {
    DTensor x = checked[c];
    double* xs = x.data();
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
        plus = project(f(inputs), directions);
        xs[j] = original - opt.eps;
        minus = project(f(inputs), directions);
      }
      const double numeric = (plus - minus) / (2 * opt.eps);
      const double a = analytic[c].defined() ? analytic[c].data()[j] : 0.0;
      const double error = std::abs(a - numeric);
      const double tolerance = opt.atol + opt.rtol * std::abs(numeric);
      if (std::abs(a) > opt.atol || std::abs(numeric) > opt.atol) all_zero = false;
      report.max_abs_error = std::max(report.max_abs_error, error);
      ++report.checked;
      if (error / tolerance > worst_ratio) {
        worst_ratio = error / tolerance;
        report.input = position[c];
        report.flat_index = j;
        report.analytic = a;
        report.numeric = numeric;
      }
    }
  }
  std::ostringstream msg;
  if (worst_ratio > 1.0) {
    report.passed = false;
    msg << name << " failed: input " << report.input << ", element " << report.flat_index
        << ": analytic " << report.analytic << ", numeric " << report.numeric << " (|diff| "
        << std::abs(report.analytic - report.numeric) << " > atol " << opt.atol << " + rtol "
        << opt.rtol << " * |numeric|)";
  } else if (all_zero && !opt.allow_zero_gradient) {
    report.passed = false;
    msg << name << " failed: every analytic and numeric gradient is zero (" << report.checked
        << " elements); if that is expected, set allow_zero_gradient";
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

GradcheckReport gradcheck(const DFunction& f, const std::vector<DTensor>& inputs,
                          const GradcheckOptions& options) {
  return check("gradcheck", [&](const std::vector<DTensor>& in) { return std::vector<DTensor>{f(in)}; },
               inputs, options);
}

GradcheckReport gradcheck(const DFunction& f, const std::vector<DTensor>& inputs, double eps,
                          double atol, double rtol) {
  return gradcheck(f, inputs, GradcheckOptions{eps, atol, rtol});
}

GradcheckReport gradgradcheck(const DFunction& f, const std::vector<DTensor>& inputs,
                              const GradcheckOptions& options) {
  // The checked function takes the inputs plus a direction v for the output
  // and returns the first-order gradients d<f(x), v>/dx, built with create_graph.
  if (std::none_of(inputs.begin(), inputs.end(), [](const DTensor& x) { return x.requires_grad(); }))
    throw ValueError("gradgradcheck: no input requires grad");
  DTensor y;
  {
    NoGradGuard no_grad;
    y = f(inputs);
  }
  Generator gen(options.seed + 1);
  DTensor v = randn<double>(y.shape(), gen);
  v.requires_grad_();
  std::vector<DTensor> extended(inputs);
  extended.push_back(v);

  auto first_order = [&](const std::vector<DTensor>& in) {
    GradModeGuard grad_on(true);
    std::vector<DTensor> xs;
    for (std::size_t i = 0; i + 1 < in.size(); ++i)
      if (in[i].requires_grad()) xs.push_back(in[i]);
    const std::vector<DTensor> args(in.begin(), in.end() - 1);
    std::vector<DTensor> grads = grad({f(args)}, xs, {in.back()}, /*retain_graph=*/true,
                                      /*create_graph=*/true);
    for (std::size_t i = 0; i < grads.size(); ++i)
      if (!grads[i].defined()) grads[i] = zeros<double>(xs[i].shape());
    return grads;
  };
  return check("gradgradcheck", first_order, extended, options);
}

GradcheckReport gradgradcheck(const DFunction& f, const std::vector<DTensor>& inputs, double eps,
                              double atol, double rtol) {
  return gradgradcheck(f, inputs, GradcheckOptions{eps, atol, rtol});
}

}  // namespace tg
