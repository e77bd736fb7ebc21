// tapegrad-train: trains the Fashion-MNIST CNN (fashion_cnn.hpp) and leaves
// in the output directory the model (model.safetensors, with what a reader
// needs in its metadata: input shape, normalization, class names), the first
// layer's filters before and after training (filters.png), the loss and
// accuracy curves (curves.svg), the numbers behind them (metrics.json) and
// the last epoch's checkpoint (checkpoint/), from which --resume continues.
// With --distributed, under `mpirun -np N`, N processes train together
// (processes.hpp); rank 0 prints and writes.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <system_error>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli_checks.hpp"
#include "fashion_cnn.hpp"
#include "processes.hpp"
#include "report.hpp"

namespace {

struct Options {
  int epochs = 3;
  std::size_t batch_size = 64;
  double lr = 2e-3;
  std::string optimizer = "adam";
  std::uint64_t seed = 0;
  int threads = 1;
  std::string data_dir = tg::data::default_fashion_mnist_dir();
  std::string out_dir = "runs/train";
  std::size_t limit = 0;  // training images; 0 = all
  std::string resume;     // a run's output directory to continue
  int stop_after = 0;     // epochs; 0 = all
  bool distributed = false;
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
// The processes share the batches: batch i is evaluated by rank i mod N.
std::pair<double, double> evaluate(FashionCNN& net, const tg::data::datasets::MNIST& data, std::size_t batch_size,
                                   Processes& processes) {
  tg::NoGradGuard no_grad;
  processes.broadcast_buffers();
  net.eval();
  tg::data::DataLoader loader(data, {batch_size});
  loader.start_epoch();
  double loss_sum = 0.0, right = 0.0;
  const auto first = std::size_t(processes.rank()), every = std::size_t(processes.world_size());
  for (std::size_t i = first; i < loader.num_batches(); i += every) {
    const tg::data::Batch batch = loader.batch(i);
    const tg::Tensor logits = net(batch.inputs);
    loss_sum += tg::cross_entropy(logits, batch.targets).item() * double(batch.size());
    right += double(count_correct(logits, batch.labels));
  }
  net.train();
  const std::vector<double> total = processes.sum({loss_sum, right});
  return {total[0] / double(data.size()), total[1] / double(data.size())};
}

// ---- checkpoints ---------------------------------------------------------------
//
// At the end of every epoch the run leaves in OUT/checkpoint/ what --resume
// needs to continue it bit for bit:
//   checkpoint.json           the epoch reached, the options (the seed fixes
//                             the data order), the metrics so far, and the
//                             names of the two files below
//   epoch-K.model.safetensors       the model (parameters and BatchNorm statistics)
//   epoch-K.optimizer.safetensors   the optimizer's state and the schedule's counters
//   filters_before.safetensors      the first layer's kernels before training
// The epoch's files are written first and checkpoint.json is replaced last
// (written aside, then renamed), so an interruption at any moment leaves the
// previous checkpoint whole.

const char* const checkpoint_dir = "checkpoint";

// The options a resumed run must share with the run it continues, in
// checkpoint.json's terms.
nlohmann::json run_options(const Options& o) {
  return {{"epochs", o.epochs}, {"batch_size", o.batch_size}, {"lr", o.lr}, {"optimizer", o.optimizer},
          {"seed", o.seed},     {"limit", o.limit}};
}

struct Checkpoint {
  int epoch = 0;  // epochs completed
  nlohmann::json options, metrics, state;
  std::string model_file, optimizer_file;  // in the checkpoint directory
};

std::filesystem::path checkpoint_path(const std::string& out, const std::string& name) {
  return std::filesystem::path(out) / checkpoint_dir / name;
}

Checkpoint read_checkpoint(const std::string& dir) {
  const auto path = checkpoint_path(dir, "checkpoint.json");
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("--resume " + dir + ": no checkpoint there (" + path.string() +
                             " is missing); a run writes one at the end of each epoch");
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  Checkpoint c;
  try {
    c.epoch = j.at("epoch").get<int>();
    c.options = j.at("options");
    c.metrics = j.at("metrics");
    c.state = j.at("state");
    c.model_file = j.at("model").get<std::string>();
    c.optimizer_file = j.at("optimizer").get<std::string>();
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error("--resume " + dir + ": " + path.string() + " is not a checkpoint written by tapegrad-train");
  }
  return c;
}

// Writes `text` to `path` by way of a file beside it and a rename, so that
// `path` holds the old contents or the new ones, never a part.
void replace_file(const std::filesystem::path& path, const std::string& text) {
  const std::string aside = path.string() + ".new";
  report::write_file(aside, text);
  std::error_code ec;
  std::filesystem::rename(aside, path, ec);
  if (ec) throw std::runtime_error("cannot write " + path.string() + ": " + ec.message());
}

// A number as the command line takes it: 0.003, not 0.0030000000000000001.
std::string option_text(const nlohmann::json& v) {
  if (v.is_number_float()) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", v.get<double>());
    for (int digits = 1; digits <= 17; ++digits) {
      char shorter[32];
      std::snprintf(shorter, sizeof shorter, "%.*g", digits, v.get<double>());
      if (std::strtod(shorter, nullptr) == v.get<double>()) return shorter;
    }
    return text;
  }
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Train a CNN on Fashion-MNIST with tapegrad"};
  app.footer(
      "At the end of each epoch the run saves a checkpoint in OUT/checkpoint; --resume OUT continues the run\n"
      "from there and reaches the same parameters as a run that was never interrupted. If the run fails before\n"
      "its first checkpoint, an output directory it created is removed again; after it, the directory is kept\n"
      "for --resume.");
  app.option_defaults()->always_capture_default();  // --help shows every default
  app.add_option("--epochs", o.epochs, "passes over the training set")->check(cli::in_range(1, 1000));
  app.add_option("--batch-size", o.batch_size, "images per step")->check(cli::in_range<std::size_t>(1, 60000));
  app.add_option("--lr", o.lr, "learning rate (cosine-annealed to 0 over the run)")->check(cli::in_range(1e-9, 10.0));
  app.add_option("--optimizer", o.optimizer, "adam, adamw, sgd (momentum 0.9) or rmsprop")
      ->check(CLI::IsMember({"adam", "adamw", "sgd", "rmsprop"}));
  app.add_option("--seed", o.seed, "initialization and shuffling")->check(cli::non_negative());
  app.add_option("--threads", o.threads, "threads (GEMM and tapegrad's own loops)")->check(cli::in_range(1, 256));
  app.add_option("--data", o.data_dir, "directory with the four IDX files (gzip or plain)")->check(CLI::ExistingDirectory);
  auto* out_option = app.add_option("--out", o.out_dir, "where the model, pictures and metrics go (created if missing)");
  app.add_option("--limit", o.limit, "train on the first N images only (0: all); tests on N/6 of the test set")
      ->check(cli::non_negative());
  app.add_option("--resume", o.resume,
                 "continue the run in this directory from its last checkpoint, with its options (any given must "
                 "match them) and output there")
      ->check(CLI::ExistingDirectory)
      ->excludes(out_option);
  app.add_option("--stop-after", o.stop_after,
                 "stop after this many epochs, as an interrupted run would (0: run them all); continue with --resume")
      ->check(cli::non_negative());
  app.add_flag("--distributed", o.distributed,
               "train on the N processes that `mpirun -np N` starts: each takes batch-size/N images of every batch; "
               "rank 0 prints and writes the output");
  CLI11_PARSE(app, argc, argv);

