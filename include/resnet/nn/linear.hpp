#pragma once
// Linear: y = x W^T + b, as torch.nn.Linear.

#include <cmath>
#include <cstdint>

#include "resnet/core/rng.hpp"
#include "resnet/kernels/gemm.hpp"
#include "resnet/nn/init.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
class Linear : public Module<Linear<T>, T> {
 public:
  Linear(int in_features, int out_features, bool bias = true, std::uint64_t seed = 0)
      : in_features_(in_features), out_features_(out_features) {
    check(in_features > 0 && out_features > 0, "Linear: features must be positive, got in_features ",
          in_features, ", out_features ", out_features);
    weight_ = Tensor<T>({out_features, in_features});
    weight_grad_ = Tensor<T>(weight_.shape());
    if (bias) {
      bias_ = Tensor<T>({out_features});
      bias_grad_ = Tensor<T>(bias_.shape());
    }
    Rng rng(seed);
    reset_parameters(rng);
  }

  // PyTorch's default (Linear.reset_parameters): weight and bias uniform in +-1/sqrt(in_features).
  void reset_parameters(Rng& rng) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in(weight_)));
    init::uniform(weight_, rng, bound);
    if (has_bias()) init::uniform(bias_, rng, bound);
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    v.parameter("weight", weight_, weight_grad_);
    if (has_bias()) v.parameter("bias", bias_, bias_grad_);
  }

  // input: [N, in] -> output: [N, out]
  Tensor<T> forward(const Tensor<T>& input) {
    expect_rank(input, 2, "Linear.forward", "[N, in_features]");
    check(input.size(1) == in_features_, "Linear.forward: input has ", input.size(1), " features, expected ",
          in_features_, " (input shape ", shape_string(input.shape()), ")");
    check(input.size(0) > 0, "Linear.forward: empty batch (input shape ", shape_string(input.shape()), ")");
    const std::int64_t N = input.size(0);
    Tensor<T> output({N, out_features_});
    // Like PyTorch's addmm: the bias fills the output and the GEMM adds to it.
    if (has_bias()) output.matrix(N, out_features_).rowwise() = bias_.vector().transpose();
    kernels::gemm(false, true, N, out_features_, in_features_, T(1), input.data(), weight_.data(),
                  has_bias() ? T(1) : T(0), output.data());
    input_ = this->is_training() ? input : Tensor<T>();
    return output;
  }

  // grad_output: [N, out] -> grad_input: [N, in]; adds to the weight and bias gradients.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    expect_cached(!input_.empty(), "Linear.backward");
    const std::int64_t N = input_.size(0);
    expect_shape(grad_output, {N, out_features_}, "Linear.backward", "grad_output");
    // dW [out, in] += dY^T [out, N] x X [N, in]
    kernels::gemm(true, false, out_features_, in_features_, N, T(1), grad_output.data(), input_.data(), T(1),
                  weight_grad_.data());
    if (has_bias()) bias_grad_.vector() += grad_output.matrix(N, out_features_).colwise().sum().transpose();
    // dX [N, in] = dY [N, out] x W [out, in]
    Tensor<T> grad_input(input_.shape());
    kernels::gemm(false, false, N, in_features_, out_features_, T(1), grad_output.data(), weight_.data(),
                  T(0), grad_input.data());
    return grad_input;
  }

  Tensor<T>& weight() { return weight_; }
  const Tensor<T>& weight() const { return weight_; }
  // An empty tensor when the module was built with bias = false.
  Tensor<T>& bias() { return bias_; }
  const Tensor<T>& bias() const { return bias_; }
  bool has_bias() const { return !bias_.empty(); }
  int in_features() const { return in_features_; }
  int out_features() const { return out_features_; }

 private:
  int in_features_, out_features_;
  Tensor<T> weight_, weight_grad_;  // [out, in]
  Tensor<T> bias_, bias_grad_;      // [out], or empty without bias
  Tensor<T> input_;                 // training mode: the forward input, for backward
};

}  // namespace resnet::nn
