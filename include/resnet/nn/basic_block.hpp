#pragma once
// BasicBlock, as torchvision.models.resnet.BasicBlock (expansion 1):
//   out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// conv1 is 3x3 with the block's stride, conv2 3x3 stride 1, both without bias. The shortcut is the identity,
// or a 1x1 conv (stride, no bias) + BatchNorm named "downsample.0"/"downsample.1" when the stride is not 1 or
// the channel count changes, so torchvision state dicts load unchanged.
// The two ReLUs are fused into the passes around them (bn1 + ReLU; residual add + ReLU; their backward masks
// applied inside the BatchNorm backward passes), which saves five full passes over the activations and four
// activation-sized tensors per block and step. They have no parameters, so no state-dict name changes.

#include <cstdint>
#include <optional>
#include <utility>

#include "resnet/kernels/elementwise.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
class BasicBlock : public Module<BasicBlock<T>, T> {
 public:
  BasicBlock(int in_channels, int out_channels, int stride = 1, std::uint64_t seed = 0)
      : conv1_(in_channels, out_channels, 3, stride, 1, false, seed),
        bn1_(out_channels),
        conv2_(out_channels, out_channels, 3, 1, 1, false, seed + 1),
        bn2_(out_channels) {
    if (stride != 1 || in_channels != out_channels) {
      downsample_conv_.emplace(in_channels, out_channels, 1, stride, 0, false, seed + 2);
      downsample_bn_.emplace(out_channels);
    }
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    v.child("conv1", conv1_);
    v.child("bn1", bn1_);
    v.child("conv2", conv2_);
    v.child("bn2", bn2_);
    if (has_downsample()) {
      v.child("downsample.0", *downsample_conv_);
      v.child("downsample.1", *downsample_bn_);
    }
  }

  bool has_downsample() const { return downsample_conv_.has_value(); }

  // [N, in, H, W] -> [N, out, H', W'] with H' = (H - 1) / stride + 1.
  Tensor<T> forward(const Tensor<T>& input) {
    expect_input(input, 4, conv1_.in_channels(), "BasicBlock.forward", "[N, C, H, W]");
    const bool training = this->is_training();
    // In eval mode each conv applies the BatchNorm after it (and bn1's ReLU) as it stores its output: the
    // values of the module-by-module path, without three passes over memory.
    // In training, conv2's input (bn1's ReLU output) is not kept: backward recomputes it from bn1's input,
    // one elementwise pass instead of an activation-sized tensor per block held from forward to backward.
    const Tensor<T> hidden =
        training ? bn1_.forward_relu(conv1_.forward(input)) : conv1_.forward(input, bn1_.eval_epilogue(true));
    const Tensor<T> residual = training ? bn2_.forward(conv2_.forward_uncached(hidden))
                                        : conv2_.forward(hidden, bn2_.eval_epilogue(false));
    Tensor<T> shortcut = input;
    if (has_downsample()) {
      shortcut = training ? downsample_bn_->forward(downsample_conv_->forward(input))
                          : downsample_conv_->forward(input, downsample_bn_->eval_epilogue(false));
    }
    check(shortcut.shape() == residual.shape(), "BasicBlock.forward: shortcut ",
          shape_string(shortcut.shape()), " and residual ", shape_string(residual.shape()), " differ");
    auto output = Tensor<T>::uninitialized(residual.shape());
    kernels::add_relu(residual.data(), shortcut.data(), output.data(), output.numel());
    output_ = training ? output : Tensor<T>();  // the second ReLU's mask, for backward
    return output;
  }

  // The add sends the gradient that passed the final ReLU unchanged to both branches; their input gradients
  // add up. Gradients a module returns are never kept by it, so the sum may be written into grad_input.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    expect_cached(!output_.empty(), "BasicBlock.backward");
    expect_shape(grad_output, output_.shape(), "BasicBlock.backward", "grad_output");
    // One statement per step, so that each gradient is freed as soon as the next one exists: at most two
    // activation-sized gradients are alive at once (plus the shortcut's), and the pool keeps no more blocks
    // of this size than that.
    Tensor<T> output = std::exchange(output_, Tensor<T>());
    Tensor<T> grad = bn2_.backward_relu(grad_output, output);
    Tensor<T> grad_shortcut;
    if (has_downsample()) {
      grad_shortcut = downsample_bn_->backward_relu(grad_output, output);
      output = Tensor<T>();
      grad_shortcut = downsample_conv_->backward(grad_shortcut);
    }
    Tensor<T> hidden = bn1_.forward_relu_again();  // conv2's input and the first ReLU's mask
    grad = conv2_.backward(grad, hidden);
    grad = bn1_.backward_relu(grad, hidden);
    hidden = Tensor<T>();
    grad = conv1_.backward(grad);
    if (has_downsample()) {
      kernels::add(grad.data(), grad_shortcut.data(), grad.data(), grad.numel());
    } else {
      kernels::add_relu_backward(output.data(), grad_output.data(), grad.data(), grad.numel());
    }
    return grad;
  }

  Conv2d<T>& conv1() { return conv1_; }
  BatchNorm2d<T>& bn1() { return bn1_; }
  Conv2d<T>& conv2() { return conv2_; }
  BatchNorm2d<T>& bn2() { return bn2_; }
  // The shortcut's conv and BatchNorm; only for a block that has them (has_downsample()).
  Conv2d<T>& downsample_conv() {
    check(has_downsample(), "BasicBlock.downsample_conv: this block's shortcut is the identity");
    return *downsample_conv_;
  }
  BatchNorm2d<T>& downsample_bn() {
    check(has_downsample(), "BasicBlock.downsample_bn: this block's shortcut is the identity");
    return *downsample_bn_;
  }

 private:
  Conv2d<T> conv1_;
  BatchNorm2d<T> bn1_;
  Conv2d<T> conv2_;
  BatchNorm2d<T> bn2_;
  std::optional<Conv2d<T>> downsample_conv_;
  std::optional<BatchNorm2d<T>> downsample_bn_;
  Tensor<T> output_;  // training mode: the block's output, the second ReLU's output
};

}  // namespace resnet::nn
