// A two-layer network on four points: forward, backward, every gradient,
// the recorded tape, and a finite-difference check of the same gradients.
#include <iostream>

#include <tapegrad/tapegrad.hpp>

int main() {
  tg::Generator gen(42);
  tg::Tensor x = tg::randn({4, 3}, gen).set_name("x");             // 4 samples, 3 features
  tg::Tensor w1 = tg::randn({5, 3}, gen).requires_grad_().set_name("w1");
  tg::Tensor b1 = tg::zeros({5}, tg::requires_grad()).set_name("b1");
  tg::Tensor w2 = tg::randn({2, 5}, gen).requires_grad_().set_name("w2");

  tg::Tensor hidden = tg::tanh(tg::linear(x, w1, b1));               // (4, 5)
  tg::Tensor loss = tg::cross_entropy(tg::linear(hidden, w2), {0, 1, 1, 0});

  std::cout << "loss = " << loss.item() << "\n\nrecorded tape:\n" << tg::tape();
  loss.backward();
  std::cout << "\ndloss/dw2 =\n" << w2.grad().value<float>() << "\ndloss/db1 =\n" << b1.grad().value<float>() << "\n";

  // The same gradients, checked against central differences in double.
  const tg::TensorOptions dbl(tg::kFloat64);
  auto report = tg::gradcheck(
      [](const std::vector<tg::Tensor>& in) {
        return tg::sum(tg::tanh(tg::linear(in[0], in[1], in[2])));
      },
      {tg::randn({4, 3}, gen, 0.0, 1.0, dbl), tg::randn({5, 3}, gen, 0.0, 1.0, dbl).requires_grad_(),
       tg::zeros({5}, dbl.requires_grad(true))});
  std::cout << "\n" << report << "\n";
  return report ? 0 : 1;
}
