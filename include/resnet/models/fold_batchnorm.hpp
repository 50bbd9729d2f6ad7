#pragma once
// fold_batchnorm(model): an inference-only copy of a ResNet in which every BatchNorm, in its eval-mode form,
// is folded into the convolution before it, so inference runs one conv (with a bias) where it ran a conv and
// a BatchNorm pass. The trainable model is only read: it keeps training, and the folded copy does not follow
// it (fold again after training more).
//
//   models::FoldedResNet<float> fast = models::fold_batchnorm(net);   // same logits as net.eval() forward
//
// Eval-mode BatchNorm after a conv with weight W [O, C, k, k] and bias b (0 without one):
//   BN(conv(x))[o] = s[o] * (W[o] * x + b[o] - running_mean[o]) + beta[o],  s = gamma / sqrt(running_var +
//   eps)
// is the conv with W'[o] = s[o] * W[o] and b'[o] = s[o] * (b[o] - running_mean[o]) + beta[o]. Both are
// computed in double and rounded once to T, so the folded logits differ from the eval-mode ones by float
// rounding only.
//
// The folded model keeps torchvision's names for what remains ("conv1.weight", "conv1.bias",
// "layer2.0.downsample.0.bias", "fc.weight", ...), so save_safetensors can write it; it has no backward, and
// forward refuses training mode.

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resnet/kernels/elementwise.hpp"
#include "resnet/models/basic_block.hpp"
#include "resnet/models/resnet.hpp"
#include "resnet/nn/adaptive_avgpool2d.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/linear.hpp"
#include "resnet/nn/maxpool2d.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/nn/relu.hpp"

namespace resnet::models {

// conv followed by eval-mode bn -> one conv with a bias (see the header comment), in eval mode.
template <typename T>
nn::Conv2d<T> fold_conv_batchnorm(const nn::Conv2d<T>& conv, const nn::BatchNorm2d<T>& bn) {
  check(bn.num_features() == conv.out_channels(), "fold_conv_batchnorm: BatchNorm2d has ", bn.num_features(),
        " features, the conv before it ", conv.out_channels(), " output channels");
  nn::Conv2d<T> folded(nn::Conv2dOptions(conv.in_channels(), conv.out_channels(), conv.kernel_size())
                           .stride(conv.stride())
                           .padding(conv.padding()));
  conv.expect_state_shapes("fold_conv_batchnorm");  // the loops below index by the configured sizes
  bn.expect_state_shapes("fold_conv_batchnorm");
  const std::int64_t O = conv.out_channels(), per_output = conv.weight().numel() / O;
  const T* w = conv.weight().data();
  T* folded_w = folded.weight().data();
  for (std::int64_t o = 0; o < O; ++o) {
    const double scale = static_cast<double>(bn.weight().data()[o]) /
                         std::sqrt(static_cast<double>(bn.running_var().data()[o]) + bn.eps());
    for (std::int64_t j = 0; j < per_output; ++j)
      folded_w[o * per_output + j] = static_cast<T>(scale * static_cast<double>(w[o * per_output + j]));
    const double b = conv.has_bias() ? static_cast<double>(conv.bias().data()[o]) : 0.0;
    folded.bias().data()[o] = static_cast<T>(scale * (b - static_cast<double>(bn.running_mean().data()[o])) +
                                             static_cast<double>(bn.bias().data()[o]));
  }
  folded.eval();
  return folded;
}

// A folded conv's ReLU, applied as the conv stores its output (after its bias).
template <typename T>
kernels::ConvEpilogue<T> relu_epilogue() {
  return {nullptr, nullptr, /*relu=*/true, 0};
}

// BasicBlock with both BatchNorms (and the shortcut's) folded:
//   out = relu(conv2(relu(conv1(x))) + (downsample.0(x) or x))
template <typename T>
class FoldedBasicBlock : public nn::Module<FoldedBasicBlock<T>, T> {
 public:
  FoldedBasicBlock(nn::Conv2d<T> conv1, nn::Conv2d<T> conv2, std::optional<nn::Conv2d<T>> downsample)
      : conv1_(std::move(conv1)), conv2_(std::move(conv2)), downsample_(std::move(downsample)) {
    this->eval();
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    v.child("conv1", conv1_);
    v.child("conv2", conv2_);
    if (downsample_) v.child("downsample.0", *downsample_);
  }

