#pragma once
// BasicBlock, as torchvision.models.resnet.BasicBlock (expansion 1):
//   out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// conv1 is 3x3 with the block's stride, conv2 3x3 stride 1, both without bias. The shortcut is the identity,
// or a 1x1 conv (stride, no bias) + BatchNorm named "downsample.0"/"downsample.1" when the stride is not 1 or
// the channel count changes (models/shortcut.hpp), so torchvision state dicts load unchanged.
// The block is two ConvBn units (nn/conv_bn.hpp) and the shortcut, which fuse the BatchNorms and the first
// ReLU into the passes around them; the residual add and the second ReLU are one pass, whose mask the
// BatchNorm backward passes apply. The ReLUs have no parameters, so no state-dict name changes.
// The block interface the generic ResNet (models/resnet.hpp) builds on, which Bottleneck shares: `expansion`
// (output channels per plane), the constructor (in_channels, planes, stride, BlockShape), visit, forward,
// backward, last_bn() and output_size(side). nn::BasicBlock is the same class, the spelling of earlier
// releases.

#include <cstdint>
#include <utility>

#include "resnet/kernels/window.hpp"
#include "resnet/models/block_shape.hpp"
#include "resnet/models/shortcut.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/conv_bn.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::models {

template <typename T>
class BasicBlock : public nn::Module<BasicBlock<T>, T> {
 public:
  static constexpr const char* name = "basic";  // in a saved model's architecture
  static constexpr int expansion = 1;

  BasicBlock(int in_channels, int out_channels, int stride = 1, std::uint64_t seed = 0)
      : branch1_(
            nn::Conv2dOptions(in_channels, out_channels, 3).stride(stride).padding(1).bias(false).seed(seed),
            nn::Activation::ReLU),
        branch2_(nn::Conv2dOptions(out_channels, out_channels, 3).padding(1).bias(false).seed(seed + 1),
                 nn::Activation::None),
        shortcut_(in_channels, out_channels, stride, seed + 2) {}
  // The generic ResNet's constructor: `planes` output channels; only the default shape, as torchvision's.
  BasicBlock(int in_channels, int planes, int stride, const BlockShape& shape)
      : BasicBlock(in_channels, planes, stride, std::uint64_t{0}) {
    expect_default_shape(shape, "BasicBlock");
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    branch1_.visit(v, "conv1", "bn1");
    branch2_.visit(v, "conv2", "bn2");
    shortcut_.visit(v);
  }

  bool has_downsample() const { return shortcut_.has_projection(); }

  // The inference lowering: every BatchNorm folded into its conv (nn::ConvBn::fold_batchnorm).
  void fold_batchnorm() {
    branch1_.fold_batchnorm();
    branch2_.fold_batchnorm();
    shortcut_.fold_batchnorm();
  }

  // [N, in, H, W] -> [N, out, H', W'] with H' = (H - 1) / stride + 1.
  Tensor<T> forward(const Tensor<T>& input) {
    nn::expect_input(input, 4, conv1().in_channels(), "BasicBlock.forward", "[N, C, H, W]");
    // conv2's input, relu(bn1(conv1(x))), is not kept: backward recomputes it from bn1's cache, one
    // elementwise pass instead of an activation-sized tensor per block held from forward to backward.
    const Tensor<T> residual = branch2_.forward(branch1_.forward(input), nn::Cache::None);
    return shortcut_.forward(residual, input, this->is_training(), "BasicBlock");
  }

  // The add sends the gradient that passed the final ReLU to both branches (each unit's BatchNorm backward
  // applies that ReLU's mask); their input gradients add up. Gradients a module returns are never kept by
  // it, so the sum may be written into grad.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    // One statement per step, so that each tensor is freed as soon as the next one exists: at most two
    // activation-sized gradients are alive at once (plus the shortcut's), and the pool keeps no more blocks
    // of this size than that.
    Tensor<T> output = shortcut_.output_for_backward(grad_output, "BasicBlock");
    Tensor<T> hidden = branch1_.output_again();  // conv2's input and the first ReLU's mask
    Tensor<T> grad = branch2_.backward(grad_output, output, nn::InputGrad::Compute, hidden);
    const Tensor<T> grad_projection = shortcut_.projection_backward(
        grad_output, has_downsample() ? std::exchange(output, Tensor<T>()) : output);
    grad = branch1_.backward(std::move(grad), std::exchange(hidden, Tensor<T>()));
    shortcut_.add_input_grad(grad, grad_projection, output, grad_output);
    return grad;
  }

  // The side of the output map for an input side `in`.
  std::int64_t output_size(std::int64_t in) const {
    const auto through = [](std::int64_t side, const nn::Conv2d<T>& c) {
      return kernels::window_output_size(side, c.kernel_size(), c.stride(), c.padding());
    };
    return through(through(in, branch1_.conv()), branch2_.conv());
  }

  nn::Conv2d<T>& conv1() { return branch1_.conv(); }
  nn::BatchNorm2d<T>& bn1() { return branch1_.bn(); }
  nn::Conv2d<T>& conv2() { return branch2_.conv(); }
  nn::BatchNorm2d<T>& bn2() { return branch2_.bn(); }
  // The BatchNorm that ends the residual branch, which zero_init_residual zeroes.
  nn::BatchNorm2d<T>& last_bn() { return bn2(); }
  // The shortcut's conv and BatchNorm; only for a block that has them (has_downsample()).
  nn::Conv2d<T>& downsample_conv() { return shortcut_.projection("BasicBlock.downsample_conv").conv(); }
  nn::BatchNorm2d<T>& downsample_bn() { return shortcut_.projection("BasicBlock.downsample_bn").bn(); }

 private:
  nn::ConvBn<T> branch1_;  // conv1, bn1, ReLU
  nn::ConvBn<T> branch2_;  // conv2, bn2 (the ReLU comes after the residual add)
  Shortcut<T> shortcut_;   // the identity or the projection, the add and the last ReLU
};

}  // namespace resnet::models

namespace resnet::nn {
using models::BasicBlock;
}  // namespace resnet::nn
