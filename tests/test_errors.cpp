// Errors are part of the API: each misuse throws a documented type whose
// message starts with the op that failed and names the shapes or values, as
// shape_str prints them ("(2, 3)", a 1-d shape as "(3,)", a 0-d one as "()").
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include <tapegrad/core/autograd.hpp>
#include <tapegrad/core/gradcheck.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/linalg.hpp>
#include <tapegrad/ops/loss.hpp>
#include <tapegrad/ops/reduce.hpp>
#include <tapegrad/ops/shape.hpp>

#include "message_of.hpp"

namespace {

bool starts_with(const std::string& text, const std::string& head) { return text.rfind(head, 0) == 0; }

}  // namespace

// `expr` throws exactly `Type` (or a subclass), whose message starts with
// `prefix` and contains every further string.
#define CHECK_ERROR(Type, expr, prefix, ...)                                          \
  do {                                                                                \
    CHECK_THROWS_AS(expr, Type);                                                      \
    CHECK_THROWS_WITH_AS(expr, doctest::Contains(prefix), Type);                      \
    {                                                                                 \
      const std::string message_ = message_of([&] { (void)(expr); });                 \
      INFO("message: ", message_);                                                    \
      CHECK(starts_with(message_, prefix));                                           \
    }                                                                                 \
    for (const char* part_ : std::vector<const char*>{__VA_ARGS__}) {                 \
      INFO("expected in the message: ", std::string(part_));                                       \
      CHECK_THROWS_WITH_AS(expr, doctest::Contains(part_), Type);                     \
    }                                                                                 \
  } while (false)

// ============================================================================
// exception hierarchy
// ============================================================================

TEST_CASE("every tapegrad exception derives from tg::Error and std::exception") {
  static_assert(std::is_base_of_v<std::exception, tg::Error>);
  static_assert(std::is_base_of_v<std::runtime_error, tg::Error>);
  static_assert(std::is_base_of_v<tg::Error, tg::ShapeError>);
  static_assert(std::is_base_of_v<tg::Error, tg::AxisError>);
  static_assert(std::is_base_of_v<tg::Error, tg::AutogradError>);
  static_assert(std::is_base_of_v<tg::Error, tg::ValueError>);
  static_assert(std::is_base_of_v<tg::Error, tg::DtypeError>);
  // The categories are distinct.
  static_assert(!std::is_base_of_v<tg::ShapeError, tg::AxisError>);
  static_assert(!std::is_base_of_v<tg::AxisError, tg::ShapeError>);
  static_assert(!std::is_base_of_v<tg::ShapeError, tg::ValueError>);
  static_assert(!std::is_base_of_v<tg::AutogradError, tg::ShapeError>);
  static_assert(!std::is_base_of_v<tg::ValueError, tg::DtypeError>);
  static_assert(!std::is_base_of_v<tg::DtypeError, tg::ValueError>);

  // Caught through the bases at run time, keeping the message.
  const tg::Tensor a = tg::ones({2, 3});
  const tg::Tensor b = tg::ones({4});
  CHECK_THROWS_AS(tg::add(a, b), tg::Error);
  CHECK_THROWS_AS(tg::add(a, b), std::exception);
  CHECK_THROWS_AS(tg::sum(a, {5}), tg::Error);
  CHECK_THROWS_AS(tg::sum(a, {5}), std::exception);
  CHECK_THROWS_AS(tg::sum(a).backward(), tg::Error);
  CHECK_THROWS_AS(tg::sum(a).backward(), std::exception);
  CHECK_THROWS_AS(tg::arange(0, 1, 0), tg::Error);
  CHECK_THROWS_AS(tg::arange(0, 1, 0), std::exception);
  try {
    tg::add(a, b);
    FAIL("add did not throw");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("add") == 0);
  }
}