  Tensor<T> forward(const Tensor<T>& input) {
    check(!this->is_training(),
          "FoldedBasicBlock.forward: the block is inference-only (its BatchNorm is folded "
          "into the convs); call eval()");
    nn::expect_input(input, 4, conv1_.in_channels(), "FoldedBasicBlock.forward", "[N, C, H, W]");
    const Tensor<T> residual = conv2_.forward(conv1_.forward(input, relu_epilogue<T>()));
    const Tensor<T> shortcut = downsample_ ? downsample_->forward(input) : input;
    check(shortcut.shape() == residual.shape(), "FoldedBasicBlock.forward: shortcut ",
          shape_string(shortcut.shape()), " and residual ", shape_string(residual.shape()), " differ");
    auto output = Tensor<T>::uninitialized(residual.shape());
    kernels::add_relu(residual.data(), shortcut.data(), output.data(), output.numel());
    return output;
  }

 private:
  nn::Conv2d<T> conv1_;
  nn::Conv2d<T> conv2_;
  std::optional<nn::Conv2d<T>> downsample_;
};

namespace detail {

// Walks a ResNet (or one of its BasicBlocks) through its visit(), in order, pairing each Conv2d with the
// BatchNorm2d right after it and copying the parameter-free parts. Every module type a ResNet holds has its
// own overload, so a new kind of child is a compile error here rather than something silently dropped.
template <typename T>
struct ResNetFolder {
  std::vector<std::pair<std::string, nn::Conv2d<T>>> convs;  // folded, named as the conv they replace
  std::vector<std::pair<std::string, FoldedBasicBlock<T>>> blocks;
  std::optional<nn::MaxPool2d<T>> maxpool;
  std::optional<nn::AdaptiveAvgPool2d<T>> avgpool;
  std::optional<nn::Linear<T>> fc;
  const nn::Conv2d<T>* pending = nullptr;  // a conv waiting for its BatchNorm
  std::string pending_name;

  void parameter(const std::string& name, Tensor<T>&, Tensor<T>&) {
    fail("fold_batchnorm: unexpected parameter '", name, "' outside a layer");
  }
  void buffer(const std::string& name, Tensor<T>&) {
    fail("fold_batchnorm: unexpected buffer '", name, "' outside a layer");
  }
  void child(const std::string& name, nn::Conv2d<T>& conv) {
    expect_no_pending(name);
    pending = &conv;
    pending_name = name;
  }
  void child(const std::string& name, nn::BatchNorm2d<T>& bn) {
    check(pending != nullptr, "fold_batchnorm: BatchNorm2d '", name, "' does not follow a Conv2d");
    convs.emplace_back(pending_name, fold_conv_batchnorm(*pending, bn));
    pending = nullptr;
  }
  void child(const std::string&, nn::ReLU<T>&) {}
  void child(const std::string& name, nn::MaxPool2d<T>& pool) {
    expect_no_pending(name);
    maxpool.emplace(pool.kernel_size(), pool.stride(), pool.padding());
  }
  void child(const std::string& name, nn::AdaptiveAvgPool2d<T>& pool) {
    expect_no_pending(name);
    avgpool.emplace(pool.output_h(), pool.output_w());
  }
  void child(const std::string& name, nn::Linear<T>& linear) {
    expect_no_pending(name);
    fc.emplace(linear.in_features(), linear.out_features(), linear.has_bias());
    fc->weight() = linear.weight().clone();
    if (linear.has_bias()) fc->bias() = linear.bias().clone();
    fc->eval();
  }
  void child(const std::string& name, nn::BasicBlock<T>& block) {
    expect_no_pending(name);
    ResNetFolder inner;
    block.visit(inner);
    inner.expect_no_pending(name);
    const std::size_t n = inner.convs.size();
    check((n == 2 || n == 3) && inner.convs[0].first == "conv1" && inner.convs[1].first == "conv2" &&
              (n == 2 || inner.convs[2].first == "downsample.0"),
          "fold_batchnorm: block '", name,
          "' is not conv1, conv2 and an optional downsample.0, each with a BatchNorm");
    std::optional<nn::Conv2d<T>> downsample;
    if (n == 3) downsample.emplace(std::move(inner.convs[2].second));
    blocks.emplace_back(name, FoldedBasicBlock<T>(std::move(inner.convs[0].second),
                                                  std::move(inner.convs[1].second), std::move(downsample)));
  }

