#pragma once
// Data-parallel gradient averaging, as PyTorch's DistributedDataParallel: after every rank's backward of its
// share of the batch, each gradient becomes the mean over the ranks, so every rank takes the same SGD step.
// The gradients live in one allocation (nn/flat_parameters.hpp), cut into buckets of about 4 MB at
// parameter boundaries, from the last parameter back (DDP's bucket_cap_mb, 25 MB there). Backward produces
// gradients in that order, and tells which are final (nn::GradientsReady); each bucket's MPI_Iallreduce
// starts as soon as its gradients are, so the reductions overlap the rest of backward. finish() waits for
// them and divides by the world size. The first parameters' bucket can only start when backward ends, so it
// should be small: with 25 MB buckets it holds 16 MB of ResNet18's 45 (benchmarks/README.md).
//
//   distributed::GradientReducer<float> reducer(world, net);
//   net.backward(grad, nn::InputGrad::Skip, reducer.ready());   // buckets start as backward goes
//   reducer.finish();                                             // gradients are now the ranks' mean
//   optimizer.step();
//
// The buckets, their order and their sizes are a function of the model alone, so a run is reproducible
// bitwise on the same ranks and threads. MPI makes progress on a nonblocking collective only inside MPI
// calls: each ready() call also tests the outstanding requests, which moves them on between blocks.

#include <cstdint>
#include <limits>
#include <vector>

#include "resnet/core/parallel.hpp"

#include "resnet/distributed/communicator.hpp"
#include "resnet/nn/flat_parameters.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::distributed {

template <typename T>
class GradientReducer {
 public:
  static constexpr std::int64_t kDefaultBucketBytes = 4 << 20;

  // For `model` (a module with flat_parameters(), as models::ResNet): buckets of about bucket_bytes.
  template <typename Model>
  GradientReducer(const Communicator& world, Model& model, std::int64_t bucket_bytes = kDefaultBucketBytes)
      : world_(world), flat_(model.flat_parameters()), parameters_(model.named_parameters()) {
    check(bucket_bytes > 0, "GradientReducer: bucket_bytes must be positive, got ", bucket_bytes);
    expect_flat("GradientReducer");
    // From the last parameter back: a bucket closes at the parameter that brings it to bucket_bytes.
    const std::int64_t end = flat_.size();
    std::int64_t bucket_end = end;
    for (std::size_t i = parameters_.size(); i-- > 0;) {
      const std::int64_t begin = flat_.offsets[i];
      if ((bucket_end - begin) * static_cast<std::int64_t>(sizeof(T)) >= bucket_bytes || i == 0) {
        buckets_.push_back({i == 0 ? 0 : begin, bucket_end, i});
        bucket_end = begin;
      }
    }
    requests_.assign(buckets_.size(), MPI_REQUEST_NULL);
  }

  // ready() hands backward a callback that refers to this reducer, which owns MPI requests: not copied.
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The callback for backward: starts every bucket whose gradients are now all final.
  nn::GradientsReady ready() {
    return [this](std::size_t first) { on_ready(first); };
  }

  // Starts the buckets backward did not (all of them, if backward was given no ready()), waits for every
  // one, and divides the sums by the world size: each gradient is then the mean over the ranks.
  void finish() {
    if (launched_ == 0) expect_flat("GradientReducer.finish");
    for (; launched_ < buckets_.size(); ++launched_)
      start(launched_);
    check_mpi(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE),
              "MPI_Waitall");
    launched_ = 0;
    const T scale = T(1) / static_cast<T>(world_.size());
    T* grads = flat_.grads.data();
    RESNET_OMP(parallel for num_threads(resnet::num_threads()))
    for (std::int64_t i = 0; i < flat_.size(); ++i)
      grads[i] *= scale;
  }

  // The buckets, as [begin, end) element ranges of the flat gradients, in the order they are reduced.
  struct Bucket {
    std::int64_t begin, end;
    std::size_t first_parameter;  // the lowest parameter index in it
  };
  const std::vector<Bucket>& buckets() const { return buckets_; }
  // How many buckets of this step have started (backward's ready() starts them; finish() resets to 0).
  std::size_t started() const { return launched_; }

 private:
  void on_ready(std::size_t first) {
    if (launched_ == 0) expect_flat("GradientReducer.ready");
    while (launched_ < buckets_.size() && buckets_[launched_].first_parameter >= first)
      start(launched_++);
    int done = 0;  // moves the started reductions on
    check_mpi(MPI_Testall(static_cast<int>(launched_), requests_.data(), &done, MPI_STATUSES_IGNORE),
              "MPI_Testall");
  }

  void start(std::size_t b) {
    const Bucket& bucket = buckets_[b];
    const std::int64_t count = bucket.end - bucket.begin;
    check(count <= std::numeric_limits<int>::max(), "GradientReducer: a bucket of ", count,
          " elements is more than one MPI call takes; use smaller buckets");
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, flat_.grads.data() + bucket.begin, static_cast<int>(count),
                             mpi_type<T>(), MPI_SUM, world_.comm(), &requests_[b]),
              "MPI_Iallreduce");
  }

  // The module's tensors may have been replaced through an accessor since the model flattened them.
  void expect_flat(const char* where) const {
    check(flat_.holds(parameters_), where,
          ": the model's parameters are no longer its flat_parameters() views (a parameter or gradient "
          "tensor was assigned through an accessor); build the reducer after such changes");
  }

  const Communicator& world_;
  nn::FlatParameters<T> flat_;  // a copy sharing the model's storage
  std::vector<nn::Parameter<T>> parameters_;
  std::vector<Bucket> buckets_;
  std::vector<MPI_Request> requests_;
  std::size_t launched_ = 0;  // buckets started in this step
};

}  // namespace resnet::distributed
