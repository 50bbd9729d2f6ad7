#pragma once
// ConvBn: Conv2d -> BatchNorm2d -> optional ReLU, the unit every ResNet stem, block branch and downsample
// shortcut is made of, and the one place that owns their fused paths:
//   training: BatchNorm and ReLU in one pass, and the ReLU's mask applied inside BatchNorm's backward;
//   eval: the conv applies the BatchNorm (running statistics) and the ReLU as it stores each output, so the
//   three layers cost one pass over memory;
//   folded (fold_batchnorm(), the inference lowering): the BatchNorm folded into the conv's weight and a
//   bias, and gone from the unit, which is then inference-only.
// It is not a module of its own: its owner names the conv and the BatchNorm in its visit() with
// torchvision's names ("conv1"/"bn1", "downsample.0"/"downsample.1"), so state dicts are unchanged, and
// train()/eval() reach both through them.

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resnet/kernels/batchnorm.hpp"
#include "resnet/kernels/conv_epilogue.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

// conv followed by eval-mode bn -> one conv with a bias, in eval mode. Eval-mode BatchNorm after a conv with
// weight W [O, C, k, k] and bias b (0 without one):
//   BN(conv(x))[o] = s[o] * (W[o] * x + b[o] - running_mean[o]) + beta[o],  s = gamma / sqrt(running_var +
//   eps)
// is the conv with W'[o] = s[o] * W[o] and b'[o] = s[o] * (b[o] - running_mean[o]) + beta[o]. Both are
// computed in double and rounded once to T, so the folded outputs differ from the eval-mode ones by rounding
// only.
template <typename T>
Conv2d<T> fold_conv_batchnorm(const Conv2d<T>& conv, const BatchNorm2d<T>& bn) {
  check(bn.num_features() == conv.out_channels(), "fold_conv_batchnorm: BatchNorm2d has ", bn.num_features(),
        " features, the conv before it ", conv.out_channels(), " output channels");
  Conv2d<T> folded(conv.options().bias(true));
  conv.expect_state_shapes("fold_conv_batchnorm");  // the loops below index by the configured sizes
  bn.expect_state_shapes("fold_conv_batchnorm");
  const std::int64_t O = conv.out_channels(), per_output = conv.weight().numel() / O;
  const T* w = conv.weight().cdata();
  T* folded_w = folded.weight().data();
  for (std::int64_t o = 0; o < O; ++o) {
    const double scale = static_cast<double>(bn.weight().cdata()[o]) /
                         std::sqrt(static_cast<double>(bn.running_var().cdata()[o]) + bn.eps());
    for (std::int64_t j = 0; j < per_output; ++j)
      folded_w[o * per_output + j] = static_cast<T>(scale * static_cast<double>(w[o * per_output + j]));
    const double b = conv.has_bias() ? static_cast<double>(conv.bias().cdata()[o]) : 0.0;
    folded.bias().data()[o] = static_cast<T>(scale * (b - static_cast<double>(bn.running_mean().cdata()[o])) +
                                             static_cast<double>(bn.bias().cdata()[o]));
  }
  folded.set_precision(conv.precision());
  folded.eval();
  return folded;
}

template <typename T>
class ConvBn {
 public:
  // The BatchNorm has the conv's out_channels features, PyTorch's eps and momentum.
  ConvBn(const Conv2dOptions& conv, Activation activation)
      : conv_(conv), bn_(conv.out_channels()), activation_(activation) {}

  template <typename Visitor>
  void visit(Visitor& v, const std::string& conv_name, const std::string& bn_name) {
    v.child(conv_name, conv_);
    if (bn_) v.child(bn_name, *bn_);
  }

  // The inference lowering: the BatchNorm, in its eval-mode form (running statistics, whatever the mode),
  // folded into the conv (fold_conv_batchnorm) and removed, so that the unit's state is the conv's weight
  // and bias alone and its forward one conv with a bias (and the ReLU) as it stores. Inference-only from
  // then on; a second fold does nothing.
  void fold_batchnorm() {
    if (!bn_) return;
    conv_ = fold_conv_batchnorm(conv_, *bn_);
    bn_.reset();
  }
  bool is_folded() const { return !bn_; }

