// How is a convolution kernel trained? Exactly like a dense weight.
//
// A 3x3 kernel on a 4x4 image gives 2x2 outputs. The same map is a dense
// layer with a 4x16 matrix: each row holds the nine kernel weights at its
// output's window and zeros elsewhere, the same nine values in every row.
// Both give the same output, and each kernel weight's gradient is the sum of
// the dense gradients at the four places that weight appears.
#include <cstdio>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

int main() {
  const std::size_t h = 4, w = 4, k = 3, out = h - k + 1;  // stride 1, no padding
  const tg::TensorOptions dbl(tg::kFloat64);

  tg::Tensor image = tg::arange(1, 17, 1, dbl).reshape(tg::Shape{1, 1, h, w});  // pixels 1..16
  tg::Tensor kernel = tg::tensor({{{{0.5, -1.0, 0.0}, {1.0, 2.0, -0.5}, {0.0, 1.0, 0.5}}}}, dbl.requires_grad(true));
  tg::Tensor upstream = tg::tensor({{{{1.0, 2.0}, {3.0, 4.0}}}}, dbl);  // dL/d(output), as if from the layers above

  // The dense matrix: row (oh, ow), column (ih, iw); tied[row][col] names the kernel tap.
  const auto taps = kernel.value<double>();
  xt::xarray<double> dense = xt::zeros<double>({out * out, h * w});
  std::vector<std::vector<int>> tied(out * out, std::vector<int>(h * w, -1));
  for (std::size_t oh = 0; oh < out; ++oh)
    for (std::size_t ow = 0; ow < out; ++ow)
      for (std::size_t i = 0; i < k; ++i)
        for (std::size_t j = 0; j < k; ++j) {
          const std::size_t row = oh * out + ow, col = (oh + i) * w + (ow + j);
          dense(row, col) = taps(0, 0, i, j);
          tied[row][col] = int(i * k + j);
        }
  tg::Tensor dense_weight(dense, /*requires_grad=*/true);

  std::printf("The dense matrix (4 outputs x 16 pixels); wIJ is kernel tap (I, J), . is a zero:\n");
  for (std::size_t row = 0; row < out * out; ++row) {
    std::printf("  ");
    for (std::size_t col = 0; col < h * w; ++col) {
      const int t = tied[row][col];
      t < 0 ? std::printf("  . ") : std::printf("w%d%d ", t / int(k), t % int(k));
    }
    std::printf("\n");
  }

  // Forward both ways.
  tg::Tensor conv_out = tg::conv2d(image, kernel);                                          // (1, 1, 2, 2)
  tg::Tensor dense_out = tg::linear(image.reshape(tg::Shape{1, h * w}), dense_weight);  // (1, 4)
  const xt::xarray<double> conv_values = conv_out.flatten().to_xarray<double>();
  const xt::xarray<double> dense_values = dense_out.flatten().to_xarray<double>();
  std::printf("\n%-10s %12s %12s\n", "output", "conv", "dense");
  for (std::size_t p = 0; p < out * out; ++p)
    std::printf("(%zu, %zu) %14.2f %12.2f\n", p / out, p % out, conv_values(p), dense_values(p));

  // Backward both ways with the same upstream gradient.
  conv_out.backward(upstream);
  dense_out.backward(upstream.reshape(tg::Shape{1, out * out}));

  const xt::xarray<double> dense_grad = dense_weight.grad().to_xarray<double>();
  const xt::xarray<double> kernel_grad = kernel.grad().to_xarray<double>();
  const xt::xarray<double> upstream_values = upstream.flatten().to_xarray<double>();
  const xt::xarray<double> pixels = image.flatten().to_xarray<double>();
  std::printf("\n%-8s %12s %22s   %s\n", "weight", "conv grad", "sum of tied dense grads", "= upstream x patch, summed over positions");
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = 0; j < k; ++j) {
      double tied_sum = 0.0;
      std::string terms;
      for (std::size_t row = 0; row < out * out; ++row)
        for (std::size_t col = 0; col < h * w; ++col)
          if (tied[row][col] == int(i * k + j)) {
            tied_sum += dense_grad(row, col);
            terms += (terms.empty() ? "" : " + ") + std::to_string(int(upstream_values(row))) + "*" +
                     std::to_string(int(pixels(col)));
          }
      std::printf("w%zu%zu %14.2f %22.2f   %s\n", i, j, kernel_grad(0, 0, i, j), tied_sum, terms.c_str());
    }
  std::printf("\nThe conv backward never builds the dense matrix: im2col lays the patches out as\n"
              "columns, and matmul's gradient (upstream x patches^T) does the summing.\n");
  return 0;
}
