// tg::distributed under `mpirun -np 2 test_distributed`: the collectives,
// DataParallel and DistributedSampler. Every rank runs every test case, so a
// test calls the same collectives on both ranks, and checks with CHECK (a
// failed REQUIRE on one rank would leave the other waiting).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <tapegrad/distributed/distributed.hpp>
#include <tapegrad/tapegrad.hpp>

namespace dist = tg::distributed;

namespace {

dist::Environment* mpi = nullptr;  // made in main

// Parameters of three sizes in two dtypes, and an int64 and a float buffer.
// forward(x) = x · sum(a) and leaves the buffers alone.
class Mixed : public tg::nn::Module {
 public:
  explicit Mixed(double value) {
    a = register_parameter("a", tg::full({2}, value));
    b = register_parameter("b", tg::full({2}, value));
    c = register_parameter("c", tg::full({4}, value));
    d = register_parameter("d", tg::full({3}, value, tg::kFloat64));
    count = register_buffer("count", tg::full({1}, value, tg::kInt64));
    stats = register_buffer("stats", tg::full({2}, value));
  }
  tg::Tensor forward(const tg::Tensor& x) override { return x * a.sum(); }
  tg::Tensor a, b, c, d, count, stats;
};

// (rank + 1) · (1, 2, ..., n) in `dtype`.
tg::Tensor ramp(std::size_t n, tg::Dtype dtype) {
  return (tg::arange(1.0, double(n) + 1.0, 1.0, dtype) * double(mpi->rank() + 1)).to(dtype);
}

std::vector<double> values(const tg::Tensor& t) {
  const auto x = t.to(tg::kFloat64).to_xarray<double>();
  return std::vector<double>(x.begin(), x.end());
}

// The dataset indices of a loader's epoch, batch by batch.
std::vector<std::vector<std::size_t>> epoch_batches(tg::data::DataLoader& loader) {
  std::vector<std::vector<std::size_t>> batches;
  for (const tg::data::Batch& b : loader) batches.push_back(b.indices);
  return batches;
}

tg::data::datasets::TensorDataset numbered(std::size_t n) {
  return tg::data::datasets::TensorDataset(tg::arange(0.0, double(n)).reshape({std::int64_t(n), 1}),
                                           tg::arange(0.0, double(n), 1.0, tg::kInt64));
}

}  // namespace

TEST_CASE("Environment: rank and world size from mpirun") {
  CHECK(mpi->world_size() == 2);
  CHECK((mpi->rank() == 0 || mpi->rank() == 1));
  tg::Tensor seen = tg::zeros({2}, tg::kInt64);
  seen.mutable_data<std::int64_t>()[mpi->rank()] = 1;
  mpi->all_reduce_sum(seen);
  CHECK(values(seen) == std::vector<double>{1, 1});  // each rank once
  CHECK(dist::launched_by_mpirun());
}

TEST_CASE("all_reduce_sum and broadcast, in every dtype, counted in traffic()") {
  for (const tg::Dtype dtype : {tg::kFloat32, tg::kFloat64, tg::kInt64}) {
    INFO(tg::dtype_name(dtype));
    const dist::Traffic before = mpi->traffic();
    tg::Tensor sum = ramp(5, dtype);
    mpi->all_reduce_sum(sum);
    CHECK(values(sum) == std::vector<double>{3, 6, 9, 12, 15});  // (1 + 2) · (1 .. 5)
    tg::Tensor from1 = ramp(3, dtype);
    mpi->broadcast(from1, 1);
    CHECK(values(from1) == std::vector<double>{2, 4, 6});
    CHECK(sum.dtype() == dtype);
    const dist::Traffic& after = mpi->traffic();
    CHECK(after.all_reduce_bytes - before.all_reduce_bytes == 5 * tg::element_size(dtype));
    CHECK(after.broadcast_bytes - before.broadcast_bytes == 3 * tg::element_size(dtype));
    CHECK(after.calls - before.calls == 2);
    CHECK(after.seconds >= before.seconds);
  }
}

TEST_CASE("collectives refuse what they cannot send, before sending anything") {
  tg::Tensor strided = tg::zeros({3, 2}).t();
  CHECK_THROWS_WITH_AS(mpi->all_reduce_sum(strided),
                       doctest::Contains("all_reduce_sum: the tensor of shape (2, 3) is not contiguous"),
                       tg::ValueError);
  tg::Tensor flags = tg::zeros({2}, tg::kBool);
  CHECK_THROWS_WITH_AS(mpi->all_reduce_sum(flags), doctest::Contains("not defined for bool"), tg::DtypeError);
  tg::Tensor undefined;
  CHECK_THROWS_WITH_AS(mpi->broadcast(undefined, 0), doctest::Contains("broadcast: the tensor is undefined"),
                       tg::ValueError);
  tg::Tensor t = tg::zeros({2});
  CHECK_THROWS_WITH_AS(mpi->broadcast(t, 2), doctest::Contains("broadcast: root 2 is outside a world of 2 ranks"),
                       tg::ValueError);
  tg::Tensor leaf = tg::zeros({2}, tg::requires_grad());
  CHECK_THROWS_AS(mpi->all_reduce_sum(leaf), tg::Error);  // the in-place rules: NoGradGuard needed
  {
    tg::NoGradGuard no_grad;
    mpi->all_reduce_sum(leaf);
  }
}

