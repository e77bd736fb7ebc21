#include <tapegrad/tapegrad.hpp>

// d/dx sum(x²) = 2x: exits 0 when the installed library computes it.
int main() {
  tg::Tensor x(xt::xarray<float>{1.0f, -2.0f}, true);
  tg::sum(x * x).backward();
  return x.grad().value<float>() == xt::xarray<float>{2.0f, -4.0f} ? 0 : 1;
}
