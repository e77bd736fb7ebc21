// Building models as in the PyTorch C++ frontend: holders (nn::Linear for a
// shared nn::LinearImpl), option builders, the default generator,
// Sequential / ModuleList / ModuleDict / Identity, typed access,
// named_modules and apply, default type names, several-input forwards.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <type_traits>

#include <tapegrad/tapegrad.hpp>

using tg::Shape;
namespace nn = tg::nn;

namespace {

std::vector<float> values(const tg::Tensor& t) {
  const auto v = t.contiguous().to_xarray<float>();
  return std::vector<float>(v.begin(), v.end());
}

template <class V>
std::vector<std::string> names(const std::vector<std::pair<std::string, V>>& named) {
  std::vector<std::string> out;
  for (const auto& n : named) out.push_back(n.first);
  return out;
}

// A user module written as a libtorch user would: holders as members,
// registered in the constructor, no type_name() override.
struct NetImpl : nn::Module {
  nn::Sequential features{nullptr};
  nn::Linear head{nullptr};
  NetImpl() {
    features = register_module("features", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 2, 3).padding(1)), nn::ReLU()));
    head = register_module("head", nn::Linear(2 * 4 * 4, 3));
  }
  tg::Tensor forward(const tg::Tensor& x) override { return head(tg::flatten(features(x))); }
};
TG_MODULE(Net);

// A block with two inputs: forward(x, skip) = relu(fc(x))·gain + skip.
struct ResidualImpl : nn::Module {
  nn::Linear fc{nullptr};
  tg::Tensor gain;
  ResidualImpl() {
    fc = register_module("fc", nn::Linear(3, 3));
    gain = register_parameter("gain", tg::ones({1}));
  }
  using nn::Module::forward;  // keeps the one-tensor form visible: clang warns about a hidden overload otherwise
  tg::Tensor forward(const tg::Tensor& x, const tg::Tensor& skip) { return tg::relu(fc(x)) * gain + skip; }
};
TG_MODULE(Residual);

// A one-input module around it, so summary() can run it.
struct TwoPathImpl : nn::Module {
  nn::Linear stem{nullptr};
  Residual block{nullptr};
  TwoPathImpl() {
    stem = register_module("stem", nn::Linear(3, 3));
    block = register_module("block", Residual());
  }
  tg::Tensor forward(const tg::Tensor& x) override { return block(stem(x), x); }
};
TG_MODULE(TwoPath);

struct Plain : nn::Module {
  tg::Tensor forward(const tg::Tensor& x) override { return x * 2.0; }
};

}  // namespace

static_assert(nn::is_module_holder_v<nn::Linear>);
static_assert(nn::is_module_holder_v<Net>);
static_assert(!nn::is_module_holder_v<nn::LinearImpl>);
static_assert(!nn::is_module_holder_v<std::shared_ptr<nn::LinearImpl>>);
static_assert(std::is_same_v<Net::Impl, NetImpl>);

TEST_CASE("a holder shares its module: ->, *, ptr(), copies, nullptr, shared_ptr") {
  tg::manual_seed(1);
  nn::Linear fc(4, 3);
  CHECK(fc->weight.shape() == Shape{3, 4});
  CHECK((*fc).options.in_features() == 4);
  CHECK(fc.ptr().get() == fc.get());
  CHECK_FALSE(fc.is_empty());

  nn::Linear copy = fc;  // shares, as a shared_ptr does
  CHECK(copy.ptr() == fc.ptr());
  CHECK(copy->weight.same(fc->weight));

  nn::Linear empty{nullptr};
  CHECK(empty.is_empty());
  CHECK_FALSE(empty);
  CHECK_THROWS_WITH_AS((void)empty->weight, doctest::Contains("ModuleHolder<Linear>: the holder is empty"), tg::ValueError);
  empty = fc;
  CHECK(empty.ptr() == fc.ptr());

  auto impl = std::make_shared<nn::LinearImpl>(2, 5);
  nn::Linear adopted(impl);
  CHECK(adopted.ptr() == impl);
  nn::Linear assigned = impl;  // implicit, as torch's
  CHECK(assigned.ptr() == impl);

  // Calls: holder(x) and holder->forward(x) are the functional op with the parameters.
  const tg::Tensor x = tg::randn({2, 4});
  const std::vector<float> want = values(tg::linear(x, fc->weight, fc->bias));
  CHECK(values(fc(x)) == want);
  CHECK(values(fc->forward(x)) == want);

  // A default-constructible module: the holder default-constructs it.
  Net net;
  CHECK_FALSE(net.is_empty());
  CHECK(net(tg::zeros({2, 1, 4, 4})).shape() == Shape{2, 3});
  CHECK(net->forward(tg::zeros({1, 1, 4, 4})).shape() == Shape{1, 3});
}

