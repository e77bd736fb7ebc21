// A table of differentiable cases checked by finite differences on random
// shapes: the helpers shared by test_ops.cpp and test_losses.cpp.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

#include <tapegrad/core/gradcheck.hpp>
#include <tapegrad/core/random.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/core/tensor.hpp>

using Inputs = std::vector<tg::Tensor>;

namespace {

// ---- random shapes and values ------------------------------------------------

inline tg::Shape random_shape(tg::Generator& gen, std::size_t min_dims, std::size_t max_dims, std::size_t max_size = 4) {
  tg::Shape s(min_dims + gen.below(max_dims - min_dims + 1));
  for (auto& d : s) d = 1 + gen.below(max_size);
  return s;
}

// A shape that broadcasts against `s`: some leading axes dropped, some set to 1.
inline tg::Shape broadcastable_to(const tg::Shape& s, tg::Generator& gen) {
  tg::Shape t(s.begin() + std::ptrdiff_t(gen.below(s.size() + 1)), s.end());
  for (auto& d : t)
    if (gen.below(3) == 0) d = 1;
  return t;
}

// How a case's inputs are drawn.
enum class Domain {
  any,          // uniform in [-1, 1]
  positive,     // uniform in [0.5, 2]
  away_from_0,  // |x| in [0.1, 1]: no kink of relu/abs inside a difference step;
                // even elements in [0.1, 0.4], so relu and clamp pass some gradient
  probability,  // uniform in [0.1, 0.9]
  wide,         // uniform in [-4, 4], |x| >= 0.05: both sides of a kink at ±1 and beyond
};

inline tg::Tensor random_input(const tg::Shape& shape, Domain domain, tg::Generator& gen) {
  xt::xarray<double> v(shape);
  for (std::size_t i = 0; i < v.size(); ++i) {
    double& e = v.data()[i];
    switch (domain) {
      case Domain::any: e = gen.uniform(-1, 1); break;
      case Domain::positive: e = gen.uniform(0.5, 2); break;
      case Domain::away_from_0: e = i % 2 ? (gen.below(2) ? 1 : -1) * gen.uniform(0.1, 1) : gen.uniform(0.1, 0.4); break;
      case Domain::probability: e = gen.uniform(0.1, 0.9); break;
      case Domain::wide: e = (gen.below(2) ? 1 : -1) * gen.uniform(0.05, 4); break;
    }
  }
  return tg::Tensor(std::move(v), true);
}

// ---- the table of cases ---------------------------------------------------------

struct OpCase {
  std::string name;
  std::function<std::vector<tg::Shape>(tg::Generator&)> shapes;
  std::function<tg::Tensor(const Inputs&)> f;
  Domain domain = Domain::any;
  std::vector<Domain> domains = {};  // one per input when inputs differ; `domain` for all when empty
};

using Check = std::function<tg::GradcheckReport(const tg::Function&, const Inputs&)>;

// Runs `check` (gradcheck or gradgradcheck) on every case for `draws` random shapes.
inline void check_cases(const std::vector<OpCase>& cases, const Check& check, std::uint64_t seed, int draws) {
  for (const auto& c : cases) {
    for (int draw = 0; draw < draws; ++draw) {
      tg::Generator gen(seed + 1000 * std::uint64_t(draw) + c.name.size());
      Inputs inputs;
      const std::vector<tg::Shape> shapes = c.shapes(gen);
      for (std::size_t i = 0; i < shapes.size(); ++i)
        inputs.push_back(random_input(shapes[i], i < c.domains.size() ? c.domains[i] : c.domain, gen));
      CAPTURE(c.name);
      CAPTURE(draw);
      const tg::GradcheckReport report = check(c.f, inputs);
      INFO(report.message);
      CHECK(report.passed);
    }
  }
  tg::tape().clear();
}

}  // namespace
