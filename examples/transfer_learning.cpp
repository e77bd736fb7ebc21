// Transfer learning: reuse the convolution layers of a trained Fashion-MNIST
// model, frozen, under a new head for a two-class task (T-shirt vs shirt, the
// pair the full model confuses most). Only the head trains; the frozen
// kernels do not move and the tape holds no entry that reads them.
//
//   transfer_learning [model.safetensors] [data dir]
#include <cstdio>
#include <iostream>

#include "../apps/fashion_cnn.hpp"

namespace nn = tg::nn;

namespace {

// The frozen features of the trained model and a new, small head.
struct TransferNet : nn::Module {
  nn::Sequential features{nullptr}, head{nullptr};
  TransferNet(nn::Sequential trained_features, tg::Generator& gen) {
    features = register_module("features", std::move(trained_features));  // shared with the trained model
    head = register_module("head", nn::Sequential(nn::Flatten(), nn::Linear(64 * 7 * 7, 2, gen)));
  }
  tg::Tensor forward(const tg::Tensor& x) override { return head(features(x)); }
};

// The images of classes 0 (T-shirt) and 6 (shirt), relabelled 0 and 1.
tg::data::Dataset two_classes(const tg::data::Dataset& all, std::size_t limit) {
  std::vector<std::int64_t> picked, labels;
  for (std::size_t i = 0; i < all.size() && picked.size() < limit; ++i)
    if (all.labels[i] == 0 || all.labels[i] == 6) {
      picked.push_back(std::int64_t(i));
      labels.push_back(all.labels[i] == 6 ? 1 : 0);
    }
  return {tg::index_select(all.images, 0, int64_tensor(picked)), labels};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string model_path = argc > 1 ? argv[1] : "runs/demo/model.safetensors";
  const std::string data_dir = argc > 2 ? argv[2] : tg::data::default_fashion_mnist_dir();
  try {
    tg::Generator gen(5);
    FashionCNN trained(gen);
    tg::nn::load(trained, model_path);

    TransferNet net(trained.features, gen);
    net.freeze("features");
    net.features->eval();  // batch norm keeps the statistics it learned
    const auto train = two_classes(tg::data::load_mnist(data_dir, true, 12000), 1000);
    const auto test = two_classes(tg::data::load_mnist(data_dir, false), 2000);
    std::printf("T-shirt vs shirt: %zu training and %zu test images\n", train.size(), test.size());
    std::printf("parameters: %zu, trainable: %zu (the head)\n\n", net.num_parameters(), net.num_trainable_parameters());

    const tg::Tensor kernel_before = net.find("features.0.weight").detach().clone();
    tg::optim::Adam adam(net.parameters(), 1e-3);
    tg::data::DataLoader loader(train, {50, /*shuffle=*/true, /*seed=*/1});
    bool reads_frozen = false, shown_tape = false;
    for (int epoch = 1; epoch <= 3; ++epoch) {
      double loss_sum = 0;
      loader.start_epoch();
      for (std::size_t b = 0; b < loader.num_batches(); ++b) {
        const tg::data::Batch batch = loader.batch(b);
        tg::tape().clear();
        const tg::Tensor loss = tg::cross_entropy(net(batch.images), batch.labels);
        for (std::size_t i = 0; i < tg::tape().size(); ++i) reads_frozen |= tg::tape()[i].op == "im2col";
        if (!shown_tape) {
          std::cout << "The tape of one step: the frozen convolutions left no entry.\n" << tg::tape() << '\n';
          shown_tape = true;
        }
        adam.zero_grad();
        loss.backward();
        adam.step();
        loss_sum += loss.item() * double(batch.labels.size());
      }
      tg::NoGradGuard no_grad;
      net.head->eval();
      const std::size_t right = count_correct(net(test.images), test.labels);
      net.head->train();
      std::printf("epoch %d: train loss %.4f, test accuracy %.4f\n", epoch, loss_sum / double(train.size()),
                  double(right) / double(test.size()));
    }
    const bool kernels_unchanged = tg::ne(net.find("features.0.weight"), kernel_before).sum().item() == 0;
    std::printf("\nfirst conv kernels unchanged: %s\nany recorded op read the frozen layers: %s\n",
                kernels_unchanged ? "yes" : "NO", reads_frozen ? "YES" : "no");
    return kernels_unchanged && !reads_frozen ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "transfer_learning: %s\n", e.what());
    return 1;
  }
}
