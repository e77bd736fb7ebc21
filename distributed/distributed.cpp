#include "distributed.hpp"

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <unordered_set>

#include "../core/tape.hpp"

// Built with AddressSanitizer (and so LeakSanitizer)? See ~Environment.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAPEGRAD_LEAK_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TAPEGRAD_LEAK_SANITIZER 1
#endif
#ifdef TAPEGRAD_LEAK_SANITIZER
#include <sanitizer/lsan_interface.h>
#endif

namespace tg::distributed {

namespace {

MPI_Datatype mpi_type(Dtype dtype) {
  switch (dtype) {
    case kFloat32: return MPI_FLOAT;
    case kFloat64: return MPI_DOUBLE;
    case kInt64: return MPI_INT64_T;
    case kBool: break;
  }
  return MPI_C_BOOL;
}

// The first element of `t`, to be written by a collective: checks what
// every collective needs and that `t` may be written in place.
void* collective_buffer(const char* op, Tensor& t) {
  if (!t.defined()) throw ValueError(std::string(op) + ": the tensor is undefined");
  if (!t.is_contiguous())
    throw ValueError(std::string(op) + ": the tensor of shape " + shape_str(t.shape()) +
                     " is not contiguous; pass a contiguous() copy");
  if (t.numel() > std::size_t(INT_MAX))
    throw DistributedError(std::string(op) + ": " + std::to_string(t.numel()) +
                           " elements are more than one MPI call takes (2^31 - 1)");
  return visit_dtype(t.dtype(), [&](auto tag) -> void* { return t.mutable_data<typename decltype(tag)::type>(); });
}

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Groups `tensors` by dtype, in order, into buckets of at most `max_bytes`
// (a larger tensor alone), each with a flat tensor to pack them into.
std::vector<detail::Bucket> make_buckets(const NamedTensors& tensors, std::size_t max_bytes) {
  std::vector<detail::Bucket> buckets;
  for (const Dtype dtype : {kFloat32, kFloat64, kInt64, kBool}) {
    std::size_t bytes = 0;
    for (const auto& named : tensors) {
      const Tensor& t = named.second;
      if (t.dtype() != dtype) continue;
      const std::size_t size = t.numel() * element_size(dtype);
      if (buckets.empty() || buckets.back().members.front().second.dtype() != dtype || bytes + size > max_bytes) {
        buckets.emplace_back();
        bytes = 0;
      }
      buckets.back().members.push_back(named);
      bytes += size;
    }
  }
  for (auto& bucket : buckets) {
    std::size_t numel = 0;
    for (const auto& named : bucket.members) numel += named.second.numel();
    bucket.flat = empty({numel}, bucket.members.front().second.dtype());
  }
  return buckets;
}

// Copies the tensors get(member) into the bucket's flat tensor, one after
// another, and back out of it.
template <class Get>
void pack(detail::Bucket& bucket, Get get) {
  NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (const auto& named : bucket.members) {
    const Tensor t = get(named.second);
    const auto n = std::int64_t(t.numel());
    bucket.flat.narrow(0, offset, n).copy_(t.reshape({n}));
    offset += n;
  }
}
template <class Get>
void unpack(const detail::Bucket& bucket, Get get) {
  NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (const auto& named : bucket.members) {
    Tensor t = get(named.second);
    const auto n = std::int64_t(t.numel());
    t.copy_(bucket.flat.narrow(0, offset, n).reshape(t.shape()));
    offset += n;
  }
}

// Rank 0's values of the buckets' tensors on every rank.
void broadcast_from_rank0(Environment& env, std::vector<detail::Bucket>& buckets) {
  auto itself = [](const Tensor& t) { return t; };
  for (auto& bucket : buckets) {
    if (env.rank() == 0) pack(bucket, itself);
    env.broadcast(bucket.flat, 0);
    if (env.rank() != 0) unpack(bucket, itself);
  }
}

// Each tensor once (a tied one appears under several names), with its first name.
NamedTensors distinct(const nn::Module::Named<Tensor>& named) {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& [name, t] : named)
    if (seen.insert(t.impl().get()).second) out.emplace_back(name, t);
  return out;
}

// FNV-1a of the names, shapes and dtypes of the module's tensors: equal on
// two ranks when they built the same architecture.
std::int64_t architecture_hash(const nn::Module& module) {
  std::string text;
  for (const auto& list : {module.named_parameters(), module.named_buffers()})
    for (const auto& [name, t] : list) text += name + shape_str(t.shape()) + dtype_name(t.dtype()) + ';';
  std::uint64_t h = 14695981039346656037ULL;
  for (const unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  return std::int64_t(h);
}

}  // namespace

bool launched_by_mpirun() {
  // Open MPI's mpirun, and the PMI launchers of MPICH and Slurm.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
    if (std::getenv(name)) return true;
  return false;
}

Environment::Environment(int& argc, char**& argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized)
    throw DistributedError("Environment: MPI is already initialised in this process; make one Environment, in main");
  if (!launched_by_mpirun())
    throw DistributedError("Environment: this process was not started by mpirun; run it as `mpirun -np N " +
                           std::string(argc > 0 ? argv[0] : "<program>") + " ...` (N processes)");
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);  // worker threads never call MPI
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
}

