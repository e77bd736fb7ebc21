// The tapegrad side of the PyTorch interop test (tests/check_interop.py):
//
//   interop_logits logits MODEL DATA_DIR COUNT INPUTS_OUT LOGITS_OUT
//       Loads MODEL (written by tapegrad-train) into the Fashion-MNIST network,
//       takes the first COUNT test images, normalized as the model file's
//       metadata says, and writes them ("images", (COUNT, 1, 28, 28)) and the
//       network's eval-mode logits on them ("logits", (COUNT, 10)) as
//       safetensors files, for tests/torch_interop.py compare.
//   interop_logits compare MODEL INPUTS LOGITS
//       Loads MODEL (a PyTorch state_dict written by tests/torch_interop.py
//       export: int64 num_batches_tracked and all), computes the logits on
//       INPUTS' "images" and compares them with LOGITS' "logits": exit 0 when
//       every difference is within 1e-5 (relative to the largest logit, at
//       least 1), else 1.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "../apps/fashion_cnn.hpp"

namespace {

tg::Tensor logits_of(const std::string& model_path, const tg::Tensor& images) {
  tg::Generator gen(0);
  FashionCNN net(gen);
  tg::nn::load(net, model_path);  // strict: every name, shape and dtype as PyTorch's state_dict
  net.eval();
  tg::NoGradGuard no_grad;
  return net(images);
}

int write_logits(const std::string& model, const std::string& data_dir, std::size_t count, const std::string& inputs_out,
                 const std::string& logits_out) {
  tg::data::Normalization norm;
  if (!read_normalization(tg::io::load_tensors(model).metadata, norm)) {
    std::fprintf(stderr, "interop_logits: %s names no normalization in its metadata\n", model.c_str());
    return 1;
  }
  const tg::data::datasets::MNIST test(data_dir, /*train=*/false, count, norm);
  const tg::Tensor images = test.images();
  const tg::Tensor logits = logits_of(model, images);
  tg::io::save_tensors(inputs_out, {{"images", images}});
  tg::io::save_tensors(logits_out, {{"logits", logits}});
  std::printf("tapegrad logits of %s on %zu test images (mean %s, std %s from the file's metadata)\n", model.c_str(),
              test.size(), shortest_float(norm.mean).c_str(), shortest_float(norm.std).c_str());
  return 0;
}

int compare(const std::string& model, const std::string& inputs, const std::string& expected_path) {
  const tg::Tensor images = tg::io::load_tensors(inputs).get("images", tg::kFloat32);
  const auto logits = logits_of(model, images).to_xarray<float>();
  const auto expected = tg::io::load_tensors(expected_path).get("logits", tg::kFloat32).to_xarray<float>();
  if (logits.shape() != expected.shape()) {
    std::fprintf(stderr, "interop_logits: the logits have shape %s, the expected ones %s\n",
                 tg::shape_str(tg::Shape(logits.shape().begin(), logits.shape().end())).c_str(),
                 tg::shape_str(tg::Shape(expected.shape().begin(), expected.shape().end())).c_str());
    return 1;
  }
  double scale = 1.0, worst = 0.0;
  for (float v : expected) scale = std::max(scale, double(std::abs(v)));
  for (std::size_t i = 0; i < logits.size(); ++i)
    worst = std::max(worst, std::abs(double(logits.flat(i)) - double(expected.flat(i))) / scale);
  std::printf("tapegrad vs PyTorch logits on %zu images: max difference %.3g (relative to %.3g)\n",
              std::size_t(logits.shape()[0]), worst, scale);
  return worst <= 1e-5 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  try {
    if (command == "logits" && argc == 7)
      return write_logits(argv[2], argv[3], std::stoul(argv[4]), argv[5], argv[6]);
    if (command == "compare" && argc == 5) return compare(argv[2], argv[3], argv[4]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "interop_logits: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr,
               "usage: interop_logits logits MODEL DATA_DIR COUNT INPUTS_OUT LOGITS_OUT\n"
               "       interop_logits compare MODEL INPUTS LOGITS\n");
  return 2;
}