TEST_CASE("option builders and the short forms build the layers they describe") {
  tg::manual_seed(2);
  SUBCASE("Conv2d: stride, padding, dilation, groups, bias") {
    nn::Conv2d conv(nn::Conv2dOptions(4, 6, {3, 5}).stride(2).padding({1, 2}).groups(2).bias(false));
    CHECK(conv->weight.shape() == Shape{6, 2, 3, 5});  // (out, in / groups, kh, kw)
    CHECK_FALSE(conv->bias.defined());
    CHECK(conv->num_parameters() == 6 * 2 * 3 * 5);
    CHECK(conv->options.stride() == tg::Size2(2));
    CHECK(conv->options.padding() == tg::Size2(1, 2));
    // H: (9 + 2·1 - 3) / 2 + 1 = 5, W: (11 + 2·2 - 5) / 2 + 1 = 6
    CHECK(conv(tg::zeros({1, 4, 9, 11})).shape() == Shape{1, 6, 5, 6});
    nn::Conv2d dilated(nn::Conv2dOptions(1, 1, 3).dilation(2));
    CHECK(dilated(tg::zeros({1, 1, 7, 7})).shape() == Shape{1, 1, 3, 3});  // 7 - 2·(3 - 1) = 3
    std::ostringstream os;
    os << conv;
    CHECK(os.str() == "Conv2d(4, 6, kernel=(3, 5), stride=(2, 2), padding=(1, 2), groups=2, bias=false)");
  }
  SUBCASE("short forms: Linear(in, out), Conv2d(in, out, kernel), MaxPool2d(k), BatchNorm2d(n), Dropout(p)") {
    CHECK(nn::Linear(784, 10)->num_parameters() == 784 * 10 + 10);
    nn::Conv2d conv(1, 8, 3);
    CHECK(conv->weight.shape() == Shape{8, 1, 3, 3});
    CHECK(conv->num_parameters() == 8 * 9 + 8);
    CHECK(conv(tg::zeros({1, 1, 5, 5})).shape() == Shape{1, 8, 3, 3});  // no padding by default
    CHECK(nn::MaxPool2d(2)(tg::zeros({1, 2, 6, 6})).shape() == Shape{1, 2, 3, 3});
    nn::BatchNorm2d bn(32);
    CHECK(bn->num_parameters() == 64);
    CHECK(bn->options.eps() == 1e-5);
    CHECK(bn->options.momentum() == 0.1);
    CHECK(nn::Dropout(0.3)->options.p() == 0.3);
    CHECK(nn::Dropout()->options.p() == 0.5);  // PyTorch's default
    CHECK(nn::LeakyReLU()->options.negative_slope() == 0.01);
  }
  SUBCASE("Linear without bias") {
    nn::Linear fc(nn::LinearOptions(5, 2).bias(false));
    CHECK(fc->num_parameters() == 10);
    CHECK(names(fc->named_parameters()) == std::vector<std::string>{"weight"});
  }
  SUBCASE("pooling: kernel, stride, padding") {
    // (7 + 2 - 3) / 2 + 1 = 4
    CHECK(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1))(tg::zeros({1, 1, 7, 7})).shape() ==
          Shape{1, 1, 4, 4});
    const tg::Tensor avg = nn::AvgPool2d(nn::AvgPool2dOptions(2).stride(1))(tg::ones({1, 1, 5, 5}));
    CHECK(avg.shape() == Shape{1, 1, 4, 4});
    CHECK(values(avg) == std::vector<float>(16, 1.0f));
    // The default stride is the kernel size.
    CHECK(nn::AvgPool2d(2)(tg::ones({1, 1, 6, 6})).shape() == Shape{1, 1, 3, 3});
  }
  SUBCASE("BatchNorm2d: eps, momentum, affine") {
    nn::BatchNorm2d bn(nn::BatchNorm2dOptions(2).eps(0.5).momentum(0.25).affine(false));
    CHECK(bn->num_parameters() == 0);
    CHECK(names(bn->named_buffers()) == std::vector<std::string>{"running_mean", "running_var", "num_batches_tracked"});
    // Channel 0 holds 1 and 3 (mean 2), channel 1 holds 4 and 8 (mean 6).
    const tg::Tensor x = tg::tensor({1.0f, 3.0f, 4.0f, 8.0f}).reshape({1, 2, 1, 2});
    bn(x);
    CHECK(values(bn->running_mean) == std::vector<float>{0.25f * 2.0f, 0.25f * 6.0f});
    bn->eval();
    // eval: (x - running_mean) / sqrt(running_var + eps), no affine
    const std::vector<float> y = values(bn(x));
    const double var0 = 0.75 + 0.25 * 2.0;  // unbiased variance of {1, 3} is 2
    CHECK(y[0] == doctest::Approx((1.0 - 0.5) / std::sqrt(var0 + 0.5)));
  }
  SUBCASE("LeakyReLU's slope") {
    nn::LeakyReLU leaky(nn::LeakyReLUOptions().negative_slope(0.2));
    CHECK(values(leaky(tg::tensor({-1.0f, 2.0f}))) == std::vector<float>{-0.2f, 2.0f});
  }
}

