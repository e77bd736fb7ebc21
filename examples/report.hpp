// Pictures and numbers a training run leaves behind: the first layer's
// filters as a PNG grid, the loss and accuracy curves as an SVG chart.
#pragma once

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

// Writes filter banks of shape (C_out, 1, kh, kw) as one grayscale PNG: one
// row of tiles per bank (e.g. before and after training), each filter
// enlarged `scale` times. Every bank shares one gray scale, symmetric around
// zero (mid-gray), so the rows can be compared. Returns {width, height}.
std::pair<int, int> write_filter_grid(const std::string& path, const std::vector<xt::xarray<float>>& banks,
                                      int scale = 8);

struct Series {
  std::string name;
  std::string color;                       // an SVG color, e.g. "#1f77b4"
  std::vector<std::pair<double, double>> points;  // (x, y)
};

// A line chart with axes, ticks and a legend, as a standalone SVG file.
void write_chart_svg(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::vector<Series>& series, int width = 760, int height = 380);

}  // namespace report