  // [N, C, H, W] -> [N, O, OH, OW]. Training mode: the conv and the BatchNorm cache their inputs, and the
  // unit's output is not kept (output_again() recomputes it). Cache::None: the conv keeps nothing either,
  // and backward is given the input.
  Tensor<T> forward(const Tensor<T>& input, Cache cache = Cache::Input) {
    if (!bn_) {
      expect_inference("forward");
      return conv_.forward(input, {nullptr, nullptr, activation_ == Activation::ReLU, 0});
    }
    if (!conv_.is_training() && !bn_->is_training()) return conv_.forward(input, eval_epilogue());
    return bn_->forward(conv_.forward(input, {}, cache), activation_);
  }

  // The output of the last training-mode forward once more, bitwise, from what the BatchNorm cached (one
  // elementwise pass): for an owner that needs it at backward time but would rather not hold it.
  Tensor<T> output_again() const {
    check(activation_ == Activation::ReLU,
          "ConvBn.output_again: only a unit with a ReLU recomputes its output");
    return bn("output_again").relu_output_again();
  }

  // grad_output [N, O, OH, OW] -> grad_input [N, C, H, W], or an empty tensor with InputGrad::Skip; adds to
  // the conv's and the BatchNorm's gradients.
  // relu_output: the output of the ReLU that grad_output came through: this unit's own (empty: recomputed),
  // or, for a unit without one, a ReLU after a residual add (empty: none). input: the forward's input, after
  // a forward with Cache::None. Taken by value, so that each is released as soon as it has been used.
  Tensor<T> backward(Tensor<T> grad_output, Tensor<T> relu_output = Tensor<T>(),
                     InputGrad input_grad = InputGrad::Compute, const Tensor<T>& input = Tensor<T>()) {
    BatchNorm2d<T>& norm = bn("backward");
    if (activation_ == Activation::ReLU && relu_output.empty()) relu_output = norm.relu_output_again();
    Tensor<T> grad =
        norm.backward(std::exchange(grad_output, Tensor<T>()), std::exchange(relu_output, Tensor<T>()));
    return conv_.backward(grad, input_grad, input);
  }

  Conv2d<T>& conv() { return conv_; }
  const Conv2d<T>& conv() const { return conv_; }
  // The BatchNorm; not after fold_batchnorm().
  BatchNorm2d<T>& bn() { return bn("bn"); }
  const BatchNorm2d<T>& bn() const { return bn("bn"); }
  Activation activation() const { return activation_; }

 private:
  const BatchNorm2d<T>& bn(const char* where) const {
    check(bn_.has_value(), "ConvBn.", where, ": the BatchNorm is folded into the conv");
    return *bn_;
  }
  BatchNorm2d<T>& bn(const char* where) {
    return const_cast<BatchNorm2d<T>&>(std::as_const(*this).bn(where));
  }
  void expect_inference(const char* where) const {
    check(!conv_.is_training(), "ConvBn.", where,
          ": the BatchNorm is folded into the conv (fold_batchnorm), so the unit is inference-only; call "
          "eval()");
  }

  // The BatchNorm's eval-mode forward (and the ReLU) as the conv's epilogue: s = gamma / sqrt(running_var +
  // eps), t = beta - running_mean * s, the scale and shift its own eval forward computes.
  kernels::ConvEpilogue<T> eval_epilogue() {
    const BatchNorm2d<T>& norm = *bn_;
    norm.expect_state_shapes("ConvBn.forward");
    const int C = norm.num_features();
    const auto channels = static_cast<std::size_t>(C);
    invstd_.resize(channels);
    scale_.resize(channels);
    shift_.resize(channels);
    kernels::batchnorm_invstd(norm.running_var().cdata(), norm.eps(), C, invstd_.data());
    for (int c = 0; c < C; ++c)
      kernels::batchnorm_scale_shift(norm.running_mean().cdata(), invstd_.data(), norm.weight().cdata(),
                                     norm.bias().cdata(), c, scale_[c], shift_[c]);
    return {scale_.data(), shift_.data(), activation_ == Activation::ReLU, C};
  }

  Conv2d<T> conv_;
  std::optional<BatchNorm2d<T>> bn_;  // none once folded into conv_
  Activation activation_;
  std::vector<T> invstd_, scale_, shift_;  // eval mode: the epilogue's, rebuilt at each forward
};

}  // namespace resnet::nn