  void expect_no_pending(const std::string& next) const {
    check(pending == nullptr, "fold_batchnorm: Conv2d '", pending_name, "' is followed by '", next,
          "', not by a BatchNorm2d");
  }
};

}  // namespace detail

// ResNet (any block counts, either stem) with every BatchNorm folded; see the header comment.
template <typename T>
class FoldedResNet : public nn::Module<FoldedResNet<T>, T> {
 public:
  // Reads `model` (its weights and running statistics, whatever its mode) and leaves it unchanged.
  explicit FoldedResNet(const ResNet<T>& model) : FoldedResNet(fold(model)) {}

  template <typename Visitor>
  void visit(Visitor& v) {
    v.child("conv1", conv1_);
    if (maxpool_) v.child("maxpool", *maxpool_);
    for (auto& [name, block] : blocks_)
      v.child(name, block);
    v.child("avgpool", avgpool_);
    v.child("fc", fc_);
  }

  // [N, in_channels, H, W] -> logits [N, num_classes], as ResNet's eval-mode forward.
  Tensor<T> forward(const Tensor<T>& input) {
    check(!this->is_training(),
          "FoldedResNet.forward: the model is inference-only (its BatchNorm is folded into the convs); call "
          "eval(), or train the ResNet it was folded from");
    nn::expect_input(input, 4, in_channels_, "FoldedResNet.forward", "[N, C, H, W]");
    Tensor<T> x = conv1_.forward(input, relu_epilogue<T>());
    if (maxpool_) x = maxpool_->forward(x);
    for (auto& [name, block] : blocks_)
      x = block.forward(x);
    x = avgpool_.forward(x);
    return fc_.forward(x.reshape({x.size(0), x.size(1) * x.size(2) * x.size(3)}));
  }

  Stem stem() const { return stem_; }
  int in_channels() const { return in_channels_; }
  int num_classes() const { return fc_.out_features(); }

 private:
  struct Parts {
    Stem stem;
    int in_channels;
    detail::ResNetFolder<T> folder;
  };

  static Parts fold(const ResNet<T>& model) {
    Parts parts{model.stem(), model.in_channels(), {}};
    // visit() is not const, but the folder only reads what it is shown.
    const_cast<ResNet<T>&>(model).visit(parts.folder);
    const detail::ResNetFolder<T>& f = parts.folder;
    f.expect_no_pending("the end of the model");
    check(f.convs.size() == 1 && f.convs[0].first == "conv1" && f.avgpool && f.fc && !f.blocks.empty(),
          "fold_batchnorm: the model is not conv1, bn1, relu, (maxpool), blocks, avgpool, fc");
    return parts;
  }

  explicit FoldedResNet(Parts parts)
      : stem_(parts.stem),
        in_channels_(parts.in_channels),
        conv1_(std::move(parts.folder.convs[0].second)),
        maxpool_(std::move(parts.folder.maxpool)),
        blocks_(std::move(parts.folder.blocks)),
        avgpool_(std::move(*parts.folder.avgpool)),
        fc_(std::move(*parts.folder.fc)) {
    this->eval();
  }

  Stem stem_;
  int in_channels_;
  nn::Conv2d<T> conv1_;
  std::optional<nn::MaxPool2d<T>> maxpool_;
  std::vector<std::pair<std::string, FoldedBasicBlock<T>>> blocks_;  // "layer1.0", "layer1.1", ...
  nn::AdaptiveAvgPool2d<T> avgpool_;
  nn::Linear<T> fc_;
};

template <typename T>
FoldedResNet<T> fold_batchnorm(const ResNet<T>& model) {
  return FoldedResNet<T>(model);
}

}  // namespace resnet::models
