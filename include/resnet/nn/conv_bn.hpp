#pragma once
// ConvBn: Conv2d -> BatchNorm2d -> optional ReLU, the unit every ResNet stem, block branch and downsample
// shortcut is made of, and the one place that owns their fused paths:
//   training: BatchNorm and ReLU in one pass, and the ReLU's mask applied inside BatchNorm's backward;
//   eval: the conv applies the BatchNorm (running statistics) and the ReLU as it stores each output, so the
//   three layers cost one pass over memory.
// It is not a module of its own: its owner names the conv and the BatchNorm in its visit() with
// torchvision's names ("conv1"/"bn1", "downsample.0"/"downsample.1"), so state dicts are unchanged, and
// train()/eval() reach both through them.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "resnet/kernels/batchnorm.hpp"
#include "resnet/kernels/conv_epilogue.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
class ConvBn {
 public:
  // The BatchNorm has the conv's out_channels features, PyTorch's eps and momentum.
  ConvBn(const Conv2dOptions& conv, Activation activation)
      : conv_(conv), bn_(conv.out_channels()), activation_(activation) {}

  template <typename Visitor>
  void visit(Visitor& v, const std::string& conv_name, const std::string& bn_name) {
    v.child(conv_name, conv_);
    v.child(bn_name, bn_);
  }

  // [N, C, H, W] -> [N, O, OH, OW]. Training mode: the conv and the BatchNorm cache their inputs, and the
  // unit's output is not kept (output_again() recomputes it). Cache::None: the conv keeps nothing either,
  // and backward is given the input.
  Tensor<T> forward(const Tensor<T>& input, Cache cache = Cache::Input) {
    if (!conv_.is_training() && !bn_.is_training()) return conv_.forward(input, eval_epilogue());
    return bn_.forward(conv_.forward(input, {}, cache), activation_);
  }

  // The output of the last training-mode forward once more, bitwise, from what the BatchNorm cached (one
  // elementwise pass): for an owner that needs it at backward time but would rather not hold it.
  Tensor<T> output_again() const {
    check(activation_ == Activation::ReLU,
          "ConvBn.output_again: only a unit with a ReLU recomputes its output");
    return bn_.relu_output_again();
  }

  // grad_output [N, O, OH, OW] -> grad_input [N, C, H, W], or an empty tensor with InputGrad::Skip; adds to
  // the conv's and the BatchNorm's gradients.
  // relu_output: the output of the ReLU that grad_output came through: this unit's own (empty: recomputed),
  // or, for a unit without one, a ReLU after a residual add (empty: none). input: the forward's input, after
  // a forward with Cache::None. Taken by value, so that each is released as soon as it has been used.
  Tensor<T> backward(Tensor<T> grad_output, Tensor<T> relu_output = Tensor<T>(),
                     InputGrad input_grad = InputGrad::Compute, const Tensor<T>& input = Tensor<T>()) {
    if (activation_ == Activation::ReLU && relu_output.empty()) relu_output = bn_.relu_output_again();
    Tensor<T> grad =
        bn_.backward(std::exchange(grad_output, Tensor<T>()), std::exchange(relu_output, Tensor<T>()));
    return conv_.backward(grad, input_grad, input);
  }

  Conv2d<T>& conv() { return conv_; }
  const Conv2d<T>& conv() const { return conv_; }
  BatchNorm2d<T>& bn() { return bn_; }
  const BatchNorm2d<T>& bn() const { return bn_; }
  Activation activation() const { return activation_; }

 private:
  // The BatchNorm's eval-mode forward (and the ReLU) as the conv's epilogue: s = gamma / sqrt(running_var +
  // eps), t = beta - running_mean * s, the scale and shift its own eval forward computes.
  kernels::ConvEpilogue<T> eval_epilogue() {
    bn_.expect_state_shapes("ConvBn.forward");
    const int C = bn_.num_features();
    const auto channels = static_cast<std::size_t>(C);
    invstd_.resize(channels);
    scale_.resize(channels);
    shift_.resize(channels);
    kernels::batchnorm_invstd(bn_.running_var().cdata(), bn_.eps(), C, invstd_.data());
    for (int c = 0; c < C; ++c)
      kernels::batchnorm_scale_shift(bn_.running_mean().cdata(), invstd_.data(), bn_.weight().cdata(),
                                     bn_.bias().cdata(), c, scale_[c], shift_[c]);
    return {scale_.data(), shift_.data(), activation_ == Activation::ReLU, C};
  }

  Conv2d<T> conv_;
  BatchNorm2d<T> bn_;
  Activation activation_;
  std::vector<T> invstd_, scale_, shift_;  // eval mode: the epilogue's, rebuilt at each forward
};

}  // namespace resnet::nn
