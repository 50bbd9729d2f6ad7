#pragma once
// BasicBlock, as torchvision.models.resnet.BasicBlock (expansion 1):
//   out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// conv1 is 3x3 with the block's stride, conv2 3x3 stride 1, both without bias. The shortcut is the identity,
// or a 1x1 conv (stride, no bias) + BatchNorm named "downsample.0"/"downsample.1" when the stride is not 1 or
// the channel count changes, so torchvision state dicts load unchanged.
// The block is three ConvBn units (nn/conv_bn.hpp), which fuse the BatchNorms and the first ReLU into the
// passes around them; the residual add and the second ReLU are one pass, whose mask the BatchNorm backward
// passes apply. The ReLUs have no parameters, so no state-dict name changes.

#include <cstdint>
#include <optional>
#include <utility>

#include "resnet/kernels/elementwise.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/conv_bn.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
class BasicBlock : public Module<BasicBlock<T>, T> {
 public:
  BasicBlock(int in_channels, int out_channels, int stride = 1, std::uint64_t seed = 0)
      : branch1_(Conv2dOptions(in_channels, out_channels, 3).stride(stride).padding(1).bias(false).seed(seed),
                 Activation::ReLU),
        branch2_(Conv2dOptions(out_channels, out_channels, 3).padding(1).bias(false).seed(seed + 1),
                 Activation::None) {
    if (stride != 1 || in_channels != out_channels)
      downsample_.emplace(
          Conv2dOptions(in_channels, out_channels, 1).stride(stride).bias(false).seed(seed + 2),
          Activation::None);
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    branch1_.visit(v, "conv1", "bn1");
    branch2_.visit(v, "conv2", "bn2");
    if (downsample_) downsample_->visit(v, "downsample.0", "downsample.1");
  }

  bool has_downsample() const { return downsample_.has_value(); }

  // [N, in, H, W] -> [N, out, H', W'] with H' = (H - 1) / stride + 1.
  Tensor<T> forward(const Tensor<T>& input) {
    expect_input(input, 4, conv1().in_channels(), "BasicBlock.forward", "[N, C, H, W]");
    // conv2's input, relu(bn1(conv1(x))), is not kept: backward recomputes it from bn1's cache, one
    // elementwise pass instead of an activation-sized tensor per block held from forward to backward.
    const Tensor<T> residual = branch2_.forward(branch1_.forward(input), Cache::None);
    const Tensor<T> shortcut = downsample_ ? downsample_->forward(input) : input;
    check(shortcut.shape() == residual.shape(), "BasicBlock.forward: shortcut ",
          shape_string(shortcut.shape()), " and residual ", shape_string(residual.shape()), " differ");
    auto output = Tensor<T>::uninitialized(residual.shape());
    kernels::add_relu(residual.data(), shortcut.data(), output.data(), output.numel());
    output_ = this->is_training() ? output : Tensor<T>();  // the second ReLU's mask, for backward
    return output;
  }

  // The add sends the gradient that passed the final ReLU to both branches (each unit's BatchNorm backward
  // applies that ReLU's mask); their input gradients add up. Gradients a module returns are never kept by
  // it, so the sum may be written into grad.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    expect_cached(!output_.empty(), "BasicBlock.backward");
    expect_shape(grad_output, output_.shape(), "BasicBlock.backward", "grad_output");
    // One statement per step, so that each tensor is freed as soon as the next one exists: at most two
    // activation-sized gradients are alive at once (plus the shortcut's), and the pool keeps no more blocks
    // of this size than that.
    Tensor<T> output = std::exchange(output_, Tensor<T>());
    Tensor<T> hidden = branch1_.output_again();  // conv2's input and the first ReLU's mask
    Tensor<T> grad = branch2_.backward(grad_output, output, InputGrad::Compute, hidden);
    Tensor<T> grad_shortcut;
    if (downsample_) {
      grad_shortcut = downsample_->backward(grad_output, std::exchange(output, Tensor<T>()));
    }
    grad = branch1_.backward(std::move(grad), std::exchange(hidden, Tensor<T>()));
    if (downsample_) {
      kernels::add(grad.data(), grad_shortcut.data(), grad.data(), grad.numel());
    } else {
      kernels::add_relu_backward(output.data(), grad_output.data(), grad.data(), grad.numel());
    }
    return grad;
  }

  Conv2d<T>& conv1() { return branch1_.conv(); }
  BatchNorm2d<T>& bn1() { return branch1_.bn(); }
  Conv2d<T>& conv2() { return branch2_.conv(); }
  BatchNorm2d<T>& bn2() { return branch2_.bn(); }
  // The shortcut's conv and BatchNorm; only for a block that has them (has_downsample()).
  Conv2d<T>& downsample_conv() { return downsample("downsample_conv").conv(); }
  BatchNorm2d<T>& downsample_bn() { return downsample("downsample_bn").bn(); }

 private:
  ConvBn<T>& downsample(const char* accessor) {
    check(has_downsample(), "BasicBlock.", accessor, ": this block's shortcut is the identity");
    return *downsample_;
  }

  ConvBn<T> branch1_;                    // conv1, bn1, ReLU
  ConvBn<T> branch2_;                    // conv2, bn2 (the ReLU comes after the residual add)
  std::optional<ConvBn<T>> downsample_;  // the shortcut's 1x1 conv and BatchNorm, or the identity
  Tensor<T> output_;                     // training mode: the block's output, the second ReLU's output
};

}  // namespace resnet::nn
