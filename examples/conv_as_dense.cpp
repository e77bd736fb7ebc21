// How is a convolution kernel trained? Exactly like a dense weight.
//
// A 3x3 kernel on a 4x4 image gives 2x2 outputs. The same map is a dense
// layer with a 4x16 matrix: each row holds the nine kernel weights at its
// output's window and zeros elsewhere, the same nine values in every row.
// Both give the same output, and each kernel weight's gradient is the sum of
// the dense gradients at the four places that weight appears.
#include <cstdio>
#include <vector>

#include <tapegrad/tapegrad.hpp>

int main() {
  using tg::DTensor;
  const std::size_t h = 4, w = 4, k = 3, out = h - k + 1;  // stride 1, no padding

  DTensor image = tg::reshape(tg::arange<double>(1, 17), tg::Shape{1, 1, h, w});  // pixels 1..16
  DTensor kernel(xt::xarray<double>{{{{0.5, -1.0, 0.0}, {1.0, 2.0, -0.5}, {0.0, 1.0, 0.5}}}}, true);
  DTensor upstream(xt::xarray<double>{{{{1.0, 2.0}, {3.0, 4.0}}}});  // dL/d(output), as if from the layers above

  // The dense matrix: row (oh, ow), column (ih, iw); tied[row][col] names the kernel tap.
  xt::xarray<double> dense = xt::zeros<double>({out * out, h * w});
  std::vector<std::vector<int>> tied(out * out, std::vector<int>(h * w, -1));
  for (std::size_t oh = 0; oh < out; ++oh)
    for (std::size_t ow = 0; ow < out; ++ow)
      for (std::size_t i = 0; i < k; ++i)
        for (std::size_t j = 0; j < k; ++j) {
          const std::size_t row = oh * out + ow, col = (oh + i) * w + (ow + j);
          dense(row, col) = kernel.value()(0, 0, i, j);
          tied[row][col] = int(i * k + j);
        }
  DTensor dense_weight(dense, true);

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
  DTensor conv_out = tg::conv2d(image, kernel);                                   // (1, 1, 2, 2)
  DTensor dense_out = tg::linear(tg::reshape(image, tg::Shape{1, h * w}), dense_weight);  // (1, 4)
  std::printf("\n%-10s %12s %12s\n", "output", "conv", "dense");
  for (std::size_t p = 0; p < out * out; ++p)
    std::printf("(%zu, %zu) %14.2f %12.2f\n", p / out, p % out, conv_out.value().data()[p], dense_out.value().data()[p]);

  // Backward both ways with the same upstream gradient.
  conv_out.backward(upstream);
  dense_out.backward(tg::reshape(upstream, tg::Shape{1, out * out}));

  std::printf("\n%-8s %12s %22s   %s\n", "weight", "conv grad", "sum of tied dense grads", "= upstream x patch, summed over positions");
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = 0; j < k; ++j) {
      double tied_sum = 0.0;
      std::string terms;
      for (std::size_t row = 0; row < out * out; ++row)
        for (std::size_t col = 0; col < h * w; ++col)
          if (tied[row][col] == int(i * k + j)) {
            tied_sum += dense_weight.grad().value()(row, col);
            terms += (terms.empty() ? "" : " + ") + std::to_string(int(upstream.value().data()[row])) + "*" +
                     std::to_string(int(image.value().data()[col]));
          }
      std::printf("w%zu%zu %14.2f %22.2f   %s\n", i, j, kernel.grad().value()(0, 0, i, j), tied_sum, terms.c_str());
    }
  std::printf("\nThe conv backward never builds the dense matrix: im2col lays the patches out as\n"
              "columns, and matmul's gradient (upstream x patches^T) does the summing.\n");
  return 0;
}