TEST_CASE("DataParallel starts every rank from rank 0's parameters and buffers") {
  Mixed net(10.0 + mpi->rank());  // 10 on rank 0, 11 on rank 1
  dist::DataParallel ddp(net, *mpi);
  for (const auto& list : {net.named_parameters(), net.named_buffers()})
    for (const auto& named : list) {
      INFO(named.first);
      const std::vector<double> v = values(named.second);
      CHECK(std::all_of(v.begin(), v.end(), [](double x) { return x == 10.0; }));
    }
  CHECK(net.a.requires_grad());
}

TEST_CASE("average_gradients: the mean over the ranks, in buckets of at most bucket_bytes per dtype") {
  for (const std::size_t bucket_bytes : {std::size_t{25} << 20, std::size_t{16}, std::size_t{1}}) {
    INFO("bucket_bytes " << bucket_bytes);
    Mixed net(1.0);
    dist::DataParallel ddp(net, *mpi, {bucket_bytes});
    // float32: a, b, c (8, 8, 16 bytes); float64: d.
    CHECK(ddp.num_gradient_buckets() == (bucket_bytes > 32 ? 2u : bucket_bytes == 16 ? 3u : 4u));
    const double r = mpi->rank() + 1.0;  // each gradient is (rank + 1) · (its ramp)
    const tg::Tensor loss = (net.a * ramp(2, tg::kFloat32)).sum() + (net.b * ramp(2, tg::kFloat32)).sum() +
                            (net.c * ramp(4, tg::kFloat32)).sum() +
                            (net.d * ramp(3, tg::kFloat64)).sum().to(tg::kFloat32);
    loss.backward();
    CHECK(values(net.c.grad()) == std::vector<double>{r, 2 * r, 3 * r, 4 * r});
    ddp.average_gradients();
    CHECK(values(net.a.grad()) == std::vector<double>{1.5, 3});  // (1 + 2) / 2 · (1, 2)
    CHECK(values(net.b.grad()) == std::vector<double>{1.5, 3});
    CHECK(values(net.c.grad()) == std::vector<double>{1.5, 3, 4.5, 6});
    CHECK(values(net.d.grad()) == std::vector<double>{1.5, 3, 4.5});
    CHECK(net.d.grad().dtype() == tg::kFloat64);
  }
}

TEST_CASE("average_gradients names a parameter without a gradient") {
  Mixed net(1.0);
  dist::DataParallel ddp(net, *mpi);
  const tg::Tensor loss = net(tg::ones({2})).sum();  // reads a only
  loss.backward();
  CHECK_THROWS_WITH_AS(ddp.average_gradients(), doctest::Contains("parameter \"b\" has no gradient"),
                       dist::DistributedError);
  // Frozen before the wrapper is made: not averaged, not required.
  net.freeze("b");
  net.freeze("c");
  net.freeze("d");
  dist::DataParallel frozen(net, *mpi);
  CHECK(frozen.num_gradient_buckets() == 1);
  frozen.average_gradients();
  CHECK(values(net.a.grad()) == std::vector<double>{2, 2});  // d(sum(x · sum(a)))/da with x = (1, 1)
}

TEST_CASE("buffers: rank 0's before each training forward, each rank's own in eval") {
  Mixed net(1.0);
  dist::DataParallel ddp(net, *mpi);
  auto set_buffers = [&](double v) {
    tg::NoGradGuard no_grad;
    net.count.fill_(v);
    net.stats.fill_(v);
  };
  const double own = 5.0 + mpi->rank();
  set_buffers(own);
  net.eval();
  ddp(tg::ones({2}));
  CHECK(values(net.stats) == std::vector<double>{own, own});
  net.train();
  ddp(tg::ones({2}));
  CHECK(values(net.stats) == std::vector<double>{5, 5});
  CHECK(values(net.count) == std::vector<double>{5});

  set_buffers(own);
  dist::DataParallel kept(net, *mpi, {std::size_t{25} << 20, /*broadcast_buffers=*/false});  // broadcasts once, here
  CHECK(values(net.stats) == std::vector<double>{5, 5});
  set_buffers(own);
  kept(tg::ones({2}));
  CHECK(values(net.stats) == std::vector<double>{own, own});
  kept.broadcast_buffers();
  CHECK(values(net.stats) == std::vector<double>{5, 5});
}

