// Pictures and numbers a training run leaves behind: the first layer's
// filters as a PNG grid, the loss and accuracy curves as an SVG chart.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <xtensor/xarray.hpp>

namespace report {

// Writes `contents` to `path`, replacing the file. Throws std::runtime_error
// naming the file and the reason when it cannot be opened (a directory in the
// way) or written in full (a full disk). Checked after close: a stream
// reports most write errors only when its buffer is flushed.
void write_file(const std::string& path, const std::string& contents);

// Where write_filter_grid put things, for tests and captions.
struct FilterGridLayout {
  int width = 0, height = 0;
  int cell = 0;  // pixels per weight (the grid lines included)
  // origin[bank][filter]: the top-left pixel of the filter's first weight
  // (inside the grid line); weight (y, x) fills the cell-1 pixels from
  // origin + (x * cell, y * cell).
  std::vector<std::vector<std::pair<int, int>>> origin;
  float extent = 0;  // the weight shown at either end of the colour map
};

// The colour of t in [-1, 1] on a diverging map: blue for negative, white
// at zero, red for positive (ColorBrewer's RdBu, reversed). Clamped.
std::array<std::uint8_t, 3> diverging_color(float t);

// Writes filter banks of shape (C_out, 1, kh, kw) as one RGB PNG a person
// can read: the banks side by side (e.g. before and after training), each
// under its label, each bank's filters in rows of 8, every weight a
// `scale`-pixel square with a grid between weights. All banks share one
// colour scale, symmetric around zero: weight w is diverging_color(w /
// extent), extent the largest |w| of all banks, and a legend at the bottom
// shows the colour bar with -extent, 0 and +extent written under it.
// Labels are drawn in a small built-in bitmap font (letters, digits, "+-.:()",
// shown in capitals).
FilterGridLayout write_filter_grid(const std::string& path, const std::vector<xt::xarray<float>>& banks,
                                   const std::vector<std::string>& labels = {}, int scale = 14);

struct Series {
  std::string name;
  std::string color;                       // an SVG color, e.g. "#1f77b4"
  std::vector<std::pair<double, double>> points;  // (x, y)
};

// A line chart with axes, ticks and a legend, as a standalone SVG file.
void write_chart_svg(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::vector<Series>& series, int width = 760, int height = 380);

}  // namespace report
