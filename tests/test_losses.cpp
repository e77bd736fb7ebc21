// Every loss: gradients by finite differences (first and second order) for
// each reduction on random shapes, then values against the formulas written
// out as plain loops, the edge cases PyTorch defines, and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

#include "message_of.hpp"

#include "op_table.hpp"

using tg::Reduction;
using tg::Shape;
using tg::Tensor;

namespace {

const std::vector<Reduction> kReductions{Reduction::None, Reduction::Mean, Reduction::Sum};
constexpr int kDraws = 6;  // random shapes per case

std::string with(const std::string& name, Reduction r) { return name + ", " + tg::reduction_name(r); }

std::vector<Shape> same_pair(tg::Generator& g) {
  const Shape s = random_shape(g, 0, 3);
  return {s, s};
}

// (N, C) with C >= 2.
std::vector<Shape> batch_of_rows(tg::Generator& g) { return {{1 + g.below(4), 2 + g.below(3)}}; }

// Labels for an (N, C) input drawn from a generator seeded by its size, so a
// case's function is fixed; every `every`-th label (from the second) is
// `ignored` when every > 0, and no other is.
std::vector<std::int64_t> labels_for(const Tensor& x, std::size_t every = 0, std::int64_t ignored = -100) {
  tg::Generator g(x.numel());
  std::vector<std::int64_t> labels;
  for (std::size_t i = 0; i < x.shape()[0]; ++i) {
    auto y = std::int64_t(g.below(x.shape()[1]));
    if (y == ignored) y = (y + 1) % std::int64_t(x.shape()[1]);  // ignored only where chosen below
    labels.push_back(every && i % every == 1 ? ignored : y);
  }
  return labels;
}

// Class weights in [0.5, 2], fixed by the class count.
Tensor class_weights(std::size_t classes) {
  tg::Generator g(classes + 17);
  return tg::rand({classes}, g, 0.5, 2.0, tg::kFloat64);
}

std::vector<OpCase> loss_cases() {
  std::vector<OpCase> cases;
  for (Reduction r : kReductions) {
    cases.push_back({with("mse_loss", r), same_pair, [r](const Inputs& in) { return tg::mse_loss(in[0], in[1], r); }});
    cases.push_back({with("l1_loss", r), same_pair, [r](const Inputs& in) { return tg::l1_loss(in[0], in[1], r); },
                     Domain::wide});
    cases.push_back({with("smooth_l1_loss beta=0.5", r), same_pair,
                     [r](const Inputs& in) { return tg::smooth_l1_loss(in[0], in[1], 0.5, r); }, Domain::wide});
    cases.push_back({with("smooth_l1_loss beta=0", r), same_pair,
                     [r](const Inputs& in) { return tg::smooth_l1_loss(in[0], in[1], tg::SmoothL1LossOptions(r).beta(0)); },
                     Domain::wide});
    cases.push_back({with("huber_loss delta=1.5", r), same_pair,
                     [r](const Inputs& in) { return tg::huber_loss(in[0], in[1], 1.5, r); }, Domain::wide});
    cases.push_back({with("binary_cross_entropy", r), same_pair,
                     [r](const Inputs& in) { return tg::binary_cross_entropy(in[0], in[1], r); }, Domain::probability});
    cases.push_back({with("binary_cross_entropy, weight", r),
                     [](tg::Generator& g) {
                       const Shape s = random_shape(g, 1, 3);
                       return std::vector<Shape>{s, s, broadcastable_to(s, g)};
                     },
                     [r](const Inputs& in) {
                       return tg::binary_cross_entropy(in[0], in[1], tg::BCELossOptions(r).weight(in[2]));
                     },
                     Domain::probability, {Domain::probability, Domain::probability, Domain::positive}});
    cases.push_back({with("binary_cross_entropy_with_logits", r), same_pair,
                     [r](const Inputs& in) { return tg::binary_cross_entropy_with_logits(in[0], in[1], r); },
                     Domain::any, {Domain::wide, Domain::probability}});
    cases.push_back({with("binary_cross_entropy_with_logits, pos_weight and weight", r),
                     [](tg::Generator& g) {
                       const Shape s = random_shape(g, 1, 3);
                       return std::vector<Shape>{s, s, {s.back()}, broadcastable_to(s, g)};
                     },
                     [r](const Inputs& in) {
                       return tg::binary_cross_entropy_with_logits(
                           in[0], in[1], tg::BCEWithLogitsLossOptions(r).pos_weight(in[2]).weight(in[3]));
                     },
                     Domain::any, {Domain::wide, Domain::probability, Domain::positive, Domain::positive}});
    cases.push_back({with("binary_cross_entropy_with_logits, pos_weight", r), same_pair,
                     [r](const Inputs& in) {
                       return tg::binary_cross_entropy_with_logits(in[0], in[1], tg::full(in[0].dim() ? Shape{in[0].shape().back()} : Shape{}, 3.0, tg::kFloat64), r);
                     },
                     Domain::any, {Domain::wide, Domain::probability}});
    cases.push_back({with("kl_div", r), same_pair, [r](const Inputs& in) { return tg::kl_div(in[0], in[1], r); },
                     Domain::any, {Domain::any, Domain::positive}});
    cases.push_back({with("kl_div, log_target", r), same_pair,
                     [r](const Inputs& in) { return tg::kl_div(in[0], in[1], r, true); }});
    cases.push_back({with("cross_entropy", r), batch_of_rows,
                     [r](const Inputs& in) { return tg::cross_entropy(in[0], labels_for(in[0]), r); }});
    cases.push_back({with("cross_entropy, weight", r), batch_of_rows, [r](const Inputs& in) {
                       return tg::cross_entropy(in[0], labels_for(in[0]),
                                                tg::CrossEntropyLossOptions(r).weight(class_weights(in[0].shape()[1])));
                     }});
    cases.push_back({with("cross_entropy, ignore_index", r), batch_of_rows, [r](const Inputs& in) {
                       return tg::cross_entropy(in[0], labels_for(in[0], 2, 1),
                                                tg::CrossEntropyLossOptions().ignore_index(1).reduction(r));
                     }});
    cases.push_back({with("cross_entropy, label_smoothing", r), batch_of_rows, [r](const Inputs& in) {
                       return tg::cross_entropy(in[0], labels_for(in[0]),
                                                tg::CrossEntropyLossOptions().label_smoothing(0.2).reduction(r));
                     }});
    cases.push_back({with("cross_entropy, weight, ignore_index, label_smoothing", r), batch_of_rows,
                     [r](const Inputs& in) {
                       return tg::cross_entropy(in[0], labels_for(in[0], 3),
                                                tg::CrossEntropyLossOptions()
                                                    .weight(class_weights(in[0].shape()[1]))
                                                    .ignore_index(-100)
                                                    .label_smoothing(0.3)
                                                    .reduction(r));
                     }});
    cases.push_back({with("nll_loss, weight, ignore_index", r), batch_of_rows, [r](const Inputs& in) {
                       return tg::nll_loss(in[0], labels_for(in[0], 2, -1),
                                           tg::NLLLossOptions(r).weight(class_weights(in[0].shape()[1])).ignore_index(-1));
                     }});
  }
  cases.push_back({"kl_div, batchmean", same_pair,
                   [](const Inputs& in) { return tg::kl_div(in[0], in[1], Reduction::BatchMean); }, Domain::any,
                   {Domain::any, Domain::positive}});
  cases.push_back({"kl_div, batchmean, log_target", same_pair,
                   [](const Inputs& in) { return tg::kl_div(in[0], in[1], Reduction::BatchMean, true); }});
  return cases;
}

// ---- references: the formulas as loops over flat values -------------------------

std::vector<double> flat(const Tensor& x) {
  const xt::xarray<double> a = x.to(tg::kFloat64).to_xarray<double>();
  return std::vector<double>(a.begin(), a.end());
}

double reduce_ref(const std::vector<double>& v, Reduction r, double denominator = 0) {
  double total = 0;
  for (double e : v) total += e;
  if (r == Reduction::Sum) return total;
  return total / (denominator ? denominator : double(v.size()));
}

// Checks loss(x, t, r) against `per_element` applied to every pair of
// elements, for each reduction.
void check_elementwise(const std::function<Tensor(const Tensor&, const Tensor&, Reduction)>& loss, const Tensor& x,
                       const Tensor& t, const std::function<double(double, double)>& per_element) {
  const std::vector<double> xs = flat(x), ts = flat(t);
  std::vector<double> want;
  for (std::size_t i = 0; i < xs.size(); ++i) want.push_back(per_element(xs[i], ts[i]));
  const Tensor none = loss(x, t, Reduction::None);
  REQUIRE(none.shape() == x.shape());
  const std::vector<double> got = flat(none);
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
  }
  CHECK(loss(x, t, Reduction::Sum).item() == doctest::Approx(reduce_ref(want, Reduction::Sum)).epsilon(1e-12));
  CHECK(loss(x, t, Reduction::Mean).item() == doctest::Approx(reduce_ref(want, Reduction::Mean)).epsilon(1e-12));
  CHECK(loss(x, t, Reduction::Mean).dim() == 0);
}