Environment::~Environment() {
  // Unwinding past the Environment: the other ranks may be waiting in a
  // collective for this one, and MPI_Finalize would wait for them.
  if (std::uncaught_exceptions() > 0) abort("an exception left the scope of the tg::distributed::Environment");
#ifdef TAPEGRAD_LEAK_SANITIZER
  // MPI_Finalize unloads Open MPI's components, and what they hold until exit
  // would then look like leaks from "<unknown module>", which no suppression
  // can name. So the leak check runs now, while that is still reachable (it
  // replaces the one at exit).
  __lsan_do_leak_check();
#endif
  MPI_Finalize();
}

void Environment::abort(const std::string& what, int exit_code) const {
  std::fprintf(stderr, "rank %d: %s\n", rank_, what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this is for the compiler
}

void Environment::all_reduce_sum(Tensor& t) {
  if (t.defined() && t.dtype() == kBool) throw DtypeError("all_reduce_sum: not defined for bool tensors");
  void* data = collective_buffer("all_reduce_sum", t);
  const auto start = std::chrono::steady_clock::now();
  MPI_Allreduce(MPI_IN_PLACE, data, int(t.numel()), mpi_type(t.dtype()), MPI_SUM, MPI_COMM_WORLD);
  count(start, traffic_.all_reduce_bytes, t);
}

void Environment::broadcast(Tensor& t, int root) {
  if (root < 0 || root >= world_size_)
    throw ValueError("broadcast: root " + std::to_string(root) + " is outside a world of " +
                     std::to_string(world_size_) + " ranks");
  void* data = collective_buffer("broadcast", t);
  const auto start = std::chrono::steady_clock::now();
  MPI_Bcast(data, int(t.numel()), mpi_type(t.dtype()), root, MPI_COMM_WORLD);
  count(start, traffic_.broadcast_bytes, t);
}

void Environment::count(std::chrono::steady_clock::time_point start, std::uint64_t& bytes, const Tensor& t) {
  traffic_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bytes += t.numel() * element_size(t.dtype());
  ++traffic_.calls;
}

DataParallel::DataParallel(nn::Module& module, Environment& env, DataParallelOptions options)
    : module_(module), env_(env), options_(options) {
  if (options.bucket_bytes == 0) throw ValueError("DataParallel: bucket_bytes must be positive, got 0");
  // Every rank learns whether any differs from rank 0, so all throw together.
  Tensor hash = full({1}, 0.0, kInt64);
  hash.mutable_data<std::int64_t>()[0] = architecture_hash(module);
  const std::int64_t own = hash.data<std::int64_t>()[0];
  env.broadcast(hash, 0);
  Tensor differing = full({1}, hash.data<std::int64_t>()[0] != own ? 1.0 : 0.0, kInt64);
  env.all_reduce_sum(differing);
  if (const auto count = differing.item<std::int64_t>(); count > 0)
    throw DistributedError("DataParallel: the model differs between ranks (" + std::to_string(count) + " of " +
                           std::to_string(env.world_size()) +
                           " have other parameter or buffer names, shapes or dtypes than rank 0); every rank must "
                           "build the same architecture");

  const auto parameters = distinct(module.named_parameters());
  NamedTensors trainable;
  for (const auto& named : parameters)
    if (named.second.requires_grad()) trainable.push_back(named);
  gradient_buckets_ = make_buckets(trainable, options.bucket_bytes);
  buffer_buckets_ = make_buckets(distinct(module.named_buffers()), options.bucket_bytes);

  auto parameter_buckets = make_buckets(parameters, options.bucket_bytes);
  broadcast_from_rank0(env, parameter_buckets);
  broadcast_buffers();
}

Tensor DataParallel::operator()(const Tensor& x) {
  if (options_.broadcast_buffers && module_.is_training()) broadcast_buffers();
  return module_(x);
}

void DataParallel::broadcast_buffers() { broadcast_from_rank0(env_, buffer_buckets_); }

void DataParallel::average_gradients() {
  for (const auto& bucket : gradient_buckets_)
    for (const auto& [name, p] : bucket.members)
      if (!p.grad().defined())
        throw DistributedError("DataParallel::average_gradients: parameter \"" + name +
                               "\" has no gradient: it took no part in the loss, or it was frozen after the "
                               "DataParallel was made (make a new one after freezing)");
  auto gradient = [](const Tensor& p) { return p.grad(); };
  const double scale = 1.0 / double(env_.world_size());
  for (auto& bucket : gradient_buckets_) {
    pack(bucket, gradient);
    env_.all_reduce_sum(bucket.flat);
    bucket.flat.mul_(scale);
    unpack(bucket, gradient);
  }
}

}  // namespace tg::distributed
