// The network tapegrad-train trains on Fashion-MNIST (28x28 grayscale, 10
// classes): two convolution blocks and a classifier.
//
//   features.0  Conv2d 1->32, 5x5, padding 2     (N, 32, 28, 28)
//   features.1  BatchNorm2d(32), features.2 ReLU, features.3 MaxPool2d 2   (N, 32, 14, 14)
//   features.4  Conv2d 32->64, 5x5, padding 2    (N, 64, 14, 14)
//   features.5  BatchNorm2d(64), features.6 ReLU, features.7 MaxPool2d 2   (N, 64, 7, 7)
//   classifier  Flatten, Linear 3136->128, ReLU, Dropout 0.25, Linear 128->10
//
// The two convolutions are the TensorFlow-tutorial ones. Batch normalization
// after each lets Adam take larger steps from the start, and the 128-wide
// hidden layer (instead of 1024) keeps the classifier's cost small next to
// the convolutions; with them the net passes 91.5 % test accuracy within
// three epochs (README, "Training on Fashion-MNIST").
#pragma once

#include <memory>

#include <tapegrad/tapegrad.hpp>

class FashionCNN : public tg::nn::Module {
 public:
  std::shared_ptr<tg::nn::Sequential> features, classifier;

  explicit FashionCNN(tg::Generator& gen) {
    namespace nn = tg::nn;
    features = register_module(
        "features", std::make_shared<nn::Sequential>(std::initializer_list<nn::Sequential::Item>{
                        std::make_shared<nn::Conv2d>(1, 32, 5, gen, 1, 2), std::make_shared<nn::BatchNorm2d>(32),
                        std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),
                        std::make_shared<nn::Conv2d>(32, 64, 5, gen, 1, 2), std::make_shared<nn::BatchNorm2d>(64),
                        std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2)}));
    classifier = register_module(
        "classifier", std::make_shared<nn::Sequential>(std::initializer_list<nn::Sequential::Item>{
                          std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(64 * 7 * 7, 128, gen),
                          std::make_shared<nn::ReLU>(), std::make_shared<nn::Dropout>(0.25, gen),
                          std::make_shared<nn::Linear>(128, 10, gen)}));
  }

  tg::Tensor forward(const tg::Tensor& x) override { return (*classifier)((*features)(x)); }
  std::string type_name() const override { return "FashionCNN"; }

  // The first layer's kernels, (32, 1, 5, 5): what the filter picture shows.
  tg::Tensor first_filters() const { return std::dynamic_pointer_cast<tg::nn::Conv2d>(features->named_children()[0].second)->weight; }
};