// PyTorch's cross_entropy for (N, C) logits, written out: per-sample values
// and the mean's denominator.
struct CrossEntropyRef {
  std::vector<double> per_sample;
  double denominator = 0;
};

CrossEntropyRef cross_entropy_ref(const Tensor& logits, const std::vector<std::int64_t>& labels,
                                  const std::vector<double>& weight, std::int64_t ignore_index, double smoothing) {
  const std::size_t n = logits.shape()[0], c = logits.shape()[1];
  const std::vector<double> z = flat(logits);
  CrossEntropyRef ref;
  for (std::size_t i = 0; i < n; ++i) {
    if (labels[i] == ignore_index) {
      ref.per_sample.push_back(0.0);
      continue;
    }
    double norm = 0;
    for (std::size_t j = 0; j < c; ++j) norm += std::exp(z[i * c + j]);
    auto log_p = [&](std::size_t j) { return z[i * c + j] - std::log(norm); };
    const auto y = std::size_t(labels[i]);
    const double w = weight.empty() ? 1.0 : weight[y];
    double smooth = 0;
    for (std::size_t j = 0; j < c; ++j) smooth -= (weight.empty() ? 1.0 : weight[j]) * log_p(j);
    ref.per_sample.push_back((1 - smoothing) * -w * log_p(y) + smoothing / double(c) * smooth);
    ref.denominator += w;
  }
  return ref;
}

}  // namespace

