// Datasets, transforms and the DataLoader over them: range-for, shuffling,
// drop_last, stacking of float and integer targets, prefetch on a worker thread.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace data = tg::data;
namespace ds = tg::data::datasets;
namespace T = tg::data::transforms;

namespace {

// n inputs (n, 2, 3) whose elements encode their row: 100 * row + k.
tg::Tensor numbered_inputs(std::size_t n) {
  tg::Tensor x = tg::empty({n, 2, 3});
  float* p = x.mutable_data<float>();
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < 6; ++k) p[i * 6 + k] = static_cast<float>(100 * i + k);
  return x;
}

tg::Tensor int_targets(std::size_t n) {
  tg::Tensor y = tg::empty({n}, tg::kInt64);
  for (std::size_t i = 0; i < n; ++i) y.mutable_data<std::int64_t>()[i] = static_cast<std::int64_t>(1000 + i);
  return y;
}

std::vector<float> floats(const tg::Tensor& t) {
  const tg::Tensor c = t.contiguous();
  return std::vector<float>(c.data<float>(), c.data<float>() + c.numel());
}

std::vector<std::int64_t> ints(const tg::Tensor& t) {
  const tg::Tensor c = t.contiguous();
  return std::vector<std::int64_t>(c.data<std::int64_t>(), c.data<std::int64_t>() + c.numel());
}

// A dataset written as a user would: only size() and get(). Example i is
// input {i, -i} with target 2i (float). It counts the gets in flight and
// those served on another thread than the one that made it (copies share
// the counts), throws at `fail_at` and sleeps `delay` in each get.
class Counting : public ds::Dataset {
 public:
  struct Stats {
    std::atomic<int> in_flight{0};
    std::atomic<int> other_thread{0};
    std::thread::id main = std::this_thread::get_id();
  };

  explicit Counting(std::size_t n, std::size_t fail_at = SIZE_MAX, std::chrono::milliseconds delay = {})
      : n_(n), fail_at_(fail_at), delay_(delay) {}
  std::size_t size() const override { return n_; }
  data::Example get(std::size_t i) const override {
    ++stats->in_flight;
    std::this_thread::sleep_for(delay_);
    if (std::this_thread::get_id() != stats->main) ++stats->other_thread;
    --stats->in_flight;
    if (i == fail_at_) throw std::runtime_error("example " + std::to_string(i) + " is broken");
    return {tg::Tensor{static_cast<float>(i), -static_cast<float>(i)}, tg::scalar_tensor(2.0 * double(i))};
  }

  std::shared_ptr<Stats> stats = std::make_shared<Stats>();

 private:
  std::size_t n_, fail_at_;
  std::chrono::milliseconds delay_;
};

// Every batch of one range-for epoch, as (indices, inputs, targets).
struct Seen {
  std::vector<std::vector<std::size_t>> indices;
  std::vector<std::vector<float>> inputs;
  std::vector<tg::Tensor> targets;
};

Seen run_epoch(data::DataLoader& loader) {
  Seen s;
  for (const data::Batch& b : loader) {
    s.indices.push_back(b.indices);
    s.inputs.push_back(floats(b.inputs));
    s.targets.push_back(b.targets);
  }
  return s;
}

}  // namespace

// ---- datasets ----------------------------------------------------------------

