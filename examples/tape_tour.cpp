// A tour of the tape of a tiny CNN: conv -> relu -> max pool -> linear ->
// cross-entropy. Prints what was recorded (the convolution shows up as
// im2col, matmul and reshape entries), runs backward keeping the tape to show
// the gradient norm that flowed through each entry, and writes the tape as
// Graphviz DOT (render with: dot -Tsvg tape_tour.dot -o tape_tour.svg).
#include <fstream>
#include <iostream>

#include <tapegrad/tapegrad.hpp>

int main(int argc, char** argv) {
  const std::string dot_path = argc > 1 ? argv[1] : "tape_tour.dot";
  tg::Generator gen(0);
  tg::Tensor images = tg::randn({2, 1, 6, 6}, gen).set_name("images");  // a batch of two 6x6 images
  tg::Tensor kernel = tg::randn({4, 1, 3, 3}, gen, 0.0, 0.3).requires_grad_().set_name("kernel");
  tg::Tensor bias = tg::zeros({4}, tg::requires_grad()).set_name("bias");
  tg::Tensor fc = tg::randn({3, 36}, gen, 0.0, 0.1).requires_grad_().set_name("fc");
  images.requires_grad_();  // to see the gradient reach the input too

  tg::tape().clear();
  tg::Tensor features = tg::max_pool2d(tg::relu(tg::conv2d(images, kernel, bias, 1, 1)), 2);  // (2, 4, 3, 3)
  tg::Tensor loss = tg::cross_entropy(tg::linear(tg::flatten(features), fc), {0, 2});

  std::cout << "Forward pass, as recorded:\n" << tg::tape() << "\n";
  loss.backward({}, /*retain_graph=*/true);
  std::cout << "After backward (retain_graph), with the gradient norm at each entry's output:\n"
            << tg::tape() << "\n";
  std::cout << "kernel.grad() has shape " << tg::shape_str(kernel.grad().shape())
            << ": one value per kernel weight, summed over both images and all 36 positions.\n";

  std::ofstream(dot_path) << tg::tape().to_dot();
  std::cout << "Tape written to " << dot_path << " (dot -Tsvg " << dot_path << " -o tape.svg)\n";
  tg::tape().clear();
  return 0;
}