// ============================================================================
// gradients
// ============================================================================

TEST_CASE("gradcheck: every loss, every reduction, random shapes") {
  check_cases(loss_cases(), [](const tg::Function& f, const Inputs& in) { return tg::gradcheck(f, in); }, 0, kDraws);
}

TEST_CASE("gradgradcheck: every loss, every reduction, random shapes") {
  check_cases(loss_cases(), [](const tg::Function& f, const Inputs& in) { return tg::gradgradcheck(f, in); }, 5000,
              kDraws);
}

// ============================================================================
// values against loops
// ============================================================================

TEST_CASE("elementwise losses match their formulas for every reduction") {
  tg::Generator gen(11);
  const Tensor x = tg::rand({3, 5}, gen, -3.0, 3.0, tg::kFloat64), y = tg::rand({3, 5}, gen, -3.0, 3.0, tg::kFloat64);
  SUBCASE("mse_loss") {
    check_elementwise([](const Tensor& a, const Tensor& b, Reduction r) { return tg::mse_loss(a, b, r); }, x, y,
                      [](double a, double b) { return (a - b) * (a - b); });
  }
  SUBCASE("l1_loss") {
    check_elementwise([](const Tensor& a, const Tensor& b, Reduction r) { return tg::l1_loss(a, b, r); }, x, y,
                      [](double a, double b) { return std::abs(a - b); });
  }
  for (double beta : {0.0, 0.5, 2.0}) {
    CAPTURE(beta);
    check_elementwise([beta](const Tensor& a, const Tensor& b, Reduction r) { return tg::smooth_l1_loss(a, b, beta, r); },
                      x, y, [beta](double a, double b) {
                        const double d = std::abs(a - b);
                        return d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
                      });
  }
  for (double delta : {0.5, 1.0, 2.0}) {
    CAPTURE(delta);
    check_elementwise([delta](const Tensor& a, const Tensor& b, Reduction r) { return tg::huber_loss(a, b, delta, r); },
                      x, y, [delta](double a, double b) {
                        const double d = std::abs(a - b);
                        return d < delta ? 0.5 * d * d : delta * (d - 0.5 * delta);
                      });
  }
}