TEST_CASE("TensorDataset: example i is (inputs[i], targets[i]), int64 or float targets") {
  const ds::TensorDataset d(numbered_inputs(4), int_targets(4));
  REQUIRE(d.size() == 4);
  const data::Example e = d.get(2);
  CHECK(e.input.shape() == tg::Shape{2, 3});
  CHECK(floats(e.input) == std::vector<float>{200, 201, 202, 203, 204, 205});
  CHECK(e.target.dim() == 0);
  CHECK(e.target.dtype() == tg::kInt64);
  CHECK(e.target.item<std::int64_t>() == 1002);

  const ds::TensorDataset regression(tg::Tensor{{1, 2}, {3, 4}, {5, 6}}, tg::Tensor{{0.5, 1.5}, {2.5, 3.5}, {4.5, 5.5}});
  CHECK(floats(regression.get(1).input) == std::vector<float>{3, 4});
  CHECK(regression.get(1).target.dtype() == tg::kFloat32);
  CHECK(floats(regression.get(1).target) == std::vector<float>{2.5f, 3.5f});

  // Rows gathered at once equal the examples stacked one by one.
  const data::Example batch = d.get_batch({3, 0, 3}, 0);
  const data::Example stacked = data::stack_examples({d.get(3), d.get(0), d.get(3)});
  CHECK(batch.input.shape() == tg::Shape{3, 2, 3});
  CHECK(floats(batch.input) == floats(stacked.input));
  CHECK(ints(batch.target) == std::vector<std::int64_t>{1003, 1000, 1003});
  CHECK(ints(stacked.target) == std::vector<std::int64_t>{1003, 1000, 1003});

  CHECK_THROWS_WITH_AS(d.get(4), doctest::Contains("TensorDataset::get: index 4 is out of range for 4 examples"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(ds::TensorDataset(numbered_inputs(4), int_targets(3)),
                       doctest::Contains("TensorDataset: inputs (4, 2, 3) hold 4 examples but targets (3,) hold 3"),
                       tg::ShapeError);
  CHECK_THROWS_AS(ds::TensorDataset(tg::Tensor(), int_targets(3)), tg::ShapeError);
  CHECK_THROWS_AS(ds::TensorDataset(tg::scalar_tensor(1.0), tg::scalar_tensor(1.0)), tg::ShapeError);
  CHECK_THROWS_WITH_AS(data::stack_examples({d.get(0), regression.get(0)}),
                       doctest::Contains("example 1's input has shape (2,), example 0's (2, 3)"), tg::ShapeError);
}

TEST_CASE("Subset picks examples by an explicit index list") {
  const ds::Subset s(ds::TensorDataset(numbered_inputs(5), int_targets(5)), {4, 1, 1});
  REQUIRE(s.size() == 3);
  CHECK(s.get(0).target.item<std::int64_t>() == 1004);
  CHECK(s.get(2).target.item<std::int64_t>() == 1001);
  CHECK(ints(s.get_batch({0, 1}, 0).target) == std::vector<std::int64_t>{1004, 1001});
  CHECK_THROWS_AS(s.get(3), tg::ValueError);
  CHECK_THROWS_AS(ds::Subset(ds::TensorDataset(numbered_inputs(2), int_targets(2)), {2}), tg::ValueError);
}

// ---- transforms --------------------------------------------------------------

TEST_CASE("Normalize subtracts each channel's mean and divides by its std") {
  // Two channels of 2x2.
  const tg::Tensor x{{{1, 3}, {5, 7}}, {{2, 6}, {10, 14}}};
  const tg::Tensor y = T::Normalize({1, 2}, {2, 4})(x);
  CHECK(y.dtype() == tg::kFloat32);
  CHECK(y.shape() == tg::Shape{2, 2, 2});
  // (1-1)/2, (3-1)/2, (5-1)/2, (7-1)/2; (2-2)/4, (6-2)/4, (10-2)/4, (14-2)/4
  CHECK(floats(y) == std::vector<float>{0, 1, 2, 3, 0, 1, 2, 3});

  // One mean and std for every element; integer inputs become float32.
  const tg::Tensor bytes = tg::tensor({{0, 51}, {255, 102}}, tg::kInt64);
  const tg::Tensor z = T::Normalize({0.5}, {0.25})(bytes);
  CHECK(z.dtype() == tg::kFloat32);
  CHECK(floats(z) == std::vector<float>{-2.0f, 202.0f, 1018.0f, 406.0f});
  const tg::Tensor d = T::Normalize({1}, {2})(tg::tensor({3, 4}, tg::kFloat64));
  CHECK(d.dtype() == tg::kFloat64);
  CHECK(d.to_xarray<double>() == xt::xarray<double>{1.0, 1.5});

  CHECK_THROWS_WITH_AS(T::Normalize({1, 2, 3}, {1, 1, 1})(x), doctest::Contains("3 channels"), tg::ShapeError);
  CHECK_THROWS_AS(T::Normalize({1, 2}, {1}), tg::ValueError);
  CHECK_THROWS_AS(T::Normalize({}, {}), tg::ValueError);
  CHECK_THROWS_WITH_AS(T::Normalize({0}, {0}), doctest::Contains("positive finite std"), tg::ValueError);
  CHECK_THROWS_AS(T::Normalize({0}, {-1}), tg::ValueError);
}

TEST_CASE("RandomCrop is a window of the zero-padded input at a random, reproducible position") {
  // Two channels of 3x3: channel 0 holds 1..9, channel 1 holds 101..109.
  tg::Tensor x = tg::empty({2, 3, 3});
  for (std::size_t k = 0; k < 18; ++k) x.mutable_data<float>()[k] = static_cast<float>(k < 9 ? 1 + k : 92 + k);
  // The padded channel 0, written out: 5x5 with a border of zeros.
  const float padded[5][5] = {{0, 0, 0, 0, 0}, {0, 1, 2, 3, 0}, {0, 4, 5, 6, 0}, {0, 7, 8, 9, 0}, {0, 0, 0, 0, 0}};

  const T::RandomCrop crop(3, /*padding=*/1, /*seed=*/5);
  std::set<std::pair<int, int>> offsets;
  for (std::size_t index = 0; index < 200; ++index) {
    const tg::Tensor y = crop(x, {0, index});
    REQUIRE(y.shape() == tg::Shape{2, 3, 3});
    const std::vector<float> v = floats(y);
    // The window it is: the one whose every element matches, checked element by element.
    int found = 0;
    for (int top = 0; top <= 2; ++top)
      for (int left = 0; left <= 2; ++left) {
        bool match = true;
        for (int r = 0; r < 3; ++r)
          for (int c = 0; c < 3; ++c) {
            const float want0 = padded[top + r][left + c];
            const float want1 = want0 == 0 ? 0 : want0 + 100;  // the same window of channel 1
            match = match && v[std::size_t(r * 3 + c)] == want0 && v[std::size_t(9 + r * 3 + c)] == want1;
          }
        if (match) {
          ++found;
          offsets.insert({top, left});
        }
      }
    CHECK(found == 1);
    CHECK(floats(crop(x, {0, index})) == v);  // the same example, the same crop
  }
  CHECK(offsets.size() == 9);  // every position occurs

  // A new epoch, other crops; another seed, other crops.
  int differ_epoch = 0, differ_seed = 0;
  for (std::size_t index = 0; index < 50; ++index) {
    differ_epoch += floats(crop(x, {1, index})) != floats(crop(x, {0, index}));
    differ_seed += floats(T::RandomCrop(3, 1, 6)(x, {0, index})) != floats(crop(x, {0, index}));
  }
  CHECK(differ_epoch > 25);
  CHECK(differ_seed > 25);

  // No padding and the full size: the input itself. A smaller crop of a 2-d input.
  CHECK(floats(T::RandomCrop(3)(x, {0, 7})) == floats(x));
  const tg::Tensor small = T::RandomCrop(/*height=*/1, /*width=*/2, /*padding=*/0, /*seed=*/9)(tg::Tensor{{1, 2}, {3, 4}}, {0, 3});
  CHECK(small.shape() == tg::Shape{1, 2});
  // Ints keep their dtype.
  CHECK(T::RandomCrop(2, 1, 0)(tg::tensor({{1, 2}, {3, 4}}, tg::kInt64)).dtype() == tg::kInt64);

  CHECK_THROWS_WITH_AS(T::RandomCrop(6, 1)(x), doctest::Contains("does not fit"), tg::ShapeError);
  CHECK_THROWS_AS(T::RandomCrop(2)(tg::Tensor{1, 2, 3}), tg::ShapeError);
  CHECK_THROWS_AS(T::RandomCrop(0), tg::ValueError);
}

TEST_CASE("RandomHorizontalFlip mirrors the last axis with probability p") {
  const tg::Tensor x{{{1, 2, 3}, {4, 5, 6}}};  // (1, 2, 3)
  const std::vector<float> mirrored{3, 2, 1, 6, 5, 4};
  CHECK(floats(T::RandomHorizontalFlip(1.0)(x, {0, 0})) == mirrored);
  CHECK(T::RandomHorizontalFlip(1.0)(x).shape() == tg::Shape{1, 2, 3});
  CHECK(floats(T::RandomHorizontalFlip(0.0)(x, {0, 0})) == floats(x));

  const T::RandomHorizontalFlip flip(0.5, 11);
  int flipped = 0;
  for (std::size_t index = 0; index < 400; ++index) {
    const std::vector<float> v = floats(flip(x, {2, index}));
    const bool is_flipped = v == mirrored;
    CHECK((is_flipped || v == floats(x)));
    CHECK(floats(flip(x, {2, index})) == v);  // reproducible
    flipped += is_flipped;
  }
  CHECK(flipped > 150);
  CHECK(flipped < 250);
  CHECK_THROWS_AS(T::RandomHorizontalFlip(1.5), tg::ValueError);
}

TEST_CASE("Compose applies the transforms in order; MapDataset applies one to each input") {
  const tg::Tensor x{{{1, 3, 5}}};  // (1, 1, 3)
  const T::Compose normalize_then_flip(T::Normalize({1}, {2}), T::RandomHorizontalFlip(1.0));
  CHECK(normalize_then_flip.size() == 2);
  CHECK(floats(normalize_then_flip(x)) == std::vector<float>{2, 1, 0});
  const T::Compose flip_then_crop(T::RandomHorizontalFlip(1.0), T::Lambda([](const tg::Tensor& t, const T::Context& at) {
                                    return t * tg::scalar_tensor(double(at.index));
                                  }));
  CHECK(floats(flip_then_crop(x, {0, 2})) == std::vector<float>{10, 6, 2});

  const ds::TensorDataset base(numbered_inputs(6), int_targets(6));
  const ds::MapDataset mapped(base, T::Compose(T::RandomCrop(2, 1, 3), T::Normalize({100}, {2})));
  REQUIRE(mapped.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    const data::Example e = mapped.get_for_epoch(i, 4);
    CHECK(e.input.shape() == tg::Shape{2, 2});
    CHECK(e.target.item<std::int64_t>() == static_cast<std::int64_t>(1000 + i));  // targets untouched
    // The same as the transform applied by hand with the same context.
    const tg::Tensor by_hand = T::Normalize({100}, {2})(T::RandomCrop(2, 1, 3)(base.get(i).input, {4, i}), {4, i});
    CHECK(floats(e.input) == floats(by_hand));
    CHECK(floats(mapped.get(i).input) == floats(mapped.get_for_epoch(i, 0).input));
  }
  int differ = 0;
  for (std::size_t i = 0; i < 6; ++i) differ += floats(mapped.get_for_epoch(i, 0).input) != floats(mapped.get_for_epoch(i, 1).input);
  CHECK(differ > 0);
}

// ---- DataLoader over datasets ---------------------------------------------------

TEST_CASE("DataLoader range-for: batches in order, sizes, drop_last, stacked int64 and float targets") {
  const ds::TensorDataset d(numbered_inputs(10), int_targets(10));
  data::DataLoader loader(d, {3});
  CHECK(loader.num_batches() == 4);
  const std::vector<std::vector<std::size_t>> want{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}};
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::size_t k = 0;
    for (const data::Batch& b : loader) {
      REQUIRE(k < want.size());
      CHECK(b.indices == want[k]);
      CHECK(b.inputs.shape() == tg::Shape{want[k].size(), 2, 3});
      CHECK(b.targets.shape() == tg::Shape{want[k].size()});
      CHECK(b.targets.dtype() == tg::kInt64);
      std::vector<float> rows;
      std::vector<std::int64_t> labels;
      for (std::size_t i : want[k]) {
        for (std::size_t e = 0; e < 6; ++e) rows.push_back(static_cast<float>(100 * i + e));
        labels.push_back(static_cast<std::int64_t>(1000 + i));
      }
      CHECK(floats(b.inputs) == rows);
      CHECK(ints(b.targets) == labels);
      CHECK(b.labels == labels);
      ++k;
    }
    CHECK(k == 4);
  }
  CHECK(loader.epoch() == 2);

  data::DataLoader dropping(d, {3, false, 0, /*drop_last=*/true});
  CHECK(run_epoch(dropping).indices == std::vector<std::vector<std::size_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}});
  data::DataLoader none(d, {11, false, 0, true});
  CHECK(run_epoch(none).indices.empty());

  // Float targets (regression) stay float; a user's dataset batches by stacking.
  data::DataLoader counting(Counting(5), {2});
  const Seen s = run_epoch(counting);
  REQUIRE(s.targets.size() == 3);
  CHECK(s.targets[0].dtype() == tg::kFloat32);
  CHECK(floats(s.targets[1]) == std::vector<float>{4, 6});
  CHECK(s.inputs[1] == std::vector<float>{2, -2, 3, -3});
  CHECK(s.inputs[2] == std::vector<float>{4, -4});

  CHECK_THROWS_WITH_AS(data::DataLoader(Counting(0), {2}), doctest::Contains("the dataset is empty"), tg::ValueError);
  CHECK_THROWS_AS(data::DataLoader(std::shared_ptr<const ds::Dataset>(), {2}), tg::ValueError);
  CHECK_THROWS_AS(data::DataLoader(d, {0}), tg::ValueError);
}