TEST_CASE("DataParallel refuses models that differ between ranks, on every rank") {
  tg::Generator gen(1);
  tg::nn::Linear net(3, mpi->rank() == 0 ? 4 : 5, gen);
  CHECK_THROWS_WITH_AS(dist::DataParallel(*net, *mpi),
                       doctest::Contains("the model differs between ranks (1 of 2 have other parameter or buffer"),
                       dist::DistributedError);
  Mixed mixed(1.0);
  CHECK_THROWS_WITH_AS(dist::DataParallel(mixed, *mpi, {0}), doctest::Contains("bucket_bytes must be positive"),
                       tg::ValueError);
}

// ---- DistributedSampler (no communication) ------------------------------------

TEST_CASE("DistributedSampler: disjoint shards that cover the epoch, padded or cut to equal sizes") {
  for (const bool shuffle : {false, true}) {
    INFO("shuffle " << shuffle);
    std::multiset<std::size_t> all;
    for (std::size_t rank = 0; rank < 3; ++rank) {
      dist::DistributedSampler s(10, 3, rank, shuffle, 4);
      CHECK(s.size() == 4);
      const auto indices = s.indices(0);
      all.insert(indices.begin(), indices.end());
      if (!shuffle) CHECK(indices == std::vector<std::size_t>{rank, rank + 3, rank + 6, (rank + 9) % 10});
    }
    CHECK(all.size() == 12);  // 10 and 2 repeated from the epoch's beginning
    for (std::size_t i = 0; i < 10; ++i) CHECK(all.count(i) >= 1);

    std::set<std::size_t> kept;
    for (std::size_t rank = 0; rank < 3; ++rank) {
      dist::DistributedSampler s(10, 3, rank, shuffle, 4, /*drop_last=*/true);
      CHECK(s.size() == 3);
      for (std::size_t i : s.indices(1)) CHECK(kept.insert(i).second);  // never twice
    }
    CHECK(kept.size() == 9);
  }
}

TEST_CASE("DistributedSampler: the permutation of a shuffling DataLoader with the seed, epoch by epoch") {
  const auto data = numbered(50);
  tg::data::DataLoader plain(data, {8, /*shuffle=*/true, /*seed=*/9});
  auto alone = std::make_shared<dist::DistributedSampler>(50, 1, 0, true, 9);
  tg::data::DataLoader sampled(data, {8, false, 0, false, false, alone});
  for (int epoch = 0; epoch < 3; ++epoch) CHECK(epoch_batches(plain) == epoch_batches(sampled));

  // Any epoch, in any order, is the same.
  dist::DistributedSampler s(50, 2, 1, true, 9);
  const auto e2 = s.indices(2), e0 = s.indices(0), e1 = s.indices(1);
  CHECK(s.indices(2) == e2);
  CHECK(s.indices(0) == e0);
  CHECK(e0 != e1);
  CHECK(e1 != e2);
}

TEST_CASE("DistributedSampler: batch i of the N ranks together is batch i of one process with N times the batch") {
  const auto data = numbered(40);
  tg::data::DataLoader whole(data, {8, true, 2});
  std::vector<std::vector<std::vector<std::size_t>>> ranks;  // rank, batch, index
  for (std::size_t rank = 0; rank < 2; ++rank) {
    auto sampler = std::make_shared<dist::DistributedSampler>(40, 2, rank, true, 2);
    tg::data::DataLoader shard(data, {4, false, 0, false, false, sampler});
    epoch_batches(shard);  // the second epoch, as well as the first
    ranks.push_back(epoch_batches(shard));
  }
  epoch_batches(whole);
  const auto expected = epoch_batches(whole);
  REQUIRE(ranks[0].size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    std::multiset<std::size_t> together(ranks[0][i].begin(), ranks[0][i].end());
    together.insert(ranks[1][i].begin(), ranks[1][i].end());
    CHECK(together == std::multiset<std::size_t>(expected[i].begin(), expected[i].end()));
  }
}

TEST_CASE("DistributedSampler errors") {
  CHECK_THROWS_WITH_AS(dist::DistributedSampler(10, 2, 2), doctest::Contains("rank 2 is outside a world of 2 ranks"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(dist::DistributedSampler(10, 0, 0), doctest::Contains("world size must be positive"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(dist::DistributedSampler(0, 2, 0), doctest::Contains("the dataset is empty"), tg::ValueError);
}

int main(int argc, char** argv) {
  dist::Environment environment(argc, argv);
  mpi = &environment;
  doctest::Context context(argc, argv);
  return context.run();
}