TEST_CASE("binary cross-entropy on probabilities and on logits match the formulas") {
  tg::Generator gen(12);
  const Tensor p = tg::rand({4, 3}, gen, 0.01, 0.99, tg::kFloat64), t = tg::rand({4, 3}, gen, 0.0, 1.0, tg::kFloat64);
  const Tensor x = tg::rand({4, 3}, gen, -6.0, 6.0, tg::kFloat64);
  const std::vector<double> w{0.5, 1.0, 2.0}, pw{3.0, 0.25, 1.0};
  const Tensor weight = tg::tensor({0.5, 1.0, 2.0}, tg::kFloat64), pos_weight = tg::tensor({3.0, 0.25, 1.0}, tg::kFloat64);
  auto bce = [](double q, double s) { return -(s * std::log(q) + (1 - s) * std::log(1 - q)); };
  auto sigmoid = [](double v) { return 1 / (1 + std::exp(-v)); };
  check_elementwise([](const Tensor& a, const Tensor& b, Reduction r) { return tg::binary_cross_entropy(a, b, r); }, p, t, bce);
  check_elementwise(
      [](const Tensor& a, const Tensor& b, Reduction r) { return tg::binary_cross_entropy_with_logits(a, b, r); }, x, t,
      [&](double v, double s) { return bce(sigmoid(v), s); });

  // weight and pos_weight broadcast along the last axis: element i's column is i % 3
  std::vector<double> xs = flat(x), ts = flat(t), ps = flat(p), want_logits, want_probs;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double q = sigmoid(xs[i]), s = ts[i];
    want_logits.push_back(-w[i % 3] * (pw[i % 3] * s * std::log(q) + (1 - s) * std::log(1 - q)));
    want_probs.push_back(w[i % 3] * bce(ps[i], s));
  }
  const Tensor none = tg::binary_cross_entropy_with_logits(
      x, t, tg::BCEWithLogitsLossOptions(Reduction::None).weight(weight).pos_weight(pos_weight));
  const Tensor probs_none = tg::binary_cross_entropy(p, t, tg::BCELossOptions(Reduction::None).weight(weight));
  for (std::size_t i = 0; i < xs.size(); ++i) {
    CHECK(flat(none)[i] == doctest::Approx(want_logits[i]).epsilon(1e-12));
    CHECK(flat(probs_none)[i] == doctest::Approx(want_probs[i]).epsilon(1e-12));
  }
  double total = 0;  // pos_weight alone, mean
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double q = sigmoid(xs[i]), s = ts[i];
    total += -(pw[i % 3] * s * std::log(q) + (1 - s) * std::log(1 - q));
  }
  CHECK(tg::binary_cross_entropy_with_logits(x, t, pos_weight).item() ==
        doctest::Approx(total / double(xs.size())).epsilon(1e-12));
}

