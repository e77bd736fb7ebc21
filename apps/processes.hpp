// The processes of a tapegrad-train run: this one alone, or with
// --distributed under `mpirun -np N`, N processes that train data-parallel
// (tg::distributed): each takes batch-size/N images of every batch, the
// gradients are averaged over all of them, and rank 0 prints and writes.
// Everything MPI-specific of the trainer is here; a build without MPI gets
// the class for one process, whose connect() says what is missing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>
#ifdef TAPEGRAD_HAVE_MPI
#include <tapegrad/distributed/distributed.hpp>
#endif

// What the training steps sent through MPI, per step: each process's
// payload (tg::distributed::Traffic) and its time inside MPI.
struct StepTraffic {
  double all_reduce_bytes = 0, broadcast_bytes = 0, seconds = 0;
};

#ifdef TAPEGRAD_HAVE_MPI

class Processes {
 public:
  // Joins the job that mpirun started; throws when it did not start this one.
  void connect(int& argc, char**& argv) {
    try {
      mpi_.emplace(argc, argv);
    } catch (const tg::distributed::DistributedError& e) {
      throw std::runtime_error(std::string("--distributed: ") + e.what());
    }
  }

  bool distributed() const { return mpi_.has_value(); }
  int rank() const { return mpi_ ? mpi_->rank() : 0; }
  int world_size() const { return mpi_ ? mpi_->world_size() : 1; }
  bool is_main() const { return rank() == 0; }  // prints and writes the files

  // Throws unless the processes can take equal shares of every batch.
  void check_batch_size(std::size_t batch_size) const {
    const auto n = std::size_t(world_size());
    if (batch_size % n != 0)
      throw std::runtime_error("--batch-size " + std::to_string(batch_size) + " does not divide among " +
                               std::to_string(n) + " processes, which take equal shares of every batch; pass a "
                               "multiple of " + std::to_string(n));
  }

  // The loader of the training set: the whole batch, shuffled from `seed`;
  // distributed, this rank's share of it (after check_batch_size), from a
  // DistributedSampler with the same seed, so that the shares of batch i
  // make up batch i of one process.
  tg::data::LoaderOptions loader_options(std::size_t dataset_size, std::size_t batch_size, std::uint64_t seed) const {
    if (!mpi_) return {batch_size, /*shuffle=*/true, seed};
    const auto n = std::size_t(world_size());
    auto sampler = std::make_shared<tg::distributed::DistributedSampler>(dataset_size, n, std::size_t(rank()),
                                                                         /*shuffle=*/true, seed);
    return {batch_size / n, /*shuffle=*/false, 0, false, false, sampler};
  }

  // Gives every process rank 0's `net` and keeps them in step; `net` must
  // outlive the training.
  void replicate(tg::nn::Module& net) {
    if (mpi_) replicas_ = std::make_unique<tg::distributed::DataParallel>(net, *mpi_);
  }
  // A training step's forward (after rank 0's BatchNorm statistics).
  tg::Tensor forward(tg::nn::Module& net, const tg::Tensor& x) { return replicas_ ? (*replicas_)(x) : net(x); }
  // After backward: every gradient becomes its mean over the processes.
  void average_gradients() {
    if (replicas_) replicas_->average_gradients();
  }
  // Before evaluating: rank 0's BatchNorm statistics, the saved model's.
  void broadcast_buffers() {
    if (replicas_) replicas_->broadcast_buffers();
  }
  // Each element summed over the processes.
  std::vector<double> sum(std::vector<double> values) {
    if (!mpi_) return values;
    tg::Tensor t = tg::empty({values.size()}, tg::kFloat64);
    std::copy(values.begin(), values.end(), t.mutable_data<double>());
    mpi_->all_reduce_sum(t);
    return std::vector<double>(t.data<double>(), t.data<double>() + values.size());
  }

  // Bracket training steps: step_traffic() averages their traffic.
  void begin_steps() { at_begin_ = totals(); }
  void end_steps(std::size_t steps) {
    const StepTraffic now = totals();
    counted_.all_reduce_bytes += now.all_reduce_bytes - at_begin_.all_reduce_bytes;
    counted_.broadcast_bytes += now.broadcast_bytes - at_begin_.broadcast_bytes;
    counted_.seconds += now.seconds - at_begin_.seconds;
    steps_ += steps;
  }
  StepTraffic step_traffic() const {
    const double n = double(std::max<std::size_t>(steps_, 1));
    return {counted_.all_reduce_bytes / n, counted_.broadcast_bytes / n, counted_.seconds / n};
  }

  // With other processes: prints "rank R: <message>" and ends them all.
  // Otherwise returns, for the caller to report the failure.
  void abort_if_others(const std::string& message) const {
    if (world_size() > 1) mpi_->abort(message);
  }

 private:
  StepTraffic totals() const {
    if (!mpi_) return {};
    const tg::distributed::Traffic& t = mpi_->traffic();
    return {double(t.all_reduce_bytes), double(t.broadcast_bytes), t.seconds};
  }

  std::optional<tg::distributed::Environment> mpi_;
  std::unique_ptr<tg::distributed::DataParallel> replicas_;
  StepTraffic at_begin_, counted_;
  std::size_t steps_ = 0;
};

#else  // built without MPI: one process

class Processes {
 public:
  [[noreturn]] void connect(int&, char**&) {
    throw std::runtime_error("--distributed: this tapegrad-train was built without MPI; install libopenmpi-dev and "
                             "openmpi-bin, then configure and build again");
  }
  bool distributed() const { return false; }
  int rank() const { return 0; }
  int world_size() const { return 1; }
  bool is_main() const { return true; }
  void check_batch_size(std::size_t) const {}
  tg::data::LoaderOptions loader_options(std::size_t, std::size_t batch_size, std::uint64_t seed) const {
    return {batch_size, /*shuffle=*/true, seed};
  }
  void replicate(tg::nn::Module&) {}
  tg::Tensor forward(tg::nn::Module& net, const tg::Tensor& x) { return net(x); }
  void average_gradients() {}
  void broadcast_buffers() {}
  std::vector<double> sum(std::vector<double> values) { return values; }
  void begin_steps() {}
  void end_steps(std::size_t) {}
  StepTraffic step_traffic() const { return {}; }
  void abort_if_others(const std::string&) const {}
};

#endif
