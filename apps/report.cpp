#include "report.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
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

namespace {

// A 5x7 bitmap font for the few words the filter picture needs.
const std::vector<std::pair<char, std::array<const char*, 7>>>& glyphs() {
  static const std::vector<std::pair<char, std::array<const char*, 7>>> font{
      {'A', {" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"}},
      {'B', {"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "}},
      {'C', {" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "}},
      {'D', {"#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "}},
      {'E', {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"}},
      {'F', {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "}},
      {'G', {" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"}},
      {'H', {"#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"}},
      {'I', {" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'L', {"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"}},
      {'N', {"#   #", "##  #", "# # #", "#  ##", "#   #", "#   #", "#   #"}},
      {'O', {" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}},
      {'P', {"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "}},
      {'R', {"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"}},
      {'S', {" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "}},
      {'T', {"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "}},
      {'U', {"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}},
      {'V', {"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "}},
      {'W', {"#   #", "#   #", "#   #", "# # #", "# # #", "## ##", "#   #"}},
      {'X', {"#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"}},
      {'0', {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "}},
      {'1', {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'2', {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"}},
      {'3', {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "}},
      {'4', {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "}},
      {'5', {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "}},
      {'6', {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "}},
      {'7', {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "}},
      {'8', {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "}},
      {'9', {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "}},
      {'-', {"     ", "     ", "     ", "#####", "     ", "     ", "     "}},
      {'+', {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "}},
      {'.', {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "}},
      {':', {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "}},
      {'(', {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "}},
      {')', {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "}},
  };
  return font;
}

using Rgb = std::array<std::uint8_t, 3>;

struct Image {
  int width, height;
  std::vector<std::uint8_t> rgb;
  Image(int w, int h) : width(w), height(h), rgb(std::size_t(w) * std::size_t(h) * 3, 255) {}
  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    std::copy(c.begin(), c.end(), rgb.begin() + (std::ptrdiff_t(y) * width + x) * 3);
  }
  void fill(int x0, int y0, int w, int h, Rgb c) {
    for (int y = y0; y < y0 + h; ++y)
      for (int x = x0; x < x0 + w; ++x) set(x, y, c);
  }
};

constexpr int glyph_scale = 2, glyph_advance = 6 * glyph_scale, glyph_height = 7 * glyph_scale;

int text_width(const std::string& text) { return int(text.size()) * glyph_advance - glyph_scale; }

void draw_text(Image& img, int x, int y, const std::string& text, Rgb color = {0, 0, 0}) {
  for (char raw : text) {
    const char c = char(std::toupper(static_cast<unsigned char>(raw)));
    for (const auto& [ch, rows] : glyphs())
      if (ch == c)
        for (int r = 0; r < 7; ++r)
          for (int col = 0; col < 5; ++col)
            if (rows[std::size_t(r)][col] == '#')
              img.fill(x + col * glyph_scale, y + r * glyph_scale, glyph_scale, glyph_scale, color);
    x += glyph_advance;
  }
}

std::string legend_number(float v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2g", double(v));
  return text;
}

}  // namespace

std::array<std::uint8_t, 3> diverging_color(float t) {
  static const Rgb stops[] = {{33, 102, 172},  {67, 147, 195},  {146, 197, 222}, {209, 229, 240}, {247, 247, 247},
                              {253, 219, 199}, {244, 165, 130}, {214, 96, 77},   {178, 24, 43}};
  const float clamped = std::isnan(t) ? 0.0f : std::clamp(t, -1.0f, 1.0f);
  const float at = (clamped + 1.0f) * 4.0f;  // 0 .. 8
  const int i = std::min(int(at), 7);
  const float f = at - float(i);
  Rgb out;
  for (std::size_t c = 0; c < 3; ++c)
    out[c] = std::uint8_t(std::lround(float(stops[i][c]) * (1 - f) + float(stops[i + 1][c]) * f));
  return out;
}

FilterGridLayout write_filter_grid(const std::string& path, const std::vector<xt::xarray<float>>& banks,
                                   const std::vector<std::string>& labels, int scale) {
  if (banks.empty() || banks[0].dimension() != 4)
    throw std::invalid_argument("write_filter_grid: expected banks of shape (C_out, 1, kh, kw)");
  if (scale < 2) throw std::invalid_argument("write_filter_grid: scale must be at least 2 (a pixel for the grid)");
  const std::size_t count = banks[0].shape()[0], kh = banks[0].shape()[2], kw = banks[0].shape()[3];
  float extent = 1e-12f;  // one symmetric colour scale for all banks
  for (const auto& bank : banks) {
    if (bank.shape() != banks[0].shape())
      throw std::invalid_argument("write_filter_grid: all banks must have the same shape");
    extent = std::max(extent, xt::amax(xt::abs(bank))());
  }
  const int margin = 14, tile_gap = 6, bank_gap = 32, cols = int(std::min<std::size_t>(count, 8));
  const int rows = int((count + std::size_t(cols) - 1) / std::size_t(cols));
  const int tile_w = int(kw) * scale + 1, tile_h = int(kh) * scale + 1;  // grid lines around every weight
  const int bank_w = cols * tile_w + (cols - 1) * tile_gap, bank_h = rows * tile_h + (rows - 1) * tile_gap;
  const int nb = int(banks.size());
  const int label_h = glyph_height + 10, legend_h = 16 + 14 + 6 + glyph_height;
  const int legend_bar = 256, legend_w = legend_bar + 2 * (text_width("WEIGHT") + 12);
  const int width = 2 * margin + std::max(nb * bank_w + (nb - 1) * bank_gap, legend_w);
  const int height = 2 * margin + label_h + bank_h + legend_h;
  Image img(width, height);
  const Rgb grid{190, 190, 190};

  FilterGridLayout layout;
  layout.width = width, layout.height = height, layout.cell = scale, layout.extent = extent;
  for (int b = 0; b < nb; ++b) {
    const int bx = margin + b * (bank_w + bank_gap), by = margin + label_h;
    if (std::size_t(b) < labels.size()) draw_text(img, bx + (bank_w - text_width(labels[std::size_t(b)])) / 2, margin, labels[std::size_t(b)]);
    layout.origin.emplace_back();
    for (std::size_t f = 0; f < count; ++f) {
      const int tx = bx + int(f) % cols * (tile_w + tile_gap), ty = by + int(f) / cols * (tile_h + tile_gap);
      img.fill(tx, ty, tile_w, tile_h, grid);
      layout.origin.back().emplace_back(tx + 1, ty + 1);
      for (std::size_t y = 0; y < kh; ++y)
        for (std::size_t x = 0; x < kw; ++x)
          img.fill(tx + 1 + int(x) * scale, ty + 1 + int(y) * scale, scale - 1, scale - 1,
                   diverging_color(banks[std::size_t(b)](f, 0, y, x) / extent));
    }
  }
  // The legend: the colour bar, "weight" before it, -extent, 0 and +extent under it.
  const int lx = (width - legend_bar) / 2, ly = margin + label_h + bank_h + 16;
  draw_text(img, lx - 12 - text_width("WEIGHT"), ly, "WEIGHT");
  for (int x = 0; x < legend_bar; ++x) img.fill(lx + x, ly, 1, 14, diverging_color(float(x) / float(legend_bar - 1) * 2 - 1));
  const std::string low = "-" + legend_number(extent), high = "+" + legend_number(extent);
  draw_text(img, lx - text_width(low) / 2, ly + 20, low);
  draw_text(img, lx + legend_bar / 2 - text_width("0") / 2, ly + 20, "0");
  draw_text(img, lx + legend_bar - text_width(high) / 2, ly + 20, high);

  // Encoded in memory and written by write_file: stbi_write_png ignores the
  // results of fwrite and fclose, so it reports success on a full disk.
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), std::size_t(size));
  };
  if (!stbi_write_png_to_func(append, &png, width, height, 3, img.rgb.data(), width * 3))
    throw std::runtime_error("write_filter_grid: cannot encode " + path + " as PNG");
  write_file(path, png);
  return layout;
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
