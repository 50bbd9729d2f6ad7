#pragma once
// The ResNet over its block (BasicBlock or Bottleneck, models/basic_block.hpp and models/bottleneck.hpp),
// laid out as torchvision.models.resnet.ResNet(block, layers) so state-dict names and parameter counts match
// it: conv1, bn1, (maxpool), layer1..layer4 of blocks with 64/128/256/512 planes (times the block's
// expansion in channels; stride 2 at the start of layers 2-4), global average pool, flatten, fc. The named
// models at the end (ResNet18 ... WideResNet101_2) are each one set of arguments.
//
// Stem::ImageNet is torchvision's: 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool.
// Stem::Cifar is the usual small-image variant: 3x3 stride-1 conv, BN, ReLU, no pool.

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/rng.hpp"
#include "resnet/kernels/window.hpp"
#include "resnet/models/basic_block.hpp"
#include "resnet/models/block_shape.hpp"
#include "resnet/models/bottleneck.hpp"
#include "resnet/nn/adaptive_avgpool2d.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/conv_bn.hpp"
#include "resnet/nn/init.hpp"
#include "resnet/nn/linear.hpp"
#include "resnet/nn/maxpool2d.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::models {

enum class Stem { ImageNet, Cifar };

template <typename T, typename Block = BasicBlock<T>>
class ResNet : public nn::Module<ResNet<T, Block>, T> {
 public:
  // blocks_per_stage: {2, 2, 2, 2} is ResNet18, {3, 4, 6, 3} ResNet34 (BasicBlock) or ResNet50 (Bottleneck).
  // base_width is the stem's channels and layer1's planes, doubled at each stage (64 in torchvision; smaller
  // values give narrow networks for tests). block_shape: a Bottleneck's groups and width per group.
  ResNet(std::array<int, 4> blocks_per_stage, int num_classes = 1000, Stem stem = Stem::ImageNet,
         int in_channels = 3, std::uint64_t seed = 0, int base_width = 64, BlockShape block_shape = {})
      : stem_(stem),
        blocks_per_stage_(blocks_per_stage),
        base_width_(checked_base_width(base_width)),
        block_shape_(block_shape),
        in_channels_(in_channels),
        num_classes_(num_classes),
        stem_conv_bn_(stem_options(stem, checked_in_channels(in_channels), base_width), nn::Activation::ReLU),
        avgpool_(1, 1),
        fc_(8 * base_width * Block::expansion, checked_num_classes(num_classes)) {
    if (stem == Stem::ImageNet) maxpool_.emplace(3, 2, 1);
    int channels = base_width;
    for (int s = 0; s < 4; ++s) {
      check(blocks_per_stage[s] >= 1, "ResNet: stage ", s + 1, " needs at least one block, got ",
            blocks_per_stage[s]);
      const int planes = base_width << s;
      for (int b = 0; b < blocks_per_stage[s]; ++b) {
        stages_[s].emplace_back(channels, planes, b == 0 && s > 0 ? 2 : 1, block_shape);
        channels = planes * Block::expansion;
      }
    }
    Rng rng(seed);
    reset_parameters(rng);
  }

  // torchvision's ResNet init: every conv Kaiming normal (fan_out, ReLU gain), fc PyTorch's Linear default
  // (BatchNorm starts at weight 1, bias 0 by construction). Drawn in state-dict order from one generator, so
  // a seed fixes the whole model.
  void reset_parameters(Rng& rng) {
    for (auto& p : this->named_parameters()) {
      if (p.value->dim() == 4) nn::init::kaiming_normal_fan_out(*p.value, rng);
    }
    fc_.reset_parameters(rng);
  }

  // torchvision's zero_init_residual=True: every block's last BatchNorm starts at weight 0, so each residual
  // branch starts as zero and each block as the identity (Goyal et al., 2017), which speeds early training.
  void zero_init_residual() {
    for (auto& stage : stages_)
      for (auto& block : stage)
        block.last_bn().weight().fill(T(0));
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    stem_conv_bn_.visit(v, "conv1", "bn1");
    if (maxpool_) v.child("maxpool", *maxpool_);
    for (int s = 0; s < 4; ++s) {
      for (std::size_t b = 0; b < stages_[s].size(); ++b)
        v.child("layer" + std::to_string(s + 1) + "." + std::to_string(b), stages_[s][b]);
    }
    v.child("avgpool", avgpool_);
    v.child("fc", fc_);
  }

  // [N, in_channels, H, W] -> logits [N, num_classes].
  Tensor<T> forward(const Tensor<T>& input) {
    nn::expect_input(input, 4, in_channels_, "ResNet.forward", "[N, C, H, W]");
    if (this->is_training()) {
      check(!is_folded(),
            "ResNet.forward: the BatchNorms are folded into the convs (fold_batchnorm), so the model is "
            "inference-only; call eval(), or train the model it was folded from");
      expect_batch_statistics(input);
    }
    // The stem's ReLU output is kept for its mask at backward: maxpool or layer1 holds it anyway.
    Tensor<T> x = stem_conv_bn_.forward(input);
    stem_output_ = this->is_training() ? x : Tensor<T>();
    if (maxpool_) x = maxpool_->forward(x);
    for (auto& stage : stages_) {
      for (auto& block : stage)
        x = block.forward(x);
    }
    x = avgpool_.forward(x);
    pooled_shape_ = this->is_training() ? x.shape() : std::vector<std::int64_t>{};
    backward_ran_ = false;
    return fc_.forward(x.reshape({x.size(0), x.size(1)}));  // flatten [N, C, 1, 1] -> [N, C]
  }

