#pragma once
// Synchronized BatchNorm, as torch.nn.SyncBatchNorm.convert_sync_batchnorm: every BatchNorm2d of a model
// computes its training-mode statistics over the global batch (each rank's share together) by summing its
// per-channel sums over the ranks, forward (sum x, sum (x - mean)^2 and the count) and backward (sum dy and
// sum dy * (x - mean)). Then N ranks train as one process with the whole batch would, to rounding; without
// it each rank normalises with its own share's statistics, as DDP does by default. Eval mode is unchanged
// (the running statistics, which every rank updates alike).
//
//   distributed::synchronize_batchnorm(world, net);   // after building the model, before training
//
// Every rank must then run each training-mode forward and backward, in the same order, since each
// BatchNorm's sums are a collective call.

#include <string>
#include <type_traits>

#include "resnet/distributed/communicator.hpp"
#include "resnet/nn/batchnorm2d.hpp"

namespace resnet::distributed {

namespace detail {
template <typename T>
struct BatchNormSynchronizer {
  kernels::SumAcross<T> across;
  std::int64_t count = 0;
  void parameter(const std::string&, Tensor<T>&, Tensor<T>&) {}
  void buffer(const std::string&, Tensor<T>&) {}
  template <typename Child>
  void child(const std::string&, Child& module) {
    if constexpr (std::is_same_v<Child, nn::BatchNorm2d<T>>) {
      module.synchronize(across);
      ++count;
    } else {
      module.visit(*this);
    }
  }
};
}  // namespace detail

// Synchronizes every BatchNorm2d of `module` (or `module` itself, if it is one) over the ranks of `world`,
// which must outlive it; returns how many there are.
template <typename Module>
std::int64_t synchronize_batchnorm(const Communicator& world, Module& module) {
  using T = typename Module::Scalar;
  detail::BatchNormSynchronizer<T> synchronizer{
      [&world](kernels::BatchNormAcc<T>* values, std::int64_t count) { world.allreduce_sum(values, count); }};
  synchronizer.child("", module);  // `module` itself may be a BatchNorm2d
  return synchronizer.count;
}

}  // namespace resnet::distributed
