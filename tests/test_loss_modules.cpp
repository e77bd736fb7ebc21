// Loss modules: each holds its options and gives what its function gives;
// a few values worked out by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include <tapegrad/tapegrad.hpp>

using tg::Reduction;
using tg::Shape;
using tg::Tensor;
namespace nn = tg::nn;

namespace {

bool same(const Tensor& a, const Tensor& b) { return a.to_xarray<double>() == b.to_xarray<double>(); }

template <class M>
std::string printed(const M& m) {
  std::ostringstream os;
  os << *m;
  return os.str();
}

}  // namespace

TEST_CASE("every loss module gives its function's value with the options it holds") {
  tg::Generator g(2);
  const Tensor x = tg::rand({3, 4}, g, -2, 2, tg::kFloat64), t = tg::rand({3, 4}, g, -2, 2, tg::kFloat64);
  const Tensor p = tg::rand({3, 4}, g, 0.1, 0.9, tg::kFloat64), q = tg::rand({3, 4}, g, 0.1, 0.9, tg::kFloat64);
  const Tensor labels = tg::tensor({0, 3, 1}, tg::kInt64);
  const Tensor w = tg::tensor({1.0, 2.0, 0.5, 1.5}, tg::kFloat64);
  for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    CAPTURE(tg::reduction_name(r));
    CHECK(same(nn::MSELoss(r)(x, t), tg::mse_loss(x, t, r)));
    CHECK(same(nn::L1Loss(r)(x, t), tg::l1_loss(x, t, r)));
    CHECK(same(nn::SmoothL1Loss(tg::SmoothL1LossOptions(r).beta(0.5))(x, t), tg::smooth_l1_loss(x, t, 0.5, r)));
    CHECK(same(nn::HuberLoss(tg::HuberLossOptions(r).delta(1.5))(x, t), tg::huber_loss(x, t, 1.5, r)));
    CHECK(same(nn::BCELoss(tg::BCELossOptions(r).weight(w))(p, q),
               tg::binary_cross_entropy(p, q, tg::BCELossOptions(r).weight(w))));
    CHECK(same(nn::BCEWithLogitsLoss(tg::BCEWithLogitsLossOptions(r).pos_weight(w))(x, q),
               tg::binary_cross_entropy_with_logits(x, q, w, r)));
    CHECK(same(nn::KLDivLoss(tg::KLDivLossOptions(r).log_target(true))(x, t), tg::kl_div(x, t, r, true)));
    CHECK(same(nn::NLLLoss(tg::NLLLossOptions(r).weight(w).ignore_index(3))(x, labels),
               tg::nll_loss(x, labels, tg::NLLLossOptions(r).weight(w).ignore_index(3))));
    const auto ce = tg::CrossEntropyLossOptions(r).weight(w).label_smoothing(0.2);
    CHECK(same(nn::CrossEntropyLoss(ce)(x, labels), tg::cross_entropy(x, labels, ce)));
    CHECK(same(nn::CrossEntropyLoss(ce)(x, std::vector<std::int64_t>{0, 3, 1}), tg::cross_entropy(x, labels, ce)));
  }
  CHECK(same(nn::KLDivLoss(Reduction::BatchMean)(x, p), tg::kl_div(x, p, Reduction::BatchMean)));
}

TEST_CASE("loss modules: values by hand, gradients, settings shown") {
  const Tensor x = tg::tensor({{0.0, 2.0}, {1.0, -1.0}}, tg::kFloat64).requires_grad_();
  const Tensor t = tg::tensor({{1.0, 0.0}, {1.0, 1.0}}, tg::kFloat64);
  // |d| = 1, 2, 0, 2
  CHECK(nn::MSELoss()(x, t).item<double>() == doctest::Approx((1 + 4 + 0 + 4) / 4.0));
  CHECK(nn::L1Loss(Reduction::Sum)(x, t).item<double>() == doctest::Approx(5.0));
  // beta 1.5: 0.5·1/1.5, then 2 - 0.75 twice, 0
  CHECK(nn::SmoothL1Loss(tg::SmoothL1LossOptions(Reduction::Sum).beta(1.5))(x, t).item<double>() ==
        doctest::Approx(0.5 / 1.5 + 2 * 1.25));
  // delta 1.5: 0.5, then 1.5·(2 - 0.75) twice, 0
  nn::HuberLoss huber(tg::HuberLossOptions(Reduction::Sum).delta(1.5));
  Tensor loss = huber(x, t);
  CHECK(loss.item<double>() == doctest::Approx(0.5 + 2 * 1.875));
  loss.backward();
  const auto gx = x.grad().to_xarray<double>();
  CHECK(gx(0, 0) == doctest::Approx(-1.0));  // d inside delta: d
  CHECK(gx(0, 1) == doctest::Approx(1.5));   // beyond: delta · sign(d)
  CHECK(gx(1, 1) == doctest::Approx(-1.5));
  // cross entropy of logits (0, 2) with label 1 and (1, -1) with label 0
  const double ce = (std::log1p(std::exp(-2.0)) + std::log1p(std::exp(-2.0))) / 2;
  CHECK(nn::CrossEntropyLoss()(x.detach(), tg::tensor({1, 0}, tg::kInt64)).item<double>() == doctest::Approx(ce));

  CHECK(printed(nn::MSELoss()) == "MSELoss(reduction=mean)");
  CHECK(printed(huber) == "HuberLoss(reduction=sum, delta=1.5)");
  CHECK(printed(nn::CrossEntropyLoss(tg::CrossEntropyLossOptions().ignore_index(0).label_smoothing(0.1))) ==
        "CrossEntropyLoss(reduction=mean, ignore_index=0, label_smoothing=0.1)");
  CHECK(printed(nn::KLDivLoss(tg::KLDivLossOptions(Reduction::BatchMean).log_target(true))) ==
        "KLDivLoss(reduction=batchmean, log_target=true)");
  // A loss takes two inputs: it is not called with one.
  nn::MSELoss mse;
  CHECK_THROWS_AS((*mse)(x), tg::ValueError);
  CHECK_THROWS_WITH_AS(mse(x, tg::zeros({3}, tg::kFloat64)), doctest::Contains("mse_loss: input (2, 2) and target (3,)"),
                       tg::ShapeError);
}