TEST_CASE("kl_div matches its formula, with 0 where the target is 0, and batchmean divides by the batch") {
  tg::Generator gen(13);
  const Tensor log_q = tg::log_softmax(tg::randn({4, 5}, gen, 0.0, 1.0, tg::kFloat64), 1);
  Tensor t = tg::softmax(tg::randn({4, 5}, gen, 0.0, 1.0, tg::kFloat64), 1);
  t.mutable_value<double>()(1, 2) = 0.0;  // a zero target contributes 0, not 0·log 0 = NaN
  check_elementwise([](const Tensor& a, const Tensor& b, Reduction r) { return tg::kl_div(a, b, r); }, log_q, t,
                    [](double lq, double p) { return p == 0 ? 0.0 : p * (std::log(p) - lq); });
  const Tensor log_t = tg::log_softmax(tg::randn({4, 5}, gen, 0.0, 1.0, tg::kFloat64), 1);
  check_elementwise([](const Tensor& a, const Tensor& b, Reduction r) { return tg::kl_div(a, b, r, true); }, log_q,
                    log_t, [](double lq, double lp) { return std::exp(lp) * (lp - lq); });

  const std::vector<double> lq = flat(log_q), p = flat(t);
  double total = 0;
  for (std::size_t i = 0; i < p.size(); ++i) total += p[i] == 0 ? 0.0 : p[i] * (std::log(p[i]) - lq[i]);
  CHECK(tg::kl_div(log_q, t, Reduction::BatchMean).item() == doctest::Approx(total / 4).epsilon(1e-12));
  CHECK(tg::kl_div(log_q, t).item() == doctest::Approx(total / 20).epsilon(1e-12));  // mean: over elements
  // 0-d input: batchmean is the sum
  const Tensor a = tg::scalar_tensor(-1.0, tg::kFloat64), b = tg::scalar_tensor(0.25, tg::kFloat64);
  CHECK(tg::kl_div(a, b, Reduction::BatchMean).item() == doctest::Approx(0.25 * (std::log(0.25) + 1.0)));
}

TEST_CASE("cross_entropy with weight, ignore_index and label_smoothing matches PyTorch's formula") {
  tg::Generator gen(14);
  const Tensor logits = tg::randn({6, 4}, gen, 0.0, 2.0, tg::kFloat64);
  const std::vector<std::int64_t> labels{0, 3, 2, -100, 1, 3};
  const std::vector<double> w{0.2, 1.0, 3.0, 0.7};
  const Tensor weight = tg::tensor({0.2, 1.0, 3.0, 0.7}, tg::kFloat64);
  for (bool weighted : {false, true})
    for (double s : {0.0, 0.1, 1.0}) {
      CAPTURE(weighted);
      CAPTURE(s);
      const CrossEntropyRef ref = cross_entropy_ref(logits, labels, weighted ? w : std::vector<double>{}, -100, s);
      tg::CrossEntropyLossOptions options;
      options.label_smoothing(s);
      if (weighted) options.weight(weight);
      const std::vector<double> none = flat(tg::cross_entropy(logits, labels, options.reduction(Reduction::None)));
      REQUIRE(none.size() == 6);
      for (std::size_t i = 0; i < 6; ++i) CHECK(none[i] == doctest::Approx(ref.per_sample[i]).epsilon(1e-12));
      CHECK(none[3] == 0.0);
      CHECK(tg::cross_entropy(logits, labels, options.reduction(Reduction::Sum)).item() ==
            doctest::Approx(reduce_ref(ref.per_sample, Reduction::Sum)).epsilon(1e-12));
      CHECK(tg::cross_entropy(logits, labels, options.reduction(Reduction::Mean)).item() ==
            doctest::Approx(reduce_ref(ref.per_sample, Reduction::Mean, ref.denominator)).epsilon(1e-12));
    }
  // nll_loss is cross_entropy on log-probabilities, without smoothing; an ignore_index inside [0, C)
  const std::vector<std::int64_t> with_class_2_ignored{0, 3, 2, 2, 1, 3};
  const CrossEntropyRef ref = cross_entropy_ref(logits, with_class_2_ignored, w, 2, 0.0);
  CHECK(tg::nll_loss(tg::log_softmax(logits, 1), with_class_2_ignored, tg::NLLLossOptions().weight(weight).ignore_index(2))
            .item() == doctest::Approx(reduce_ref(ref.per_sample, Reduction::Mean, ref.denominator)).epsilon(1e-12));
}

