#pragma once
// Linear: y = x W^T + b, as torch.nn.Linear. In bf16 (set_precision) x, W and dY enter the products rounded
// to bfloat16, as under torch.autocast; the products accumulate in float. x and dY are rounded in the pass
// that reads them, into tensors that pass owns: backward rounds x again rather than keep forward's copy,
// which would be stale if x were written in between through a pointer that Tensor::version cannot see.

#include <cstdint>
#include <type_traits>
#include <utility>

#include "resnet/kernels/gemm.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/nn/weight_and_bias.hpp"

namespace resnet::nn {

template <typename T>
class Linear : public Module<Linear<T>, T> {
 public:
  Linear(int in_features, int out_features, bool bias = true, std::uint64_t seed = 0)
      : in_features_(in_features),
        out_features_(out_features),
        params_(checked_weight_shape(in_features, out_features), bias, seed) {}

  // PyTorch's default (Linear.reset_parameters): uniform in +-1/sqrt(in_features).
  void reset_parameters(Rng& rng) { params_.reset(rng); }

  template <typename Visitor>
  void visit(Visitor& v) {
    params_.visit(v);
  }

  // input: [N, in] -> output: [N, out]
  Tensor<T> forward(const Tensor<T>& input) {
    expect_input(input, 2, in_features_, "Linear.forward", "[N, in_features]");
    expect_state_shapes("Linear.forward");
    const std::int64_t N = input.size(0);
    Tensor<T> output({N, out_features_});
    // Like PyTorch's addmm: the bias fills the output and the GEMM adds to it.
    if (has_bias())
      output.matrix(N, out_features_).rowwise() = std::as_const(params_.bias).vector().transpose();
    params_.with_weight_operands(this->precision(), [&](const auto* weight) {
      Tensor<bfloat16> rounded_input;
      kernels::gemm(false, true, N, out_features_, in_features_, T(1), operands(input, weight, rounded_input),
                    weight, has_bias() ? T(1) : T(0), output.data());
    });
    input_ = this->is_training() ? input : Tensor<T>();
    return output;
  }

  // grad_output: [N, out] -> grad_input: [N, in], or an empty tensor with InputGrad::Skip; adds to the
  // weight and bias gradients.
  Tensor<T> backward(const Tensor<T>& grad_output, InputGrad input_grad = InputGrad::Compute) {
    expect_cached(!input_.empty(), "Linear.backward");
    const std::int64_t N = input_.size(0);
    expect_shape(grad_output, {N, out_features_}, "Linear.backward", "grad_output");
    expect_state_shapes("Linear.backward");
    const Tensor<T> input = std::exchange(input_, Tensor<T>());  // released when backward returns
    if (has_bias())
      params_.bias_grad.vector() += grad_output.matrix(N, out_features_).colwise().sum().transpose();
    Tensor<T> grad_input = input_grad == InputGrad::Skip ? Tensor<T>() : Tensor<T>(input.shape());
    params_.with_weight_operands(this->precision(), [&](const auto* weight) {
      Tensor<bfloat16> rounded_grad, rounded_input;
      const auto* dy = operands(grad_output, weight, rounded_grad);
      // dW [out, in] += dY^T [out, N] x X [N, in]
      kernels::gemm(true, false, out_features_, in_features_, N, T(1), dy,
                    operands(input, weight, rounded_input), T(1), params_.weight_grad.data());
      // dX [N, in] = dY [N, out] x W [out, in]
      if (!grad_input.empty())
        kernels::gemm(false, false, N, in_features_, out_features_, T(1), dy, weight, T(0),
                      grad_input.data());
    });
    return grad_input;
  }

  Tensor<T>& weight() { return params_.weight; }
  const Tensor<T>& weight() const { return params_.weight; }
  // An empty tensor when the module was built with bias = false.
  Tensor<T>& bias() { return params_.bias; }
  const Tensor<T>& bias() const { return params_.bias; }
  bool has_bias() const { return params_.has_bias(); }
  int in_features() const { return in_features_; }
  int out_features() const { return out_features_; }

  // Throws unless the weight and bias, assignable through the accessors above, and their gradients still
  // have the shapes this layer was built with; forward and backward check it before indexing into them.
  void expect_state_shapes(const char* where) const { params_.expect_shapes(where); }

 private:
  static std::vector<std::int64_t> checked_weight_shape(int in_features, int out_features) {
    check(in_features > 0 && out_features > 0, "Linear: features must be positive, got in_features ",
          in_features, ", out_features ", out_features);
    return {out_features, in_features};
  }

  // x as an operand of the same type as `weight`: itself, or rounded to bfloat16 into `rounded`, which the
  // caller keeps for as long as it reads the result (one pass).
  template <typename Op>
  static const Op* operands(const Tensor<T>& x, const Op*, Tensor<bfloat16>& rounded) {
    if constexpr (std::is_same_v<Op, T>) {
      return x.cdata();
    } else {
      rounded = Tensor<bfloat16>::uninitialized({x.numel()});
      convert(x.cdata(), x.numel(), rounded.data());
      return rounded.cdata();
    }
  }

  int in_features_, out_features_;
  WeightAndBias<T> params_;  // weight [out, in], bias [out] or none
  Tensor<T> input_;          // training mode: the forward input, for backward
};

}  // namespace resnet::nn
