#pragma once
// The end of a post-activation residual block (BasicBlock, Bottleneck): out = relu(residual + shortcut(x)),
// where the shortcut is the identity, or a 1x1 conv (stride, no bias) + BatchNorm named "downsample.0" /
// "downsample.1" (torchvision's names) when the stride is not 1 or the channel count changes. The add and the
// ReLU are one pass; in training mode the output is kept, since the ReLU's mask is what backward needs.
//
// A block's backward runs it in three steps around its own branch, so that each tensor is freed as early as
// the branch allows: output_for_backward (the kept output, checked against grad_output), then, once the
// branch's last unit has used the output, projection_backward, and at the end add_input_grad.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "resnet/kernels/elementwise.hpp"
#include "resnet/nn/conv_bn.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::models {

template <typename T>
class Shortcut {
 public:
  // seed: the projection conv's initial weights (Conv2dOptions::seed).
  Shortcut(int in_channels, int out_channels, int stride, std::uint64_t seed = 0) {
    if (stride != 1 || in_channels != out_channels)
      projection_.emplace(
          nn::Conv2dOptions(in_channels, out_channels, 1).stride(stride).bias(false).seed(seed),
          nn::Activation::None);
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    if (projection_) projection_->visit(v, "downsample.0", "downsample.1");
  }

  bool has_projection() const { return projection_.has_value(); }
  void fold_batchnorm() {
    if (projection_) projection_->fold_batchnorm();
  }
  // The projection's conv and BatchNorm, for a block that has one; `where` names the accessor in the error.
  nn::ConvBn<T>& projection(const std::string& where) {
    check(has_projection(), where, ": this block's shortcut is the identity");
    return *projection_;
  }

  // relu(residual + shortcut(input)); in training mode kept for backward. `block` names the caller in errors.
  Tensor<T> forward(const Tensor<T>& residual, const Tensor<T>& input, bool training, const char* block) {
    const Tensor<T> shortcut = projection_ ? projection_->forward(input) : input;
    if (shortcut.shape() != residual.shape())
      fail(block, ".forward: shortcut ", shape_string(shortcut.shape()), " and residual ",
           shape_string(residual.shape()), " differ");
    auto output = Tensor<T>::uninitialized(residual.shape());
    kernels::add_relu(residual.data(), shortcut.data(), output.data(), output.numel());
    output_ = training ? output : Tensor<T>();
    return output;
  }

  // The output kept by the last training-mode forward (the final ReLU's output), released here: one backward.
  Tensor<T> output_for_backward(const Tensor<T>& grad_output, const std::string& block) {
    nn::expect_cached(!output_.empty(), (block + ".backward").c_str());
    nn::expect_shape(grad_output, output_.shape(), (block + ".backward").c_str(), "grad_output");
    return std::exchange(output_, Tensor<T>());
  }

  // The projection's input gradient from grad_output and the final ReLU's output (whose mask its BatchNorm
  // backward applies); empty for the identity.
  Tensor<T> projection_backward(const Tensor<T>& grad_output, Tensor<T> output) {
    if (!projection_) return Tensor<T>();
    return projection_->backward(grad_output, std::move(output));
  }

  // grad, the residual branch's input gradient, plus the shortcut's: the projection's (grad_projection), or,
  // for the identity, grad_output through the final ReLU (output's mask).
  void add_input_grad(Tensor<T>& grad, const Tensor<T>& grad_projection, const Tensor<T>& output,
                      const Tensor<T>& grad_output) const {
    if (projection_) {
      kernels::add(grad.data(), grad_projection.data(), grad.data(), grad.numel());
    } else {
      kernels::add_relu_backward(output.data(), grad_output.data(), grad.data(), grad.numel());
    }
  }

 private:
  std::optional<nn::ConvBn<T>> projection_;  // the 1x1 conv and BatchNorm, or the identity
  Tensor<T> output_;                         // training mode: the block's output, the final ReLU's output
};

}  // namespace resnet::models
