// A two-layer network on four points: forward, backward, every gradient,
// the recorded tape, and a finite-difference check of the same gradients.
#include <iostream>

#include <tapegrad/tapegrad.hpp>

int main() {
  tg::Generator gen(42);
  tg::Tensor x = tg::randn<float>({4, 3}, gen).set_name("x");             // 4 samples, 3 features
  tg::Tensor w1 = tg::randn<float>({5, 3}, gen).requires_grad_().set_name("w1");
  tg::Tensor b1 = tg::zeros<float>({5}, true).set_name("b1");
  tg::Tensor w2 = tg::randn<float>({2, 5}, gen).requires_grad_().set_name("w2");

  tg::Tensor hidden = tg::tanh(tg::linear(x, w1, b1));                     // (4, 5)
  tg::Tensor loss = tg::cross_entropy(tg::linear(hidden, w2), {0, 1, 1, 0});

  std::cout << "loss = " << loss.item() << "\n\nrecorded tape:\n" << tg::tape();
  loss.backward();
  std::cout << "\ndloss/dw2 =\n" << w2.grad().value() << "\ndloss/db1 =\n" << b1.grad().value() << "\n";

  // The same gradients, checked against central differences in double.
  auto report = tg::gradcheck(
      [](const std::vector<tg::DTensor>& in) {
        return tg::sum(tg::tanh(tg::linear(in[0], in[1], in[2])));
      },
      {tg::randn<double>({4, 3}, gen), tg::randn<double>({5, 3}, gen).requires_grad_(),
       tg::zeros<double>({5}, true)});
  std::cout << "\n" << report << "\n";
  return report ? 0 : 1;
}