TEST_CASE("DataLoader shuffling: same seed, same orders; a new order each epoch; the index API agrees") {
  const ds::TensorDataset d(numbered_inputs(40), int_targets(40));
  data::DataLoader a(d, {7, true, 3}), b(d, {7, true, 3}), c(d, {7, true, 4});
  std::vector<std::vector<std::size_t>> orders;
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<std::size_t> order;
    for (const data::Batch& batch : a) {
      order.insert(order.end(), batch.indices.begin(), batch.indices.end());
      for (std::size_t k = 0; k < batch.size(); ++k)
        CHECK(batch.labels[k] == static_cast<std::int64_t>(1000 + batch.indices[k]));
    }
    CHECK(order == a.order());
    std::vector<std::size_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < 40; ++i) CHECK(sorted[i] == i);  // every index once

    std::vector<std::size_t> same, other;
    for (const data::Batch& batch : b) same.insert(same.end(), batch.indices.begin(), batch.indices.end());
    c.start_epoch();  // the index API draws the same orders as range-for
    for (std::size_t i = 0; i < c.num_batches(); ++i) {
      const data::Batch batch = c.batch(i);
      other.insert(other.end(), batch.indices.begin(), batch.indices.end());
    }
    CHECK(order == same);
    CHECK(order != other);
    orders.push_back(order);
  }
  CHECK(orders[0] != orders[1]);
  CHECK(orders[1] != orders[2]);
}

