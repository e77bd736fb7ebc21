// Module state that must not change behind the user's back: summary() has no
// side effects and does not need the batch, find(name) = t reaches the layer,
// and a tensor registered twice (tied weights) counts once.
#include <doctest/doctest.h>

#include <chrono>
#include <vector>

#include <tapegrad/tapegrad.hpp>

using tg::Shape;
namespace nn = tg::nn;

namespace {

std::vector<float> values(const tg::Tensor& t) {
  const auto v = t.contiguous().to(tg::kFloat32).to_xarray<float>();
  return std::vector<float>(v.begin(), v.end());
}

nn::Sequential small_cnn() {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 4, 3).padding(1)), nn::BatchNorm2d(4), nn::ReLU(),
                        nn::Flatten(), nn::Dropout(0.5), nn::Linear(4 * 6 * 6, 3));
}

// An encoder and a decoder sharing one weight matrix, registered under both names.
struct TiedImpl : nn::Module {
  nn::Linear encoder{nullptr};
  tg::Tensor decoder_weight;
  TiedImpl() {
    encoder = register_module("encoder", nn::Linear(4, 3));
    decoder_weight = register_parameter("decoder_weight", encoder->weight);
  }
  tg::Tensor forward(const tg::Tensor& x) override { return tg::matmul(encoder(x), decoder_weight); }
};
TG_MODULE(Tied);

}  // namespace

TEST_CASE("summary leaves the model as it was: running statistics, dropout's generator, training flags") {
  tg::manual_seed(3);
  nn::Sequential net = small_cnn();
  tg::manual_seed(3);
  nn::Sequential twin = small_cnn();  // the same weights and dropout generator
  net[4]->eval();                     // a submodule's own flag survives the summary

  const std::string s = net->summary({5, 1, 6, 6});
  CHECK(s.find("(5, 4, 6, 6)") != std::string::npos);
  CHECK(s.find("(5, 3)") != std::string::npos);
  CHECK(tg::tape().size() == 0);

  auto bn = net->ptr<nn::BatchNorm2d>(1);
  CHECK(values(bn->running_mean) == std::vector<float>(4, 0.0f));
  CHECK(values(bn->running_var) == std::vector<float>(4, 1.0f));
  CHECK(bn->num_batches_tracked.item<std::int64_t>() == 0);
  CHECK(net->is_training());
  CHECK(net[0]->is_training());
  CHECK_FALSE(net[4]->is_training());

  // The dropout layer draws the same masks as its twin's, which never ran a summary.
  net[4]->train();
  const tg::Tensor x = tg::randn({2, 1, 6, 6});
  CHECK(values(net(x)) == values(twin(x)));
}

TEST_CASE("summary runs a batch of at most 2 whatever batch size it shows") {
  tg::manual_seed(4);
  nn::Sequential net(nn::Conv2d(nn::Conv2dOptions(1, 32, 5).padding(2)), nn::BatchNorm2d(32), nn::ReLU(),
                     nn::MaxPool2d(2), nn::Flatten(), nn::Linear(32 * 14 * 14, 10));
  const auto start = std::chrono::steady_clock::now();
  // At the full batch the first layer's output alone would be 6 GB.
  const std::string s = net->summary({60000, 1, 28, 28});
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 5.0);
  CAPTURE(s);
  CHECK(s.find("(60000, 32, 28, 28)") != std::string::npos);
  CHECK(s.find("(60000, 32, 14, 14)") != std::string::npos);
  CHECK(s.find("(60000, 6272)") != std::string::npos);
  CHECK(s.find("(60000, 10)") != std::string::npos);
  CHECK(s.find("Input shape: (60000, 1, 28, 28)") != std::string::npos);

  // A one-dimensional input has no batch: it runs as given.
  nn::Linear lin(5, 2);
  CHECK(lin->summary({5}).find(tg::shape_str(Shape{2})) != std::string::npos);
}

TEST_CASE("find(name) = t writes into the tensor the layer uses") {
  tg::manual_seed(5);
  nn::Linear lin(3, 2);
  const tg::Tensor w = tg::tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
  lin->find("weight") = w;
  lin->find("bias") = tg::tensor({0.5, -0.5});
  CHECK(values(lin->weight) == values(w));
  CHECK(lin->weight.requires_grad());  // still the same parameter
  CHECK(lin->weight.name() == "weight");
  const tg::Tensor y = lin(tg::tensor({{1.0, 1.0, 1.0}}));
  CHECK(values(y) == std::vector<float>{6.5f, 14.5f});

  // A float64 value is converted; a wrong shape is refused, naming the tensor.
  lin->find("bias") = tg::tensor({1.0, 2.0}, tg::kFloat64);
  CHECK(lin->bias.dtype() == tg::kFloat32);
  CHECK(values(lin->bias) == std::vector<float>{1.0f, 2.0f});
  CHECK_THROWS_WITH_AS(lin->find("weight") = tg::zeros({3, 2}), doctest::Contains("find(\"weight\") = value"),
                       tg::ShapeError);

  // Assigning one registered tensor to another copies values, not the handle.
  nn::Sequential seq(nn::Linear(2, 2), nn::Linear(2, 2));
  seq->find("1.weight") = seq->find("0.weight");
  CHECK(values(seq->find("1.weight")) == values(seq->find("0.weight")));
  CHECK_FALSE(seq->find("1.weight").same(seq->find("0.weight")));

  // A handle of one's own rebinds as usual and leaves the module alone.
  tg::Tensor mine = lin->find("weight");
  mine = tg::zeros({2, 3});
  CHECK(values(lin->weight) == values(w));
}

TEST_CASE("a tensor registered twice (tied weights) is one parameter") {
  tg::manual_seed(6);
  Tied net;
  CHECK(net->named_parameters().size() == 3);  // encoder.weight, encoder.bias, decoder_weight: every name
  REQUIRE(net->parameters().size() == 2);
  CHECK(net->parameters()[0].same(net->encoder->weight));
  CHECK(net->num_parameters() == 12 + 3);
  CHECK(net->num_trainable_parameters() == 12 + 3);
  CHECK(net->summary({2, 4}).find("Total params: 15") != std::string::npos);

  // Optimizers take it; a step moves the shared matrix once, by both uses' gradients.
  tg::optim::SGD sgd(net->parameters(), 0.1);
  const tg::Tensor before = net->encoder->weight.detach().clone();
  tg::sum(net(tg::randn({2, 4}))).backward();
  const tg::Tensor grad = net->encoder->weight.grad().clone();
  sgd.step();
  CHECK(values(net->decoder_weight) == values(net->encoder->weight));
  const auto moved = values(net->encoder->weight), expected = values(tg::sub(before, tg::mul(grad, tg::scalar_like(grad, 0.1))));
  for (std::size_t i = 0; i < moved.size(); ++i) CHECK(moved[i] == doctest::Approx(expected[i]).epsilon(1e-6));
  tg::tape().clear();
}
