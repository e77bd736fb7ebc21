// Shared by the optimizers, schedulers and state files (not installed API).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "../core/error.hpp"

namespace tg::optim::detail {

// The shortest decimal that reads back as v: 0.1 prints as "0.1", not
// 0.10000000000000001; saved states and messages both use it.
inline std::string shortest_decimal(double v) {
  for (int precision = 6;; ++precision) {
    std::ostringstream s;
    s.precision(precision);
    s << v;
    if (precision >= 17 || std::isnan(v) || std::strtod(s.str().c_str(), nullptr) == v) return s.str();
  }
}

// ValueError "<owner>: invalid <what> <value> (must be <rule>)" unless ok.
inline void check_value(const std::string& owner, bool ok, const char* what, double value, const char* rule) {
  if (!ok) throw ValueError(owner + ": invalid " + what + " " + shortest_decimal(value) + " (must be " + rule + ")");
}

inline void check_count(const std::string& owner, bool ok, const char* what, std::int64_t value, const char* rule) {
  if (!ok) throw ValueError(owner + ": invalid " + what + " " + std::to_string(value) + " (must be " + rule + ")");
}

}  // namespace tg::optim::detail