TEST_CASE("DataLoader prefetch gives the same batches, random transforms included") {
  const ds::MapDataset augmented(ds::TensorDataset(numbered_inputs(23), int_targets(23)),
                                 T::Compose(T::RandomCrop(2, 1, 7), T::RandomHorizontalFlip(0.5, 8)));
  for (const bool drop_last : {false, true}) {
    data::DataLoader plain(augmented, {5, true, 9, drop_last, /*prefetch=*/false});
    data::DataLoader prefetching(augmented, {5, true, 9, drop_last, /*prefetch=*/true});
    std::vector<std::vector<float>> first_epoch;
    for (int epoch = 0; epoch < 3; ++epoch) {
      const Seen p = run_epoch(plain), q = run_epoch(prefetching);
      CHECK(p.indices.size() == (drop_last ? 4u : 5u));
      CHECK(p.indices == q.indices);
      CHECK(p.inputs == q.inputs);
      REQUIRE(p.targets.size() == q.targets.size());
      for (std::size_t k = 0; k < p.targets.size(); ++k) CHECK(ints(p.targets[k]) == ints(q.targets[k]));
      // Each example as the dataset gives it for this epoch.
      for (std::size_t k = 0; k < p.indices.size(); ++k)
        for (std::size_t j = 0; j < p.indices[k].size(); ++j) {
          const std::vector<float> example = floats(augmented.get_for_epoch(p.indices[k][j], std::uint64_t(epoch)).input);
          CHECK(std::equal(example.begin(), example.end(), p.inputs[k].begin() + std::ptrdiff_t(j * 4)));
        }
    }
  }
}

