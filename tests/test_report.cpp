// The training report's pictures: the PNG decodes with the right size and
// gray levels, the SVG chart is a well-formed file with one line per series.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <array>
#include <sstream>

#include <unistd.h>

#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "../apps/report.hpp"

namespace {

std::filesystem::path scratch(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("tapegrad_report_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir / name;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("the filter grid PNG: banks side by side, each weight a square on one diverging colour scale") {
  xt::xarray<float> before = xt::zeros<float>({10, 1, 5, 5}), after = xt::zeros<float>({10, 1, 5, 5});
  before(0, 0, 0, 0) = 2.0f;   // the largest magnitude: the red end
  after(1, 0, 2, 3) = -2.0f;   // the blue end
  after(9, 0, 4, 4) = 1.0f;    // half way to red
  const auto path = scratch("filters.png").string();
  const report::FilterGridLayout layout = report::write_filter_grid(path, {before, after}, {"before", "after"}, 6);
  int width = 0, height = 0, channels = 0;
  unsigned char* pixels = stbi_load(path.c_str(), &width, &height, &channels, 3);
  REQUIRE(pixels != nullptr);
  CHECK(width == layout.width);
  CHECK(height == layout.height);
  CHECK(layout.extent == 2.0f);
  CHECK(layout.cell == 6);
  REQUIRE(layout.origin.size() == 2);
  REQUIRE(layout.origin[1].size() == 10);
  // The second bank is to the right of the first; filter 8 starts a second row.
  CHECK(layout.origin[1][0].first > layout.origin[0][7].first);
  CHECK(layout.origin[0][8].second > layout.origin[0][0].second);
  CHECK(layout.origin[0][8].first == layout.origin[0][0].first);
  auto rgb = [&](int bank, int filter, int y, int x) {  // the centre of the weight's square
    const auto [ox, oy] = layout.origin[std::size_t(bank)][std::size_t(filter)];
    const unsigned char* p = pixels + ((oy + y * 6 + 2) * width + ox + x * 6 + 2) * 3;
    return std::array<std::uint8_t, 3>{p[0], p[1], p[2]};
  };
  CHECK(rgb(0, 0, 0, 0) == report::diverging_color(1.0f));
  CHECK(rgb(1, 1, 2, 3) == report::diverging_color(-1.0f));
  CHECK(rgb(1, 9, 4, 4) == report::diverging_color(0.5f));
  CHECK(rgb(0, 5, 1, 1) == report::diverging_color(0.0f));
  // Between two weights, a grid line.
  const auto [ox, oy] = layout.origin[0][0];
  const unsigned char* line = pixels + ((oy + 2) * width + ox + 5) * 3;
  CHECK(int(line[0]) == 190);
  stbi_image_free(pixels);

  // Zero is white, the ends blue and red.
  CHECK(report::diverging_color(0.0f) == std::array<std::uint8_t, 3>{247, 247, 247});
  CHECK(report::diverging_color(-1.0f) == std::array<std::uint8_t, 3>{33, 102, 172});
  CHECK(report::diverging_color(5.0f) == std::array<std::uint8_t, 3>{178, 24, 43});
}

TEST_CASE("the chart SVG has its title, axes label, a polyline and legend entry per series") {
  const auto path = scratch("curves.svg").string();
  report::write_chart_svg(path, "Fashion-MNIST", "epoch",
                          {{"train loss", "#1f77b4", {{1, 0.6}, {2, 0.4}, {3, 0.3}}},
                           {"test accuracy", "#d62728", {{1, 0.85}, {2, 0.89}, {3, 0.91}}}});
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string svg = text.str();
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(svg.find(">Fashion-MNIST</text>") != std::string::npos);
  CHECK(svg.find(">epoch</text>") != std::string::npos);
  CHECK(count(svg, "<polyline") == 2);
  CHECK(svg.find(">train loss</text>") != std::string::npos);
  CHECK(svg.find(">test accuracy</text>") != std::string::npos);
  CHECK(count(svg, "<circle") == 6);
}

TEST_CASE("report errors") {
  CHECK_THROWS_AS(report::write_filter_grid(scratch("x.png").string(), {}), std::invalid_argument);
  CHECK_THROWS_AS(report::write_filter_grid("/nonexistent-dir/x.png", {xt::zeros<float>({1, 1, 2, 2})}),
                  std::runtime_error);
  CHECK_THROWS_AS(report::write_chart_svg("/nonexistent-dir/x.svg", "t", "x", {}), std::runtime_error);
}

TEST_CASE("a write that fails names the file: a directory in the way, a full disk") {
  const auto dir = scratch("a-directory").string();
  std::filesystem::create_directories(dir);
  const xt::xarray<float> bank = xt::zeros<float>({1, 1, 2, 2});
  CHECK_THROWS_WITH_AS(report::write_file(dir, "{}"), doctest::Contains(dir.c_str()), std::runtime_error);
  CHECK_THROWS_WITH_AS(report::write_filter_grid(dir, {bank}), doctest::Contains(dir.c_str()),
                       std::runtime_error);
  // /dev/full accepts the open and fails every write with ENOSPC, as a full
  // disk does once the stream's buffer is flushed.
  if (std::filesystem::exists("/dev/full")) {
    CHECK_THROWS_WITH_AS(report::write_file("/dev/full", "{}"), "cannot write /dev/full: No space left on device",
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(report::write_filter_grid("/dev/full", {bank}), doctest::Contains("/dev/full"),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(report::write_chart_svg("/dev/full", "t", "x", {}), doctest::Contains("/dev/full"),
                         std::runtime_error);
  }
}