  // d loss / d logits [N, num_classes] -> d loss / d input, or an empty tensor with InputGrad::Skip, which
  // training uses (PyTorch skips it for an input that does not require grad): the stem conv then skips its
  // input-gradient GEMM and col2im. Parameter gradients accumulate.
  Tensor<T> backward(const Tensor<T>& grad_logits, nn::InputGrad input_grad = nn::InputGrad::Compute) {
    check(!backward_ran_ || !pooled_shape_.empty(),
          "ResNet.backward: backward already ran for the last forward (each training-mode forward allows one "
          "backward: run forward again first)");
    nn::expect_cached(!pooled_shape_.empty(), "ResNet.backward");
    backward_ran_ = true;
    nn::expect_shape(grad_logits, {pooled_shape_[0], num_classes_}, "ResNet.backward", "grad_logits");
    const std::vector<std::int64_t> pooled_shape =
        std::exchange(pooled_shape_, {});  // released: one backward
    Tensor<T> grad = avgpool_.backward(fc_.backward(grad_logits).reshape(pooled_shape));
    for (int s = 3; s >= 0; --s) {
      for (auto block = stages_[s].rbegin(); block != stages_[s].rend(); ++block)
        grad = block->backward(grad);
    }
    if (maxpool_) grad = maxpool_->backward(grad);
    return stem_conv_bn_.backward(std::move(grad), std::exchange(stem_output_, Tensor<T>()), input_grad);
  }

  // The inference lowering, in place: every BatchNorm folded into the conv before it (nn/conv_bn.hpp), so
  // that the state is convs with biases and fc ("conv1.weight", "conv1.bias", "layer2.0.downsample.0.bias",
  // ...) and the model is inference-only, in eval mode. models::fold_batchnorm(model) makes a folded copy.
  void fold_batchnorm() {
    stem_conv_bn_.fold_batchnorm();
    for (auto& stage : stages_) {
      for (auto& block : stage)
        block.fold_batchnorm();
    }
    this->eval();
  }
  bool is_folded() const { return stem_conv_bn_.is_folded(); }

  // backward(grad_logits, nn::InputGrad::Skip), the spelling of earlier releases.
  void backward_parameters(const Tensor<T>& grad_logits) { backward(grad_logits, nn::InputGrad::Skip); }

  Stem stem() const { return stem_; }
  const std::array<int, 4>& blocks_per_stage() const { return blocks_per_stage_; }
  int base_width() const { return base_width_; }
  const BlockShape& block_shape() const { return block_shape_; }
  int in_channels() const { return in_channels_; }
  int num_classes() const { return num_classes_; }

  // The architecture a saved file's metadata records (io::describe) and a strict load checks against the
  // file, all but num_classes: "architecture" (torchvision's name: resnet18 ... resnet152, wide_resnet50_2,
  // wide_resnet101_2; else resnet-<blocks per stage>, with "bottleneck-" before the counts for that block),
  // "block" (basic or bottleneck), "groups", "width_per_group", "stem" (imagenet or cifar), "in_channels",
  // "num_classes", "base_width". A file without a key (one saved before it was recorded) is not checked on
  // it.
  std::map<std::string, std::string> architecture() const {
    const std::array<int, 4>& b = blocks_per_stage();
    const std::string counts = std::to_string(b[0]) + "-" + std::to_string(b[1]) + "-" +
                               std::to_string(b[2]) + "-" + std::to_string(b[3]);
    return {{"architecture", architecture_name(counts)},
            {"block", Block::name},
            {"groups", std::to_string(block_shape_.groups)},
            {"width_per_group", std::to_string(block_shape_.width_per_group)},
            {"stem", stem() == Stem::ImageNet ? "imagenet" : "cifar"},
            {"in_channels", std::to_string(in_channels())},
            {"num_classes", std::to_string(num_classes())},
            {"base_width", std::to_string(base_width())}};
  }

 private:
  // torchvision's 7x7 stride-2 stem or the CIFAR 3x3 stride-1 one.
  static nn::Conv2dOptions stem_options(Stem stem, int in_channels, int width) {
    const bool imagenet = stem == Stem::ImageNet;
    return nn::Conv2dOptions(in_channels, width, imagenet ? 7 : 3)
        .stride(imagenet ? 2 : 1)
        .padding(imagenet ? 3 : 1)
        .bias(false);
  }