TEST_CASE("DataLoader prefetch builds the next batch on another thread and passes its exceptions on") {
  SUBCASE("another thread") {
    auto d = std::make_shared<Counting>(8);
    data::DataLoader loader(d, {2, false, 0, false, true});
    std::size_t batches = 0;
    for (const data::Batch& b : loader) batches += b.size() > 0;
    CHECK(batches == 4);
    CHECK(d->stats->other_thread == 6);  // batch 0 is built at begin(), on this thread; the other six examples not
  }
  SUBCASE("an exception from the worker reaches the caller at the batch that threw") {
    for (const bool prefetch : {false, true}) {
      data::DataLoader loader(Counting(9, /*fail_at=*/5), {2, false, 0, false, prefetch});
      std::vector<std::size_t> delivered;
      auto run = [&] {
        for (const data::Batch& b : loader) delivered.push_back(b.indices.front());
      };
      CHECK_THROWS_WITH_AS(run(), "example 5 is broken", std::runtime_error);
      CHECK(delivered == std::vector<std::size_t>{0, 2});
      delivered.clear();
      CHECK_THROWS_AS(run(), std::runtime_error);  // the next epoch again, nothing left over
      CHECK(delivered == std::vector<std::size_t>{0, 2});
    }
  }
  SUBCASE("leaving the loop early waits for the worker") {
    auto d = std::make_shared<Counting>(40, SIZE_MAX, std::chrono::milliseconds(5));
    data::DataLoader loader(d, {4, false, 0, false, true});
    for (const data::Batch& b : loader) {
      CHECK(b.size() == 4);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the worker is inside batch 1
      break;
    }
    CHECK(d->stats->in_flight == 0);  // joined: nothing runs after the loop
    // And when the loader goes first, with an iterator still held.
    auto owned = std::make_unique<data::DataLoader>(d, data::LoaderOptions{4, false, 0, false, true});
    data::DataLoader::Iterator it = owned->begin();
    owned.reset();
    CHECK(d->stats->in_flight == 0);
    CHECK_THROWS_AS(++it, tg::ValueError);
  }
  SUBCASE("an iterator of an earlier epoch stops working") {
    data::DataLoader loader(Counting(6), {2, false, 0, false, true});
    data::DataLoader::Iterator old = loader.begin();
    data::DataLoader::Iterator current = loader.begin();
    CHECK_THROWS_WITH_AS(++old, doctest::Contains("started another epoch"), tg::ValueError);
    ++current;
    CHECK(current->indices == std::vector<std::size_t>{2, 3});
  }
}

TEST_CASE("DataLoader prefetch does not pile buffers up in this thread's cache") {
  // Inputs of 32 KiB per batch: below the pool's 64 KiB, so each thread
  // keeps buffers that size in its own cache.
  const ds::TensorDataset d(tg::zeros({64, 2, 16, 16}), int_targets(64));
  data::DataLoader loader(d, {16, true, 1, false, true});
  tg::clear_buffer_cache();
  for (int epoch = 0; epoch < 10; ++epoch)
    for (const data::Batch& b : loader) CHECK(b.inputs.numel() == 16 * 2 * 16 * 16);
  CHECK(tg::buffer_cache_bytes() <= 4 * 16 * 2 * 16 * 16 * sizeof(float));
}
