// Data-parallel training on MPI: every process (rank) holds a replica of the
// model and trains on its own share of each batch; after backward the ranks
// average their gradients, so every replica takes the same step, the one a
// single process would take on the whole batch.
//
//   // mpirun -np 2 ./train
//   int main(int argc, char** argv) {
//     tg::distributed::Environment mpi(argc, argv);
//     try {
//       Net net(gen);
//       tg::distributed::DataParallel ddp(net, mpi);  // rank 0's parameters and buffers on every rank
//       auto sampler = std::make_shared<tg::distributed::DistributedSampler>(train.size(), mpi.world_size(),
//                                                                            mpi.rank(), true, seed);
//       tg::data::DataLoader loader(train, {64 / mpi.world_size(), false, 0, false, false, sampler});
//       tg::optim::Adam opt(net.parameters(), 1e-3);
//       for (const tg::data::Batch& b : loader) {
//         const tg::Tensor loss = tg::cross_entropy(ddp(b.inputs), b.targets);
//         opt.zero_grad();
//         loss.backward();
//         ddp.average_gradients();  // the mean over ranks, in a few large messages
//         opt.step();
//       }
//     } catch (const std::exception& e) {
//       mpi.abort(e.what());  // prints "rank R: ..." and ends every rank
//     }
//   }
//
// Built only when CMake finds MPI (target tapegrad::distributed, which
// defines TAPEGRAD_HAVE_MPI); not part of tapegrad.hpp.
//
// BatchNorm: as PyTorch's DistributedDataParallel with its default
// broadcast_buffers=True, each rank normalizes with its own batch's
// statistics, and before every training forward rank 0's buffers (the
// running mean and variance) are copied to every rank. The running statistics
// are therefore rank 0's, estimated from rank 0's share of the batches, and
// training with BatchNorm is not the same as one process on the whole batch
// (whose statistics cover all of it); without BatchNorm it is.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../nn/module.hpp"
#include "sampler.hpp"

namespace tg::distributed {

// Misuse of the distributed layer: not started by mpirun, MPI initialised
// twice, replicas that differ, a parameter without a gradient.
class DistributedError : public Error {
 public:
  using Error::Error;
};

// True when this process was started by an MPI launcher (mpirun, mpiexec):
// the launcher's variables are in the environment.
bool launched_by_mpirun();

// What this rank has passed through MPI collectives so far. A collective's
// payload is the tensor's bytes, counted once per call whether this rank
// sends or receives them; on the wire a ring all-reduce of P bytes sends
// 2·(N−1)/N·P per rank.
struct Traffic {
  std::uint64_t all_reduce_bytes = 0;
  std::uint64_t broadcast_bytes = 0;
  std::uint64_t calls = 0;
  double seconds = 0.0;  // spent inside the collectives, waiting for the other ranks included
};

// MPI for this process, from mpirun's environment: initialised by the
// constructor, finalised by the destructor. Make one, in main, before any
// other use. Only the thread that made it may call the collectives.
//
// A rank that fails must end the job, not leave the others waiting in a
// collective: catch on every rank and call abort(). An Environment destroyed
// while an exception is propagating ends the job the same way. In a build
// with AddressSanitizer the destructor runs LeakSanitizer's check before
// MPI_Finalize (see distributed.cpp).
class Environment {
 public:
  // Throws DistributedError when the process was not started by mpirun, or
  // MPI is already initialised in it.
  Environment(int& argc, char**& argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // Collectives on a whole contiguous tensor, of the same shape and dtype on
  // every rank, in place; every rank must call them in the same order. The
  // tensor is written under the in-place rules (one that requires grad only
  // under NoGradGuard). ValueError for a strided or undefined tensor,
  // DtypeError for a bool one in all_reduce_sum, DistributedError for more
  // than 2^31 - 1 elements.
  void all_reduce_sum(Tensor& t);       // each element becomes its sum over the ranks
  void broadcast(Tensor& t, int root);  // every rank gets root's values

  const Traffic& traffic() const { return traffic_; }

  // Prints "rank R: <what>" on stderr and ends every rank of the job
  // (MPI_Abort), which exits with `exit_code`.
  [[noreturn]] void abort(const std::string& what, int exit_code = 1) const;

 private:
  // Adds a collective that started at `start` and carried `t` to traffic_.
  void count(std::chrono::steady_clock::time_point start, std::uint64_t& bytes, const Tensor& t);

  int rank_ = 0, world_size_ = 1;
  Traffic traffic_;
};

struct DataParallelOptions {
  // Gradients travel in buckets of up to this many bytes, one all-reduce
  // each (a tensor larger than that is a bucket by itself). PyTorch DDP's
  // default, 25 MiB, holds the whole Fashion-MNIST CNN in one message.
  std::size_t bucket_bytes = std::size_t{25} << 20;
  // Rank 0's buffers are copied to every rank before each training forward,
  // as DDP's broadcast_buffers=True (see BatchNorm above).
  bool broadcast_buffers = true;
};

namespace detail {
// Tensors of one dtype that travel as one flat tensor.
struct Bucket {
  std::vector<std::pair<std::string, Tensor>> members;  // (name, tensor)
  Tensor flat;  // (total elements): where they are packed
};
}  // namespace detail

// Keeps the replicas of a model on all ranks in step. Not a module itself: it
// wraps `module`, which must outlive it, and every rank must make one for
// the same architecture (same parameter and buffer names, shapes and dtypes;
// DistributedError otherwise, on every rank).
class DataParallel {
 public:
  // Copies rank 0's parameters and buffers to every rank, so all replicas
  // start equal whatever each rank initialised. Only the parameters that
  // require grad now have their gradients averaged.
  DataParallel(nn::Module& module, Environment& env, DataParallelOptions options = {});

  // The module's forward, after the buffer broadcast in training mode.
  Tensor operator()(const Tensor& x);

  // Call after backward, before the optimizer's step: every averaged
  // parameter's gradient becomes its mean over the ranks. DistributedError,
  // naming it, when one has no gradient (it took no part in the loss, or it
  // was frozen after this wrapper was made).
  void average_gradients();

  // Rank 0's buffers on every rank (what operator() does in training); call
  // it before evaluating on all ranks.
  void broadcast_buffers();

  nn::Module& module() { return module_; }
  // How many all-reduces one average_gradients() makes.
  std::size_t num_gradient_buckets() const { return gradient_buckets_.size(); }

 private:
  nn::Module& module_;
  Environment& env_;
  DataParallelOptions options_;
  std::vector<detail::Bucket> gradient_buckets_;  // parameters that require grad
  std::vector<detail::Bucket> buffer_buckets_;
};

}  // namespace tg::distributed