TEST_CASE("shape_str, the way messages print shapes") {
  CHECK(tg::shape_str(tg::Shape{2, 3}) == "(2, 3)");
  CHECK(tg::shape_str(tg::Shape{3}) == "(3,)");
  CHECK(tg::shape_str(tg::Shape{}) == "()");
  CHECK(tg::shape_str(tg::Shape{1, 0, 4}) == "(1, 0, 4)");
}

// ============================================================================
// broadcasting
// ============================================================================

TEST_CASE("binary ops with shapes that do not broadcast throw ShapeError naming op and shapes") {
  const tg::Tensor a = tg::ones({2, 3});
  const tg::Tensor b = tg::ones({4});
  CHECK_ERROR(tg::ShapeError, tg::add(a, b), "add:", "(2, 3)", "(4,)");
  CHECK_ERROR(tg::ShapeError, tg::sub(a, b), "sub:", "(2, 3)", "(4,)");
  CHECK_ERROR(tg::ShapeError, tg::mul(a, b), "mul:", "(2, 3)", "(4,)");
  CHECK_ERROR(tg::ShapeError, tg::div(a, b), "div:", "(2, 3)", "(4,)");
  CHECK_ERROR(tg::ShapeError, tg::pow(a, b), "pow:", "(2, 3)", "(4,)");
  CHECK_ERROR(tg::ShapeError, a + b, "add:", "(2, 3)", "(4,)");
  CHECK_ERROR(tg::ShapeError, a * b, "mul:", "(2, 3)", "(4,)");

  // Mismatch in a middle axis, with operands that require grad.
  const tg::Tensor c = tg::ones({2, 3, 4}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  const tg::Tensor d = tg::ones({5, 1}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  CHECK_ERROR(tg::ShapeError, c - d, "sub:", "(2, 3, 4)", "(5, 1)");
  CHECK_ERROR(tg::ShapeError, d / c, "div:", "(5, 1)", "(2, 3, 4)");

  // What does broadcast is fine.
  CHECK_NOTHROW(tg::add(c, tg::ones({3, 1}, tg::kFloat64)));
}

TEST_CASE("broadcast_to and sum_to reject shapes that do not match") {
  const tg::Tensor a = tg::ones({2, 3});
  CHECK_ERROR(tg::ShapeError, tg::broadcast_to(a, tg::Shape{3}), "broadcast_to:", "(2, 3)", "(3,)");
  CHECK_ERROR(tg::ShapeError, tg::broadcast_to(a, tg::Shape{4, 3}), "broadcast_to:", "(2, 3)", "(4, 3)");
  CHECK_ERROR(tg::ShapeError, tg::sum_to(a, tg::Shape{4}), "sum_to:", "(2, 3)", "(4,)");
}

// ============================================================================
// matmul and linear
// ============================================================================

TEST_CASE("matmul errors: inner dimensions, 1-d operands, batch dimensions") {
  const tg::Tensor a = tg::ones({2, 3});
  const tg::Tensor b = tg::ones({4, 5});
  CHECK_ERROR(tg::ShapeError, tg::matmul(a, b), "matmul:", "inner dimensions", "3 vs 4", "(2, 3)",
              "(4, 5)");

  const tg::Tensor v = tg::ones({3});
  CHECK_ERROR(tg::ShapeError, tg::matmul(v, tg::ones({3, 2})), "matmul:", "2 dimensions", "(3,)",
              "(3, 2)");
  CHECK_ERROR(tg::ShapeError, tg::matmul(a, v), "matmul:", "2 dimensions", "(2, 3)", "(3,)");

  // Batch axes (2) and (3) do not broadcast; the message names them and the operands.
  const tg::Tensor p = tg::ones({2, 2, 3});
  const tg::Tensor q = tg::ones({3, 3, 4});
  CHECK_ERROR(tg::ShapeError, tg::matmul(p, q), "matmul:", "broadcast", "(2,)", "(3,)", "(2, 2, 3) @ (3, 3, 4)");

  // gemm names the transposed form it was asked for.
  CHECK_ERROR(tg::ShapeError, tg::gemm(a, a, false, false), "matmul:", "3 vs 2");
  CHECK_ERROR(tg::ShapeError, tg::gemm(a, b, false, true), "matmul(a, bT):", "3 vs 5", "(4, 5)T");
  CHECK_ERROR(tg::ShapeError, tg::gemm(a, b, true, false), "matmul(aT, b):", "2 vs 4", "(2, 3)T");
}

TEST_CASE("linear errors: weight rank, feature count, bias shape") {
  const tg::Tensor x = tg::ones({2, 3});
  CHECK_ERROR(tg::ShapeError, tg::linear(x, tg::ones({3})), "linear:", "weight", "(3,)");
  CHECK_ERROR(tg::ShapeError, tg::linear(x, tg::ones({1, 5, 3})), "linear:", "weight", "(1, 5, 3)");
  CHECK_ERROR(tg::ShapeError, tg::linear(x, tg::ones({5, 4})), "linear:", "(2, 3)", "(5, 4)", "4 features");
  CHECK_ERROR(tg::ShapeError, tg::linear(tg::ones({3}), tg::ones({5, 4})), "linear:", "(3,)",
              "(5, 4)");
  CHECK_ERROR(tg::ShapeError, tg::linear(x, tg::ones({5, 3}), tg::ones({4})), "linear:", "bias",
              "(5,)", "(4,)");
  CHECK_ERROR(tg::ShapeError, tg::linear(x, tg::ones({5, 3}), tg::ones({1, 5})), "linear:",
              "bias", "(5,)", "(1, 5)");
  CHECK(tg::linear(x, tg::ones({5, 3}), tg::ones({5})).shape() == tg::Shape{2, 5});
}

// ============================================================================
// axes
// ============================================================================

TEST_CASE("an axis out of range throws AxisError naming op, axis and shape") {
  const tg::Tensor x = tg::ones({2, 3});
  CHECK_ERROR(tg::AxisError, tg::sum(x, {2}), "sum:", "axis 2", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::sum(x, {-3}), "sum:", "axis -3", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::mean(x, {2}), "mean:", "axis 2", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::max(x, {7}), "max:", "axis 7", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::log_softmax(x, 2), "log_softmax:", "axis 2", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::softmax(x, -3), "softmax:", "axis -3", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::transpose(x, 0, 2), "transpose:", "axis 2", "(2, 3)");
  CHECK_ERROR(tg::AxisError, x.size(2), "size:", "axis 2", "(2, 3)");

  const tg::Tensor y = tg::ones({2, 3, 4});
  CHECK_ERROR(tg::AxisError, tg::flatten(y, 3), "flatten:", "axis 3", "(2, 3, 4)");
  CHECK_ERROR(tg::AxisError, tg::flatten(y, 0, -4), "flatten:", "axis -4", "(2, 3, 4)");
  CHECK_ERROR(tg::AxisError, tg::flatten(y, 2, 1), "flatten:", "start_dim 2", "end_dim 1", "(2, 3, 4)");

  // a 1-d tensor has only axis 0 (and -1)
  CHECK_ERROR(tg::AxisError, tg::sum(tg::ones({3}), {1}), "sum:", "axis 1", "(3,)");
}

TEST_CASE("a repeated axis and a non-permutation throw AxisError") {
  const tg::Tensor x = tg::ones({2, 3});
  CHECK_ERROR(tg::AxisError, tg::sum(x, {1, 1}), "sum:", "axis 1", "twice", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::sum(x, {1, -1}), "sum:", "axis -1", "twice", "(2, 3)");  // -1 is 1
  CHECK_ERROR(tg::AxisError, tg::mean(x, {0, 0}), "mean:", "twice", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::max(x, {0, -2}), "max:", "twice", "(2, 3)");

  CHECK_ERROR(tg::AxisError, tg::permute(x, {0, 0}), "permute:", "(0, 0)", "not a permutation", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::permute(x, {0}), "permute:", "(0)", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::permute(x, {0, 2}), "permute:", "(0, 2)", "(2, 3)");
  CHECK_ERROR(tg::AxisError, tg::permute(x, {1, 0, 2}), "permute:", "(1, 0, 2)", "(2, 3)");
  CHECK(tg::permute(x, {-1, 0}).shape() == tg::Shape{3, 2});
}

// ============================================================================
// reshape
// ============================================================================

TEST_CASE("reshape to a different element count, or with two -1s, throws ShapeError") {
  const tg::Tensor x = tg::ones({2, 3});
  CHECK_ERROR(tg::ShapeError, tg::reshape(x, tg::Shape{4}), "reshape:", "(2, 3)", "6 elements", "(4,)",
              "4 elements");
  CHECK_ERROR(tg::ShapeError, tg::reshape(x, std::vector<std::ptrdiff_t>{4, 2}), "reshape:", "(2, 3)",
              "6 elements", "(4, 2)", "8 elements");
  CHECK_ERROR(tg::ShapeError, tg::reshape(x, std::vector<std::ptrdiff_t>{-1, -1}), "reshape:", "-1",
              "(2, 3)");
  CHECK_ERROR(tg::ShapeError, tg::reshape(x, std::vector<std::ptrdiff_t>{-1, 4}), "reshape:", "-1",
              "(2, 3)", "6 elements");
  CHECK_ERROR(tg::ShapeError, tg::reshape(x, std::vector<std::ptrdiff_t>{-2, 3}), "reshape:", "-2",
              "(2, 3)");
  CHECK(tg::reshape(x, std::vector<std::ptrdiff_t>{-1, 2}).shape() == tg::Shape{3, 2});
}

// ============================================================================
// losses
// ============================================================================

TEST_CASE("cross_entropy, nll_loss and mse_loss errors") {
  const tg::Tensor logits = tg::zeros({2, 4}, tg::requires_grad());
  CHECK_ERROR(tg::ShapeError, tg::cross_entropy(logits, {0, 1, 2}), "cross_entropy:", "labels of shape (3,)", "(2, 4)");
  CHECK_ERROR(tg::ShapeError, tg::cross_entropy(logits, {0}), "cross_entropy:", "labels of shape (1,)", "(2, 4)");
  CHECK_ERROR(tg::ValueError, tg::cross_entropy(logits, {0, 4}), "cross_entropy:", "label 4", "position 1",
              "[0, 4)");
  CHECK_ERROR(tg::ValueError, tg::cross_entropy(logits, {-1, 0}), "cross_entropy:", "label -1",
              "position 0", "[0, 4)");
  CHECK_ERROR(tg::ShapeError, tg::cross_entropy(tg::zeros({4}), {0}), "cross_entropy:", "(N, C)",
              "(4,)");
  CHECK_ERROR(tg::ShapeError, tg::cross_entropy(tg::zeros({2, 3, 4}), {0, 1}), "cross_entropy:",
              "(2, 3, 4)");
  CHECK_ERROR(tg::ShapeError, tg::cross_entropy(tg::zeros({0, 3}), {}), "cross_entropy:", "empty",
              "(0, 3)");

  CHECK_ERROR(tg::ShapeError, tg::nll_loss(tg::zeros({4}), {0}), "nll_loss:", "(N, C)", "(4,)");
  CHECK_ERROR(tg::ValueError, tg::nll_loss(logits, {1, 9}), "nll_loss:", "label 9", "[0, 4)");

  CHECK_ERROR(tg::ShapeError, tg::mse_loss(tg::zeros({2, 3}), tg::zeros({3, 2})), "mse_loss:",
              "(2, 3)", "(3, 2)");
  CHECK_ERROR(tg::ShapeError, tg::mse_loss(tg::zeros({3}), tg::zeros({1, 3})), "mse_loss:",
              "(3,)", "(1, 3)");  // would broadcast, but a loss wants equal shapes
}

TEST_CASE("other bad values throw ValueError") {
  CHECK_ERROR(tg::ValueError, tg::clamp(tg::ones({2}), 1.0, -1.0), "clamp:", "low", "high");
  CHECK_ERROR(tg::ValueError, tg::arange(0, 1, 0), "arange:", "step");
  CHECK_ERROR(tg::ValueError, tg::arange(0, std::numeric_limits<double>::infinity(), 1, tg::kFloat64), "arange:", "finite");
  CHECK_ERROR(tg::ValueError, tg::arange(std::nanf(""), 1), "arange:", "finite");
}

TEST_CASE("reductions over nothing throw ShapeError") {
  CHECK_ERROR(tg::ShapeError, tg::max(tg::zeros({0})), "max:", "(0,)");
  CHECK_ERROR(tg::ShapeError, tg::max(tg::zeros({2, 0}), {1}), "max:", "size 0", "(2, 0)");
}

// ============================================================================
// autograd misuse
// ============================================================================

TEST_CASE("backward on a non-scalar without a seed, or with a seed of the wrong shape") {
  tg::tape().clear();
  const tg::Tensor x = tg::ones({2, 3}, tg::requires_grad());
  const tg::Tensor y = x * 2.0;
  CHECK_ERROR(tg::AutogradError, y.backward(), "backward:", "(2, 3)", "not a scalar", "seed");
  // A seed of the wrong shape is a shape mismatch.
  CHECK_ERROR(tg::ShapeError, y.backward(tg::ones({3})), "backward:", "seed", "(3,)", "(2, 3)");
  CHECK_ERROR(tg::ShapeError, y.backward(tg::ones({3, 2})), "backward:", "seed", "(3, 2)", "(2, 3)");
  // None of these ran the graph: it is still there and x has no gradient.
  CHECK_FALSE(x.grad().defined());
  y.backward(tg::ones({2, 3}));
  REQUIRE(x.grad().defined());
  CHECK(x.grad().to_xarray<float>() == xt::xarray<float>({{2, 2, 2}, {2, 2, 2}}));
}

TEST_CASE("backward on a tensor that does not require grad, or an undefined one") {
  tg::tape().clear();
  const tg::Tensor c = tg::sum(tg::ones({2, 3}));
  CHECK_ERROR(tg::AutogradError, c.backward(), "backward:", "()", "does not require grad");
  const tg::Tensor x = tg::ones({2}, tg::requires_grad());
  tg::Tensor y;
  {
    tg::NoGradGuard no_grad;
    y = tg::sum(x * x);
  }
  CHECK_ERROR(tg::AutogradError, y.backward(), "backward:", "does not require grad");
  CHECK_ERROR(tg::AutogradError, tg::Tensor().backward(), "backward:", "undefined");
}

TEST_CASE("backward through a freed graph throws AutogradError mentioning retain_graph") {
  tg::tape().clear();
  const tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  const tg::Tensor y = tg::sum(x * x);
  y.backward();
  CHECK_ERROR(tg::AutogradError, y.backward(), "backward:", "freed", "retain_graph", "()");
  CHECK_ERROR(tg::AutogradError, tg::grad({y}, {x}), "backward:", "freed", "retain_graph");

  // A cleared tape frees the graph too.
  const tg::Tensor z = tg::sum(x * 3.0);
  tg::tape().clear();
  CHECK_ERROR(tg::AutogradError, z.backward(), "backward:", "freed");

  // A new graph built on an intermediate of a freed one (built anew for each
  // check: a failed backward frees what it walked, as the next case shows).
  const tg::Tensor h = x * x;
  tg::sum(h).backward();
  CHECK_ERROR(tg::AutogradError, tg::sum(h + 1.0).backward(), "backward:", "(2,)", "freed", "retain_graph");
}

TEST_CASE("a backward that stopped with an error has freed what it walked; going again says so") {
  tg::tape().clear();
  const tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  const tg::Tensor h = x * x;
  tg::sum(h).backward();
  const tg::Tensor again = tg::sum(h + 1.0);
  CHECK_THROWS_WITH_AS(again.backward(), doctest::Contains("not on this thread's tape"), tg::AutogradError);
  CHECK_ERROR(tg::AutogradError, again.backward(), "backward:", "was freed by an earlier backward", "(sum)",
              "record the graph again");
}

TEST_CASE("tg::grad errors: an input that does not require grad, a non-scalar output without seed") {
  tg::tape().clear();
  const tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  const tg::Tensor c = tg::tensor({3.0, 4.0}, tg::kFloat64);
  const tg::Tensor y = tg::sum(x * c);
  CHECK_ERROR(tg::AutogradError, tg::grad({y}, {c}), "grad:", "(2,)", "does not require grad");
  const tg::Tensor v = x * c;
  CHECK_ERROR(tg::AutogradError, tg::grad({v}, {x}), "backward:", "(2,)", "not a scalar");
  // The checks come before anything runs: the graph is intact.
  const auto g = tg::grad({y}, {x});
  REQUIRE(g[0].defined());
  CHECK(g[0].to_xarray<double>() == xt::xarray<double>{3.0, 4.0});
}

TEST_CASE("hook and requires_grad_ misuse") {
  tg::tape().clear();
  tg::Tensor c = tg::ones({3});
  CHECK_ERROR(tg::AutogradError, c.register_hook([](const tg::Tensor& g) { return g; }), "register_hook:",
              "does not require grad");

  tg::Tensor x = tg::ones({3}, tg::requires_grad());
  tg::Tensor y = x * 2.0;
  CHECK_ERROR(tg::AutogradError, y.requires_grad_(false), "requires_grad_:", "leaf");

  // A hook must return a gradient of the tensor's shape.
  x.register_hook([](const tg::Tensor&) { return tg::ones({2}); });
  CHECK_ERROR(tg::ShapeError, tg::sum(x * 2.0).backward(), "register_hook:", "(2,)", "(3,)");
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("a custom rule that returns the wrong gradients is caught") {
  tg::tape().clear();
  const tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  auto too_many = [&] {
    return tg::record("too_many", {x}, tg::tensor({1.0, 2.0}, tg::kFloat64))
        .backward([](const tg::GradContext& c) { return tg::Grads{c.grad, c.grad}; });
  };
  CHECK_ERROR(tg::AutogradError, tg::sum(too_many()).backward(), "too_many backward:", "2 gradients",
              "1 inputs");
  auto wrong_shape = [&] {
    return tg::record("wrong_shape", {x}, tg::tensor({1.0, 2.0}, tg::kFloat64))
        .backward([](const tg::GradContext&) { return tg::Grads{tg::ones({3}, tg::kFloat64)}; });
  };
  CHECK_ERROR(tg::ShapeError, tg::sum(wrong_shape()).backward(), "wrong_shape backward:", "(3,)", "(2,)");
  CHECK_ERROR(tg::AutogradError,
              tg::record("needs_input", {x, tg::Tensor()}, tg::tensor({0.0}, tg::kFloat64))
                  .backward([](const tg::GradContext&) { return tg::Grads{}; }),
              "needs_input:", "undefined");

  // A failed backward restores grad mode and leaves nothing half-summed.
  CHECK(tg::grad_enabled());
  CHECK_FALSE(x.grad().defined());
  tg::sum(x * x).backward();
  CHECK(x.grad().to_xarray<double>() == xt::xarray<double>{2.0, 4.0});
}

// ============================================================================
// tensors
// ============================================================================

TEST_CASE("item() on a multi-element tensor; using an undefined tensor") {
  CHECK_ERROR(tg::ShapeError, tg::ones({3}).item(), "item:", "(3,)", "3 elements");
  CHECK_ERROR(tg::ShapeError, tg::ones({2, 2}).item(), "item:", "(2, 2)", "4 elements");
  CHECK_ERROR(tg::ShapeError, tg::ones({0}).item(), "item:", "(0,)", "0 elements");
  CHECK(tg::ones({1, 1}).item() == 1.0f);

  const tg::Tensor none;
  CHECK_ERROR(tg::Error, none.value<float>(), "tensor:", "undefined");
  CHECK_ERROR(tg::Error, none.shape(), "tensor:", "undefined");
  CHECK_ERROR(tg::Error, none.item(), "tensor:", "undefined");
  CHECK_ERROR(tg::Error, none.grad(), "tensor:", "undefined");
  CHECK_ERROR(tg::Error, none.is_leaf(), "tensor:", "undefined");
  CHECK_ERROR(tg::Error, tg::add(none, tg::ones({2})), "add:", "undefined");
  CHECK_ERROR(tg::Error, tg::exp(none), "exp:", "undefined");
  CHECK_ERROR(tg::Error, tg::sum(none), "tensor:", "undefined");
}

// ============================================================================
// gradcheck
// ============================================================================

TEST_CASE("gradcheck with eps <= 0 or with no input requiring grad throws ValueError") {
  auto f = [](const std::vector<tg::Tensor>& in) { return tg::sum(in[0] * in[0]); };
  const tg::Tensor x(xt::xarray<double>{1.0, 2.0}, true);
  CHECK_ERROR(tg::ValueError, tg::gradcheck(f, {x}, 0.0), "gradcheck:", "eps");
  CHECK_ERROR(tg::ValueError, tg::gradcheck(f, {x}, -1e-6), "gradcheck:", "eps");
  CHECK_ERROR(tg::ValueError, tg::gradcheck(f, {x}, std::numeric_limits<double>::quiet_NaN()), "gradcheck:",
              "eps");
  CHECK_ERROR(tg::ValueError, tg::gradgradcheck(f, {x}, 0.0), "gradgradcheck:", "eps");

  const tg::Tensor c = tg::tensor({1.0, 2.0}, tg::kFloat64);
  CHECK_ERROR(tg::ValueError, tg::gradcheck(f, {c}), "gradcheck:", "no input requires grad");
  CHECK_ERROR(tg::ValueError, tg::gradcheck(f, {x, tg::Tensor()}), "gradcheck:", "input 1", "undefined");
  CHECK(tg::gradcheck(f, {x}).passed);
}

TEST_CASE("gradgradcheck with no input requiring grad throws ValueError") {
  auto f = [](const std::vector<tg::Tensor>& in) { return tg::sum(in[0] * in[0]); };
  const tg::Tensor c = tg::tensor({1.0, 2.0}, tg::kFloat64);
  CHECK_THROWS_WITH_AS(tg::gradgradcheck(f, {c}), doctest::Contains("gradgradcheck: no input requires grad"),
                       tg::ValueError);
}

// ============================================================================
// dtypes, in-place writes, construction, the tape
// ============================================================================

TEST_CASE("a dtype an op does not take throws DtypeError naming the op and the dtypes") {
  CHECK_ERROR(tg::DtypeError, tg::zeros({2}, tg::kInt64).requires_grad_(), "requires_grad_:", "int64");
  CHECK_ERROR(tg::DtypeError, tg::ones({2}).data<double>(), "data<float64>:", "float32");
  CHECK_ERROR(tg::DtypeError, tg::ones({2}).value<std::int64_t>(), "value<int64>:", "float32");
  CHECK_ERROR(tg::DtypeError, tg::mean(tg::ones({2}, tg::kInt64)), "mean:", "int64");
  CHECK_ERROR(tg::DtypeError, tg::matmul(tg::ones({2, 2}, tg::kInt64), tg::ones({2, 2}, tg::kInt64)), "matmul:",
              "int64");
  CHECK_ERROR(tg::DtypeError, tg::ones({2}, tg::kBool) + tg::ones({2}, tg::kBool), "add:", "bool");
  CHECK_ERROR(tg::DtypeError, tg::nll_loss(tg::zeros({2, 3}), tg::zeros({2})), "nll_loss:", "int64", "float32");
  const tg::Tensor x = tg::ones({2}, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  CHECK_ERROR(tg::DtypeError, tg::gradcheck([](const std::vector<tg::Tensor>& in) { return tg::sum(in[0]); },
                                            {tg::ones({2}, tg::requires_grad())}),
              "gradcheck:", "input 0", "float32", "float64");
  CHECK(tg::gradcheck([](const std::vector<tg::Tensor>& in) { return tg::sum(in[0] * in[0]); }, {x}).passed);
}

TEST_CASE("in-place writes to a tensor that requires grad, outside NoGradGuard, throw AutogradError") {
  tg::Tensor x = tg::ones({2, 3}, tg::requires_grad());
  CHECK_ERROR(tg::AutogradError, x.add_(tg::ones({3})), "add_:", "(2, 3)", "requires grad", "NoGradGuard");
  CHECK_ERROR(tg::AutogradError, x.mul_(2.0), "mul_:", "(2, 3)", "NoGradGuard");
  CHECK_ERROR(tg::AutogradError, x.fill_(0.0), "fill_:", "(2, 3)");
  CHECK_ERROR(tg::AutogradError, x.copy_(tg::zeros({2, 3})), "copy_:", "(2, 3)");
  CHECK_ERROR(tg::AutogradError, x.clamp_(0.0, 1.0), "clamp_:", "(2, 3)");
  CHECK_ERROR(tg::AutogradError, x.mutable_data<float>(), "in-place write:", "(2, 3)");
  tg::Tensor y = tg::ones({2, 3});
  CHECK_ERROR(tg::ShapeError, y.copy_(tg::ones({4})), "copy_:", "(4,)", "(2, 3)");
  CHECK_ERROR(tg::ValueError, y.clamp_(1.0, -1.0), "clamp_:", "low");
  CHECK_ERROR(tg::ValueError, y.t().data<float>(), "data:", "(3, 2)", "contiguous()");
}

TEST_CASE("backward after a saved tensor was changed in place names the op and the versions") {
  tg::tape().clear();
  tg::Tensor v = tg::full({}, 2.0, tg::TensorOptions(tg::kFloat64).requires_grad(true));
  const tg::Tensor y = v * v;
  {
    tg::NoGradGuard no_grad;
    v.mul_(10.0);
  }
  CHECK_ERROR(tg::AutogradError, y.backward(), "mul backward", "modified in place", "version 0, now 1",
              "clone()");
}

TEST_CASE("ragged lists, huge shapes, bad generator ranges, tape indices") {
  CHECK_ERROR(tg::ValueError, (tg::Tensor{{1.0, 2.0}, {3.0}}), "tensor:", "ragged", "(1,)", "(2,)");
  CHECK_ERROR(tg::ShapeError, tg::zeros({1ull << 32, 1ull << 32}), "", "(4294967296, 4294967296)", "limit");
  CHECK_ERROR(tg::ShapeError, tg::ones({1ull << 41}), "", "(2199023255552,)", "limit");
  tg::Generator gen;
  CHECK_ERROR(tg::ValueError, gen.below(0), "Generator::below:", "empty");
  CHECK_ERROR(tg::ValueError, tg::randint(3, 3, {2}, gen), "randint:", "3");
  CHECK_ERROR(tg::ValueError, tg::rand({2}, gen, 1.0, 0.0), "rand:", "low <= high");
  tg::tape().clear();
  CHECK_ERROR(tg::ValueError, tg::tape()[0], "tape()[0]:", "out of range", "0 entries");
  CHECK_ERROR(tg::AutogradError, tg::ones({2}).retain_grad(), "retain_grad:", "(2,)", "does not require grad");
}
