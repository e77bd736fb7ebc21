// tapegrad-train: trains the Fashion-MNIST CNN (fashion_cnn.hpp) and leaves
// in the output directory the model (model.safetensors), the first layer's
// filters before and after training (filters.png), the loss and accuracy
// curves (curves.svg) and the numbers behind them (metrics.json).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <system_error>

#include <CLI/CLI.hpp>
#include <cblas.h>
#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "fashion_cnn.hpp"
#include "report.hpp"

namespace {

struct Options {
  int epochs = 3;
  std::size_t batch_size = 64;
  double lr = 3e-3;
  std::string optimizer = "adam";
  std::uint64_t seed = 0;
  int threads = 1;
  std::string data_dir = tg::data::default_fashion_mnist_dir();
  std::string out_dir = "runs/train";
  std::size_t limit = 0;  // training images; 0 = all
};

// The files a run leaves in its output directory.
const char* const output_files[] = {"model.safetensors", "filters.png", "curves.svg", "metrics.json"};

// The output directory, made and probed before any work starts, so that an
// unusable --out is reported at once rather than after the whole run. Unless
// keep() is called (the run succeeded), the directories it made are removed
// again: a failed run leaves nothing behind. One that existed is left alone.
class OutputDirectory {
 public:
  explicit OutputDirectory(const std::string& dir) : dir_(dir), created_(topmost_missing(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) throw std::runtime_error("--out " + dir + ": cannot create the directory: " + ec.message());
    try {
      check_usable();
    } catch (...) {
      remove_created();
      throw;
    }
  }
  ~OutputDirectory() {
    if (!kept_) remove_created();
  }
  OutputDirectory(const OutputDirectory&) = delete;
  OutputDirectory& operator=(const OutputDirectory&) = delete;

  void keep() { kept_ = true; }
  std::string operator/(const std::string& name) const { return (dir_ / name).string(); }

 private:
  // The outermost directory of `dir` that does not exist yet: what
  // create_directories will make, and all that a failed run removes.
  static std::filesystem::path topmost_missing(const std::string& dir) {
    std::filesystem::path missing;
    std::error_code ec;
    for (auto p = std::filesystem::absolute(dir); !p.empty() && !std::filesystem::exists(p, ec); p = p.parent_path()) {
      missing = p;
      if (p == p.parent_path()) break;
    }
    return missing;
  }

  // A file can be made there, and no output file's name is taken by a
  // directory (which would fail the very last write of the run).
  void check_usable() const {
    const std::string probe = *this / ".tapegrad-write-probe";
    try {
      report::write_file(probe, "probe");
    } catch (const std::exception& e) {
      throw std::runtime_error("--out " + dir_.string() + " is not writable: " + e.what());
    }
    std::error_code ec;
    std::filesystem::remove(probe, ec);
    for (const char* name : output_files)
      if (std::filesystem::is_directory(dir_ / name, ec))
        throw std::runtime_error("--out " + dir_.string() + ": cannot write " + (*this / name) + ": it is a directory");
  }

  void remove_created() const {
    std::error_code ec;
    if (!created_.empty()) std::filesystem::remove_all(created_, ec);
  }

  std::filesystem::path dir_, created_;
  bool kept_ = false;
};

std::unique_ptr<tg::optim::Optimizer> make_optimizer(const Options& o, const std::vector<tg::Tensor>& params) {
  if (o.optimizer == "adam") return std::make_unique<tg::optim::Adam>(params, o.lr);
  if (o.optimizer == "adamw") return std::make_unique<tg::optim::AdamW>(params, o.lr);
  if (o.optimizer == "sgd") return std::make_unique<tg::optim::SGD>(params, o.lr, /*momentum=*/0.9);
  if (o.optimizer == "rmsprop") return std::make_unique<tg::optim::RMSprop>(params, o.lr);
  throw tg::ValueError("tapegrad-train: unknown optimizer \"" + o.optimizer + "\"");
}

// A progress line: redrawn in place on a terminal, printed every few
// seconds otherwise (logs, CI).
class Progress {
 public:
  Progress(int epoch, int epochs, std::size_t batches)
      : epoch_(epoch), epochs_(epochs), batches_(batches), tty_(isatty(STDOUT_FILENO)),
        start_(std::chrono::steady_clock::now()), last_print_(start_) {}

