#pragma once
// Bottleneck, as torchvision.models.resnet.Bottleneck (ResNet v1.5, expansion 4):
//   out = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))
// conv1 is 1x1 from the block's input to `width` channels, conv2 3x3 width -> width with the block's stride
// (v1.5 puts the stride here, not on conv1) and `groups`, conv3 1x1 width -> planes * 4, all without bias.
// width = planes * width_per_group / 64 * groups: ResNet50 has 64 per group and 1 group, Wide ResNet-50-2
// 128, ResNeXt-50 32x4d 4 per group in 32 groups. The shortcut is the identity, or a 1x1 conv (stride, no
// bias) + BatchNorm named "downsample.0"/"downsample.1" when the stride is not 1 or the channel count
// changes, so torchvision state dicts load unchanged. As BasicBlock: ConvBn units with the BatchNorms and the
// inner ReLUs fused, the residual add and the last ReLU in one pass; conv2's and conv3's inputs are
// recomputed at backward from the BatchNorm caches before them.

#include <cstdint>
#include <limits>
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
class Bottleneck : public nn::Module<Bottleneck<T>, T> {
 public:
  static constexpr const char* name = "bottleneck";  // in a saved model's architecture
  static constexpr int expansion = 4;

  // [N, in_channels, H, W] -> [N, planes * 4, H', W'].
  Bottleneck(int in_channels, int planes, int stride = 1, const BlockShape& shape = {})
      : branch1_(nn::Conv2dOptions(in_channels, inner_width(planes, shape), 1).bias(false),
                 nn::Activation::ReLU),
        branch2_(nn::Conv2dOptions(inner_width(planes, shape), inner_width(planes, shape), 3)
                     .stride(stride)
                     .padding(1)
                     .groups(shape.groups)
                     .bias(false),
                 nn::Activation::ReLU),
        branch3_(nn::Conv2dOptions(inner_width(planes, shape), planes * expansion, 1).bias(false),
                 nn::Activation::None),
        shortcut_(in_channels, planes * expansion, stride) {}

  template <typename Visitor>
  void visit(Visitor& v) {
    branch1_.visit(v, "conv1", "bn1");
    branch2_.visit(v, "conv2", "bn2");
    branch3_.visit(v, "conv3", "bn3");
    shortcut_.visit(v);
  }

  bool has_downsample() const { return shortcut_.has_projection(); }

  // The inference lowering: every BatchNorm folded into its conv (nn::ConvBn::fold_batchnorm).
  void fold_batchnorm() {
    branch1_.fold_batchnorm();
    branch2_.fold_batchnorm();
    branch3_.fold_batchnorm();
    shortcut_.fold_batchnorm();
  }

  Tensor<T> forward(const Tensor<T>& input) {
    nn::expect_input(input, 4, conv1().in_channels(), "Bottleneck.forward", "[N, C, H, W]");
    const Tensor<T> residual =
        branch3_.forward(branch2_.forward(branch1_.forward(input), nn::Cache::None), nn::Cache::None);
    return shortcut_.forward(residual, input, this->is_training(), "Bottleneck");
  }

  // As BasicBlock.backward, one unit more: each step frees what the next does not need.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    Tensor<T> output = shortcut_.output_for_backward(grad_output, "Bottleneck");
    Tensor<T> hidden2 = branch2_.output_again();  // conv3's input and the second ReLU's mask
    Tensor<T> grad = branch3_.backward(grad_output, output, nn::InputGrad::Compute, hidden2);
    const Tensor<T> grad_projection = shortcut_.projection_backward(
        grad_output, has_downsample() ? std::exchange(output, Tensor<T>()) : output);
    Tensor<T> hidden1 = branch1_.output_again();  // conv2's input and the first ReLU's mask
    grad = branch2_.backward(std::move(grad), std::exchange(hidden2, Tensor<T>()), nn::InputGrad::Compute,
                             hidden1);
    grad = branch1_.backward(std::move(grad), std::exchange(hidden1, Tensor<T>()));
    shortcut_.add_input_grad(grad, grad_projection, output, grad_output);
    return grad;
  }

  // The side of the output map for an input side `in`: the stride is conv2's.
  std::int64_t output_size(std::int64_t in) const {
    const nn::Conv2d<T>& c = branch2_.conv();
    return kernels::window_output_size(in, c.kernel_size(), c.stride(), c.padding());
  }

  nn::Conv2d<T>& conv1() { return branch1_.conv(); }
  nn::BatchNorm2d<T>& bn1() { return branch1_.bn(); }
  nn::Conv2d<T>& conv2() { return branch2_.conv(); }
  nn::BatchNorm2d<T>& bn2() { return branch2_.bn(); }
  nn::Conv2d<T>& conv3() { return branch3_.conv(); }
  nn::BatchNorm2d<T>& bn3() { return branch3_.bn(); }
  // The BatchNorm that ends the residual branch, which zero_init_residual zeroes.
  nn::BatchNorm2d<T>& last_bn() { return bn3(); }
  // The shortcut's conv and BatchNorm; only for a block that has them (has_downsample()).
  nn::Conv2d<T>& downsample_conv() { return shortcut_.projection("Bottleneck.downsample_conv").conv(); }
  nn::BatchNorm2d<T>& downsample_bn() { return shortcut_.projection("Bottleneck.downsample_bn").bn(); }

 private:
  static int inner_width(int planes, const BlockShape& shape) {
    check(planes >= 1 && shape.groups >= 1 && shape.width_per_group >= 1,
          "Bottleneck: planes, groups and width_per_group must be positive, got ", planes, ", ", shape.groups,
          ", ", shape.width_per_group);
    const std::int64_t width = std::int64_t{planes} * shape.width_per_group / 64 * shape.groups;
    check(width >= 1 && width <= std::numeric_limits<int>::max() / 4, "Bottleneck: ", planes, " planes with ",
          shape.groups, " groups of width ", shape.width_per_group, " give ", width, " channels");
    return static_cast<int>(width);
  }

  nn::ConvBn<T> branch1_;  // conv1, bn1, ReLU
  nn::ConvBn<T> branch2_;  // conv2, bn2, ReLU
  nn::ConvBn<T> branch3_;  // conv3, bn3 (the ReLU comes after the residual add)
  Shortcut<T> shortcut_;   // the identity or the projection, the add and the last ReLU
};

}  // namespace resnet::models