  // torchvision's name for these block counts and shape, at base width 64.
  std::string architecture_name(const std::string& counts) const {
    const bool bottleneck = Block::expansion != 1, plain = block_shape_.groups == 1 && base_width_ == 64;
    const int per_group = block_shape_.width_per_group;
    if (!bottleneck) {
      if (counts == "2-2-2-2") return "resnet18";
      if (counts == "3-4-6-3") return "resnet34";
      return "resnet-" + counts;
    }
    if (plain && per_group == 64 && counts == "3-4-6-3") return "resnet50";
    if (plain && per_group == 64 && counts == "3-4-23-3") return "resnet101";
    if (plain && per_group == 64 && counts == "3-8-36-3") return "resnet152";
    if (plain && per_group == 128 && counts == "3-4-6-3") return "wide_resnet50_2";
    if (plain && per_group == 128 && counts == "3-4-23-3") return "wide_resnet101_2";
    return "resnet-bottleneck-" + counts;
  }

  static int checked_in_channels(int n) {
    check(n >= 1, "ResNet: in_channels must be positive, got ", n);
    return n;
  }
  static int checked_num_classes(int n) {
    check(n >= 1, "ResNet: num_classes must be positive, got ", n);
    return n;
  }
  // Checked before any layer is built from it; layer4 has 8 * base_width * expansion channels, which must fit
  // an int.
  static int checked_base_width(int n) {
    constexpr int most = std::numeric_limits<int>::max() / (8 * Block::expansion);
    check(n >= 1 && n <= most, "ResNet: base_width must be in [1, ", most, "], got ", n);
    return n;
  }

  // Training-mode BatchNorm needs more than one value per channel, as in PyTorch. layer4's map is the
  // smallest, so the check is made here, where the message can say which input would do, and not deep in
  // layer4.
  void expect_batch_statistics(const Tensor<T>& input) {
    if (input.size(0) > 1 || last_map_side(input.size(2)) * last_map_side(input.size(3)) > 1) return;
    std::int64_t side = 1;
    while (last_map_side(side) < 2)
      ++side;
    fail("ResNet.forward: input shape ", shape_string(input.shape()),
         " leaves a single value per channel in layer4 (a 1x1 map of 1 image), and training-mode BatchNorm "
         "needs more; train on batches of 2 or more images, or on images with H or W at least ",
         side, " for this stem (eval() runs any size)");
  }

  // The side of layer4's output map for an input side `in`: through every conv and pool on the main path.
  std::int64_t last_map_side(std::int64_t in) {
    const auto through = [](std::int64_t side, const auto& layer) {
      return kernels::window_output_size(side, layer.kernel_size(), layer.stride(), layer.padding());
    };
    std::int64_t side = through(in, stem_conv_bn_.conv());
    if (maxpool_) side = through(side, *maxpool_);
    for (auto& stage : stages_) {
      for (auto& block : stage)
        side = block.output_size(side);
    }
    return side;
  }

  Stem stem_;
  std::array<int, 4> blocks_per_stage_;
  int base_width_;
  BlockShape block_shape_;
  int in_channels_;
  int num_classes_;
  nn::ConvBn<T> stem_conv_bn_;  // conv1, bn1, ReLU
  std::optional<nn::MaxPool2d<T>> maxpool_;
  std::array<std::vector<Block>, 4> stages_;
  nn::AdaptiveAvgPool2d<T> avgpool_;
  nn::Linear<T> fc_;
  Tensor<T> stem_output_;                   // training mode: relu(bn1(conv1(x)))
  std::vector<std::int64_t> pooled_shape_;  // shape before flatten, from the last training-mode forward
  bool backward_ran_ = false;               // for the last forward: a second backward is refused by name
};

// A ResNet with torchvision's block counts and width per group fixed by name, taking the constructor every
// named model has: (num_classes, stem, in_channels, seed).
template <typename T, template <typename> class Block, int blocks1, int blocks2, int blocks3, int blocks4,
          int width_per_group = 64>
class NamedResNet : public ResNet<T, Block<T>> {
 public:
  explicit NamedResNet(int num_classes = 1000, Stem stem = Stem::ImageNet, int in_channels = 3,
                       std::uint64_t seed = 0)
      : ResNet<T, Block<T>>({blocks1, blocks2, blocks3, blocks4}, num_classes, stem, in_channels, seed, 64,
                            BlockShape{1, width_per_group}) {}
};

// torchvision.models.resnet18 ... wide_resnet101_2.
template <typename T>
using ResNet18 = NamedResNet<T, BasicBlock, 2, 2, 2, 2>;
template <typename T>
using ResNet34 = NamedResNet<T, BasicBlock, 3, 4, 6, 3>;
template <typename T>
using ResNet50 = NamedResNet<T, Bottleneck, 3, 4, 6, 3>;
template <typename T>
using ResNet101 = NamedResNet<T, Bottleneck, 3, 4, 23, 3>;
template <typename T>
using ResNet152 = NamedResNet<T, Bottleneck, 3, 8, 36, 3>;
template <typename T>
using WideResNet50_2 = NamedResNet<T, Bottleneck, 3, 4, 6, 3, 128>;
template <typename T>
using WideResNet101_2 = NamedResNet<T, Bottleneck, 3, 4, 23, 3, 128>;

}  // namespace resnet::models