TEST_CASE("manual_seed: the same seed builds the same model; the random creators use the default generator") {
  auto build = [] {
    return nn::Sequential(nn::Conv2d(1, 2, 3), nn::Flatten(), nn::Linear(2 * 3 * 3, 4), nn::Dropout(0.5));
  };
  tg::manual_seed(0);
  nn::Sequential a = build();
  tg::manual_seed(0);
  nn::Sequential b = build();
  nn::Sequential c = build();  // the generator has moved on
  const auto pa = a->parameters(), pb = b->parameters(), pc = c->parameters();
  REQUIRE(pa.size() == 4);
  for (std::size_t i = 0; i < pa.size(); ++i) {
    CAPTURE(i);
    CHECK(values(pa[i]) == values(pb[i]));
    CHECK(values(pa[i]) != values(pc[i]));
  }
  // Dropout's masks too: each layer's generator was seeded from the default one.
  const tg::Tensor x = tg::ones({2, 1, 5, 5});
  CHECK(values(a(x)) == values(b(x)));

  // An explicit generator is still accepted, and the default one is not touched.
  tg::manual_seed(3);
  const std::vector<float> first = values(tg::rand({4}));
  tg::manual_seed(3);
  tg::Generator g1(9), g2(9);
  CHECK(values(nn::Linear(3, 2, g1)->weight) == values(nn::Linear(3, 2, g2)->weight));
  CHECK(values(nn::Conv2d(nn::Conv2dOptions(1, 1, 2), g1)->weight) == values(nn::Conv2d(nn::Conv2dOptions(1, 1, 2), g2)->weight));
  CHECK(values(tg::rand({4})) == first);

  // Each creator without a generator equals it with a Generator of the same seed.
  tg::manual_seed(5);
  tg::Generator g(5);
  CHECK(values(tg::rand({3}, 1.0, 2.0)) == values(tg::rand({3}, g, 1.0, 2.0)));
  CHECK(values(tg::randn({5})) == values(tg::randn({5}, g)));  // an odd count: a normal is left over
  const tg::Tensor like = tg::zeros({2, 2});
  CHECK(values(tg::rand_like(like)) == values(tg::rand_like(like, g)));
  CHECK(values(tg::randn_like(like)) == values(tg::randn_like(like, g)));
  CHECK(tg::randint(0, 100, {6}).to_xarray<std::int64_t>() == tg::randint(0, 100, {6}, g).to_xarray<std::int64_t>());
  CHECK(tg::randperm(7).to_xarray<std::int64_t>() == tg::randperm(7, g).to_xarray<std::int64_t>());
  CHECK(tg::randn({2}, 0.0, 1.0, tg::kFloat64).dtype() == tg::kFloat64);

  // Reseeding restarts the sequence, even after an odd number of normals.
  tg::manual_seed(5);
  const std::vector<float> normals = values(tg::randn({4}));
  tg::manual_seed(7);
  tg::randn({3});
  tg::manual_seed(5);
  CHECK(values(tg::randn({4})) == normals);
  tg::Generator odd(11);
  odd.normal();
  odd.seed(5);
  CHECK(values(tg::randn({4}, odd)) == normals);

  // The default generator is per thread: another thread starts from the default seed.
  std::vector<float> other_thread;
  std::thread([&] { other_thread = values(tg::rand({3})); }).join();
  tg::Generator fresh(tg::kDefaultSeed);
  CHECK(other_thread == values(tg::rand({3}, fresh)));
}

