#pragma once
// BasicBlock, as torchvision.models.resnet.BasicBlock (expansion 1):
//   out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// conv1 is 3x3 with the block's stride, conv2 3x3 stride 1, both without bias. The shortcut is the identity,
// or a 1x1 conv (stride, no bias) + BatchNorm named "downsample.0"/"downsample.1" when the stride is not 1 or
// the channel count changes, so torchvision state dicts load unchanged.

#include <cstdint>
#include <optional>

#include "resnet/kernels/elementwise.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/nn/relu.hpp"

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
    v.child("relu1", relu1_);
    v.child("conv2", conv2_);
    v.child("bn2", bn2_);
    if (has_downsample()) {
      v.child("downsample.0", *downsample_conv_);
      v.child("downsample.1", *downsample_bn_);
    }
    v.child("relu2", relu2_);
  }

  bool has_downsample() const { return downsample_conv_.has_value(); }

  // [N, in, H, W] -> [N, out, H', W'] with H' = (H - 1) / stride + 1.
  Tensor<T> forward(const Tensor<T>& input) {
    expect_rank(input, 4, "BasicBlock.forward", "[N, C, H, W]");
    const Tensor<T> residual =
        bn2_.forward(conv2_.forward(relu1_.forward(bn1_.forward(conv1_.forward(input)))));
    const Tensor<T> shortcut =
        has_downsample() ? downsample_bn_->forward(downsample_conv_->forward(input)) : input;
    check(shortcut.shape() == residual.shape(), "BasicBlock.forward: shortcut ",
          shape_string(shortcut.shape()), " and residual ", shape_string(residual.shape()), " differ");
    Tensor<T> sum(residual.shape());
    kernels::add(residual.data(), shortcut.data(), sum.data(), sum.numel());
    return relu2_.forward(sum);
  }

  // The add sends grad_sum unchanged to both branches; their input gradients add up. Gradients a module
  // returns are never kept by it, so the sum may be written into grad_input.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    const Tensor<T> grad_sum = relu2_.backward(grad_output);
    Tensor<T> grad_input =
        conv1_.backward(bn1_.backward(relu1_.backward(conv2_.backward(bn2_.backward(grad_sum)))));
    const Tensor<T> grad_shortcut =
        has_downsample() ? downsample_conv_->backward(downsample_bn_->backward(grad_sum)) : grad_sum;
    kernels::add(grad_input.data(), grad_shortcut.data(), grad_input.data(), grad_input.numel());
    return grad_input;
  }

  Conv2d<T>& conv1() { return conv1_; }
  BatchNorm2d<T>& bn1() { return bn1_; }
  Conv2d<T>& conv2() { return conv2_; }
  BatchNorm2d<T>& bn2() { return bn2_; }

 private:
  Conv2d<T> conv1_;
  BatchNorm2d<T> bn1_;
  ReLU<T> relu1_;
  Conv2d<T> conv2_;
  BatchNorm2d<T> bn2_;
  std::optional<Conv2d<T>> downsample_conv_;
  std::optional<BatchNorm2d<T>> downsample_bn_;
  ReLU<T> relu2_;
};

}  // namespace resnet::nn
