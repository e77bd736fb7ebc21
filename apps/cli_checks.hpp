// Option checks shared by tapegrad-train and tapegrad-eval, on top of CLI11.
//
// CLI11 converts "-5" to an unsigned option with strtoull, which wraps it to
// a huge value instead of failing, and its Range validator lets NaN through
// (every comparison with NaN is false) and prints its bounds with
// std::to_string ("0.000000" for 1e-9). These validators reject both and
// print numbers as they were meant. A failed check reads, for example,
//   --limit: must be a non-negative integer, got -5
//   --lr: must be a finite number in [1e-09, 10], got nan
#pragma once

#include <cctype>
#include <cstdio>
#include <string>
#include <type_traits>

#include <CLI/CLI.hpp>

namespace cli {

// A bound as a person would write it: 1e-09, 10, 60000.
template <typename T>
std::string readable(T value) {
  if constexpr (std::is_floating_point_v<T>) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", double(value));
    return text;
  } else {
    return std::to_string(value);
  }
}

// Whether the text, after leading blanks, starts with a minus sign: strtoull
// accepts " -5" too.
inline bool starts_negative(const std::string& text) {
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) return c == '-';
  return false;
}

// For options of an unsigned type without a range of their own (--limit, --seed).
inline CLI::Validator non_negative() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        return starts_negative(input) ? "must be a non-negative integer, got " + input : "";
      },
      "NONNEGATIVE");
}

// Checks that the value is a number of type T in [min, max], not negative for
// an unsigned T. Written as "min <= value <= max" so that NaN fails, and
// finite bounds keep out the infinities.
template <typename T>
CLI::Validator in_range(T min, T max) {
  const std::string bounds = "[" + readable(min) + ", " + readable(max) + "]";
  const std::string what = (std::is_floating_point_v<T> ? "a finite number in " : "an integer in ") + bounds;
  return CLI::Validator(
      [min, max, what](std::string& input) -> std::string {
        T value{};
        const bool ok = !(std::is_unsigned_v<T> && starts_negative(input)) &&
                        CLI::detail::lexical_cast(input, value) && min <= value && value <= max;
        return ok ? "" : "must be " + what + ", got " + input;
      },
      "in " + bounds);
}

}  // namespace cli
