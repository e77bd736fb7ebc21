#include "report.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <stdexcept>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace report {

void write_file(const std::string& path, const std::string& contents) {
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot open " + path + " for writing: " + std::strerror(errno));
  out.write(contents.data(), std::streamsize(contents.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno ? errno : EIO));
}

std::pair<int, int> write_filter_grid(const std::string& path, const std::vector<xt::xarray<float>>& banks, int scale) {
  if (banks.empty() || banks[0].dimension() != 4)
    throw std::invalid_argument("write_filter_grid: expected banks of shape (C_out, 1, kh, kw)");
  const std::size_t count = banks[0].shape()[0], kh = banks[0].shape()[2], kw = banks[0].shape()[3];
  float extent = 1e-12f;  // one symmetric gray scale for all banks
  for (const auto& bank : banks) {
    if (bank.shape() != banks[0].shape())
      throw std::invalid_argument("write_filter_grid: all banks must have the same shape");
    extent = std::max(extent, xt::amax(xt::abs(bank))());
  }
  const int gap = 2, tile_w = int(kw) * scale, tile_h = int(kh) * scale;
  const int width = gap + int(count) * (tile_w + gap), height = gap + int(banks.size()) * (tile_h + gap);
  std::vector<std::uint8_t> pixels(std::size_t(width * height), 255);  // white gaps
  for (std::size_t b = 0; b < banks.size(); ++b)
    for (std::size_t f = 0; f < count; ++f)
      for (int y = 0; y < tile_h; ++y)
        for (int x = 0; x < tile_w; ++x) {
          const float v = banks[b](f, 0, std::size_t(y / scale), std::size_t(x / scale));
          const int px = gap + int(f) * (tile_w + gap) + x, py = gap + int(b) * (tile_h + gap) + y;
          pixels[std::size_t(py * width + px)] = std::uint8_t(std::lround(127.5f + 127.5f * v / extent));
        }
  // Encoded in memory and written by write_file: stbi_write_png ignores the
  // results of fwrite and fclose, so it reports success on a full disk.
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), std::size_t(size));
  };
  if (!stbi_write_png_to_func(append, &png, width, height, 1, pixels.data(), width))
    throw std::runtime_error("write_filter_grid: cannot encode " + path + " as PNG");
  write_file(path, png);
  return {width, height};
}

namespace {

// About five round tick values covering [low, high].
std::vector<double> ticks(double low, double high) {
  const double span = high - low > 0 ? high - low : 1.0;
  const double raw = span / 5, magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / magnitude >= 5 ? 5 * magnitude : raw / magnitude >= 2 ? 2 * magnitude : magnitude;
  std::vector<double> out;
  for (double t = std::ceil(low / step) * step; t <= high + 1e-9 * span; t += step) out.push_back(t);
  return out;
}

std::string number(double v) {
  std::ostringstream s;
  s << std::setprecision(3) << v;
  return s.str();
}

}  // namespace

void write_chart_svg(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::vector<Series>& series, int width, int height) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // no points: an empty frame
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double left = 60, right = width - 200.0, top = 30, bottom = height - 45.0;
  auto sx = [&](double x) { return left + (x - x0) / (x1 - x0) * (right - left); };
  auto sy = [&](double y) { return bottom - (y - y0) / (y1 - y0) * (bottom - top); };

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << width / 2 << "\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">" << title << "</text>\n";
  for (double t : ticks(y0, y1))
    svg << "<line x1=\"" << left << "\" x2=\"" << right << "\" y1=\"" << sy(t) << "\" y2=\"" << sy(t)
        << "\" stroke=\"#ddd\"/><text x=\"" << left - 6 << "\" y=\"" << sy(t) + 4 << "\" text-anchor=\"end\">"
        << number(t) << "</text>\n";
  for (double t : ticks(x0, x1))
    svg << "<text x=\"" << sx(t) << "\" y=\"" << bottom + 16 << "\" text-anchor=\"middle\">" << number(t) << "</text>\n";
  svg << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << right - left << "\" height=\"" << bottom - top
      << "\" fill=\"none\" stroke=\"black\"/>\n"
      << "<text x=\"" << (left + right) / 2 << "\" y=\"" << height - 8 << "\" text-anchor=\"middle\">" << x_label
      << "</text>\n";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    svg << "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" << s.color << "\" points=\"";
    for (const auto& [x, y] : s.points) svg << sx(x) << ',' << sy(y) << ' ';
    svg << "\"/>\n";
    for (const auto& [x, y] : s.points)
      if (s.points.size() <= 20) svg << "<circle r=\"3\" fill=\"" << s.color << "\" cx=\"" << sx(x) << "\" cy=\"" << sy(y) << "\"/>\n";
    const double ly = top + 16 + 18.0 * double(i);
    svg << "<line x1=\"" << right + 12 << "\" x2=\"" << right + 32 << "\" y1=\"" << ly - 4 << "\" y2=\"" << ly - 4
        << "\" stroke=\"" << s.color << "\" stroke-width=\"2\"/><text x=\"" << right + 38 << "\" y=\"" << ly << "\">"
        << s.name << "</text>\n";
  }
  svg << "</svg>\n";
  write_file(path, svg.str());
}

}  // namespace report
