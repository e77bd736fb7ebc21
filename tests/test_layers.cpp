// Layers beyond Linear and Conv2d, against computations written here by hand:
// ConvTranspose2d as the transpose of conv2d's dense (Toeplitz) matrix and
// PyTorch's output-size formula, AdaptiveAvgPool2d with torch's window
// formula, Upsample, Embedding, Dropout2d, BatchNorm1d, LayerNorm and
// GroupNorm (values, train and eval), and the errors naming the layer.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include <tapegrad/tapegrad.hpp>

using tg::Shape;
using tg::Tensor;
namespace nn = tg::nn;

namespace {

Tensor random_tensor(const Shape& s, tg::Generator& g) {
  Tensor t = tg::rand(s, g, -1.0, 1.0, tg::kFloat64);
  t.requires_grad_();
  return t;
}

// The input position read by output o through tap k, or -1 in the padding.
std::ptrdiff_t source(std::size_t o, std::size_t k, std::size_t s, std::size_t p, std::size_t d, std::size_t size) {
  const std::ptrdiff_t i = std::ptrdiff_t(o * s + k * d) - std::ptrdiff_t(p);
  return i >= 0 && i < std::ptrdiff_t(size) ? i : -1;
}

struct Config {
  std::size_t n, c_in, c_out, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  // conv2d's output size
  std::size_t ho() const { return (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
  std::size_t wo() const { return (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
  // the output_padding that makes conv_transpose2d give back (h, w)
  std::size_t oph() const { return (h + 2 * ph - dh * (kh - 1) - 1) % sh; }
  std::size_t opw() const { return (w + 2 * pw - dw * (kw - 1) - 1) % sw; }
  std::string str() const {
    std::ostringstream s;
    s << "n " << n << " c_in " << c_in << " c_out " << c_out << " image " << h << "x" << w << " kernel " << kh << "x"
      << kw << " stride " << sh << "," << sw << " padding " << ph << "," << pw << " dilation " << dh << "," << dw
      << " groups " << groups;
    return s.str();
  }
};

Config random_config(tg::Generator& g) {
  Config c{};
  c.groups = 1 + g.below(2);
  c.n = 1 + g.below(2);
  c.c_in = c.groups * (1 + g.below(2));
  c.c_out = c.groups * (1 + g.below(2));
  c.kh = 1 + g.below(3);
  c.kw = 1 + g.below(3);
  c.sh = 1 + g.below(3);
  c.sw = 1 + g.below(3);
  c.ph = g.below(2);
  c.pw = g.below(2);
  c.dh = 1 + g.below(2);
  c.dw = 1 + g.below(2);
  const std::size_t span_h = c.dh * (c.kh - 1) + 1, span_w = c.dw * (c.kw - 1) + 1;
  c.h = std::max(span_h, 2 * c.ph + 1) + g.below(4);  // a padded kernel fits; padding smaller than the image
  c.w = std::max(span_w, 2 * c.pw + 1) + g.below(4);
  return c;
}

// The dense matrix of conv2d with weight w (C_out, C_in/groups, kh, kw):
// (C_out·Ho·Wo, C_in·H·W), built by a loop over every output and tap.
xt::xarray<double> dense_conv_matrix(const Config& c, const xt::xarray<double>& w) {
  const std::size_t ho = c.ho(), wo = c.wo(), cin_g = c.c_in / c.groups, cout_g = c.c_out / c.groups;
  xt::xarray<double> m = xt::zeros<double>({c.c_out * ho * wo, c.c_in * c.h * c.w});
  for (std::size_t co = 0; co < c.c_out; ++co)
    for (std::size_t oh = 0; oh < ho; ++oh)
      for (std::size_t ow = 0; ow < wo; ++ow)
        for (std::size_t ci = 0; ci < cin_g; ++ci)
          for (std::size_t i = 0; i < c.kh; ++i)
            for (std::size_t j = 0; j < c.kw; ++j) {
              const auto ih = source(oh, i, c.sh, c.ph, c.dh, c.h), iw = source(ow, j, c.sw, c.pw, c.dw, c.w);
              if (ih < 0 || iw < 0) continue;
              const std::size_t channel = co / cout_g * cin_g + ci;
              m((co * ho + oh) * wo + ow, (channel * c.h + std::size_t(ih)) * c.w + std::size_t(iw)) += w(co, ci, i, j);
            }
  return m;
}

// PyTorch's documented output size of ConvTranspose2d along one axis.
std::size_t torch_transposed_size(std::size_t in, std::size_t stride, std::size_t padding, std::size_t dilation,
                                  std::size_t kernel, std::size_t output_padding) {
  return (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1;
}

// As float64 values, whatever the dtype.
xt::xarray<double> values(const Tensor& t) { return t.detach().to(tg::kFloat64).contiguous().to_xarray<double>(); }

}  // namespace

// ---- ConvTranspose2d ----------------------------------------------------------------

TEST_CASE("conv_transpose2d is the transpose of conv2d's dense matrix, bias added") {
  tg::Generator g(3);
  for (int draw = 0; draw < 40; ++draw) {
    const Config c = random_config(g);
    CAPTURE(c.str());
    const Tensor w = random_tensor({c.c_out, c.c_in / c.groups, c.kh, c.kw}, g);  // conv2d's weight
    const Tensor z = random_tensor({c.n, c.c_out, c.ho(), c.wo()}, g);          // conv2d's output space
    const Tensor b = random_tensor({c.c_in}, g);
    const Tensor y = tg::conv_transpose2d(z, w, b, {c.sh, c.sw}, {c.ph, c.pw}, {c.oph(), c.opw()},
                                          std::int64_t(c.groups), {c.dh, c.dw});
    REQUIRE(y.shape() == Shape{c.n, c.c_in, c.h, c.w});
    const xt::xarray<double> m = dense_conv_matrix(c, values(w));
    const xt::xarray<double> zv = values(z), bv = values(b), yv = values(y);
    for (std::size_t n = 0; n < c.n; ++n)
      for (std::size_t q = 0; q < m.shape()[1]; ++q) {
        double want = bv(q / (c.h * c.w));
        for (std::size_t r = 0; r < m.shape()[0]; ++r) want += m(r, q) * zv.data()[n * m.shape()[0] + r];
        CHECK(yv.data()[n * m.shape()[1] + q] == doctest::Approx(want).epsilon(1e-12));
      }
  }
}

TEST_CASE("conv_transpose2d's output size is PyTorch's formula; gradients by finite differences") {
  tg::Generator g(5);
  for (int draw = 0; draw < 25; ++draw) {
    Config c = random_config(g);
    const std::size_t oph = g.below(c.sh), opw = g.below(c.sw);  // any output_padding below the stride
    CAPTURE(c.str());
    CAPTURE(oph);
    CAPTURE(opw);
    const Tensor x = random_tensor({c.n, c.c_in, c.h, c.w}, g);
    const Tensor w = random_tensor({c.c_in, c.c_out / c.groups, c.kh, c.kw}, g);
    auto f = [&](const std::vector<Tensor>& in) {
      return tg::conv_transpose2d(in[0], in[1], {}, {c.sh, c.sw}, {c.ph, c.pw}, {oph, opw}, std::int64_t(c.groups),
                                  {c.dh, c.dw});
    };
    const Tensor y = f({x, w});
    CHECK(y.shape() == Shape{c.n, c.c_out, torch_transposed_size(c.h, c.sh, c.ph, c.dh, c.kh, oph),
                             torch_transposed_size(c.w, c.sw, c.pw, c.dw, c.kw, opw)});
    if (draw < 8) {
      CHECK(tg::gradcheck(f, {x, w}).passed);
      CHECK(tg::gradgradcheck(f, {x, w}).passed);
    }
  }
}

TEST_CASE("ConvTranspose2d: options, PyTorch's parameter shapes, doubling a 7x7 map") {
  tg::manual_seed(0);
  nn::ConvTranspose2d up(nn::ConvTranspose2dOptions(8, 4, 3).stride(2).padding(1).output_padding(1));
  CHECK(up->weight.shape() == Shape{8, 4, 3, 3});
  CHECK(up->bias.shape() == Shape{4});
  const double bound = 1.0 / std::sqrt(4.0 * 9.0);  // PyTorch's fan_in: weight.size(1)·kh·kw
  CHECK(tg::max(tg::abs(up->weight)).item<float>() <= bound);
  const Tensor y = up(tg::randn({2, 8, 7, 7}));
  CHECK(y.shape() == Shape{2, 4, 14, 14});
  const Tensor same = tg::conv_transpose2d(tg::zeros({1, 8, 7, 7}), up->weight, up->bias, 2, 1, 1);
  CHECK(xt::allclose(values(tg::select(same, 0, 0)), values(tg::broadcast_to(tg::reshape(up->bias, {4, 1, 1}), {4, 14, 14}))));
  std::ostringstream os;
  os << *up;
  CHECK(os.str() == "ConvTranspose2d(8, 4, kernel=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))");
  nn::ConvTranspose2d grouped(nn::ConvTranspose2dOptions(4, 6, {2, 3}).groups(2).bias(false));
  CHECK(grouped->weight.shape() == Shape{4, 3, 2, 3});
  CHECK_FALSE(grouped->bias.defined());
  CHECK(grouped(tg::randn({1, 4, 5, 5})).shape() == Shape{1, 6, 6, 7});
}

TEST_CASE("ConvTranspose2d and conv_transpose2d: errors name the layer and the shapes") {
  nn::ConvTranspose2d up(3, 2, 3);
  CHECK_THROWS_WITH_AS(up(tg::zeros({1, 4, 5, 5})),
                       "ConvTranspose2d: expected input of shape (N, 3, H, W), got (1, 4, 5, 5)", tg::ShapeError);
  CHECK_THROWS_WITH_AS(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(3, 2, 3).stride(2).output_padding(2)),
                       "ConvTranspose2d: output_padding (2, 2) must be non-negative and smaller than the stride (2, 2)",
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(3, 2, 3).groups(2)), doctest::Contains("groups=2"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::conv_transpose2d(tg::zeros({1, 3, 2, 2}), tg::zeros({3, 2, 1, 1}), {}, 1, 1),
                       doctest::Contains("padding (1, 1) leaves no output for input (1, 3, 2, 2)"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::conv_transpose2d(tg::zeros({1, 3, 2, 2}), tg::zeros({2, 2, 1, 1})),
                       doctest::Contains("input (1, 3, 2, 2) has 3 channels but weight (2, 2, 1, 1)"), tg::ShapeError);
}

// ---- AdaptiveAvgPool2d, Upsample ---------------------------------------------------

TEST_CASE("adaptive_avg_pool2d averages torch's windows floor(i·H/Ho) .. ceil((i+1)·H/Ho)") {
  tg::Generator g(8);
  for (int draw = 0; draw < 30; ++draw) {
    const std::size_t h = 1 + g.below(7), w = 1 + g.below(7), ho = 1 + g.below(8), wo = 1 + g.below(8);
    CAPTURE(h);
    CAPTURE(w);
    CAPTURE(ho);
    CAPTURE(wo);
    const Tensor x = random_tensor({2, 3, h, w}, g);
    const xt::xarray<double> xv = values(x);
    const xt::xarray<double> y = values(tg::adaptive_avg_pool2d(x, {ho, wo}));
    REQUIRE(y.shape() == std::vector<std::size_t>{2, 3, ho, wo});
    for (std::size_t n = 0; n < 2; ++n)
      for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t i = 0; i < ho; ++i)
          for (std::size_t j = 0; j < wo; ++j) {
            const std::size_t h0 = i * h / ho, h1 = ((i + 1) * h + ho - 1) / ho;
            const std::size_t w0 = j * w / wo, w1 = ((j + 1) * w + wo - 1) / wo;
            double s = 0;
            for (std::size_t a = h0; a < h1; ++a)
              for (std::size_t b = w0; b < w1; ++b) s += xv(n, c, a, b);
            CHECK(y(n, c, i, j) == doctest::Approx(s / double((h1 - h0) * (w1 - w0))).epsilon(1e-12));
          }
  }
}

TEST_CASE("AdaptiveAvgPool2d(1) is global average pooling; (C, H, W) inputs too") {
  nn::AdaptiveAvgPool2d gap(1);
  const Tensor x = tg::randn({2, 3, 5, 4});
  CHECK(xt::allclose(values(gap(x)), values(tg::mean(x, {2, 3}, true))));
  CHECK(gap(tg::randn({3, 5, 4})).shape() == Shape{3, 1, 1});
  // An infinite pixel stays in its own windows.
  Tensor inf = tg::zeros({1, 1, 4, 4});
  inf.mutable_data<float>()[0] = INFINITY;
  const Tensor y = tg::adaptive_avg_pool2d(inf, 2);
  CHECK(std::isinf(y.value<float>()(0, 0, 0, 0)));
  CHECK(y.value<float>()(0, 0, 1, 1) == 0.0f);
  CHECK_THROWS_WITH_AS(gap(tg::zeros({5, 4})), "AdaptiveAvgPool2d: expected input of shape (N, C, H, W) or (C, H, W), got (5, 4)",
                       tg::ShapeError);
  CHECK_THROWS_AS(nn::AdaptiveAvgPool2d(0), tg::ValueError);
}

TEST_CASE("Upsample: each pixel fills its block; the gradient sums each block") {
  tg::Generator g(9);
  nn::Upsample up(tg::Size2(2, 3));
  const Tensor x = random_tensor({2, 2, 3, 2}, g);
  const Tensor y = up(x);
  REQUIRE(y.shape() == Shape{2, 2, 6, 6});
  const xt::xarray<double> xv = values(x), yv = values(y);
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < 6; ++i)
        for (std::size_t j = 0; j < 6; ++j) CHECK(yv(n, c, i, j) == xv(n, c, i / 2, j / 3));
  const Tensor upstream = random_tensor({2, 2, 6, 6}, g).detach();
  y.backward(upstream);
  const xt::xarray<double> u = values(upstream), gx = values(x.grad());
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 2; ++j) {
          double s = 0;
          for (std::size_t a = 0; a < 2; ++a)
            for (std::size_t b = 0; b < 3; ++b) s += u(n, c, 2 * i + a, 3 * j + b);
          CHECK(gx(n, c, i, j) == doctest::Approx(s).epsilon(1e-12));
        }
  CHECK(nn::Upsample(2)(tg::zeros({3, 2, 2})).shape() == Shape{3, 4, 4});
  CHECK_THROWS_WITH_AS(nn::Upsample(0), "Upsample: scale factors must be positive integers, got (0, 0)", tg::ValueError);
  CHECK_THROWS_WITH_AS(up(tg::zeros({2, 2})), doctest::Contains("Upsample: expected input of shape"), tg::ShapeError);
}

// ---- Embedding --------------------------------------------------------------------

TEST_CASE("Embedding: rows by index, gradient to the rows used, padding_idx's row frozen at zero") {
  tg::manual_seed(1);
  nn::Embedding emb(nn::EmbeddingOptions(5, 3).padding_idx(-1));  // row 4
  CHECK(emb->weight.shape() == Shape{5, 3});
  const xt::xarray<float> w = emb->weight.to_xarray<float>();
  for (std::size_t j = 0; j < 3; ++j) CHECK(w(4, j) == 0.0f);
  const Tensor idx = tg::tensor({{1, 3, 1}, {4, 0, 1}}, tg::kInt64);
  const Tensor y = emb(idx);
  REQUIRE(y.shape() == Shape{2, 3, 3});
  const xt::xarray<float> yv = y.to_xarray<float>();
  const std::int64_t rows[2][3] = {{1, 3, 1}, {4, 0, 1}};
  for (std::size_t a = 0; a < 2; ++a)
    for (std::size_t b = 0; b < 3; ++b)
      for (std::size_t j = 0; j < 3; ++j) CHECK(yv(a, b, j) == w(std::size_t(rows[a][b]), j));
  tg::sum(tg::mul(y, tg::arange(1, 19).reshape({2, 3, 3}))).backward();
  const xt::xarray<float> gw = emb->weight.grad().to_xarray<float>();
  // upstream at (a, b, j) is (a·3 + b)·3 + j + 1; row 1 is used at (0,0), (0,2), (1,2)
  for (std::size_t j = 0; j < 3; ++j) {
    CHECK(gw(1, j) == float((0 + 1 + j) + (6 + 1 + j) + (15 + 1 + j)));
    CHECK(gw(3, j) == float(3 + 1 + j));
    CHECK(gw(0, j) == float(12 + 1 + j));
    CHECK(gw(2, j) == 0.0f);  // unused
    CHECK(gw(4, j) == 0.0f);  // padding
  }
  std::ostringstream os;
  os << *emb;
  CHECK(os.str() == "Embedding(5, 3, padding_idx=-1)");
  CHECK_THROWS_WITH_AS(emb(tg::tensor({0, 5}, tg::kInt64)),
                       "Embedding(5, 3): index 5 in indices of shape (2,) is outside [0, 5)", tg::ValueError);
  CHECK_THROWS_WITH_AS(emb(tg::tensor({0.0, 1.0})), "Embedding: indices must be int64, got float32 of shape (2,)",
                       tg::DtypeError);
  CHECK_THROWS_AS(nn::Embedding(nn::EmbeddingOptions(5, 3).padding_idx(5)), tg::ValueError);
}

// ---- Dropout2d ----------------------------------------------------------------------

TEST_CASE("Dropout2d zeroes whole channels in training, is the identity in eval") {
  tg::manual_seed(4);
  nn::Dropout2d drop(0.5);
  const Tensor x = tg::rand({8, 16, 3, 3}, 1.0, 2.0, tg::kFloat64).requires_grad_();
  const Tensor y = drop(x);
  const xt::xarray<double> xv = values(x), yv = values(y);
  std::size_t dropped = 0;
  for (std::size_t n = 0; n < 8; ++n)
    for (std::size_t c = 0; c < 16; ++c) {
      const bool zero = yv(n, c, 0, 0) == 0.0;
      dropped += zero;
      for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 3; ++j) CHECK(yv(n, c, i, j) == (zero ? 0.0 : 2.0 * xv(n, c, i, j)));
    }
  CHECK(dropped > 40);  // of 128, each dropped with probability 1/2
  CHECK(dropped < 88);
  tg::sum(y).backward();
  const xt::xarray<double> gx = values(x.grad());
  for (std::size_t n = 0; n < 8; ++n)
    for (std::size_t c = 0; c < 16; ++c) CHECK(gx(n, c, 1, 2) == (yv(n, c, 0, 0) == 0.0 ? 0.0 : 2.0));
  drop->eval();
  CHECK(values(drop(x)) == xv);
  tg::manual_seed(4);
  nn::Dropout2d again(0.5);
  CHECK(values(again(x)) == yv);  // same seed, same masks
  CHECK_THROWS_WITH_AS(again(tg::zeros({2, 3})), "Dropout2d: expected input of shape (N, C, H, W), got (2, 3)",
                       tg::ShapeError);
  CHECK_THROWS_AS(nn::Dropout2d(1.0), tg::ValueError);
}

// ---- normalization --------------------------------------------------------------------

TEST_CASE("BatchNorm1d on (N, C) and (N, C, L): batch statistics in training, running ones in eval") {
  tg::Generator g(12);
  for (const Shape& s : {Shape{6, 3}, Shape{4, 3, 5}}) {
    CAPTURE(tg::shape_str(s));
    nn::BatchNorm1d bn(nn::BatchNorm1dOptions(3).momentum(0.25));
    bn->to(tg::kFloat64);
    bn->weight.detach().mul_(2.0);
    const Tensor x = random_tensor(s, g);
    const xt::xarray<double> xv = values(x), yv = values(bn(x));
    const std::size_t len = s.size() == 3 ? s[2] : 1, count = s[0] * len;
    auto at = [&](const xt::xarray<double>& v, std::size_t n, std::size_t c, std::size_t l) {
      return v.data()[(n * 3 + c) * len + l];
    };
    const xt::xarray<double> rm = values(bn->running_mean), rv = values(bn->running_var);
    for (std::size_t c = 0; c < 3; ++c) {
      double mean = 0, sq = 0;
      for (std::size_t n = 0; n < s[0]; ++n)
        for (std::size_t l = 0; l < len; ++l) mean += at(xv, n, c, l) / double(count);
      for (std::size_t n = 0; n < s[0]; ++n)
        for (std::size_t l = 0; l < len; ++l) sq += (at(xv, n, c, l) - mean) * (at(xv, n, c, l) - mean);
      for (std::size_t n = 0; n < s[0]; ++n)
        for (std::size_t l = 0; l < len; ++l)
          CHECK(at(yv, n, c, l) ==
                doctest::Approx(2.0 * (at(xv, n, c, l) - mean) / std::sqrt(sq / double(count) + 1e-5)).epsilon(1e-9));
      CHECK(rm(c) == doctest::Approx(0.25 * mean).epsilon(1e-12));
      CHECK(rv(c) == doctest::Approx(0.75 + 0.25 * sq / double(count - 1)).epsilon(1e-12));
    }
    CHECK(bn->num_batches_tracked.item<std::int64_t>() == 1);
    bn->eval();
    const xt::xarray<double> ye = values(bn(x));
    for (std::size_t n = 0; n < s[0]; ++n)
      for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t l = 0; l < len; ++l)
          CHECK(at(ye, n, c, l) == doctest::Approx(2.0 * (at(xv, n, c, l) - rm(c)) / std::sqrt(rv(c) + 1e-5)));
    CHECK(bn->num_batches_tracked.item<std::int64_t>() == 1);
  }
  nn::BatchNorm1d bn(3);
  CHECK_THROWS_WITH_AS(bn(tg::zeros({4, 2})), "BatchNorm1d: expected input of shape (N, 3) or (N, 3, L), got (4, 2)",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(bn(tg::zeros({1, 3})),
                       "BatchNorm1d: training needs more than one value per channel, got input (1, 3)", tg::ShapeError);
  bn->eval();
  CHECK(bn(tg::zeros({1, 3})).shape() == Shape{1, 3});
}

TEST_CASE("LayerNorm and GroupNorm match per-sample loops, the same in train and eval") {
  tg::Generator g(13);
  const Tensor x = random_tensor({2, 4, 3}, g);
  const xt::xarray<double> xv = values(x);

  nn::LayerNorm ln(nn::LayerNormOptions({4, 3}).eps(1e-3));
  ln->to(tg::kFloat64);
  ln->bias.detach().add_(tg::full({4, 3}, 0.5, tg::kFloat64));
  const xt::xarray<double> y = values(ln(x));
  for (std::size_t n = 0; n < 2; ++n) {
    double mean = 0, var = 0;
    for (std::size_t i = 0; i < 12; ++i) mean += xv.data()[n * 12 + i] / 12;
    for (std::size_t i = 0; i < 12; ++i) var += std::pow(xv.data()[n * 12 + i] - mean, 2) / 12;
    for (std::size_t i = 0; i < 12; ++i)
      CHECK(y.data()[n * 12 + i] ==
            doctest::Approx((xv.data()[n * 12 + i] - mean) / std::sqrt(var + 1e-3) + 0.5).epsilon(1e-10));
  }
  ln->eval();
  CHECK(xt::allclose(values(ln(x)), y));
  nn::LayerNorm plain(nn::LayerNormOptions({3}).elementwise_affine(false));
  CHECK(plain->parameters().empty());
  CHECK_THROWS_WITH_AS(plain(tg::zeros({3, 4})),
                       "LayerNorm: expected an input ending with normalized_shape (3,), got (3, 4)", tg::ShapeError);

  nn::GroupNorm gn(2, 4);  // channels {0, 1} and {2, 3}
  gn->to(tg::kFloat64);
  const xt::xarray<double> z = values(gn(x));
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t grp = 0; grp < 2; ++grp) {
      const std::size_t first = (n * 4 + grp * 2) * 3;  // 6 values: two channels of 3
      double mean = 0, var = 0;
      for (std::size_t i = 0; i < 6; ++i) mean += xv.data()[first + i] / 6;
      for (std::size_t i = 0; i < 6; ++i) var += std::pow(xv.data()[first + i] - mean, 2) / 6;
      for (std::size_t i = 0; i < 6; ++i)
        CHECK(z.data()[first + i] == doctest::Approx((xv.data()[first + i] - mean) / std::sqrt(var + 1e-5)).epsilon(1e-10));
    }
  CHECK_THROWS_WITH_AS(gn(tg::zeros({2, 3, 5})), "GroupNorm: expected input of shape (N, 4, *), got (2, 3, 5)",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(nn::GroupNorm(3, 4), "GroupNorm: num_channels=4 must be a positive multiple of num_groups=3",
                       tg::ValueError);
}