TEST_CASE("cross_entropy's gradient is the weighted, smoothed (softmax - target) over the weight sum") {
  // d/dz_ic = (Σ_k q_ik)·softmax_ic - q_ic per sample, divided by Σ w[y_i],
  // with q_ic = (1 - s)·w[y_i]·[c = y_i] + (s / C)·w[c].
  Tensor z(xt::xarray<double>{{1.0, 2.0, 3.0}, {0.5, -1.0, 0.0}, {2.0, 2.0, 2.0}}, true);
  const std::vector<double> w{2.0, 1.0, 0.5};
  const std::vector<std::int64_t> labels{2, -100, 0};
  const double s = 0.3;
  tg::cross_entropy(z, labels, tg::CrossEntropyLossOptions().weight(tg::tensor({2.0, 1.0, 0.5}, tg::kFloat64)).label_smoothing(s))
      .backward();
  const double total = w[2] + w[0];
  const std::vector<double> zs = flat(z.detach()), grad = flat(z.grad());
  for (std::size_t i = 0; i < 3; ++i) {
    double norm = 0;
    for (std::size_t c = 0; c < 3; ++c) norm += std::exp(zs[i * 3 + c]);
    double q_sum = 0;
    std::vector<double> q(3, 0.0);
    if (labels[i] != -100)
      for (std::size_t c = 0; c < 3; ++c) {
        q[c] = (1 - s) * (std::int64_t(c) == labels[i] ? w[c] : 0.0) + s / 3 * w[c];
        q_sum += q[c];
      }
    for (std::size_t c = 0; c < 3; ++c) {
      CAPTURE(i);
      CAPTURE(c);
      CHECK(grad[i * 3 + c] == doctest::Approx((q_sum * std::exp(zs[i * 3 + c]) / norm - q[c]) / total).epsilon(1e-12));
    }
  }
}

// ============================================================================
// PyTorch's edge cases
// ============================================================================

TEST_CASE("binary_cross_entropy clamps each log at -100 and keeps a finite gradient at 0 and 1") {
  Tensor p(xt::xarray<double>{0.0, 1.0, 0.0, 1.0, 0.5}, true);
  const Tensor t = tg::tensor({1.0, 0.0, 0.0, 1.0, 0.5}, tg::kFloat64);
  const std::vector<double> loss = flat(tg::binary_cross_entropy(p, t, Reduction::None));
  CHECK(loss[0] == 100.0);
  CHECK(loss[1] == 100.0);
  CHECK(loss[2] == 0.0);
  CHECK(loss[3] == 0.0);
  CHECK(loss[4] == doctest::Approx(std::log(2.0)));
  tg::binary_cross_entropy(p, t, Reduction::Sum).backward();
  // PyTorch's (p - t) / max(p(1 - p), 1e-12)
  const std::vector<double> g = flat(p.grad());
  CHECK(g[0] == doctest::Approx(-1e12));
  CHECK(g[1] == doctest::Approx(1e12));
  CHECK(g[2] == 0.0);
  CHECK(g[3] == 0.0);
  CHECK(g[4] == 0.0);
  // float32 sigmoid saturates to exactly 1: still finite
  Tensor x = tg::tensor({20.0f, -120.0f}).requires_grad_();
  const Tensor q = tg::sigmoid(x);
  tg::binary_cross_entropy(q, tg::tensor({0.0f, 1.0f})).backward();
  CHECK(std::isfinite(x.grad().value<float>()(0)));
  CHECK(std::isfinite(x.grad().value<float>()(1)));
}

TEST_CASE("binary_cross_entropy_with_logits is finite for huge logits and exact at 0") {
  Tensor x(xt::xarray<double>{1000.0, -1000.0, 1000.0, -1000.0, 0.0, 0.0}, true);
  const Tensor t = tg::tensor({1.0, 0.0, 0.0, 1.0, 1.0, 0.25}, tg::kFloat64);
  const std::vector<double> loss = flat(tg::binary_cross_entropy_with_logits(x, t, Reduction::None));
  CHECK(loss[0] == 0.0);
  CHECK(loss[1] == 0.0);
  CHECK(loss[2] == doctest::Approx(1000.0));
  CHECK(loss[3] == doctest::Approx(1000.0));
  CHECK(loss[4] == doctest::Approx(std::log(2.0)));
  // d/dx = sigmoid(x) - t, also at x = 0 (where abs and relu have kinks)
  const Tensor dx = tg::grad({tg::binary_cross_entropy_with_logits(x, t, Reduction::Sum)}, {x}, {}, true, true)[0];
  const std::vector<double> g = flat(dx);
  CHECK(g[0] == 0.0);
  CHECK(g[1] == 0.0);
  CHECK(g[2] == 1.0);
  CHECK(g[3] == -1.0);
  CHECK(g[4] == doctest::Approx(-0.5));
  CHECK(g[5] == doctest::Approx(0.25));
  // and the second derivative sigmoid'(0) = 1/4 at 0 too
  tg::sum(dx).backward();
  CHECK(flat(x.grad())[4] == doctest::Approx(0.25));
  CHECK(flat(x.grad())[0] == 0.0);
  // pos_weight at large logits stays finite
  CHECK(std::isfinite(tg::binary_cross_entropy_with_logits(x.detach(), t, tg::tensor({2.0}, tg::kFloat64)).item()));
}

