// tapegrad-eval: loads a model saved by tapegrad-train and prints its test
// accuracy and confusion matrix. The test images are normalized with the
// mean and std the model file's metadata names.
#include <cmath>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli_checks.hpp"
#include "fashion_cnn.hpp"

namespace {

// How many rows of (N, C) logits hold a NaN or an infinity. The argmax of such
// a row is meaningless (a NaN counts as the largest logit, an infinity wins
// whatever the rest say), and an accuracy counted from it would pass a broken
// model off as a bad one.
std::size_t nonfinite_rows(const tg::Tensor& logits) {
  // |x| < infinity is false for NaN (every comparison with it is) and for ±infinity.
  const tg::Tensor finite = tg::lt(tg::abs(logits), tg::scalar_like(logits, HUGE_VAL));
  const tg::Tensor bad_in_row = tg::logical_not(finite).sum({1});  // int64, (N,)
  return std::size_t(tg::gt(bad_in_row, tg::scalar_like(bad_in_row, 0)).sum().item<std::int64_t>());
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path = "runs/demo/model.safetensors";
  std::string data_dir = tg::data::default_fashion_mnist_dir();
  std::size_t limit = 0;
  CLI::App app{"Evaluate a saved Fashion-MNIST model"};
  app.footer(
      "If the model's logits are NaN or infinite for any test image (a diverged training run, say), no accuracy\n"
      "is reported: the tool says for how many images and exits with status 1.");
  app.option_defaults()->always_capture_default();  // --help shows every default
  app.add_option("--model", model_path, "a model.safetensors written by tapegrad-train")->check(CLI::ExistingFile);
  app.add_option("--data", data_dir, "directory with the four IDX files")->check(CLI::ExistingDirectory);
  app.add_option("--limit", limit, "evaluate the first N test images only (0: all)")->check(cli::non_negative());
  CLI11_PARSE(app, argc, argv);

  static const char* const classes[10] = {"T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal",  "Shirt",   "Sneaker",  "Bag",   "Boot"};
  try {
    tg::Generator gen(0);
    FashionCNN net(gen);
    tg::nn::load(net, model_path);
    net.eval();
    // The images normalized as the network saw them in training: the model
    // file says how (tapegrad-train writes it); only a file that does not is
    // given Fashion-MNIST's usual mean and std.
    tg::data::Normalization norm = tg::data::fashion_mnist_normalization;
    if (read_normalization(tg::io::load_tensors(model_path).metadata, norm))
      std::printf("Normalization from the model file: mean %s, std %s\n", shortest_float(norm.mean).c_str(),
                  shortest_float(norm.std).c_str());
    else
      std::printf("The model file does not say how its inputs were normalized; assuming Fashion-MNIST's usual "
                  "mean %s, std %s\n", shortest_float(norm.mean).c_str(), shortest_float(norm.std).c_str());
    const tg::data::datasets::MNIST test(data_dir, /*train=*/false, limit, norm);
    check_image_shape(test.images(), data_dir, /*train=*/false);

    std::size_t confusion[10][10] = {}, nonfinite = 0;
    tg::NoGradGuard no_grad;
    tg::data::DataLoader loader(test, {256});
    for (const tg::data::Batch& batch : loader) {
      const tg::Tensor logits = net(batch.inputs);
      nonfinite += nonfinite_rows(logits);
      const tg::Tensor predicted = tg::argmax(logits, 1);  // int64, (N,)
      const auto predicted_class = predicted.value<std::int64_t>();
      for (std::size_t i = 0; i < batch.labels.size(); ++i) ++confusion[batch.labels[i]][predicted_class(i)];
    }
    if (nonfinite > 0) {
      std::fprintf(stderr,
                   "tapegrad-eval: %s: the logits are NaN or infinite for %zu of %zu test images; the model is "
                   "broken (did its training diverge?), so no accuracy is reported\n",
                   model_path.c_str(), nonfinite, test.size());
      return 1;
    }
    std::size_t right = 0;
    for (std::size_t c = 0; c < 10; ++c) right += confusion[c][c];
    std::printf("%s on %zu test images: accuracy %.4f\n\n", model_path.c_str(), test.size(),
                double(right) / double(test.size()));
    std::printf("confusion matrix (rows: true class, columns: predicted)\n%10s", "");
    for (std::size_t c = 0; c < 10; ++c) std::printf("%9.8s", classes[c]);
    std::printf("\n");
    for (std::size_t r = 0; r < 10; ++r) {
      std::printf("%10s", classes[r]);
      for (std::size_t c = 0; c < 10; ++c) std::printf("%9zu", confusion[r][c]);
      std::printf("\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tapegrad-eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
