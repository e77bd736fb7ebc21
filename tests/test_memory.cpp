// Memory stays bounded: a training loop leaves nothing on the tape, its
// resident memory is flat after warm-up, results nobody keeps free their
// graphs at once, and a loop that keeps graphs alive is warned about.
#include <doctest/doctest.h>

#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <unistd.h>

#include <tapegrad/tapegrad.hpp>

// Under AddressSanitizer freed blocks wait in a quarantine (up to 256 MiB)
// that the resident size counts, so sanitizer builds measure the live heap.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TAPEGRAD_TEST_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TAPEGRAD_TEST_SANITIZER 1
#endif
#ifdef TAPEGRAD_TEST_SANITIZER
#include <sanitizer/allocator_interface.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TAPEGRAD_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAPEGRAD_TEST_ASAN 1
#endif
#endif
#ifdef TAPEGRAD_TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

using tg::Tensor;

namespace {

// The resident set size; the live heap in a sanitizer build.
std::size_t resident_bytes() {
#ifdef TAPEGRAD_TEST_SANITIZER
  return __sanitizer_get_current_allocated_bytes();
#else
  std::ifstream statm("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * std::size_t(sysconf(_SC_PAGESIZE));
#endif
}

// A small conv net trained by plain SGD on a fixed random batch: conv 1->4
// 3x3, relu, 2x2 max pool, linear to 3 classes.
struct SmallNet {
  Tensor w1, b1, w2, b2;
  explicit SmallNet(std::uint64_t seed) {
    tg::Generator gen(seed);
    w1 = tg::randn({4, 1, 3, 3}, gen, 0.0, 0.3).requires_grad_();
    b1 = tg::zeros({4}, tg::requires_grad());
    w2 = tg::randn({3, 4 * 4 * 4}, gen, 0.0, 0.1).requires_grad_();
    b2 = tg::zeros({3}, tg::requires_grad());
  }
  Tensor loss(const Tensor& x, const std::vector<std::int64_t>& labels) const {
    const Tensor h = tg::max_pool2d(tg::relu(tg::conv2d(x, w1, b1, 1, 1)), 2);
    return tg::cross_entropy(tg::linear(tg::flatten(h), w2, b2), labels);
  }
  double step(const Tensor& x, const std::vector<std::int64_t>& labels, double lr) {
    Tensor l = loss(x, labels);
    l.backward();
    tg::NoGradGuard no_grad;
    for (Tensor* p : {&w1, &b1, &w2, &b2}) {
      p->add_(p->grad(), -lr);
      p->zero_grad();
    }
    return l.item();
  }
};

}  // namespace

TEST_CASE("2,000 training steps: the tape is empty after each, resident memory flat after warm-up") {
  tg::tape().clear();
  tg::Generator gen(1);
  const Tensor x = tg::randn({8, 1, 8, 8}, gen);
  const std::vector<std::int64_t> labels{0, 1, 2, 0, 1, 2, 0, 1};
  SmallNet net(2);
  const double first = net.step(x, labels, 0.1);
  std::size_t warm = 0;
  bool tape_empty = true;
  double last = first;
  for (int i = 1; i < 2000; ++i) {
    last = net.step(x, labels, 0.1);
    tape_empty = tape_empty && tg::tape().empty();
    if (i == 200) warm = resident_bytes();
  }
  CHECK(tape_empty);
  CHECK(last < first);  // it learned
  const std::size_t end = resident_bytes();
  INFO("resident after warm-up " << warm << " bytes, at the end " << end);
  CHECK(end <= warm + (std::size_t(4) << 20));  // flat: within 4 MiB
}

TEST_CASE("recording without backward stays bounded by what is alive") {
  tg::tape().clear();
  tg::Generator gen(3);
  const Tensor x = tg::randn({8, 1, 8, 8}, gen);
  SmallNet net(4);
  std::size_t most = 0;
  for (int i = 0; i < 300; ++i) {
    const double value = net.loss(x, {0, 1, 2, 0, 1, 2, 0, 1}).item();  // the loss dies here
    CHECK(std::isfinite(value));
    most = std::max(most, tg::tape().size());
  }
  CHECK(most == 0);  // each graph went with its loss, not at a later prune
  CHECK(tg::tape().saved_bytes() == 0);
  {
    const Tensor kept = net.loss(x, {0, 1, 2, 0, 1, 2, 0, 1});
    CHECK(tg::tape().size() > 0);
  }
  CHECK(tg::tape().empty());
}

TEST_CASE("a loop that keeps graphs alive gets one warning") {
  tg::tape().clear();
  tg::tape().set_warning_bytes(1 << 20);
  std::ostringstream captured;
  std::streambuf* original = std::cerr.rdbuf(captured.rdbuf());
  {
    tg::Generator gen(5);
    const Tensor x = tg::randn({8, 1, 8, 8}, gen);
    SmallNet net(6);
    std::vector<Tensor> losses;  // the mistake: every graph stays alive
    for (int i = 0; i < 50; ++i) losses.push_back(net.loss(x, {0, 1, 2, 0, 1, 2, 0, 1}));
  }
  std::cerr.rdbuf(original);
  tg::tape().set_warning_bytes(std::size_t(4) << 30);
  const std::string text = captured.str();
  CHECK(text.find("tapegrad: warning: the tape holds") != std::string::npos);
  CHECK(text.find("warning", text.find("warning") + 1) == std::string::npos);  // once
  CHECK(tg::tape().empty());
}

TEST_CASE("two threads, each training its own model, do not interfere") {
  // Each thread has its own tape; run under ThreadSanitizer by `make test-tsan`.
  auto train = [](std::uint64_t seed, double* result) {
    tg::Generator gen(seed);
    const Tensor x = tg::randn({8, 1, 8, 8}, gen);
    SmallNet net(seed + 1);
    double first = net.step(x, {0, 1, 2, 0, 1, 2, 0, 1}, 0.1), last = first;
    for (int i = 0; i < 100; ++i) last = net.step(x, {0, 1, 2, 0, 1, 2, 0, 1}, 0.1);
    *result = last / first;
  };
  double a = 0, b = 0, alone = 0;
  std::thread t1(train, 10, &a), t2(train, 20, &b);
  t1.join();
  t2.join();
  train(10, &alone);
  CHECK(a < 1.0);
  CHECK(b < 1.0);
  CHECK(a == alone);  // the same run alone gives the same numbers
}

namespace {

constexpr std::size_t kMiB = std::size_t(1) << 20;
Tensor float_buffer(std::size_t bytes) { return tg::empty({bytes / sizeof(float)}); }
const float* at(const float* base, std::size_t bytes) { return base + bytes / sizeof(float); }

// Empties the caches, and restores the limit and empties them again on the
// way out, however the test case ends.
struct FreshCaches {
  std::size_t limit = tg::buffer_cache_limit();
  FreshCaches() { tg::clear_buffer_cache(); }
  ~FreshCaches() {
    tg::set_buffer_cache_limit(limit);
    tg::clear_buffer_cache();
  }
};

}  // namespace

TEST_CASE("a full cache of small buffers keeps taking the sizes in use, dropping those used longest ago") {
  const FreshCaches fresh;
  tg::set_buffer_cache_limit(256 << 10);
  // 64 sizes from 16 KiB up (below the pool's 64 KiB), each used once: more
  // than the cache holds.
  for (std::size_t k = 0; k < 64; ++k) (void)tg::empty({(1 << 12) + k * 64});
  CHECK(tg::buffer_cache_bytes() <= std::size_t(256 << 10));
  // A size in use now is still kept when freed, and the next tensor of a
  // size a few bytes apart (the same 64-byte class) takes it from the cache.
  (void)tg::empty({(1 << 13) + 100});
  const std::size_t with_it = tg::buffer_cache_bytes();
  const tg::Tensor reused = tg::empty({(1 << 13) + 110});
  CHECK(tg::buffer_cache_bytes() < with_it);
}

TEST_CASE("large buffers: the smallest free block that fits, split, merged again, shared by threads") {
  const FreshCaches fresh;
  const tg::MemoryStats start = tg::memory_stats();
  auto added_reserved = [&] { return tg::memory_stats().reserved - start.reserved; };
  auto added_allocated = [&] { return tg::memory_stats().allocated - start.allocated; };

  const float* base = float_buffer(8 * kMiB).data<float>();  // one segment, free again at once
  CHECK(added_reserved() == 8 * kMiB);
  CHECK(tg::buffer_cache_bytes() == 8 * kMiB);
  const float* other = nullptr;
  {
    Tensor a = float_buffer(3 * kMiB);  // split off the free segment's front
    const Tensor b = float_buffer(7 * kMiB / 2);
    CHECK(a.data<float>() == base);
    CHECK(b.data<float>() == at(base, 3 * kMiB));
    CHECK(added_allocated() == 13 * kMiB / 2);
    {
      // 1.5 MiB are left; less than the pool's 64 KiB would remain, so c
      // takes them whole.
      const Tensor c = float_buffer(3 * kMiB / 2 - 32 * 1024);
      CHECK(c.data<float>() == at(base, 13 * kMiB / 2));
      CHECK(added_allocated() == 8 * kMiB);
      CHECK(tg::buffer_cache_bytes() == 0);
    }
    a = Tensor();  // free: 3 MiB at the front, 1.5 MiB at the back, b between
    CHECK(tg::buffer_cache_bytes() == 9 * kMiB / 2);
    const Tensor d = float_buffer(5 * kMiB / 4);  // best fit: the smaller block
    CHECK(d.data<float>() == at(base, 13 * kMiB / 2));
    const Tensor e = float_buffer(4 * kMiB);  // no free block is large enough
    other = e.data<float>();
    CHECK(added_reserved() == 12 * kMiB);
  }
  // Everything merged back into whole segments.
  CHECK(tg::buffer_cache_bytes() == 12 * kMiB);
  CHECK(float_buffer(8 * kMiB).data<float>() == base);
  CHECK(float_buffer(4 * kMiB).data<float>() == other);
  CHECK(added_reserved() == 12 * kMiB);

  // A buffer another thread frees is the pool's, not that thread's: this
  // thread takes it after the other has ended.
  const float* theirs = nullptr;
  std::thread([&] { theirs = float_buffer(16 * kMiB).data<float>(); }).join();
  CHECK(added_reserved() == 28 * kMiB);
  CHECK(float_buffer(16 * kMiB).data<float>() == theirs);
  CHECK(added_reserved() == 28 * kMiB);

  // The limit on free bytes gives whole segments back, the one used longest
  // ago (the 8 MiB) first.
  tg::set_buffer_cache_limit(20 * kMiB);
  CHECK(added_reserved() == 20 * kMiB);
  CHECK(float_buffer(4 * kMiB).data<float>() == other);
  {
    // A segment partly in use keeps its free rest: memory goes back whole.
    const Tensor part = float_buffer(kMiB);
    CHECK(part.data<float>() == other);
    tg::set_buffer_cache_limit(0);
    CHECK(added_reserved() == 4 * kMiB);
    CHECK(tg::buffer_cache_bytes() == 3 * kMiB);
    // With reuse off, that free rest is not handed out: new memory instead.
    const Tensor fresh_one = float_buffer(kMiB);
    CHECK(fresh_one.data<float>() != at(other, kMiB));
    CHECK(added_reserved() == 5 * kMiB);
  }
  CHECK(added_reserved() == 0);
  CHECK(tg::buffer_cache_bytes() == 0);
}

TEST_CASE("large buffers: random sizes made and freed on several threads all merge back into whole segments") {
  // Run under ThreadSanitizer by `make test-tsan`. Each thread makes tensors
  // of 1 to 16 MiB and frees those the others made.
  const FreshCaches fresh;
  const tg::MemoryStats start = tg::memory_stats();
  std::mutex handed_mutex;
  std::vector<Tensor> handed;  // made by one thread, freed by another
  auto work = [&](std::uint64_t seed) {
    std::mt19937_64 random(seed);
    for (int i = 0; i < 300; ++i) {
      Tensor made = float_buffer(kMiB + random() % (15 * kMiB));
      Tensor other;
      {
        std::lock_guard<std::mutex> lock(handed_mutex);
        handed.push_back(std::move(made));
        const std::size_t k = random() % handed.size();
        if (handed.size() > 8) {
          other = std::move(handed[k]);
          handed.erase(handed.begin() + std::ptrdiff_t(k));
        }
      }
    }  // `other`, maybe another thread's tensor, is freed here
  };
  std::vector<std::thread> threads;
  for (std::uint64_t t = 0; t < 4; ++t) threads.emplace_back(work, t + 1);
  for (std::thread& t : threads) t.join();
  std::size_t asked = 0;  // blocks may hold more: a rest under 64 KiB is not split off
  for (const Tensor& t : handed) asked += t.numel() * sizeof(float);
  CHECK(tg::memory_stats().allocated >= start.allocated + asked);
  handed.clear();
  CHECK(tg::memory_stats().allocated == start.allocated);
  // Had any free block failed to merge with its neighbours, its segment
  // would not be wholly free now and would stay.
  tg::clear_buffer_cache();
  CHECK(tg::memory_stats().reserved == start.reserved);
  CHECK(tg::buffer_cache_bytes() == 0);
}

#ifdef TAPEGRAD_TEST_ASAN
TEST_CASE("under AddressSanitizer, reused memory still catches writes past a tensor's end or into a dead one") {
  // A small buffer (100 bytes in a 128-byte class) and a pooled one (3 MiB
  // and 20 bytes in a block of whole 64 KiB steps), each made twice: fresh
  // from the system and again from the cache.
  for (const std::size_t n : {std::size_t(25), (std::size_t(3) << 18) + 5})
    for (int round = 0; round < 2; ++round) {
      const float* p = nullptr;
      {
        const Tensor t = tg::empty({n});
        p = t.data<float>();
        CHECK(__asan_region_is_poisoned(const_cast<float*>(p), n * sizeof(float)) == nullptr);
        CHECK(__asan_address_is_poisoned(p + n) == 1);  // the first byte past the end
      }
      CHECK(__asan_address_is_poisoned(p) == 1);  // kept for reuse, not to be touched
    }
  // A block split off a free segment, the rest left free, and the two merged
  // again when the block is freed.
  const FreshCaches fresh;
  float* base = const_cast<float*>(float_buffer(8 * kMiB).data<float>());
  const std::size_t n = (std::size_t(3) << 18) + 5;  // 3 MiB and 20 bytes
  {
    const Tensor t = tg::empty({n});
    CHECK(t.data<float>() == base);
    CHECK(__asan_region_is_poisoned(base, n * sizeof(float)) == nullptr);
    CHECK(__asan_address_is_poisoned(base + n) == 1);
    CHECK(__asan_address_is_poisoned(at(base, 4 * kMiB)) == 1);  // in the free rest
  }
  CHECK(__asan_region_is_poisoned(base, 8 * kMiB) == base);
  CHECK(float_buffer(8 * kMiB).data<float>() == base);  // merged whole
}
#endif

TEST_CASE("memory_stats: bytes in tensors and in the buffer cache, and their largest values") {
  const FreshCaches fresh;
  tg::reset_peak_memory();
  const tg::MemoryStats before = tg::memory_stats();
  CHECK(before.max_allocated == before.allocated);
  CHECK(before.max_reserved == before.reserved);
  CHECK(before.reserved >= before.allocated);

  const std::size_t buffer = std::size_t(4) << 20;  // 4 MiB of float32, from the pool
  {
    const tg::Tensor a = tg::empty({buffer / 4});
    const tg::MemoryStats held = tg::memory_stats();
    CHECK(held.allocated == before.allocated + buffer);
    CHECK(held.reserved == before.reserved + buffer);  // new memory: the pool had nothing free
  }
  const tg::MemoryStats freed = tg::memory_stats();
  CHECK(freed.allocated == before.allocated);
  CHECK(freed.reserved == before.reserved + buffer);  // the cache keeps it
  CHECK(freed.max_allocated == before.allocated + buffer);
  CHECK(freed.max_reserved == before.reserved + buffer);
  {
    const tg::Tensor b = tg::empty({buffer / 4});
    CHECK(tg::memory_stats().reserved == freed.reserved);  // taken from the cache
    const tg::Tensor c = tg::empty({buffer / 4});
    CHECK(tg::memory_stats().max_allocated == before.allocated + 2 * buffer);
    CHECK(tg::memory_stats().max_reserved == before.reserved + 2 * buffer);
  }
  tg::clear_buffer_cache();
  CHECK(tg::memory_stats().reserved == before.reserved);

  tg::set_buffer_cache_limit(0);  // no reuse: a freed buffer goes back to the system
  { const tg::Tensor d = tg::empty({buffer / 4}); }
  CHECK(tg::memory_stats().reserved == before.reserved);
  tg::set_buffer_cache_limit(fresh.limit);

  // Another thread's tensors count while they live, and its cache of small
  // buffers goes back to the system when the thread ends.
  const std::size_t small = 4096;
  std::thread([&] {
    const tg::Tensor e = tg::empty({small / 4});
    CHECK(tg::memory_stats().allocated == before.allocated + small);
    CHECK(tg::memory_stats().reserved == before.reserved + small);
  }).join();
  CHECK(tg::memory_stats().allocated == before.allocated);
  CHECK(tg::memory_stats().reserved == before.reserved);

  tg::reset_peak_memory();
  const tg::MemoryStats reset = tg::memory_stats();
  CHECK(reset.max_allocated == reset.allocated);
  CHECK(reset.max_reserved == reset.reserved);
}