TEST_CASE("huber_loss is delta times smooth_l1_loss with beta = delta") {
  tg::Generator gen(15);
  const Tensor a = tg::randn({10}, gen, 0.0, 3.0, tg::kFloat64), b = tg::randn({10}, gen, 0.0, 3.0, tg::kFloat64);
  for (double delta : {0.3, 1.0, 4.0})
    CHECK(tg::huber_loss(a, b, delta).item() == doctest::Approx(delta * tg::smooth_l1_loss(a, b, delta).item()));
}

TEST_CASE("a mean over no counted targets is NaN with a zero gradient; a sum is 0") {
  Tensor z(xt::xarray<double>{{1.0, 2.0}, {3.0, 4.0}}, true);
  const Tensor mean = tg::cross_entropy(z, {-100, -100});
  CHECK(std::isnan(mean.item()));
  mean.backward();
  CHECK(flat(z.grad()) == std::vector<double>{0, 0, 0, 0});
  CHECK(tg::cross_entropy(z, {-100, -100}, Reduction::Sum).item() == 0.0);
  CHECK(flat(tg::cross_entropy(z, {-100, 1}, Reduction::None))[0] == 0.0);
}

TEST_CASE("today's calls keep working, in float32 too") {
  tg::Generator gen(16);
  const Tensor logits = tg::randn({3, 4}, gen);  // float32
  const float by_list = tg::cross_entropy(logits, {0, 3, 1}).item<float>();
  CHECK(tg::cross_entropy(logits, std::vector<std::int64_t>{0, 3, 1}).item<float>() == by_list);
  CHECK(tg::cross_entropy(logits, tg::tensor({0, 3, 1}, tg::kInt64)).item<float>() == by_list);
  CHECK(tg::cross_entropy(logits, {0, 3, 1}).dtype() == tg::kFloat32);
  CHECK(tg::nll_loss(tg::log_softmax(logits, 1), {0, 3, 1}).item<float>() == doctest::Approx(by_list));
  const CrossEntropyRef ref = cross_entropy_ref(logits, {0, 3, 1}, {}, -100, 0.0);
  CHECK(by_list == doctest::Approx(reduce_ref(ref.per_sample, Reduction::Mean)).epsilon(1e-6));
  // the options convert from a Reduction; setters chain or apply in place
  CHECK(tg::cross_entropy(logits, {0, 3, 1}, Reduction::Sum).item<float>() == doctest::Approx(3 * by_list));
  tg::CrossEntropyLossOptions options;
  options.reduction(Reduction::None).ignore_index(3);
  CHECK(options.reduction() == Reduction::None);
  CHECK(options.ignore_index() == 3);
  CHECK(tg::cross_entropy(logits, {0, 3, 1}, options).shape() == Shape{3});
  CHECK(tg::mse_loss(logits, logits, Reduction::None).shape() == Shape{3, 4});
  CHECK(std::string(tg::reduction_name(Reduction::BatchMean)) == "batchmean");
}

// ============================================================================
// errors name the loss and the shapes or values
// ============================================================================

// `expr` throws `Type` with a message starting with `prefix` and containing each further string.
#define CHECK_LOSS_ERROR(Type, expr, prefix, ...)                            \
  do {                                                                       \
    CHECK_THROWS_AS(expr, Type);                                             \
    const std::string message_ = message_of([&] { (void)(expr); });          \
    INFO("message: ", message_);                                             \
    CHECK(message_.rfind(prefix, 0) == 0);                                   \
    for (const char* part_ : std::vector<const char*>{__VA_ARGS__})          \
      CHECK_MESSAGE(message_.find(part_) != std::string::npos, part_);       \
  } while (false)