  void update(std::size_t batch, double loss, double accuracy, std::size_t images) {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const bool last = batch + 1 == batches_;
    if (!tty_ && !last && std::chrono::duration<double>(now - last_print_).count() < 10.0) return;
    last_print_ = now;
    const int width = 30, done = int(double(width) * double(batch + 1) / double(batches_));
    std::printf("%sepoch %d/%d [%s%s] %zu/%zu  loss %.4f  acc %.3f  %.0f img/s%s", tty_ ? "\r" : "", epoch_, epochs_,
                std::string(std::size_t(done), '=').c_str(), std::string(std::size_t(width - done), ' ').c_str(),
                batch + 1, batches_, loss, accuracy, double(images) / seconds, tty_ && !last ? "" : "\n");
    std::fflush(stdout);
  }

 private:
  int epoch_, epochs_;
  std::size_t batches_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

// Mean loss and accuracy over a dataset, in eval mode, without recording.
std::pair<double, double> evaluate(FashionCNN& net, const tg::data::Dataset& data, std::size_t batch_size) {
  tg::NoGradGuard no_grad;
  net.eval();
  tg::data::DataLoader loader(data, {batch_size});
  loader.start_epoch();
  double loss_sum = 0.0;
  std::size_t right = 0;
  for (std::size_t b = 0; b < loader.num_batches(); ++b) {
    const tg::data::Batch batch = loader.batch(b);
    const tg::Tensor logits = net(batch.images);
    loss_sum += tg::cross_entropy(logits, batch.labels).item() * double(batch.labels.size());
    right += count_correct(logits, batch.labels);
  }
  net.train();
  return {loss_sum / double(data.size()), double(right) / double(data.size())};
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Train a CNN on Fashion-MNIST with tapegrad"};
  app.footer("If the run fails, an output directory it created is removed again.");
  app.option_defaults()->always_capture_default();  // --help shows every default
  app.add_option("--epochs", o.epochs, "passes over the training set")->check(cli::in_range(1, 1000));
  app.add_option("--batch-size", o.batch_size, "images per step")->check(cli::in_range<std::size_t>(1, 60000));
  app.add_option("--lr", o.lr, "learning rate (cosine-annealed to 0 over the run)")->check(cli::in_range(1e-9, 10.0));
  app.add_option("--optimizer", o.optimizer, "adam, adamw, sgd (momentum 0.9) or rmsprop")
      ->check(CLI::IsMember({"adam", "adamw", "sgd", "rmsprop"}));
  app.add_option("--seed", o.seed, "initialization and shuffling")->check(cli::non_negative());
  app.add_option("--threads", o.threads, "BLAS threads")->check(cli::in_range(1, 256));
  app.add_option("--data", o.data_dir, "directory with the four IDX files (gzip or plain)")->check(CLI::ExistingDirectory);
  app.add_option("--out", o.out_dir, "where the model, pictures and metrics go (created if missing)");
  app.add_option("--limit", o.limit, "train on the first N images only (0: all); tests on N/6 of the test set")
      ->check(cli::non_negative());
  CLI11_PARSE(app, argc, argv);

  try {
    OutputDirectory out(o.out_dir);
    openblas_set_num_threads(o.threads);
    const tg::data::Dataset train = tg::data::load_mnist(o.data_dir, /*train=*/true, o.limit);
    check_image_shape(train, o.data_dir, /*train=*/true);
    const tg::data::Dataset test = tg::data::load_mnist(o.data_dir, /*train=*/false, o.limit ? std::max<std::size_t>(o.limit / 6, 1) : 0);
    check_image_shape(test, o.data_dir, /*train=*/false);
    std::printf("Fashion-MNIST from %s: %zu training and %zu test images\n", o.data_dir.c_str(), train.size(), test.size());

    tg::Generator gen(o.seed);
    FashionCNN net(gen);
    std::cout << net.summary({o.batch_size, 1, 28, 28}) << '\n';
    const xt::xarray<float> filters_before = net.first_filters().to_xarray<float>();

    auto optimizer = make_optimizer(o, net.parameters());
    tg::data::DataLoader loader(train, {o.batch_size, /*shuffle=*/true, /*seed=*/o.seed + 1});
    const std::size_t steps = loader.num_batches() * std::size_t(o.epochs);
    tg::optim::CosineAnnealingLR schedule(*optimizer, steps);  // stepped every batch

    nlohmann::json metrics = {{"epochs", nlohmann::json::array()}, {"steps", nlohmann::json::array()}};
    report::Series train_curve{"train loss (per 50 steps)", "#1f77b4", {}}, test_loss{"test loss", "#ff7f0e", {}},
        test_acc{"test accuracy", "#2ca02c", {}};
    const auto start = std::chrono::steady_clock::now();
    std::size_t step = 0;
    double window_loss = 0.0;
    std::size_t window = 0;
    for (int epoch = 1; epoch <= o.epochs; ++epoch) {
      Progress progress(epoch, o.epochs, loader.num_batches());
      double loss_sum = 0.0;
      std::size_t right = 0, seen = 0;
      loader.start_epoch();
      for (std::size_t b = 0; b < loader.num_batches(); ++b) {
        const tg::data::Batch batch = loader.batch(b);
        const tg::Tensor logits = net(batch.images);
        const tg::Tensor loss = tg::cross_entropy(logits, batch.labels);
        optimizer->zero_grad();
        loss.backward();
        optimizer->step();
        schedule.step();

        const double l = loss.item();
        loss_sum += l * double(batch.labels.size());
        seen += batch.labels.size();
        right += count_correct(logits, batch.labels);
        ++step;
        window_loss += l;
        if (++window == 50) {
          train_curve.points.emplace_back(double(step) / double(loader.num_batches()), window_loss / 50);
          metrics["steps"].push_back({{"step", step}, {"train_loss", window_loss / 50}});
          window_loss = 0, window = 0;
        }
        progress.update(b, loss_sum / double(seen), double(right) / double(seen), seen);
      }
      const auto [t_loss, t_acc] = evaluate(net, test, 256);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("epoch %d: train loss %.4f, test loss %.4f, test accuracy %.4f (%.0f s)\n", epoch,
                  loss_sum / double(seen), t_loss, t_acc, seconds);
      metrics["epochs"].push_back({{"epoch", epoch},
                                   {"train_loss", loss_sum / double(seen)},
                                   {"train_accuracy", double(right) / double(seen)},
                                   {"test_loss", t_loss},
                                   {"test_accuracy", t_acc},
                                   {"seconds", seconds}});
      test_loss.points.emplace_back(epoch, t_loss);
      test_acc.points.emplace_back(epoch, t_acc);
    }
    metrics["options"] = {{"epochs", o.epochs}, {"batch_size", o.batch_size}, {"lr", o.lr},
                          {"optimizer", o.optimizer}, {"seed", o.seed}, {"limit", o.limit}};

    tg::nn::save(net, out / "model.safetensors");
    report::write_filter_grid(out / "filters.png", {filters_before, net.first_filters().to_xarray<float>()});
    report::write_chart_svg(out / "curves.svg", "Fashion-MNIST training", "epoch", {train_curve, test_loss, test_acc});
    report::write_file(out / "metrics.json", metrics.dump(2) + '\n');
    out.keep();
    std::printf("\nWrote %s: model.safetensors, filters.png (first-layer filters: top row before, bottom row after),\n"
                "curves.svg (loss and accuracy), metrics.json\n",
                o.out_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tapegrad-train: %s\n", e.what());
    return 1;
  }
  return 0;
}
