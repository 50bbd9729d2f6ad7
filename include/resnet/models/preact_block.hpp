#pragma once
// PreActBlock, the full pre-activation unit of He et al. 2016 ("Identity Mappings in Deep Residual
// Networks"):
//   h   = relu(bn1(x))
//   out = conv2(relu(bn2(conv1(h)))) + shortcut
// conv1 is 3x3 with the block's stride, conv2 3x3 stride 1, both without bias; no ReLU after the add. The
// shortcut is x itself, or, when the stride is not 1 or the channel count changes, a 1x1 conv (stride, no
// bias, no BatchNorm) of h, the first BN-ReLU's output. State-dict names: bn1, conv1, bn2, conv2,
// shortcut.weight (tools/preact_resnet.py defines the same module in PyTorch).
// conv1, bn2 and their ReLU are one ConvBn unit (fused, and folded by fold_batchnorm); bn1 and its ReLU are
// one pass, and stay a BatchNorm when folded: a ReLU lies between it and the conv. h and conv2's input are
// not kept from forward to backward: they are recomputed from the BatchNorm caches.

#include <cstdint>
#include <optional>
#include <utility>

#include "resnet/kernels/elementwise.hpp"
#include "resnet/kernels/window.hpp"
#include "resnet/models/block_shape.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/conv_bn.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::models {

template <typename T>
class PreActBlock : public nn::Module<PreActBlock<T>, T> {
 public:
  static constexpr const char* name = "preact";  // in a saved model's architecture
  static constexpr int expansion = 1;
  static constexpr bool pre_activation = true;

  // [N, in_channels, H, W] -> [N, planes, H', W']; only the default shape, as BasicBlock.
  PreActBlock(int in_channels, int planes, int stride = 1, const BlockShape& shape = {})
      : bn1_(in_channels),
        unit_(nn::Conv2dOptions(in_channels, planes, 3).stride(stride).padding(1).bias(false),
              nn::Activation::ReLU),
        conv2_(nn::Conv2dOptions(planes, planes, 3).padding(1).bias(false)) {
    expect_default_shape(shape, "PreActBlock");
    if (stride != 1 || in_channels != planes)
      shortcut_.emplace(nn::Conv2dOptions(in_channels, planes, 1).stride(stride).bias(false));
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    v.child("bn1", bn1_);
    unit_.visit(v, "conv1", "bn2");
    v.child("conv2", conv2_);
    if (shortcut_) v.child("shortcut", *shortcut_);
  }

  bool has_projection() const { return shortcut_.has_value(); }

  Tensor<T> forward(const Tensor<T>& input) {
    nn::expect_input(input, 4, bn1_.num_features(), "PreActBlock.forward", "[N, C, H, W]");
    const nn::Cache cache = nn::Cache::None;  // h and conv2's input are recomputed at backward
    const Tensor<T> h = bn1_.forward(input, nn::Activation::ReLU);
    Tensor<T> output = conv2_.forward(unit_.forward(h, cache), {}, cache);
    const Tensor<T> shortcut = shortcut_ ? shortcut_->forward(h, {}, cache) : input;
    check(shortcut.shape() == output.shape(), "PreActBlock.forward: shortcut ",
          shape_string(shortcut.shape()), " and residual ", shape_string(output.shape()), " differ");
    kernels::add(output.data(), shortcut.data(), output.data(), output.numel());
    forward_cached_ = this->is_training();
    return output;
  }

  // The add sends grad_output to both branches; a projection's input gradient joins the residual branch's
  // at h, before bn1, the identity's after it.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    nn::expect_cached(std::exchange(forward_cached_, false), "PreActBlock.backward");
    Tensor<T> h = bn1_.relu_output_again();
    Tensor<T> hidden = unit_.output_again();  // conv2's input, and the ReLU's output before it
    Tensor<T> grad = conv2_.backward(grad_output, nn::InputGrad::Compute, hidden);
    grad = unit_.backward(std::move(grad), std::exchange(hidden, Tensor<T>()), nn::InputGrad::Compute, h);
    if (shortcut_) {
      const Tensor<T> grad_shortcut = shortcut_->backward(grad_output, nn::InputGrad::Compute, h);
      kernels::add(grad.data(), grad_shortcut.data(), grad.data(), grad.numel());
    }
    grad = bn1_.backward(grad, std::exchange(h, Tensor<T>()));
    if (!shortcut_) kernels::add(grad.data(), grad_output.data(), grad.data(), grad.numel());
    return grad;
  }

  // The inference lowering: bn2 folded into conv1 (bn1 stays: a ReLU separates it from conv1).
  void fold_batchnorm() { unit_.fold_batchnorm(); }

  // The side of the output map for an input side `in`: the stride is conv1's.
  std::int64_t output_size(std::int64_t in) const {
    const nn::Conv2d<T>& c = unit_.conv();
    return kernels::window_output_size(in, c.kernel_size(), c.stride(), c.padding());
  }

  nn::BatchNorm2d<T>& bn1() { return bn1_; }
  nn::Conv2d<T>& conv1() { return unit_.conv(); }
  nn::BatchNorm2d<T>& bn2() { return unit_.bn(); }
  nn::Conv2d<T>& conv2() { return conv2_; }

 private:
  nn::BatchNorm2d<T> bn1_;                 // and its ReLU
  nn::ConvBn<T> unit_;                     // conv1, bn2, ReLU
  nn::Conv2d<T> conv2_;                    // the residual branch's end
  std::optional<nn::Conv2d<T>> shortcut_;  // the 1x1 projection of h, or the identity
  bool forward_cached_ = false;            // a training-mode forward ran, and no backward since
};

}  // namespace resnet::models