TEST_CASE("loss errors") {
  const Tensor a = tg::zeros({2, 3}), b = tg::zeros({3, 2}), logits = tg::zeros({2, 4});
  CHECK_LOSS_ERROR(tg::ShapeError, tg::l1_loss(a, b), "l1_loss:", "(2, 3)", "(3, 2)");
  CHECK_LOSS_ERROR(tg::ShapeError, tg::smooth_l1_loss(a, b), "smooth_l1_loss:", "(2, 3)", "(3, 2)");
  CHECK_LOSS_ERROR(tg::ShapeError, tg::huber_loss(a, b), "huber_loss:", "(2, 3)", "(3, 2)");
  CHECK_LOSS_ERROR(tg::ShapeError, tg::binary_cross_entropy(a, b), "binary_cross_entropy:", "(2, 3)", "(3, 2)");
  CHECK_LOSS_ERROR(tg::ShapeError, tg::binary_cross_entropy_with_logits(a, b), "binary_cross_entropy_with_logits:",
                   "(2, 3)", "(3, 2)");
  CHECK_LOSS_ERROR(tg::ShapeError, tg::kl_div(a, b), "kl_div:", "(2, 3)", "(3, 2)");
  CHECK_LOSS_ERROR(tg::ShapeError, tg::mse_loss(a, tg::zeros({3})), "mse_loss:", "(2, 3)", "(3,)");
  CHECK_LOSS_ERROR(tg::ValueError, tg::smooth_l1_loss(a, a, -1.0), "smooth_l1_loss:", "beta", "-1", "(2, 3)");
  CHECK_LOSS_ERROR(tg::ValueError, tg::huber_loss(a, a, 0.0), "huber_loss:", "delta", "0", "(2, 3)");
  CHECK_LOSS_ERROR(tg::ValueError, tg::binary_cross_entropy(tg::full({2}, 1.5), tg::zeros({2})),
                   "binary_cross_entropy:", "[0, 1]", "(2,)", "1.5");
  CHECK_LOSS_ERROR(tg::ShapeError,
                   tg::binary_cross_entropy_with_logits(a, a, tg::BCEWithLogitsLossOptions().pos_weight(tg::ones({2}))),
                   "binary_cross_entropy_with_logits:", "pos_weight", "(2,)", "(2, 3)");
  CHECK_LOSS_ERROR(tg::ValueError, tg::l1_loss(a, a, Reduction::BatchMean), "l1_loss:", "batchmean", "kl_div");
  CHECK_LOSS_ERROR(tg::DtypeError, tg::mse_loss(tg::zeros({2}, tg::kInt64), tg::zeros({2}, tg::kInt64)), "mse_loss:",
                   "int64");

  CHECK_LOSS_ERROR(tg::ValueError, tg::cross_entropy(logits, {0, 1}, tg::CrossEntropyLossOptions().label_smoothing(1.5)),
                   "cross_entropy:", "label_smoothing", "1.5", "(2, 4)");
  CHECK_LOSS_ERROR(tg::ValueError, tg::cross_entropy(logits, {0, 1}, tg::CrossEntropyLossOptions().label_smoothing(-0.1)),
                   "cross_entropy:", "label_smoothing", "-0.1");
  CHECK_LOSS_ERROR(tg::ShapeError, tg::cross_entropy(logits, {0, 1}, tg::CrossEntropyLossOptions().weight(tg::ones({3}))),
                   "cross_entropy:", "weight of shape (3,)", "(2, 4)", "(4,)");
  CHECK_LOSS_ERROR(tg::ValueError, tg::cross_entropy(logits, {0, 4}), "cross_entropy:", "label 4", "position 1", "[0, 4)",
                   "(2, 4)", "ignore_index (-100)");
  CHECK_LOSS_ERROR(tg::ValueError, tg::nll_loss(logits, {0, -100}, tg::NLLLossOptions().ignore_index(1)), "nll_loss:",
                   "label -100", "[0, 4)");
  CHECK_LOSS_ERROR(tg::ValueError, tg::nll_loss(logits, {0, 1}, Reduction::BatchMean), "nll_loss:", "batchmean");
}
