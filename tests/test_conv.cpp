// Convolution and pooling: gradients by finite differences, values against a
// direct convolution, the kernel gradient against an explicit sum, and the
// convolution against the constrained dense layer it is.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <sstream>

#include <tapegrad/ops/kernels/im2col.hpp>
#include <tapegrad/tapegrad.hpp>

using tg::Tensor;
using tg::Shape;
using Inputs = std::vector<Tensor>;

namespace {

struct ConvConfig {
  std::size_t n, c_in, c_out, h, w, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  bool bias;

  std::size_t ho() const { return (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
  std::size_t wo() const { return (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
  std::string str() const {
    std::ostringstream s;
    s << "x (" << n << ", " << c_in << ", " << h << ", " << w << "), w (" << c_out << ", " << c_in / groups << ", " << kh
      << ", " << kw << "), stride (" << sh << ", " << sw << "), padding (" << ph << ", " << pw << "), dilation (" << dh
      << ", " << dw << "), groups " << groups << (bias ? ", bias" : "");
    return s.str();
  }
  Tensor conv(const Inputs& in) const {
    return tg::conv2d(in[0], in[1], bias ? in[2] : Tensor(), {sh, sw}, {ph, pw}, {dh, dw}, groups);
  }
};

std::ptrdiff_t source(std::size_t o, std::size_t tap, std::size_t s, std::size_t p, std::size_t d, std::size_t size);

// Whether some window reads some input element (not only padding).
bool touches_input(const ConvConfig& c) {
  bool rows = false, columns = false;
  for (std::size_t o = 0; o < c.ho(); ++o)
    for (std::size_t i = 0; i < c.kh; ++i) rows |= source(o, i, c.sh, c.ph, c.dh, c.h) >= 0;
  for (std::size_t o = 0; o < c.wo(); ++o)
    for (std::size_t j = 0; j < c.kw; ++j) columns |= source(o, j, c.sw, c.pw, c.dw, c.w) >= 0;
  return rows && columns;
}

// A random valid configuration in which some window sees the input; about one
// in four has a kernel as large as the padded input (an output of size 1).
ConvConfig random_config(tg::Generator& g) {
  ConvConfig c{};
  c.groups = 1 + g.below(2);
  c.n = 1 + g.below(2);
  c.c_in = c.groups * (1 + g.below(2));
  c.c_out = c.groups * (1 + g.below(2));
  c.kh = 1 + g.below(3);
  c.kw = 1 + g.below(3);
  c.sh = 1 + g.below(2);
  c.sw = 1 + g.below(3);
  c.ph = g.below(2);
  c.pw = g.below(3);
  c.dh = 1 + g.below(2);
  c.dw = 1 + g.below(2);
  const std::size_t span_h = c.dh * (c.kh - 1) + 1, span_w = c.dw * (c.kw - 1) + 1;
  const bool tight = g.below(4) == 0;
  c.h = std::max<std::size_t>(1, span_h > 2 * c.ph ? span_h - 2 * c.ph : 1) + (tight ? 0 : g.below(4));
  c.w = std::max<std::size_t>(1, span_w > 2 * c.pw ? span_w - 2 * c.pw : 1) + (tight ? 0 : g.below(4));
  c.bias = g.below(2) == 1;
  return touches_input(c) ? c : random_config(g);
}

Tensor random_tensor(const Shape& s, tg::Generator& g) {
  Tensor t = tg::rand(s, g, -1.0, 1.0, tg::kFloat64);
  t.requires_grad_();
  return t;
}

Inputs conv_inputs(const ConvConfig& c, tg::Generator& g) {
  Inputs in{random_tensor({c.n, c.c_in, c.h, c.w}, g), random_tensor({c.c_out, c.c_in / c.groups, c.kh, c.kw}, g)};
  if (c.bias) in.push_back(random_tensor({c.c_out}, g));
  return in;
}

// The input element read by output (oh, ow) through tap (i, j), or -1 in padding.
std::ptrdiff_t source(std::size_t o, std::size_t tap, std::size_t s, std::size_t p, std::size_t d, std::size_t size) {
  const std::ptrdiff_t i = std::ptrdiff_t(o * s + tap * d) - std::ptrdiff_t(p);
  return i >= 0 && i < std::ptrdiff_t(size) ? i : -1;
}

// A direct convolution, written independently of the library.
xt::xarray<double> naive_conv(const ConvConfig& c, const xt::xarray<double>& x, const xt::xarray<double>& w,
                              const xt::xarray<double>* b) {
  xt::xarray<double> y = xt::zeros<double>({c.n, c.c_out, c.ho(), c.wo()});
  const std::size_t cin_g = c.c_in / c.groups, cout_g = c.c_out / c.groups;
  for (std::size_t n = 0; n < c.n; ++n)
    for (std::size_t co = 0; co < c.c_out; ++co)
      for (std::size_t oh = 0; oh < c.ho(); ++oh)
        for (std::size_t ow = 0; ow < c.wo(); ++ow) {
          double acc = b ? (*b)(co) : 0.0;
          const std::size_t group = co / cout_g;
          for (std::size_t ci = 0; ci < cin_g; ++ci)
            for (std::size_t i = 0; i < c.kh; ++i)
              for (std::size_t j = 0; j < c.kw; ++j) {
                const auto ih = source(oh, i, c.sh, c.ph, c.dh, c.h), iw = source(ow, j, c.sw, c.pw, c.dw, c.w);
                if (ih >= 0 && iw >= 0) acc += w(co, ci, i, j) * x(n, group * cin_g + ci, std::size_t(ih), std::size_t(iw));
              }
          y(n, co, oh, ow) = acc;
        }
  return y;
}

// conv2d of `in` against the direct convolution: shape and values.
void check_equals_direct(const ConvConfig& c, const Inputs& in) {
  const xt::xarray<double> bias_values = c.bias ? in[2].to_xarray<double>() : xt::xarray<double>();
  const xt::xarray<double> want =
      naive_conv(c, in[0].to_xarray<double>(), in[1].to_xarray<double>(), c.bias ? &bias_values : nullptr);
  const Tensor y = c.conv(in);
  REQUIRE(y.shape() == Shape{c.n, c.c_out, c.ho(), c.wo()});
  CHECK(xt::allclose(y.value<double>(), want));
}

// conv2d of random inputs for c: values against the direct convolution, and
// first and second gradients by finite differences.
void check_values_and_gradients(const ConvConfig& c, tg::Generator& g) {
  CAPTURE(c.str());
  const Inputs in = conv_inputs(c, g);
  check_equals_direct(c, in);
  auto f = [&](const Inputs& args) { return c.conv(args); };
  CHECK(tg::gradcheck(f, in).passed);
  CHECK(tg::gradgradcheck(f, in).passed);
}

}  // namespace

// ---- gradients ----------------------------------------------------------------

TEST_CASE("im2col and col2im: gradcheck and gradgradcheck") {
  tg::Generator g(11);
  for (int draw = 0; draw < 12; ++draw) {
    const ConvConfig c = random_config(g);
    CAPTURE(c.str());
    const tg::Size2 k(c.kh, c.kw), s(c.sh, c.sw), p(c.ph, c.pw), d(c.dh, c.dw);
    const Tensor x = random_tensor({c.n, c.c_in, c.h, c.w}, g);
    auto im2col = [&](const Inputs& in) { return tg::im2col(in[0], k, s, p, d); };
    CHECK(tg::gradcheck(im2col, {x}).passed);
    CHECK(tg::gradgradcheck(im2col, {x}).passed);
    const Tensor cols = random_tensor({c.n, c.c_in * c.kh * c.kw, c.ho() * c.wo()}, g);
    auto col2im = [&](const Inputs& in) { return tg::col2im(in[0], {c.h, c.w}, k, s, p, d); };
    CHECK(tg::gradcheck(col2im, {cols}).passed);
    CHECK(tg::gradgradcheck(col2im, {cols}).passed);
  }
}

TEST_CASE("im2col and col2im are adjoint: <im2col(x), y> = <x, col2im(y)>") {
  tg::Generator g(12);
  for (int draw = 0; draw < 20; ++draw) {
    const ConvConfig c = random_config(g);
    CAPTURE(c.str());
    const tg::Size2 k(c.kh, c.kw), s(c.sh, c.sw), p(c.ph, c.pw), d(c.dh, c.dw);
    const Tensor x = tg::randn({c.n, c.c_in, c.h, c.w}, g, 0.0, 1.0, tg::kFloat64);
    const Tensor y = tg::randn({c.n, c.c_in * c.kh * c.kw, c.ho() * c.wo()}, g, 0.0, 1.0, tg::kFloat64);
    const double lhs = xt::sum(tg::im2col(x, k, s, p, d).value<double>() * y.value<double>())();
    const double rhs = xt::sum(x.value<double>() * tg::col2im(y, {c.h, c.w}, k, s, p, d).value<double>())();
    CHECK(lhs == doctest::Approx(rhs));
  }
}

TEST_CASE("conv2d: gradcheck and gradgradcheck over strides, paddings, dilations, groups, bias") {
  tg::Generator g(13);
  for (int draw = 0; draw < 30; ++draw) {
    const ConvConfig c = random_config(g);
    CAPTURE(c.str());
    const Inputs in = conv_inputs(c, g);
    auto f = [&](const Inputs& args) { return c.conv(args); };
    const auto first = tg::gradcheck(f, in);
    INFO(first.message);
    CHECK(first.passed);
    const auto second = tg::gradgradcheck(f, in);
    INFO(second.message);
    CHECK(second.passed);
  }
}

TEST_CASE("depthwise conv2d and conv1d: gradcheck") {
  tg::Generator g(14);
  const Tensor x = random_tensor({2, 3, 5, 4}, g), w = random_tensor({6, 1, 3, 2}, g), b = random_tensor({6}, g);
  CHECK(tg::gradcheck([](const Inputs& in) { return tg::conv2d(in[0], in[1], in[2], 1, {1, 0}, 1, 3); }, {x, w, b}).passed);
  const Tensor x1 = random_tensor({2, 4, 9}, g), w1 = random_tensor({2, 2, 3}, g), b1 = random_tensor({2}, g);
  auto f1 = [](const Inputs& in) { return tg::conv1d(in[0], in[1], in[2], 2, 1, 2, 2); };
  CHECK(tg::gradcheck(f1, {x1, w1, b1}).passed);
  CHECK(tg::gradgradcheck(f1, {x1, w1, b1}).passed);
}

TEST_CASE("max_pool2d and avg_pool2d: gradcheck and gradgradcheck") {
  tg::Generator g(15);
  for (int draw = 0; draw < 12; ++draw) {
    const std::size_t kh = 1 + g.below(3), kw = 1 + g.below(3), sh = 1 + g.below(3), sw = 1 + g.below(2);
    const std::size_t ph = g.below(kh / 2 + 1), pw = g.below(kw / 2 + 1);
    const Tensor x = random_tensor({1 + g.below(2), 1 + g.below(3), kh + g.below(4), kw + g.below(4)}, g);
    CAPTURE(draw);
    auto maxp = [&](const Inputs& in) { return tg::max_pool2d(in[0], {kh, kw}, {sh, sw}, {ph, pw}); };
    auto avgp = [&](const Inputs& in) { return tg::avg_pool2d(in[0], {kh, kw}, {sh, sw}, {ph, pw}); };
    CHECK(tg::gradcheck(maxp, {x}).passed);
    CHECK(tg::gradgradcheck(maxp, {x}).passed);
    CHECK(tg::gradcheck(avgp, {x}).passed);
    CHECK(tg::gradgradcheck(avgp, {x}).passed);
  }
}

// ---- values ---------------------------------------------------------------------

TEST_CASE("conv2d equals a direct convolution") {
  tg::Generator g(16);
  for (int draw = 0; draw < 40; ++draw) {
    const ConvConfig c = random_config(g);
    CAPTURE(c.str());
    const Inputs in = conv_inputs(c, g);
    check_equals_direct(c, in);
  }
}

TEST_CASE("stride-1 convolutions that keep the width: each tap's columns are one run of the input") {
  // im2col copies such a tap's whole block at once and then pads the
  // elements that ran over a row's edge; these cover both edges, taps that
  // read padding rows only, dilation and a kernel wider than the input.
  const ConvConfig configs[] = {
      // n c_in c_out h w kh kw sh sw ph pw dh dw groups bias
      {2, 3, 2, 7, 6, 5, 5, 1, 1, 2, 2, 1, 1, 1, true},
      {1, 2, 2, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2, 2, false},
      {1, 1, 3, 4, 3, 1, 3, 1, 1, 0, 1, 1, 1, 1, true},
      {2, 2, 1, 2, 2, 5, 5, 1, 1, 2, 2, 1, 1, 1, false},
      {1, 2, 2, 6, 1, 3, 1, 2, 1, 1, 0, 1, 1, 1, true},
  };
  tg::Generator g(21);
  for (const ConvConfig& c : configs) {
    REQUIRE(c.wo() == c.w);
    check_values_and_gradients(c, g);
  }
}

TEST_CASE("float32 im2col and col2im equal direct loops, bit for bit, on rows up to 17 wide") {
  // Float rows of at most 16 elements at width stride 1 take their own
  // kernels (one register per row, where the processor has AVX-512); 17 and
  // stride 2 take the general loops. col2im adds each element's taps in
  // (c, i, j) order, as the loop below does, so the sums match exactly.
  tg::Generator g(22);
  for (int draw = 0; draw < 60; ++draw) {
    const std::size_t c = 1 + g.below(3), kh = 1 + g.below(5), kw = 1 + g.below(5);
    const std::size_t sh = 1 + g.below(3), sw = draw % 5 == 4 ? 2 : 1, ph = g.below(3), pw = g.below(3);
    const std::size_t dh = 1 + g.below(2), dw = 1 + g.below(2);
    const std::size_t h = 1 + g.below(9), w = 1 + g.below(17);
    const std::ptrdiff_t span_h = std::ptrdiff_t(dh * (kh - 1) + 1), span_w = std::ptrdiff_t(dw * (kw - 1) + 1);
    if (std::ptrdiff_t(h + 2 * ph) < span_h || std::ptrdiff_t(w + 2 * pw) < span_w) continue;
    const std::size_t ho = (h + 2 * ph - std::size_t(span_h)) / sh + 1, wo = (w + 2 * pw - std::size_t(span_w)) / sw + 1;
    CAPTURE(draw);
    const Tensor x = tg::randn({2, c, h, w}, g);
    const Tensor cols = tg::randn({2, c * kh * kw, ho * wo}, g);
    const auto got_cols = tg::im2col(x, {kh, kw}, {sh, sw}, {ph, pw}, {dh, dw}, -7.0).to_xarray<float>();
    const auto got_x = tg::col2im(cols, {h, w}, {kh, kw}, {sh, sw}, {ph, pw}, {dh, dw}).to_xarray<float>();
    const auto xv = x.to_xarray<float>(), cv = cols.to_xarray<float>();
    xt::xarray<float> want_cols = xt::zeros<float>({std::size_t(2), c * kh * kw, ho * wo});
    xt::xarray<float> want_x = xt::zeros<float>({std::size_t(2), c, h, w});
    for (std::size_t n = 0; n < 2; ++n)
      for (std::size_t ch = 0; ch < c; ++ch)
        for (std::size_t i = 0; i < kh; ++i)
          for (std::size_t j = 0; j < kw; ++j)
            for (std::size_t oh = 0; oh < ho; ++oh)
              for (std::size_t ow = 0; ow < wo; ++ow) {
                const std::size_t row = (ch * kh + i) * kw + j, o = oh * wo + ow;
                const auto ih = source(oh, i, sh, ph, dh, h), iw = source(ow, j, sw, pw, dw, w);
                const bool inside = ih >= 0 && iw >= 0;
                want_cols(n, row, o) = inside ? xv(n, ch, std::size_t(ih), std::size_t(iw)) : -7.0f;
                if (inside) want_x(n, ch, std::size_t(ih), std::size_t(iw)) += cv(n, row, o);
              }
    CHECK(got_cols == want_cols);
    CHECK(got_x == want_x);
  }
}

TEST_CASE("windows whose taps read only padding: values and gradients") {
  // Each has a kernel row or column that, for every output position, lands in
  // the padding, so im2col writes whole rows of padding and col2im skips them.
  const ConvConfig configs[] = {
      // n c_in c_out h w kh kw sh sw ph pw dh dw groups bias
      {1, 1, 1, 1, 1, 2, 2, 3, 3, 1, 1, 1, 1, 1, false},
      {1, 1, 2, 3, 1, 1, 2, 1, 3, 0, 1, 1, 1, 1, true},
      {2, 2, 2, 2, 1, 3, 3, 2, 3, 2, 2, 2, 1, 2, true},
  };
  tg::Generator g(20);
  for (const ConvConfig& c : configs) check_values_and_gradients(c, g);
}

TEST_CASE("the kernel gradient is the upstream gradient times the input patch, summed over batch and positions") {
  tg::Generator g(17);
  for (int draw = 0; draw < 20; ++draw) {
    const ConvConfig c = random_config(g);
    CAPTURE(c.str());
    const Inputs in = conv_inputs(c, g);
    const Tensor upstream = tg::randn({c.n, c.c_out, c.ho(), c.wo()}, g, 0.0, 1.0, tg::kFloat64);
    c.conv(in).backward(upstream);
    const xt::xarray<double> x = in[0].to_xarray<double>();
    const xt::xarray<double> dy = upstream.to_xarray<double>();
    const std::size_t cin_g = c.c_in / c.groups, cout_g = c.c_out / c.groups;
    xt::xarray<double> dw = xt::zeros<double>({c.c_out, cin_g, c.kh, c.kw});
    xt::xarray<double> db = xt::zeros<double>({c.c_out});
    for (std::size_t n = 0; n < c.n; ++n)  // every image of the batch
      for (std::size_t co = 0; co < c.c_out; ++co)
        for (std::size_t oh = 0; oh < c.ho(); ++oh)  // every output position
          for (std::size_t ow = 0; ow < c.wo(); ++ow) {
            db(co) += dy(n, co, oh, ow);
            for (std::size_t ci = 0; ci < cin_g; ++ci)
              for (std::size_t i = 0; i < c.kh; ++i)
                for (std::size_t j = 0; j < c.kw; ++j) {
                  const auto ih = source(oh, i, c.sh, c.ph, c.dh, c.h), iw = source(ow, j, c.sw, c.pw, c.dw, c.w);
                  if (ih >= 0 && iw >= 0)
                    dw(co, ci, i, j) += dy(n, co, oh, ow) * x(n, (co / cout_g) * cin_g + ci, std::size_t(ih), std::size_t(iw));
                }
          }
    CHECK(xt::allclose(in[1].grad().value<double>(), dw));
    if (c.bias) CHECK(xt::allclose(in[2].grad().value<double>(), db));
  }
}

TEST_CASE("a convolution is a dense layer with tied weights and zeros outside each window") {
  tg::Generator g(18);
  for (int draw = 0; draw < 8; ++draw) {
    ConvConfig c = random_config(g);
    c.groups = 1;
    c.c_in = 1 + g.below(2);
    c.c_out = 1 + g.below(2);
    c.bias = false;
    CAPTURE(c.str());
    const Inputs in = conv_inputs(c, g);
    const xt::xarray<double> w = in[1].to_xarray<double>();
    // dense: (C_out·Ho·Wo, C_in·H·W); entry (co, oh, ow) x (ci, ih, iw) is the
    // kernel weight that connects them, or 0.
    const std::size_t rows = c.c_out * c.ho() * c.wo(), cols = c.c_in * c.h * c.w;
    xt::xarray<double> dense = xt::zeros<double>({rows, cols});
    xt::xarray<int> tie = xt::xarray<int>::from_shape({rows, cols});
    tie.fill(-1);  // index of the shared kernel weight, -1 outside every window
    for (std::size_t co = 0; co < c.c_out; ++co)
      for (std::size_t oh = 0; oh < c.ho(); ++oh)
        for (std::size_t ow = 0; ow < c.wo(); ++ow)
          for (std::size_t ci = 0; ci < c.c_in; ++ci)
            for (std::size_t i = 0; i < c.kh; ++i)
              for (std::size_t j = 0; j < c.kw; ++j) {
                const auto ih = source(oh, i, c.sh, c.ph, c.dh, c.h), iw = source(ow, j, c.sw, c.pw, c.dw, c.w);
                if (ih < 0 || iw < 0) continue;
                const std::size_t r = (co * c.ho() + oh) * c.wo() + ow;
                const std::size_t q = (ci * c.h + std::size_t(ih)) * c.w + std::size_t(iw);
                dense(r, q) += w(co, ci, i, j);
                tie(r, q) = int(((co * c.c_in + ci) * c.kh + i) * c.kw + j);
              }
    Tensor dense_w(dense, true);
    const Tensor x_flat = tg::reshape(in[0], Shape{c.n, cols}).detach();
    const Tensor y_dense = tg::linear(x_flat, dense_w);  // (N, C_out·Ho·Wo)
    const Tensor y_conv = c.conv(in);
    CHECK(xt::allclose(y_dense.value<double>(), tg::reshape(y_conv, Shape{c.n, rows}).value<double>()));

    // Same upstream gradient through both.
    const Tensor upstream = tg::randn({c.n, rows}, g, 0.0, 1.0, tg::kFloat64);
    y_dense.backward(upstream);
    y_conv.backward(tg::reshape(upstream, Shape{c.n, c.c_out, c.ho(), c.wo()}).detach());
    xt::xarray<double> tied_sum = xt::zeros<double>({w.size()});
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t q = 0; q < cols; ++q)
        if (tie(r, q) >= 0) tied_sum(std::size_t(tie(r, q))) += dense_w.grad().value<double>()(r, q);
    CHECK(xt::allclose(tg::reshape(in[1].grad(), Shape{w.size()}).value<double>(), tied_sum));
  }
}

TEST_CASE("max_pool2d and avg_pool2d equal direct loops; padding never wins a max") {
  tg::Generator g(19);
  const Tensor x = tg::randn({2, 3, 7, 6}, g, 0.0, 1.0, tg::kFloat64) - 5.0;  // all negative: zero padding would win
  const std::size_t k = 3, s = 2, p = 1;
  const auto mp = tg::max_pool2d(x, k, s, p).value<double>();
  const auto ap = tg::avg_pool2d(x, k, s, p).value<double>();
  const std::size_t ho = (7 + 2 * p - k) / s + 1, wo = (6 + 2 * p - k) / s + 1;
  REQUIRE(mp.shape() == xt::xarray<double>::shape_type{2, 3, ho, wo});
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t ch = 0; ch < 3; ++ch)
      for (std::size_t oh = 0; oh < ho; ++oh)
        for (std::size_t ow = 0; ow < wo; ++ow) {
          double best = -std::numeric_limits<double>::infinity(), total = 0;
          for (std::size_t i = 0; i < k; ++i)
            for (std::size_t j = 0; j < k; ++j) {
              const auto ih = source(oh, i, s, p, 1, 7), iw = source(ow, j, s, p, 1, 6);
              if (ih < 0 || iw < 0) continue;
              const double v = x.value<double>()(n, ch, std::size_t(ih), std::size_t(iw));
              best = std::max(best, v);
              total += v;
            }
          CHECK(mp(n, ch, oh, ow) == best);
          CHECK(ap(n, ch, oh, ow) == doctest::Approx(total / double(k * k)));
        }
  CHECK(tg::max_pool2d(x, 2).shape() == Shape{2, 3, 3, 3});  // stride defaults to the kernel
}

TEST_CASE("window_max: each window's first maximum and its position, with int32 and int64 positions alike") {
  // int64 positions serve planes of 2^31 elements and more; both must agree with a direct loop.
  const std::size_t h = 7, w = 6;
  const tg::kernels::Window win{3, 2, 2, 1, 1, 1, 1, 2};  // kh kw, sh sw, ph pw, dh dw
  const std::size_t ho = win.out_h(h), wo = win.out_w(w), taps = win.kh * win.kw;
  tg::Generator g(5);
  const auto v = tg::randn({h * w}, g, 0.0, 1.0, tg::kFloat64).to_xarray<double>();
  std::vector<double> windows(taps * ho * wo);
  tg::kernels::im2col(v.data(), 1, h, w, win, 0.0, windows.data());
  const auto run = [&](auto index) {
    using Index = decltype(index);
    const std::vector<Index> where_taps = tg::kernels::window_taps<Index>(h, w, win);
    std::vector<double> y(ho * wo);
    std::vector<Index> at(ho * wo);
    tg::kernels::window_max(windows.data(), where_taps.data(), taps, ho * wo, y.data(), at.data());
    return std::make_pair(y, std::vector<std::int64_t>(at.begin(), at.end()));
  };
  const auto narrow = run(std::int32_t{}), wide = run(std::int64_t{});
  for (std::size_t oh = 0; oh < ho; ++oh)
    for (std::size_t ow = 0; ow < wo; ++ow) {
      double best = 0.0;
      std::int64_t pos = -1;
      for (std::size_t i = 0; i < win.kh; ++i)
        for (std::size_t j = 0; j < win.kw; ++j) {
          const auto ih = std::ptrdiff_t(oh * win.sh + i * win.dh) - std::ptrdiff_t(win.ph);
          const auto iw = std::ptrdiff_t(ow * win.sw + j * win.dw) - std::ptrdiff_t(win.pw);
          if (ih < 0 || iw < 0 || ih >= std::ptrdiff_t(h) || iw >= std::ptrdiff_t(w)) continue;
          const double value = v(std::size_t(ih) * w + std::size_t(iw));
          if (pos < 0 || value > best) {
            best = value;
            pos = ih * std::ptrdiff_t(w) + iw;
          }
        }
      const std::size_t o = oh * wo + ow;
      CHECK(narrow.first[o] == best);
      CHECK(wide.first[o] == best);
      CHECK(narrow.second[o] == pos);
      CHECK(wide.second[o] == pos);
    }
}

TEST_CASE("max_pool2d gives a window's gradient to its first maximum, as PyTorch's does") {
  Tensor x(xt::xarray<double>{{{{1.0, 4.0}, {4.0, 2.0}}}}, true);  // (1, 1, 2, 2), two maxima
  tg::sum(tg::max_pool2d(x, 2)).backward();
  CHECK(x.grad().value<double>() == xt::xarray<double>{{{{0.0, 1.0}, {0.0, 0.0}}}});

  // Overlapping windows (stride 1) that share a maximum add their gradients there.
  Tensor y(xt::xarray<double>{{{{0.0, 1.0, 0.0}, {0.0, 5.0, 0.0}, {0.0, 0.0, 0.0}}}}, true);
  tg::sum(tg::max_pool2d(y, 2, 1)).backward();
  CHECK(y.grad().value<double>() == xt::xarray<double>{{{{0.0, 0.0, 0.0}, {0.0, 4.0, 0.0}, {0.0, 0.0, 0.0}}}});

  // Padding never wins, not even against -inf: the gradient lands inside.
  const double inf = std::numeric_limits<double>::infinity();
  Tensor u(xt::xarray<double>{{{{-inf, -inf}, {-inf, -inf}}}}, true);
  const Tensor pooled = tg::max_pool2d(u, 3, 2, 1);  // one 3x3 window, its first row and column padding
  CHECK(pooled.item() == -inf);
  tg::sum(pooled).backward();
  CHECK(u.grad().value<double>() == xt::xarray<double>{{{{1.0, 0.0}, {0.0, 0.0}}}});

  // A window of zeros (relu's dead units): the first zero, not a quarter each.
  Tensor z = tg::zeros({1, 1, 2, 4}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  tg::sum(tg::max_pool2d(z, 2) * 3.0).backward();
  CHECK(z.grad().value<double>() == xt::xarray<double>{{{{3.0, 0.0, 3.0, 0.0}, {0.0, 0.0, 0.0, 0.0}}}});
}

TEST_CASE("conv1d equals the direct 1-d convolution") {
  tg::Generator g(20);
  const Tensor x = tg::randn({2, 3, 10}, g, 0.0, 1.0, tg::kFloat64), w = tg::randn({4, 3, 3}, g, 0.0, 1.0, tg::kFloat64), b = tg::randn({4}, g, 0.0, 1.0, tg::kFloat64);
  const std::size_t stride = 2, pad = 1, dil = 2, lo = (10 + 2 * pad - dil * 2 - 1) / stride + 1;
  const auto y = tg::conv1d(x, w, b, stride, pad, dil).value<double>();
  REQUIRE(y.shape() == xt::xarray<double>::shape_type{2, 4, lo});
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t co = 0; co < 4; ++co)
      for (std::size_t o = 0; o < lo; ++o) {
        double acc = b.value<double>()(co);
        for (std::size_t ci = 0; ci < 3; ++ci)
          for (std::size_t t = 0; t < 3; ++t) {
            const auto i = source(o, t, stride, pad, dil, 10);
            if (i >= 0) acc += w.value<double>()(co, ci, t) * x.value<double>()(n, ci, std::size_t(i));
          }
        CHECK(y(n, co, o) == doctest::Approx(acc));
      }
}

TEST_CASE("the tape of a conv shows its composition: im2col, matmul, reshape, add") {
  tg::tape().clear();
  tg::Generator g(21);
  const tg::Tensor x = tg::randn({2, 1, 5, 5}, g);
  tg::Tensor w = tg::randn({3, 1, 3, 3}, g).requires_grad_();
  tg::Tensor b = tg::zeros({3}, tg::requires_grad());
  const tg::Tensor y = tg::conv2d(x, w, b, 1, 1);
  // x needs no gradient, so im2col is not recorded: its output is a constant.
  std::vector<std::string> ops;
  for (std::size_t i = 0; i < tg::tape().size(); ++i) ops.push_back(tg::tape()[i].op);
  CHECK(ops == std::vector<std::string>{"reshape", "matmul", "reshape", "reshape", "add"});
  tg::tape().clear();
  const tg::Tensor y2 = tg::conv2d(x.detach().requires_grad_(), w, b, 1, 1);  // kept: a dead result frees its graph
  CHECK(tg::tape()[0].op == "im2col");
  tg::tape().clear();
}

// ---- errors ---------------------------------------------------------------------

TEST_CASE("conv and pooling errors name the op and the shapes") {
  tg::Generator g(22);
  const tg::Tensor x = tg::randn({1, 3, 5, 5}, g);
  CHECK_THROWS_WITH_AS(tg::conv2d(x, tg::randn({2, 4, 3, 3}, g)),
                       doctest::Contains("conv2d: input (1, 3, 5, 5) has 3 channels but weight (2, 4, 3, 3)"),
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::conv2d(x, tg::randn({2, 3, 7, 3}, g)),
                       doctest::Contains("conv2d: kernel (7, 3) with dilation (1, 1) is larger than the padded input (5, 5)"),
                       tg::ShapeError);
  CHECK(tg::conv2d(x, tg::randn({2, 3, 7, 3}, g), {}, 1, 1).shape() == Shape{1, 2, 1, 5});
  CHECK_THROWS_WITH_AS(tg::conv2d(x, tg::randn({2, 3, 3, 3}, g), {}, 0),
                       doctest::Contains("conv2d: stride must be positive, got (0, 0)"), tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::conv2d(x, tg::randn({2, 3, 3, 3}, g), tg::zeros({3})),
                       doctest::Contains("conv2d: bias must have shape (2,), got (3,)"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::conv2d(tg::randn({3, 5, 5}, g), tg::randn({2, 3, 3, 3}, g)),
                       doctest::Contains("conv2d: input must have shape (N, C, H, W), got (3, 5, 5)"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::conv2d(x, tg::randn({3, 1, 3, 3}, g), {}, 1, 0, 1, 2),
                       doctest::Contains("groups = 2"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::max_pool2d(x, 7), doctest::Contains("max_pool2d: kernel (7, 7)"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::max_pool2d(x, 2, 2, 2), doctest::Contains("max_pool2d: padding (2, 2) must be at most half"),
                       tg::ValueError);
  // A window of 2^20 rows sliding down 2^21: 2^40 window elements per plane,
  // refused before anything that size is allocated.
  CHECK_THROWS_WITH_AS(tg::max_pool2d(tg::zeros({1, 1, std::size_t(1) << 21, 1}), {std::int64_t(1) << 20, 1}, 1),
                       doctest::Contains("max_pool2d"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::col2im(tg::zeros({1, 5, 9}), {5, 5}, 2), doctest::Contains("col2im"), tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::conv1d(x, tg::randn({2, 3, 3}, g)), doctest::Contains("conv1d: input must have shape (N, C, L)"),
                       tg::ShapeError);
}

TEST_CASE("negative sizes are refused by name, never cast to huge unsigned values") {
  tg::Generator g(23);
  const tg::Tensor x = tg::randn({1, 2, 6, 6}, g), w = tg::randn({2, 2, 3, 3}, g);
  const int minus_one = -1;  // as a caller's int variable would hold it
  CHECK_THROWS_WITH_AS(tg::conv2d(x, w, {}, minus_one), doctest::Contains("conv2d: stride must not be negative, got (-1, -1)"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::conv2d(x, w, {}, 1, {0, minus_one}), doctest::Contains("conv2d: padding must not be negative"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::conv2d(x, w, {}, 1, 0, minus_one), doctest::Contains("conv2d: dilation must not be negative"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::conv2d(x, w, {}, 1, 0, 1, minus_one), doctest::Contains("conv2d: groups must be positive"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::max_pool2d(x, 2, minus_one), doctest::Contains("max_pool2d: stride must not be negative"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::avg_pool2d(x, 2, 2, minus_one), doctest::Contains("avg_pool2d: padding must not be negative"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::im2col(x, minus_one), doctest::Contains("im2col: kernel size must not be negative"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::col2im(tg::zeros({1, 8, 25}), {6, minus_one}, 2),
                       doctest::Contains("col2im: image size must not be negative"), tg::ValueError);
  const tg::Tensor x1 = tg::randn({1, 2, 8}, g), w1 = tg::randn({2, 2, 3}, g);
  CHECK_THROWS_WITH_AS(tg::conv1d(x1, w1, {}, minus_one), doctest::Contains("conv1d"), tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::conv1d(x1, w1, {}, 1, minus_one), doctest::Contains("padding must not be negative"),
                       tg::ValueError);
  // A size_t that wrapped from a negative int reads as negative too.
  const std::size_t wrapped = std::size_t(minus_one);
  CHECK_THROWS_AS(tg::conv2d(x, w, {}, wrapped), tg::ValueError);
}
