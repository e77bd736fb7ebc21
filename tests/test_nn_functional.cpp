// The layers' functions (ops/activation.hpp, normalization.hpp, resample.hpp,
// embedding.hpp, conv_transpose2d) in the op table: gradcheck and
// gradgradcheck in float64 on random shapes.
#include "op_table.hpp"

#include <tapegrad/tapegrad.hpp>

using tg::Shape;
using tg::Tensor;

namespace {

constexpr int kDraws = 3;

// (N, C, H, W) with C a multiple of `channel_multiple`.
Shape image(tg::Generator& g, std::size_t channel_multiple = 1, std::size_t max_side = 5) {
  return {1 + g.below(2), channel_multiple * (1 + g.below(2)), 1 + g.below(max_side), 1 + g.below(max_side)};
}

// Fixed int64 indices into a table of `rows`, with repeats, of shape (2, 3).
Tensor some_indices(std::size_t rows) {
  const double last = double(rows - 1), second = double(1 % rows), middle = double(rows / 2);
  return tg::tensor({{0, last, second}, {0, 0, middle}}, tg::kInt64);
}

std::vector<OpCase> layer_cases() {
  std::vector<OpCase> cases;
  auto any_shape = [](tg::Generator& g) { return std::vector<Shape>{random_shape(g, 0, 3)}; };
  cases.push_back({"gelu", any_shape, [](const Inputs& in) { return tg::gelu(in[0]); }, Domain::wide});
  cases.push_back({"gelu tanh", any_shape,
                   [](const Inputs& in) { return tg::gelu(in[0], tg::GeluApproximate::Tanh); }, Domain::wide});
  cases.push_back({"silu", any_shape, [](const Inputs& in) { return tg::silu(in[0]); }, Domain::wide});
  cases.push_back({"softplus", any_shape, [](const Inputs& in) { return tg::softplus(in[0]); }, Domain::wide});
  // beta·x on both sides of the threshold (|x| up to 4, beta 2, threshold 3)
  cases.push_back({"softplus beta=2 threshold=3", any_shape,
                   [](const Inputs& in) { return tg::softplus(in[0], 2.0, 3.0); }, Domain::wide});
  cases.push_back({"elu", any_shape, [](const Inputs& in) { return tg::elu(in[0]); }, Domain::away_from_0});
  cases.push_back({"elu alpha=0.5", any_shape, [](const Inputs& in) { return tg::elu(in[0], 0.5); },
                   Domain::away_from_0});
  cases.push_back({"layer_norm, affine",
                   [](tg::Generator& g) {
                     Shape s = random_shape(g, 2, 3);
                     s.back() += 1;  // at least two values per sample
                     return std::vector<Shape>{s, {s.back()}, {s.back()}};
                   },
                   [](const Inputs& in) { return tg::layer_norm(in[0], {in[0].shape().back()}, in[1], in[2]); }});
  cases.push_back({"layer_norm over two axes",
                   [](tg::Generator& g) {
                     const Shape s{1 + g.below(3), 1 + g.below(3), 2 + g.below(3)};
                     return std::vector<Shape>{s};
                   },
                   [](const Inputs& in) {
                     return tg::layer_norm(in[0], {in[0].shape()[1], in[0].shape()[2]}, {}, {}, 1e-3);
                   }});
  cases.push_back({"group_norm, affine",
                   [](tg::Generator& g) {
                     const Shape s{1 + g.below(2), 2 * (1 + g.below(2)), 2 + g.below(3)};
                     return std::vector<Shape>{s, {s[1]}, {s[1]}};
                   },
                   [](const Inputs& in) { return tg::group_norm(in[0], 2, in[1], in[2]); }});
  cases.push_back({"group_norm (N, C, H, W), one group",
                   [](tg::Generator& g) { return std::vector<Shape>{image(g)}; },
                   [](const Inputs& in) { return tg::group_norm(in[0], 1); }});
  cases.push_back({"batch_norm training, affine",
                   [](tg::Generator& g) {
                     const Shape s{2 + g.below(3), 1 + g.below(3), 1 + g.below(3)};
                     return std::vector<Shape>{s, {s[1]}, {s[1]}};
                   },
                   [](const Inputs& in) { return tg::batch_norm(in[0], {}, {}, in[1], in[2], true); }});
  cases.push_back({"batch_norm training (N, C, H, W), weight only",
                   [](tg::Generator& g) {
                     const Shape s = image(g);
                     return std::vector<Shape>{{s[0] + 1, s[1], s[2], s[3]}, {s[1]}};
                   },
                   [](const Inputs& in) { return tg::batch_norm(in[0], {}, {}, in[1], {}, true, 0.1, 1e-3); }});
  cases.push_back({"batch_norm training, bias only",
                   [](tg::Generator& g) {
                     const Shape s{2 + g.below(2), 1 + g.below(3), 1 + g.below(3)};
                     return std::vector<Shape>{s, {s[1]}};
                   },
                   [](const Inputs& in) { return tg::batch_norm(in[0], {}, {}, {}, in[1], true); }});
  cases.push_back({"batch_norm training (N, C), no affine",
                   [](tg::Generator& g) { return std::vector<Shape>{{2 + g.below(4), 1 + g.below(3)}}; },
                   [](const Inputs& in) { return tg::batch_norm(in[0], {}, {}, {}, {}, true); }});
  cases.push_back({"batch_norm eval",
                   [](tg::Generator& g) {
                     const std::size_t c = 1 + g.below(3);
                     return std::vector<Shape>{{1 + g.below(3), c}, {c}, {c}};
                   },
                   [](const Inputs& in) { return tg::batch_norm(in[0], in[1], in[2], {}, {}, false); },
                   Domain::any, {Domain::any, Domain::any, Domain::positive}});
  cases.push_back({"adaptive_avg_pool2d to (2, 3)", [](tg::Generator& g) { return std::vector<Shape>{image(g)}; },
                   [](const Inputs& in) { return tg::adaptive_avg_pool2d(in[0], {2, 3}); }});
  cases.push_back({"adaptive_avg_pool2d global", [](tg::Generator& g) { return std::vector<Shape>{image(g)}; },
                   [](const Inputs& in) { return tg::adaptive_avg_pool2d(in[0], 1); }});
  cases.push_back({"upsample_nearest2d (2, 3)", [](tg::Generator& g) { return std::vector<Shape>{image(g, 1, 3)}; },
                   [](const Inputs& in) { return tg::upsample_nearest2d(in[0], {2, 3}); }});
  cases.push_back({"embedding",
                   [](tg::Generator& g) { return std::vector<Shape>{{2 + g.below(4), 1 + g.below(3)}}; },
                   [](const Inputs& in) { return tg::embedding(some_indices(in[0].shape()[0]), in[0]); }});
  // embedding with padding_idx is left out on purpose: its padding row's
  // gradient is zero by definition, not the derivative (test_layers.cpp checks it).
  cases.push_back({"conv_transpose2d stride 2, padding 1, output_padding 1, bias",
                   [](tg::Generator& g) {
                     return std::vector<Shape>{{1 + g.below(2), 2, 1 + g.below(3), 1 + g.below(3)}, {2, 3, 3, 2}, {3}};
                   },
                   [](const Inputs& in) { return tg::conv_transpose2d(in[0], in[1], in[2], 2, {1, 0}, 1); }});
  cases.push_back({"conv_transpose2d groups 2, dilation 2",
                   [](tg::Generator& g) {
                     return std::vector<Shape>{{1 + g.below(2), 4, 1 + g.below(3), 1 + g.below(3)}, {4, 1, 2, 2}};
                   },
                   [](const Inputs& in) { return tg::conv_transpose2d(in[0], in[1], {}, 1, 0, 0, 2, 2); }});
  return cases;
}

}  // namespace

TEST_CASE("gradcheck: the layers' functions, random shapes") {
  check_cases(layer_cases(), [](const tg::Function& f, const Inputs& in) { return tg::gradcheck(f, in); }, 0, kDraws);
}

TEST_CASE("gradgradcheck: the layers' functions, random shapes") {
  check_cases(layer_cases(), [](const tg::Function& f, const Inputs& in) { return tg::gradgradcheck(f, in); }, 7000,
              kDraws);
}