TEST_CASE("Sequential: variadic from holders and shared_ptrs, push_back, size, indexing, typed ptr") {
  tg::manual_seed(4);
  nn::Conv2d conv(nn::Conv2dOptions(1, 32, 5).padding(2));
  auto relu = std::make_shared<nn::ReLUImpl>();
  nn::Sequential seq(conv, nn::BatchNorm2d(32), relu, nn::MaxPool2d(2));
  CHECK(seq->size() == 4);
  CHECK(seq(tg::zeros({2, 1, 28, 28})).shape() == Shape{2, 32, 14, 14});
  CHECK(seq->num_parameters() == 32 * 25 + 32 + 2 * 32);
  CHECK(names(seq->named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"});

  CHECK(seq[0].get() == conv.get());
  CHECK(seq->ptr(0) == conv.ptr());
  CHECK(seq[2] == relu);
  CHECK(seq[3]->type_name() == "MaxPool2d");
  std::shared_ptr<nn::Conv2dImpl> typed = seq->ptr<nn::Conv2d>(0);  // the holder type
  CHECK(typed == conv.ptr());
  CHECK(seq->ptr<nn::Conv2dImpl>(0) == conv.ptr());  // or the Impl type
  CHECK(seq->at<nn::BatchNorm2d>(1).options.num_features() == 32);
  CHECK_THROWS_WITH_AS(seq->ptr<nn::Linear>(0), "Sequential::ptr<Linear>: module 0 is a Conv2d, not a Linear",
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(seq->ptr<nn::ReLU>(3), "Sequential::ptr<ReLU>: module 3 is a MaxPool2d, not a ReLU",
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(seq->ptr(4), "Sequential: index 4 is out of range for 4 modules", tg::ValueError);

  seq->push_back(nn::Flatten());
  seq->push_back(std::make_shared<nn::LinearImpl>(32 * 14 * 14, 10));
  CHECK(seq->size() == 6);
  CHECK(seq(tg::zeros({2, 1, 28, 28})).shape() == Shape{2, 10});
  CHECK(seq->find("5.weight").name() == "5.weight");

  // A user module by shared_ptr or by holder; an empty holder is refused.
  nn::Sequential mixed(std::make_shared<Plain>(), Net());
  CHECK(mixed(tg::ones({1, 1, 4, 4})).shape() == Shape{1, 3});
  CHECK(mixed[0]->type_name() == "Plain");
  nn::Linear empty{nullptr};
  CHECK_THROWS_WITH_AS(nn::Sequential(nn::ReLU(), empty), doctest::Contains("\"1\" is null"), tg::ValueError);

  // Range-for over the modules.
  std::vector<std::string> types;
  for (const auto& m : *seq) types.push_back(m->type_name());
  CHECK(types == std::vector<std::string>{"Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Linear"});
}

TEST_CASE("register_module takes and returns holders; shared_ptrs keep working") {
  Net net;
  const auto children = net->named_children();
  REQUIRE(children.size() == 2);
  CHECK(children[0].second == net->features.ptr());
  CHECK(children[1].second == net->head.ptr());
  CHECK(names(net->named_parameters()) ==
        std::vector<std::string>{"features.0.weight", "features.0.bias", "head.weight", "head.bias"});
  CHECK(net->num_parameters() == 2 * 9 + 2 + 32 * 3 + 3);

  struct ByPointer : nn::Module {
    std::shared_ptr<nn::LinearImpl> fc;
    ByPointer() : fc(register_module("fc", std::make_shared<nn::LinearImpl>(2, 2))) {}
    tg::Tensor forward(const tg::Tensor& x) override { return fc->forward(x); }
  };
  ByPointer by_pointer;
  CHECK(by_pointer.find("fc.weight").same(by_pointer.fc->weight));
}

TEST_CASE("type_name defaults to the class name without namespace or Impl") {
  CHECK(Net()->type_name() == "Net");
  CHECK(Plain().type_name() == "Plain");
  struct Local : nn::Module {};
  CHECK(Local().type_name() == "Local");
  CHECK(nn::Linear(1, 1)->type_name() == "Linear");
  CHECK(nn::Sequential()->type_name() == "Sequential");
  CHECK(nn::ModuleList()->type_name() == "ModuleList");
  CHECK(nn::ModuleDict()->type_name() == "ModuleDict");
  CHECK(nn::Identity()->type_name() == "Identity");
  CHECK(nn::LeakyReLU()->type_name() == "LeakyReLU");
  CHECK(nn::detail::module_type_name(typeid(nn::Conv2dImpl)) == "Conv2d");
  CHECK(nn::detail::module_type_name(typeid(int)) == "int");
  std::ostringstream os;
  os << Net();
  CHECK(os.str() ==
        "Net(\n"
        "  (features): Sequential(\n"
        "    (0): Conv2d(1, 2, kernel=(3, 3), stride=(1, 1), padding=(1, 1))\n"
        "    (1): ReLU()\n"
        "  )\n"
        "  (head): Linear(in=32, out=3)\n"
        ")");
  const std::string summary = Net()->summary({2, 1, 4, 4});
  CHECK(summary.find("features.0 (Conv2d)") != std::string::npos);
  CHECK(summary.find("head (Linear)") != std::string::npos);
}

TEST_CASE("ModuleList: push_back, size, indexing, range-for, no forward") {
  tg::manual_seed(6);
  nn::ModuleList list(nn::Linear(4, 4), std::make_shared<nn::TanhImpl>());
  list->push_back(nn::Linear(4, 2));
  CHECK(list->size() == 3);
  CHECK(list[1]->type_name() == "Tanh");
  CHECK(list->ptr<nn::Linear>(2)->weight.shape() == Shape{2, 4});
  CHECK(names(list->named_parameters()) == std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  tg::Tensor y = tg::ones({1, 4});
  for (const auto& m : *list) y = (*m)(y);  // the owner calls them
  CHECK(y.shape() == Shape{1, 2});
  CHECK_THROWS_WITH_AS(list(tg::ones({1, 4})), doctest::Contains("ModuleList has no forward"), tg::ValueError);
  CHECK_THROWS_WITH_AS(list->ptr<nn::Linear>(1), "ModuleList::ptr<Linear>: module 1 is a Tanh, not a Linear",
                       tg::ValueError);
}

TEST_CASE("ModuleDict: insert by name, lookup, keys in insertion order") {
  tg::manual_seed(7);
  nn::ModuleDict dict;
  dict->insert("encoder", nn::Linear(4, 2));
  dict->insert("act", std::make_shared<nn::TanhImpl>());
  dict->insert("decoder", nn::Linear(2, 4));
  CHECK(dict->size() == 3);
  CHECK(dict->keys() == std::vector<std::string>{"encoder", "act", "decoder"});
  CHECK(dict->contains("act"));
  CHECK_FALSE(dict->contains("nope"));
  CHECK(dict["act"]->type_name() == "Tanh");
  CHECK(dict->ptr<nn::Linear>("decoder")->weight.shape() == Shape{4, 2});
  CHECK(names(dict->named_parameters()) ==
        std::vector<std::string>{"encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"});
  CHECK_THROWS_WITH_AS(dict["nope"], "ModuleDict: no module named \"nope\"", tg::ValueError);
  CHECK_THROWS_WITH_AS(dict->ptr<nn::Tanh>("encoder"), "ModuleDict::ptr<Tanh>: module \"encoder\" is a Linear, not a Tanh",
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(dict->insert("act", nn::ReLU()), doctest::Contains("\"act\" is already registered"), tg::ValueError);
  CHECK_THROWS_WITH_AS(dict->insert("a.b", nn::ReLU()), doctest::Contains("must be non-empty and contain no '.'"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(dict(tg::ones({1, 4})), doctest::Contains("ModuleDict has no forward"), tg::ValueError);
}

TEST_CASE("Identity passes its input through") {
  const tg::Tensor x = tg::randn({2, 3});
  CHECK(nn::Identity()(x).same(x));
  nn::Sequential seq{nn::Identity(), nn::Identity()};  // braces: with parentheses this would declare a function
  CHECK(seq->num_parameters() == 0);
  CHECK(seq(x).same(x));
}

TEST_CASE("named_modules lists the tree with dotted names; apply visits children before their parent") {
  Net net;
  const auto named = net->named_modules();
  CHECK(names(named) == std::vector<std::string>{"", "features", "features.0", "features.1", "head"});
  REQUIRE(named.size() == 5);
  CHECK(named[0].second == net.get());
  CHECK(named[2].second == net->features[0].get());
  CHECK(named[4].second == net->head.get());
  CHECK(net->modules().size() == 5);

  std::vector<std::string> order;
  net->apply([&](nn::Module& m) { order.push_back(m.type_name()); });
  CHECK(order == std::vector<std::string>{"Conv2d", "ReLU", "Sequential", "Linear", "Net"});

  // The usual use: re-initialize every layer of a kind.
  net->apply([](nn::Module& m) {
    if (auto* linear = dynamic_cast<nn::LinearImpl*>(&m)) {
      tg::NoGradGuard no_grad;
      linear->weight.fill_(0.5);
    }
  });
  CHECK(values(net->head->weight) == std::vector<float>(3 * 32, 0.5f));

  // A module shared by two parents is listed and visited once, under its first name.
  nn::Linear shared(2, 2);
  nn::Sequential outer(nn::Sequential(shared), shared);
  CHECK(names(outer->named_modules()) == std::vector<std::string>{"", "0", "0.0"});
  int visits = 0;
  outer->apply([&](nn::Module& m) { visits += &m == shared.get(); });
  CHECK(visits == 1);
}

TEST_CASE("a module with a two-input forward: holder(x, skip), summary, and a clear error for one tensor") {
  tg::manual_seed(8);
  Residual block;
  const tg::Tensor x = tg::randn({2, 3});
  const tg::Tensor skip = tg::randn({2, 3}).requires_grad_();
  // relu(x·wᵀ + b)·1 + skip, by hand
  const auto xv = x.to_xarray<float>(), w = block->fc->weight.to_xarray<float>(), b = block->fc->bias.to_xarray<float>(),
             sv = skip.to_xarray<float>();
  const tg::Tensor y = block(x, skip);
  REQUIRE(y.shape() == Shape{2, 3});
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      float z = b(j);
      for (std::size_t k = 0; k < 3; ++k) z += xv(i, k) * w(j, k);
      CHECK(y.to_xarray<float>()(i, j) == doctest::Approx(std::max(z, 0.0f) + sv(i, j)));
    }
  CHECK(values(block->forward(x, skip)) == values(y));
  tg::sum(y).backward();
  CHECK(values(skip.grad()) == std::vector<float>(6, 1.0f));

  // One tensor through Module's interface, or in a Sequential: a ValueError saying why.
  CHECK_THROWS_WITH_AS(static_cast<nn::Module&>(*block)(x),
                       doctest::Contains("Residual takes other inputs: its forward is not forward(const Tensor&)"),
                       tg::ValueError);
  nn::Sequential wrapped(block);
  CHECK_THROWS_WITH_AS(wrapped(x), doctest::Contains("Residual takes other inputs"), tg::ValueError);

  // summary() sees the two-input call made through the holder.
  TwoPath net;
  const std::string s = net->summary({4, 3});
  CAPTURE(s);
  CHECK(s.find("stem (Linear)") != std::string::npos);
  CHECK(s.find("block (Residual)") != std::string::npos);
  CHECK(s.find("block.fc (Linear)") != std::string::npos);
  CHECK(s.find("Total params: 25") != std::string::npos);
  tg::tape().clear();
}

TEST_CASE("README's model code is examples/build_a_model.cpp's, which builds and runs as a test") {
  const auto root = std::filesystem::path(__FILE__).parent_path().parent_path();
  auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    REQUIRE(in);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  };
  const std::string readme = read(root / "README.md"), example = read(root / "examples" / "build_a_model.cpp");
  const std::string marker = "// ---- README ----\n";
  const auto begin = example.find(marker), end = example.find(marker, begin + 1);
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  const std::string code = example.substr(begin + marker.size(), end - begin - marker.size());
  const auto section = readme.find("## Modules, layers, optimizers");
  REQUIRE(section != std::string::npos);
  const auto block = readme.find("```cpp\n", section);
  REQUIRE(block != std::string::npos);
  const auto close = readme.find("```\n", block + 7);
  CHECK(readme.substr(block + 7, close - block - 7) == code);
}