  Processes processes;      // this one alone, unless --distributed
  std::string resume_hint;  // once a checkpoint is written: how to continue after a failure
  try {
    if (o.distributed) processes.connect(argc, argv);
    const bool is_main = processes.is_main();
    // A resumed run takes the options of its checkpoint; one given again must agree.
    Checkpoint resumed;
    if (!o.resume.empty()) {
      resumed = read_checkpoint(o.resume);
      const nlohmann::json given = run_options(o);
      std::string differences;
      for (const auto& [key, saved] : resumed.options.items()) {
        const std::string flag = "--" + std::string(key == "batch_size" ? "batch-size" : key);
        if (app.count(flag) > 0 && given.at(key) != saved)
          differences += "\n  " + flag + " " + option_text(given.at(key)) + ", but the run started with " + flag +
                         " " + option_text(saved);
      }
      if (!differences.empty())
        throw std::runtime_error("--resume " + o.resume + ": the options differ from the checkpoint's:" + differences +
                                 "\nA resumed run continues with the options it started with, or its result would be "
                                 "neither run's; leave these out, or start a new run with --out.");
      o.epochs = resumed.options.at("epochs").get<int>();
      o.batch_size = resumed.options.at("batch_size").get<std::size_t>();
      o.lr = resumed.options.at("lr").get<double>();
      o.optimizer = resumed.options.at("optimizer").get<std::string>();
      o.seed = resumed.options.at("seed").get<std::uint64_t>();
      o.limit = resumed.options.at("limit").get<std::size_t>();
      if (resumed.epoch >= o.epochs)
        throw std::runtime_error("--resume " + o.resume + ": the run has finished all its " + std::to_string(o.epochs) +
                                 " epochs; there is nothing to resume");
      if (o.stop_after > 0 && o.stop_after <= resumed.epoch)
        throw std::runtime_error("--stop-after " + std::to_string(o.stop_after) + ": the run in " + o.resume +
                                 " has already finished epoch " + std::to_string(resumed.epoch));
      o.out_dir = o.resume;
    }

    processes.check_batch_size(o.batch_size);
    std::optional<OutputDirectory> out;
    if (is_main) out.emplace(o.out_dir);
    tg::set_num_threads(o.threads);
    const tg::data::Normalization norm = tg::data::fashion_mnist_normalization;
    const tg::data::datasets::MNIST train(o.data_dir, /*train=*/true, o.limit, norm);
    check_image_shape(train.images(), o.data_dir, /*train=*/true);
    const tg::data::datasets::MNIST test(o.data_dir, /*train=*/false,
                                         o.limit ? std::max<std::size_t>(o.limit / 6, 1) : 0, norm);
    check_image_shape(test.images(), o.data_dir, /*train=*/false);
    if (is_main) {
      std::printf("Fashion-MNIST from %s: %zu training and %zu test images\n", o.data_dir.c_str(), train.size(),
                  test.size());
      if (processes.distributed())
        std::printf("Data-parallel on %d processes, %zu images of each batch of %zu per process\n",
                    processes.world_size(), o.batch_size / std::size_t(processes.world_size()), o.batch_size);
    }

    tg::Generator gen(o.seed);
    FashionCNN net(gen);
    if (is_main) std::cout << net.summary({o.batch_size, 1, 28, 28}) << '\n';

    auto optimizer = make_optimizer(o, net.parameters());
    tg::data::DataLoader loader(train, processes.loader_options(train.size(), o.batch_size, /*seed=*/o.seed + 1));
    const std::size_t steps = loader.num_batches() * std::size_t(o.epochs);
    tg::optim::CosineAnnealingLR schedule(*optimizer, steps);  // stepped every batch
    const tg::nn::Metadata metadata = model_metadata(norm);

    nlohmann::json metrics = {{"epochs", nlohmann::json::array()}, {"steps", nlohmann::json::array()}};
    std::size_t step = 0;
    double window_loss = 0.0, seconds_before = 0.0;  // seconds_before: of the run being resumed
    std::size_t window = 0;
    int first_epoch = 1;
    xt::xarray<float> filters_before;
    if (!o.resume.empty()) {
      const std::string dir = (std::filesystem::path(o.resume) / checkpoint_dir).string();
      tg::nn::load(net, dir + "/" + resumed.model_file);
      optimizer->load(dir + "/" + resumed.optimizer_file, schedule);
      filters_before = tg::io::load_tensors(dir + "/filters_before.safetensors").get("filters", tg::kFloat32)
                           .to_xarray<float>();
      // --data may move, but must hold the same training set: another size would change every epoch's batches.
      const auto saved_size = resumed.state.value("train_images", train.size());
      if (saved_size != train.size())
        throw std::runtime_error("--resume " + o.resume + ": the run trained on " + std::to_string(saved_size) +
                                 " images, but " + o.data_dir + " gives " + std::to_string(train.size()) +
                                 "; resume it with the data it started with");
      metrics = resumed.metrics;
      step = resumed.state.at("step").get<std::size_t>();
      window_loss = resumed.state.at("window_loss").get<double>();
      window = resumed.state.at("window").get<std::size_t>();
      seconds_before = resumed.state.at("seconds").get<double>();
      first_epoch = resumed.epoch + 1;
      for (int e = 0; e < resumed.epoch; ++e) loader.start_epoch();  // the data order of the epochs done
      if (is_main) std::printf("Resuming %s at epoch %d of %d\n", o.resume.c_str(), first_epoch, o.epochs);
    } else if (is_main) {
      filters_before = net.first_filters().to_xarray<float>();
      std::filesystem::create_directories(std::filesystem::path(o.out_dir) / checkpoint_dir);
      tg::io::save_tensors(checkpoint_path(o.out_dir, "filters_before.safetensors").string(),
                           {{"filters", net.first_filters().detach()}});
    }
    processes.replicate(net);  // rank 0's parameters (and resumed state) on every process

    const auto start = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    const int last_epoch = o.stop_after > 0 ? std::min(o.epochs, o.stop_after) : o.epochs;
    for (int epoch = first_epoch; epoch <= last_epoch; ++epoch) {
      Progress progress(epoch, o.epochs, loader.num_batches());
      double loss_sum = 0.0, right = 0.0, seen = 0.0;
      std::size_t b = 0;
      processes.begin_steps();
      for (const tg::data::Batch& batch : loader) {  // each range-for is the next epoch, in a new order
        const tg::Tensor logits = processes.forward(net, batch.inputs);
        const tg::Tensor loss = tg::cross_entropy(logits, batch.targets);
        optimizer->zero_grad();
        loss.backward();
        processes.average_gradients();
        optimizer->step();
        schedule.step();

        // The whole batch's numbers: each process's share summed.
        const std::vector<double> share = processes.sum(
            {loss.item() * double(batch.size()), double(count_correct(logits, batch.labels)), double(batch.size())});
        const double l = share[0] / share[2];
        loss_sum += share[0];
        right += share[1];
        seen += share[2];
        ++step;
        window_loss += l;
        if (++window == 50) {
          metrics["steps"].push_back({{"step", step}, {"train_loss", window_loss / 50}});
          window_loss = 0, window = 0;
        }
        if (is_main) progress.update(b, loss_sum / seen, right / seen, std::size_t(seen));
        ++b;
      }
      processes.end_steps(b);
      const auto [t_loss, t_acc] = evaluate(net, test, 256, processes);
      const double seconds = elapsed();
      if (!is_main) continue;  // the rest of the epoch writes the checkpoint
      std::printf("epoch %d: train loss %.4f, test loss %.4f, test accuracy %.4f (%.0f s)\n", epoch,
                  loss_sum / seen, t_loss, t_acc, seconds);
      metrics["epochs"].push_back({{"epoch", epoch},
                                   {"train_loss", loss_sum / seen},
                                   {"train_accuracy", right / seen},
                                   {"test_loss", t_loss},
                                   {"test_accuracy", t_acc},
                                   {"seconds", seconds}});

      // The checkpoint: this epoch's files, then checkpoint.json naming them, then the last epoch's go.
      const std::string prefix = "epoch-" + std::to_string(epoch);
      tg::nn::save(net, checkpoint_path(o.out_dir, prefix + ".model.safetensors").string(), metadata);
      optimizer->save(checkpoint_path(o.out_dir, prefix + ".optimizer.safetensors").string(), schedule);
      const nlohmann::json checkpoint = {
          {"epoch", epoch},
          {"options", run_options(o)},
          {"model", prefix + ".model.safetensors"},
          {"optimizer", prefix + ".optimizer.safetensors"},
          {"state",
           {{"step", step}, {"window_loss", window_loss}, {"window", window}, {"seconds", seconds},
            {"train_images", train.size()}}},
          {"metrics", metrics}};
      replace_file(checkpoint_path(o.out_dir, "checkpoint.json"), checkpoint.dump(1) + '\n');
      out->keep();  // from now on a failure leaves the checkpoint, to resume from
      resume_hint = epoch < o.epochs ? "the checkpoint of epoch " + std::to_string(epoch) +
                                           " is kept; continue with: tapegrad-train --resume " + o.out_dir
                                     : "training finished; the trained model is kept in " +
                                           checkpoint_path(o.out_dir, prefix + ".model.safetensors").string();
      std::error_code ec;
      for (const char* kind : {".model.safetensors", ".optimizer.safetensors"})
        std::filesystem::remove(checkpoint_path(o.out_dir, "epoch-" + std::to_string(epoch - 1) + kind), ec);
    }
    if (!is_main) return 0;
    metrics["options"] = run_options(o);
    if (processes.distributed()) {
      const StepTraffic traffic = processes.step_traffic();
      metrics["distributed"] = {{"processes", processes.world_size()},
                                {"all_reduce_bytes_per_step", traffic.all_reduce_bytes},
                                {"broadcast_bytes_per_step", traffic.broadcast_bytes},
                                {"mpi_seconds_per_step", traffic.seconds}};
      std::printf("MPI, per training step and process: %.0f bytes all-reduced (gradients and the step's loss and "
                  "accuracy counts), %.0f bytes broadcast (BatchNorm statistics), %.1f ms inside MPI\n",
                  traffic.all_reduce_bytes, traffic.broadcast_bytes, 1e3 * traffic.seconds);
    }

    // The curves, from the metrics (a resumed run has those of the epochs before it too).
    report::Series train_curve{"train loss (per 50 steps)", "#1f77b4", {}}, test_loss{"test loss", "#ff7f0e", {}},
        test_acc{"test accuracy", "#2ca02c", {}};
    for (const auto& s : metrics["steps"])
      train_curve.points.emplace_back(s["step"].get<double>() / double(loader.num_batches()), s["train_loss"].get<double>());
    for (const auto& e : metrics["epochs"]) {
      test_loss.points.emplace_back(e["epoch"].get<double>(), e["test_loss"].get<double>());
      test_acc.points.emplace_back(e["epoch"].get<double>(), e["test_accuracy"].get<double>());
    }

    tg::nn::save(net, *out / "model.safetensors", metadata);
    report::write_filter_grid(*out / "filters.png", {filters_before, net.first_filters().to_xarray<float>()},
                              {"before training", last_epoch == o.epochs ? "after training"
                                                                         : "after epoch " + std::to_string(last_epoch)});
    report::write_chart_svg(*out / "curves.svg", "Fashion-MNIST training", "epoch", {train_curve, test_loss, test_acc});
    report::write_file(*out / "metrics.json", metrics.dump(2) + '\n');
    out->keep();
    std::printf("\nWrote %s: model.safetensors, filters.png (first-layer filters before and after training),\n"
                "curves.svg (loss and accuracy), metrics.json, and checkpoint/ for --resume\n",
                o.out_dir.c_str());
    if (last_epoch < o.epochs)
      std::printf("Stopped after epoch %d of %d; continue with: tapegrad-train --resume %s\n", last_epoch, o.epochs,
                  o.out_dir.c_str());
  } catch (const std::exception& e) {
    // With other processes, every one must end, not wait for this one.
    processes.abort_if_others(std::string("tapegrad-train: ") + e.what() +
                              (resume_hint.empty() ? "" : "\ntapegrad-train: " + resume_hint));
    std::fprintf(stderr, "tapegrad-train: %s\n", e.what());
    if (!resume_hint.empty()) std::fprintf(stderr, "tapegrad-train: %s\n", resume_hint.c_str());
    return 1;
  }
  return 0;
}
