// tapegrad beside libtorch, training the same networks (bench/models.hpp:
// LeNet-5 and the TF-tutorial CNN) with the same initial weights (tapegrad's,
// copied into libtorch), the same batch of data, the same thread count and
// SGD with momentum 0.9, lr 0.01.
//
//   vs_libtorch [--seconds 1] [--rounds 5] [--models lenet,tfcnn] [--batches 1,64,256] [--threads 1,2]
//
// First checks, for each network at batch 64, that the two frameworks' losses
// and gradients agree on the first step within 1e-4 relative (for each
// gradient: max |difference| / max |libtorch's|), and stops if not. Then, for
// each configuration, runs the two in alternation in this process, each for
// `seconds` per round, and prints the median images per second of the rounds:
//
//   model=tfcnn batch=64 threads=1 tapegrad_ips=812.0 libtorch_ips=751.3 ratio=1.08 tapegrad_rss_mb=... libtorch_rss_mb=...
//
// rss_mb is the peak resident memory one framework adds to a fresh process of
// this program while it trains that configuration (VmHWM after five steps
// minus VmRSS before the model is built), measured in a child process per
// framework so neither sees the other's memory.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "models.hpp"

namespace {

// ---- the same network in libtorch ---------------------------------------------

struct TorchModel {
  std::string name;
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::SGD> optimizer;
};

torch::Tensor to_torch(const tg::Tensor& t) {
  const tg::Tensor c = t.detach().contiguous();
  std::vector<std::int64_t> shape(c.shape().begin(), c.shape().end());
  if (c.dtype() == tg::kInt64)
    return torch::from_blob(const_cast<std::int64_t*>(c.data<std::int64_t>()), shape, torch::kInt64).clone();
  return torch::from_blob(const_cast<float*>(c.data<float>()), shape, torch::kFloat32).clone();
}

TorchModel torch_copy(const bench::Model& m, double lr = 0.01, double momentum = 0.9) {
  TorchModel t{m.name, {}, nullptr};
  for (const tg::Tensor& p : m.params) t.params.push_back(to_torch(p).requires_grad_(true));
  t.optimizer = std::make_unique<torch::optim::SGD>(t.params, torch::optim::SGDOptions(lr).momentum(momentum));
  return t;
}

torch::Tensor torch_forward(const TorchModel& m, const torch::Tensor& x) {
  const auto& p = m.params;
  const bool lenet = m.name == "lenet";
  torch::Tensor h = torch::max_pool2d(torch::relu(torch::conv2d(x, p[0], p[1], 1, 2)), 2);
  h = torch::max_pool2d(torch::relu(torch::conv2d(h, p[2], p[3], 1, lenet ? 0 : 2)), 2);
  h = torch::relu(torch::linear(h.flatten(1), p[4], p[5]));
  if (lenet) h = torch::relu(torch::linear(h, p[6], p[7]));
  return torch::linear(h, p[lenet ? 8 : 6], p[lenet ? 9 : 7]);
}

torch::Tensor torch_loss(const TorchModel& m, const torch::Tensor& x, const torch::Tensor& labels) {
  return torch::nn::functional::cross_entropy(torch_forward(m, x), labels);
}

double torch_step(TorchModel& m, const torch::Tensor& x, const torch::Tensor& labels) {
  m.optimizer->zero_grad();
  torch::Tensor loss = torch_loss(m, x, labels);
  loss.backward();
  m.optimizer->step();
  return loss.item<double>();
}

// ---- data, threads, memory ---------------------------------------------------------

struct Batch {
  tg::Tensor x, labels;
  torch::Tensor tx, tlabels;
};

Batch make_batch(std::size_t n) {
  tg::Generator gen(7);
  Batch b;
  b.x = tg::randn({n, 1, 28, 28}, gen);
  b.labels = tg::randint(0, 10, {n}, gen);
  b.tx = to_torch(b.x);
  b.tlabels = to_torch(b.labels);
  return b;
}

void set_threads(int n) {
  tg::set_num_threads(n);
  torch::set_num_threads(n);
}

// A field of /proc/self/status in kB.
double status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t len = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, len, field) == 0 && line.size() > len && line[len] == ':') return std::atof(line.c_str() + len + 1);
  return 0;
}

// The child's side of the memory measurement: prints the MB one framework adds.
int measure_rss(const std::string& model, const std::string& framework, std::size_t batch, int threads) {
  set_threads(threads);
  const double before = status_kb("VmRSS");
  const Batch b = make_batch(batch);
  bench::Model m = bench::make_model(model, 0);
  if (framework == "tapegrad") {
    for (int i = 0; i < 5; ++i) bench::train_step(m, b.x, b.labels);
  } else {
    TorchModel t = torch_copy(m);
    m = bench::Model{};  // tapegrad's copy of the weights is not libtorch's memory
    for (int i = 0; i < 5; ++i) torch_step(t, b.tx, b.tlabels);
  }
  std::printf("%.1f\n", (status_kb("VmHWM") - before) / 1024.0);
  return 0;
}

