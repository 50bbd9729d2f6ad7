#pragma once
// BatchNorm2d, as torch.nn.BatchNorm2d (affine, track_running_stats): per channel of [N, C, H, W],
//   y = (x - mean) / sqrt(var + eps) * weight + bias.
// Training mode normalises with the batch mean and BIASED variance and updates the running statistics with
//   running = (1 - momentum) * running + momentum * batch, using the UNBIASED variance (n / (n - 1));
// eval mode normalises with the running statistics and caches nothing.
// synchronize(sum_across) makes it torch.nn.SyncBatchNorm for a data-parallel run: training-mode statistics
// over the global batch (every process's input), forward and backward (distributed/sync_batchnorm.hpp).

#include <cstdint>
#include <utility>
#include <vector>

#include "resnet/kernels/batchnorm.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
class BatchNorm2d : public Module<BatchNorm2d<T>, T> {
 public:
  explicit BatchNorm2d(int num_features, double eps = 1e-5, double momentum = 0.1)
      : num_features_(num_features), eps_(eps), momentum_(momentum) {
    check(num_features > 0, "BatchNorm2d: num_features must be positive, got ", num_features);
    check(eps >= 0, "BatchNorm2d: eps must be non-negative, got ", eps);
    check(momentum >= 0 && momentum <= 1, "BatchNorm2d: momentum must be in [0, 1], got ", momentum);
    const std::vector<std::int64_t> channels{num_features};
    weight_ = Tensor<T>(channels);
    weight_grad_ = Tensor<T>(channels);
    bias_ = Tensor<T>(channels);
    bias_grad_ = Tensor<T>(channels);
    running_mean_ = Tensor<T>(channels);
    running_var_ = Tensor<T>(channels);
    num_batches_tracked_ = Tensor<T>(std::vector<std::int64_t>{});
    mean_ = Tensor<T>(channels);
    var_ = Tensor<T>(channels);
    invstd_ = Tensor<T>(channels);
    reset_parameters();
  }

  // PyTorch's BatchNorm reset_parameters: weight 1, bias 0, running mean 0, running var 1, no batches
  // tracked. BatchNorm's init draws nothing, so unlike Conv2d and Linear it needs no Rng.
  void reset_parameters() {
    weight_.fill(T(1));
    bias_.fill(T(0));
    running_mean_.fill(T(0));
    running_var_.fill(T(1));
    num_batches_tracked_.fill(T(0));
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    v.parameter("weight", weight_, weight_grad_);
    v.parameter("bias", bias_, bias_grad_);
    v.buffer("running_mean", running_mean_);
    v.buffer("running_var", running_var_);
    v.buffer("num_batches_tracked", num_batches_tracked_);
  }

  // input [N, C, H, W] -> output [N, C, H, W]; with Activation::ReLU, relu(output) in the same pass (the
  // BatchNorm + ReLU pair of ResNets), after which backward takes that ReLU's output.
  Tensor<T> forward(const Tensor<T>& input, Activation activation = Activation::None) {
    const char* where = "BatchNorm2d.forward";
    expect_input(input, 4, num_features_, where, "[N, C, H, W]");
    expect_state_shapes(where);
    const std::int64_t N = input.size(0), C = num_features_, HW = input.size(2) * input.size(3);
    const bool relu = activation == Activation::ReLU;
    auto output = Tensor<T>::uninitialized(input.shape());
    if (!this->is_training()) {
      kernels::batchnorm_invstd(running_var_.cdata(), eps_, C, invstd_.data());
      kernels::batchnorm_forward(input.data(), running_mean_.cdata(), invstd_.cdata(), weight_.cdata(),
                                 bias_.cdata(), N, C, HW, output.data(), relu);
      input_ = Tensor<T>();
      return output;
    }
    // PyTorch refuses too: the biased variance of one value is 0 and its unbiased variance undefined.
    if (N * HW <= 1)
      fail(where, ": expected more than 1 value per channel when training, got input shape ",
           shape_string(input.shape()));
    const auto count =
        kernels::batchnorm_statistics(input.data(), N, C, HW, mean_.data(), var_.data(), across_);
    kernels::batchnorm_invstd(var_.cdata(), eps_, C, invstd_.data());
    kernels::batchnorm_forward(input.data(), mean_.cdata(), invstd_.cdata(), weight_.cdata(), bias_.cdata(),
                               N, C, HW, output.data(), relu);
    update_running_stats(count);
    input_ = input;
    return output;
  }

  // grad_output [N, C, H, W] -> grad_input [N, C, H, W]; adds to the weight and bias gradients.
  // relu_output: the output of a ReLU after this layer (its own, after forward with Activation::ReLU, or one
  // after a residual add, relu(bn(x) + r) for an r that does not depend on x): grad_output is masked by
  // relu_output > 0 on the fly instead of in a pass of its own. Empty: no ReLU.
  Tensor<T> backward(const Tensor<T>& grad_output, const Tensor<T>& relu_output = Tensor<T>()) {
    const char* where = "BatchNorm2d.backward";
    expect_cached(!input_.empty(), where);
    expect_shape(grad_output, input_.shape(), where, "grad_output");
    if (!relu_output.empty()) expect_shape(relu_output, input_.shape(), where, "relu_output");
    expect_state_shapes(where);
    const Tensor<T> input = std::exchange(input_, Tensor<T>());  // released when backward returns
    auto grad_input = Tensor<T>::uninitialized(input.shape());
    kernels::batchnorm_backward(input.data(), grad_output.data(), mean_.cdata(), invstd_.cdata(),
                                weight_.cdata(), input.size(0), num_features_, input.size(2) * input.size(3),
                                grad_input.data(), weight_grad_.data(), bias_grad_.data(),
                                relu_output.empty() ? nullptr : relu_output.data(), across_);
    return grad_input;
  }

  Tensor<T>& weight() { return weight_; }
  const Tensor<T>& weight() const { return weight_; }
  Tensor<T>& bias() { return bias_; }
  const Tensor<T>& bias() const { return bias_; }
  Tensor<T>& running_mean() { return running_mean_; }
  const Tensor<T>& running_mean() const { return running_mean_; }
  Tensor<T>& running_var() { return running_var_; }
  const Tensor<T>& running_var() const { return running_var_; }
  Tensor<T>& num_batches_tracked() { return num_batches_tracked_; }
  const Tensor<T>& num_batches_tracked() const { return num_batches_tracked_; }
  // Training-mode statistics summed over the processes by `sum_across` (empty: this process's alone), as
  // torch.nn.SyncBatchNorm; every process must then run each forward and backward together.
  void synchronize(kernels::SumAcross<T> sum_across) { across_ = std::move(sum_across); }
  bool is_synchronized() const { return static_cast<bool>(across_); }
  int num_features() const { return num_features_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }

  // Throws unless the parameters and buffers, assignable through the accessors above, and the gradients
  // are still [C]; forward and backward check it before indexing into them.
  void expect_state_shapes(const char* where) const {
    const std::vector<std::int64_t> channels{num_features_};
    for (const auto& [name, tensor] : {std::pair{"weight", &weight_},
                                       {"weight gradient", &weight_grad_},
                                       {"bias", &bias_},
                                       {"bias gradient", &bias_grad_},
                                       {"running_mean", &running_mean_},
                                       {"running_var", &running_var_}})
      expect_shape(*tensor, channels, where, name);
  }

  // relu(forward(x)) once more for the x of the last training-mode forward, with that forward's batch
  // statistics and the running statistics left alone: bitwise what forward(x, Activation::ReLU) returned,
  // for an owner (ConvBn, PreActBlock) that recomputes the output at backward rather than hold it.
  Tensor<T> relu_output_again() const {
    expect_cached(!input_.empty(), "BatchNorm2d.backward");
    expect_state_shapes("BatchNorm2d.backward");
    auto output = Tensor<T>::uninitialized(input_.shape());
    kernels::batchnorm_forward(input_.data(), mean_.cdata(), invstd_.cdata(), weight_.cdata(), bias_.cdata(),
                               input_.size(0), num_features_, input_.size(2) * input_.size(3), output.data(),
                               true);
    return output;
  }

 private:
  // From mean_ and var_ (biased) of a batch with `count` values per channel.
  void update_running_stats(kernels::BatchNormAcc<T> count) {
    using Acc = kernels::BatchNormAcc<T>;
    const Acc m = momentum_, unbiased = count / (count - 1);
    for (std::int64_t c = 0; c < num_features_; ++c) {
      running_mean_[c] = static_cast<T>((1 - m) * running_mean_[c] + m * mean_[c]);
      running_var_[c] = static_cast<T>((1 - m) * running_var_[c] + m * (var_[c] * unbiased));
    }
    num_batches_tracked_[0] += T(1);
  }

  int num_features_;
  double eps_, momentum_;
  Tensor<T> weight_, weight_grad_;        // [C]
  Tensor<T> bias_, bias_grad_;            // [C]
  Tensor<T> running_mean_, running_var_;  // [C]
  Tensor<T> num_batches_tracked_;         // shape {}: training-mode forwards so far
  Tensor<T> mean_, var_, invstd_;         // [C]: the statistics the last forward normalised with
  Tensor<T> input_;                       // training mode: the forward input, for backward
  kernels::SumAcross<T> across_;          // synchronized: sums the statistics over the processes
};

}  // namespace resnet::nn