double child_rss(const std::string& model, const std::string& framework, std::size_t batch,
                 int threads) {
  static const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string command = self + " --rss " + model + " " + framework + " " + std::to_string(batch) +
                              " " + std::to_string(threads);
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return -1;
  double mb = -1;
  if (std::fscanf(pipe, "%lf", &mb) != 1) mb = -1;
  pclose(pipe);
  return mb;
}

// ---- the first-step check ---------------------------------------------------------

double relative_difference(const tg::Tensor& ours, const torch::Tensor& theirs) {
  const tg::Tensor a = ours.detach().contiguous();
  const torch::Tensor b = theirs.detach().contiguous();
  const float* pa = a.data<float>();
  const float* pb = b.data_ptr<float>();
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(double(pa[i]) - double(pb[i])));
    scale = std::max(scale, std::abs(double(pb[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

bool check_first_step(const std::string& model) {
  set_threads(1);
  const Batch b = make_batch(64);
  bench::Model m = bench::make_model(model, 0);
  TorchModel t = torch_copy(m);
  tg::Tensor loss = tg::cross_entropy(bench::forward(m, b.x), b.labels);
  loss.backward();
  torch::Tensor tloss = torch_loss(t, b.tx, b.tlabels);
  tloss.backward();
  const double l0 = loss.item(), l1 = tloss.item<double>();
  double worst = std::abs(l0 - l1) / std::abs(l1);
  for (std::size_t i = 0; i < m.params.size(); ++i)
    worst = std::max(worst, relative_difference(m.params[i].grad(), t.params[i].grad()));
  std::printf("check model=%s batch=64 tapegrad_loss=%.6f libtorch_loss=%.6f max_relative_difference=%.2e %s\n",
              model.c_str(), l0, l1, worst, worst <= 1e-4 ? "ok" : "FAILED");
  return worst <= 1e-4;
}

// ---- timing -------------------------------------------------------------------------

// Images per second of steps run for at least `seconds` (and 2 steps).
double time_steps(const std::function<void()>& step, std::size_t batch, double seconds) {
  const auto start = std::chrono::steady_clock::now();
  int steps = 0;
  double elapsed = 0;
  do {
    step();
    ++steps;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds || steps < 2);
  return double(batch) * steps / elapsed;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

template <class T>
std::vector<T> parse_list(const std::string& s) {
  std::vector<T> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::stringstream one(item);
    T v{};
    one >> v;
    out.push_back(v);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "--rss")
    return measure_rss(argv[2], argv[3], std::size_t(std::atol(argv[4])), std::atoi(argv[5]));
  double seconds = 1.0;
  int rounds = 5;
  std::vector<std::string> models = {"lenet", "tfcnn"};
  std::vector<std::size_t> batches = {1, 64, 256};
  std::vector<int> threads = {1, 2};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--seconds") seconds = std::atof(value.c_str());
    else if (key == "--rounds") rounds = std::atoi(value.c_str());
    else if (key == "--models") models = parse_list<std::string>(value);
    else if (key == "--batches") batches = parse_list<std::size_t>(value);
    else if (key == "--threads") threads = parse_list<int>(value);
    else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0 || seconds <= 0 || rounds <= 0) {
    std::fprintf(stderr, "usage: vs_libtorch [--seconds S] [--rounds R] [--models lenet,tfcnn] [--batches 1,64,256] "
                         "[--threads 1,2]\n");
    return 2;
  }
  std::printf("tapegrad: %s\nlibtorch: %s\n", tg::config().str().c_str(), torch::show_config().c_str());
  for (const std::string& model : models)
    if (!check_first_step(model)) return 1;

  for (const std::string& model : models)
    for (std::size_t batch : batches)
      for (int t : threads) {
        set_threads(t);
        const Batch b = make_batch(batch);
        bench::Model m = bench::make_model(model, 0);
        TorchModel tm = torch_copy(m);
        const auto ours = [&] { bench::train_step(m, b.x, b.labels); };
        const auto theirs = [&] { torch_step(tm, b.tx, b.tlabels); };
        for (int i = 0; i < 3; ++i) ours(), theirs();
        std::vector<double> ips_ours, ips_theirs;
        for (int r = 0; r < rounds; ++r) {
          // Alternate which goes first, so neither always follows the other.
          if (r % 2 == 0) {
            ips_ours.push_back(time_steps(ours, batch, seconds));
            ips_theirs.push_back(time_steps(theirs, batch, seconds));
          } else {
            ips_theirs.push_back(time_steps(theirs, batch, seconds));
            ips_ours.push_back(time_steps(ours, batch, seconds));
          }
        }
        const double a = median(ips_ours), c = median(ips_theirs);
        const double rss_ours = child_rss(model, "tapegrad", batch, t);
        const double rss_theirs = child_rss(model, "libtorch", batch, t);
        std::printf("model=%s batch=%zu threads=%d tapegrad_ips=%.1f libtorch_ips=%.1f ratio=%.2f "
                    "tapegrad_rss_mb=%.1f libtorch_rss_mb=%.1f\n",
                    model.c_str(), batch, t, a, c, a / c, rss_ours, rss_theirs);
        std::fflush(stdout);
      }
}
