#pragma once
// The ResNet over its block, laid out as torchvision.models.resnet.ResNet(block, layers) so state-dict names
// and parameter counts match it: conv1, bn1, (maxpool), layer1..layer4 of blocks with 64/128/256/512 planes
// (times the block's expansion in channels; stride 2 at the start of every stage but the first), global
// average pool, flatten, fc. The blocks: BasicBlock, Bottleneck (models/basic_block.hpp, bottleneck.hpp) and
// PreActBlock (models/preact_block.hpp). The named models at the end (ResNet18 ... ResNeXt101_32x8d,
// PreActResNet18, WideResNet) are each one set of arguments.
//
// Stem::ImageNet is torchvision's: 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool.
// Stem::Cifar is the usual small-image variant: 3x3 stride-1 conv, BN, ReLU, no pool.
// A pre-activation block (Block::pre_activation) starts with its own BN-ReLU, so the model around it is He et
// al.'s (2016) pre-activation ResNet: the CIFAR stem's conv1 alone (no BN, ReLU or pool), the stages, then a
// final BatchNorm and ReLU named "bn" before the pool (tools/preact_resnet.py is the same model in PyTorch).
// Stages may number other than 4 and have widths other than the stem's doubled (ResNetOptions): a Wide ResNet
// has 3 of 16k/32k/64k channels after a 16-channel stem.

#include <array>
#include <climits>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "resnet/core/rng.hpp"
#include "resnet/kernels/window.hpp"
#include "resnet/models/architectures.hpp"
#include "resnet/models/basic_block.hpp"
#include "resnet/models/block_shape.hpp"
#include "resnet/models/bottleneck.hpp"
#include "resnet/models/preact_block.hpp"
#include "resnet/nn/adaptive_avgpool2d.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/conv_bn.hpp"
#include "resnet/nn/flat_parameters.hpp"
#include "resnet/nn/init.hpp"
#include "resnet/nn/linear.hpp"
#include "resnet/nn/maxpool2d.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::models {

enum class Stem { ImageNet, Cifar };

// A ResNet's shape by name, as libtorch's options:
//   ResNet<float, PreActBlock<float>> net(ResNetOptions({1, 1, 1}).widths({8, 16, 32}).stem_width(4)
//                                             .stem(Stem::Cifar).num_classes(10));
// blocks_per_stage: one count per stage ({2, 2, 2, 2} is ResNet18). widths: each stage's planes; empty (the
// default) is stem_width doubled at each stage, torchvision's 64/128/256/512. stem_width: conv1's channels.
// block_shape: a Bottleneck's groups and width per group.
class ResNetOptions {
 public:
  explicit ResNetOptions(std::vector<int> blocks_per_stage)
      : blocks_per_stage_(std::move(blocks_per_stage)) {}

  ResNetOptions& widths(std::vector<int> w) { return set(widths_, std::move(w)); }
  ResNetOptions& stem_width(int w) { return set(stem_width_, w); }
  ResNetOptions& stem(Stem s) { return set(stem_, s); }
  ResNetOptions& num_classes(int n) { return set(num_classes_, n); }
  ResNetOptions& in_channels(int n) { return set(in_channels_, n); }
  ResNetOptions& seed(std::uint64_t s) { return set(seed_, s); }  // of reset_parameters
  ResNetOptions& block_shape(BlockShape s) { return set(block_shape_, s); }

  const std::vector<int>& blocks_per_stage() const { return blocks_per_stage_; }
  const std::vector<int>& widths() const { return widths_; }
  int stem_width() const { return stem_width_; }
  Stem stem() const { return stem_; }
  int num_classes() const { return num_classes_; }
  int in_channels() const { return in_channels_; }
  std::uint64_t seed() const { return seed_; }
  const BlockShape& block_shape() const { return block_shape_; }

 private:
  template <typename V>
  ResNetOptions& set(V& field, V value) {
    field = std::move(value);
    return *this;
  }
  std::vector<int> blocks_per_stage_, widths_;
  int stem_width_ = 64;
  Stem stem_ = Stem::ImageNet;
  int num_classes_ = 1000, in_channels_ = 3;
  std::uint64_t seed_ = 0;
  BlockShape block_shape_;
};

namespace detail {
// Block::pre_activation, or false for a block without it (BasicBlock, Bottleneck).
template <typename Block, typename = void>
struct is_pre_activation : std::false_type {};
template <typename Block>
struct is_pre_activation<Block, std::void_t<decltype(Block::pre_activation)>>
    : std::bool_constant<Block::pre_activation> {};
}  // namespace detail

template <typename T, typename Block = BasicBlock<T>>
class ResNet : public nn::Module<ResNet<T, Block>, T> {
  static constexpr bool kPreActivation = detail::is_pre_activation<Block>::value;
  // conv1 alone before pre-activation blocks (each begins with its own BN-ReLU), else conv1, bn1 and ReLU.
  using StemUnit = std::conditional_t<kPreActivation, nn::Conv2d<T>, nn::ConvBn<T>>;

 public:
  explicit ResNet(const ResNetOptions& options)
      : options_(resolved(options)),
        stem_(make_stem(options_)),
        avgpool_(1, 1),
        fc_(options_.widths().back() * Block::expansion, options_.num_classes()) {
    if (options_.stem() == Stem::ImageNet) maxpool_.emplace(3, 2, 1);
    int channels = options_.stem_width();
    stages_.resize(options_.blocks_per_stage().size());
    for (std::size_t s = 0; s < stages_.size(); ++s) {
      const int planes = options_.widths()[s];
      for (int b = 0; b < options_.blocks_per_stage()[s]; ++b) {
        stages_[s].emplace_back(channels, planes, b == 0 && s > 0 ? 2 : 1, options_.block_shape());
        channels = planes * Block::expansion;
      }
    }
    if constexpr (kPreActivation) bn_.emplace(channels);
    Rng rng(options_.seed());
    reset_parameters(rng);
    flat_ = nn::flatten_parameters(*this);
  }
  // The spelling of earlier releases: 4 stages of base_width, doubled at each stage.
  ResNet(std::array<int, 4> blocks_per_stage, int num_classes = 1000, Stem stem = Stem::ImageNet,
         int in_channels = 3, std::uint64_t seed = 0, int base_width = 64, BlockShape block_shape = {})
      : ResNet(ResNetOptions({blocks_per_stage.begin(), blocks_per_stage.end()})
                   .num_classes(num_classes)
                   .stem(stem)
                   .in_channels(in_channels)
                   .seed(seed)
                   .stem_width(base_width)
                   .block_shape(block_shape)) {}

  // torchvision's ResNet init: every conv Kaiming normal (fan_out, ReLU gain), fc PyTorch's Linear default
  // (BatchNorm starts at weight 1, bias 0 by construction). Drawn in state-dict order from one generator, so
  // a seed fixes the whole model.
  void reset_parameters(Rng& rng) {
    for (auto& p : this->named_parameters()) {
      if (p.value->dim() == 4) nn::init::kaiming_normal_fan_out(*p.value, rng);
    }
    fc_.reset_parameters(rng);
  }

  // torchvision's zero_init_residual=True: every residual branch starts as zero, so each block as its
  // shortcut (Goyal et al., 2017), which speeds early training. The branch's last BatchNorm weight is zeroed;
  // a pre-activation branch ends in conv2 instead, whose weight is zeroed (timm's zero_init_last): a zero
  // bn2 weight, before a ReLU, would zero bn2's own gradients too.
  void zero_init_residual() {
    for (auto& stage : stages_)
      for (auto& block : stage) {
        if constexpr (kPreActivation)
          block.conv2().weight().fill(T(0));
        else
          block.last_bn().weight().fill(T(0));
      }
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    if constexpr (kPreActivation)
      v.child("conv1", stem_);
    else
      stem_.visit(v, "conv1", "bn1");
    if (maxpool_) v.child("maxpool", *maxpool_);
    for (std::size_t s = 0; s < stages_.size(); ++s) {
      for (std::size_t b = 0; b < stages_[s].size(); ++b)
        v.child("layer" + std::to_string(s + 1) + "." + std::to_string(b), stages_[s][b]);
    }
    if (bn_) v.child("bn", *bn_);
    v.child("avgpool", avgpool_);
    v.child("fc", fc_);
  }

  // [N, in_channels, H, W] -> logits [N, num_classes].
  Tensor<T> forward(const Tensor<T>& input) {
    nn::expect_input(input, 4, in_channels(), "ResNet.forward", "[N, C, H, W]");
    if (this->is_training()) {
      check(!is_folded(),
            "ResNet.forward: the BatchNorms are folded into the convs (fold_batchnorm), so the model is "
            "inference-only; call eval(), or train the model it was folded from");
      expect_batch_statistics(input);
    }
    Tensor<T> x = stem_.forward(input);
    // The stem's ReLU output is kept for its mask at backward: maxpool or layer1 holds it anyway.
    if constexpr (!kPreActivation) stem_output_ = this->is_training() ? x : Tensor<T>();
    if (maxpool_) x = maxpool_->forward(x);
    for (auto& stage : stages_) {
      for (auto& block : stage)
        x = block.forward(x);
    }
    if (bn_) x = bn_->forward(x, nn::Activation::ReLU);  // its output is recomputed at backward
    x = avgpool_.forward(x);
    pooled_shape_ = this->is_training() ? x.shape() : std::vector<std::int64_t>{};
    backward_ran_ = false;
    return fc_.forward(x.reshape({x.size(0), x.size(1)}));  // flatten [N, C, 1, 1] -> [N, C]
  }

  // d loss / d logits [N, num_classes] -> d loss / d input, or an empty tensor with InputGrad::Skip, which
  // training uses (PyTorch skips it for an input that does not require grad): the stem conv then skips its
  // input-gradient GEMM and col2im. Parameter gradients accumulate. `ready`, if given, hears after fc, the
  // final BatchNorm, each block and the stem which parameters have their final gradients.
  Tensor<T> backward(const Tensor<T>& grad_logits, nn::InputGrad input_grad = nn::InputGrad::Compute,
                     const nn::GradientsReady& ready = {}) {
    check(!backward_ran_ || !pooled_shape_.empty(),
          "ResNet.backward: backward already ran for the last forward (each training-mode forward allows one "
          "backward: run forward again first)");
    nn::expect_cached(!pooled_shape_.empty(), "ResNet.backward");
    backward_ran_ = true;
    nn::expect_shape(grad_logits, {pooled_shape_[0], num_classes()}, "ResNet.backward", "grad_logits");
    const std::vector<std::int64_t> pooled_shape =
        std::exchange(pooled_shape_, {});  // released: one backward
    // The parameters from `first` on are final once the unit owning those before it is the next to run.
    std::size_t first = ready ? this->named_parameters().size() : 0;
    const auto done = [&](auto& unit) {
      if (!ready) return;
      first -= parameters_of(unit);
      ready(first);
    };
    Tensor<T> grad = fc_.backward(grad_logits);
    done(fc_);
    grad = avgpool_.backward(grad.reshape(pooled_shape));
    if (bn_) {
      grad = bn_->backward(grad, bn_->relu_output_again());
      done(*bn_);
    }
    for (auto stage = stages_.rbegin(); stage != stages_.rend(); ++stage) {
      for (auto block = stage->rbegin(); block != stage->rend(); ++block) {
        grad = block->backward(grad);
        done(*block);
      }
    }
    if (maxpool_) grad = maxpool_->backward(grad);
    if constexpr (kPreActivation)
      grad = stem_.backward(grad, input_grad);
    else
      grad = stem_.backward(std::move(grad), std::exchange(stem_output_, Tensor<T>()), input_grad);
    if (ready) ready(0);  // the stem's too
    return grad;
  }

  // The inference lowering, in place: every BatchNorm that directly follows a conv folded into it
  // (nn/conv_bn.hpp), so that the state is convs with biases and fc ("conv1.weight", "conv1.bias",
  // "layer2.0.downsample.0.bias", ...) and the model is inference-only, in eval mode. In a pre-activation
  // model that is each block's bn2; its bn1 and the final bn stay BatchNorms (a ReLU lies between each and
  // the conv after it), and conv1 has none. models::fold_batchnorm(model) makes a folded copy.
  void fold_batchnorm() {
    if constexpr (!kPreActivation) stem_.fold_batchnorm();
    for (auto& stage : stages_) {
      for (auto& block : stage)
        block.fold_batchnorm();
    }
    folded_ = true;
    this->eval();
    flat_ = nn::flatten_parameters(*this);
  }
  bool is_folded() const { return folded_; }

  // Every parameter and gradient, in one allocation each (nn/flat_parameters.hpp).
  const nn::FlatParameters<T>& flat_parameters() const { return flat_; }

  // backward(grad_logits, nn::InputGrad::Skip), the spelling of earlier releases.
  void backward_parameters(const Tensor<T>& grad_logits) { backward(grad_logits, nn::InputGrad::Skip); }

  // What the model was built from, its widths filled in: ResNet(model.options()) is the same architecture.
  const ResNetOptions& options() const { return options_; }
  Stem stem() const { return options_.stem(); }
  const std::vector<int>& blocks_per_stage() const { return options_.blocks_per_stage(); }
  const std::vector<int>& widths() const { return options_.widths(); }
  int base_width() const { return options_.stem_width(); }  // conv1's channels
  const BlockShape& block_shape() const { return options_.block_shape(); }
  int in_channels() const { return options_.in_channels(); }
  int num_classes() const { return options_.num_classes(); }

  // The architecture a saved file's metadata records (io::describe) and a strict load checks against the
  // file, all but num_classes: "architecture" (torchvision's name, models/architectures.hpp: resnet18 ...
  // resnet152, wide_resnet50_2, wide_resnet101_2, resnext50_32x4d, resnext101_32x8d; preact_resnet18,
  // wrn-<depth>-<k>; else resnet-<blocks per stage>, with "bottleneck-" or "preact-" before the counts for
  // those blocks), "block" (basic, bottleneck or preact), "groups", "width_per_group", "stem" (imagenet or
  // cifar), "in_channels", "num_classes", "base_width" (conv1's channels) and "widths" (each stage's planes,
  // "64-128-256-512"). A file without a key (one saved before it was recorded) is not checked on it.
  std::map<std::string, std::string> architecture() const {
    return {{"architecture", architecture_name()},
            {"block", Block::name},
            {"groups", std::to_string(block_shape().groups)},
            {"width_per_group", std::to_string(block_shape().width_per_group)},
            {"stem", stem() == Stem::ImageNet ? "imagenet" : "cifar"},
            {"in_channels", std::to_string(in_channels())},
            {"num_classes", std::to_string(num_classes())},
            {"base_width", std::to_string(base_width())},
            {"widths", detail::dash_joined(widths())}};
  }

 private:
  // The options checked, before any layer is built from them, and the default widths filled in.
  static ResNetOptions resolved(ResNetOptions o) {
    const std::vector<int>& blocks = o.blocks_per_stage();
    check(!blocks.empty(), "ResNet: blocks_per_stage is empty: a ResNet needs at least one stage");
    for (std::size_t s = 0; s < blocks.size(); ++s)
      check(blocks[s] >= 1, "ResNet: stage ", s + 1, " needs at least one block, got ", blocks[s]);
    check(o.in_channels() >= 1, "ResNet: in_channels must be positive, got ", o.in_channels());
    check(o.num_classes() >= 1, "ResNet: num_classes must be positive, got ", o.num_classes());
    check(!kPreActivation || o.stem() == Stem::Cifar, "ResNet: a pre-activation ResNet (", Block::name,
          " blocks) has the CIFAR stem (a 3x3 stride-1 conv1 without BatchNorm), not Stem::ImageNet");
    // Each stage's output, planes * expansion channels, must fit an int.
    constexpr int most = INT_MAX / Block::expansion;
    if (o.widths().empty()) {
      const int base_most = blocks.size() > 30 ? 0 : most >> (blocks.size() - 1);
      check(o.stem_width() >= 1 && o.stem_width() <= base_most, "ResNet: base_width must be in [1, ",
            base_most, "] for ", blocks.size(), " stages, got ", o.stem_width());
      std::vector<int> doubling;
      for (std::size_t s = 0; s < blocks.size(); ++s)
        doubling.push_back(o.stem_width() << s);
      o.widths(std::move(doubling));
    }
    check(o.stem_width() >= 1, "ResNet: stem_width must be positive, got ", o.stem_width());
    check(o.widths().size() == blocks.size(), "ResNet: ", o.widths().size(), " widths for ", blocks.size(),
          " stages of blocks");
    for (std::size_t s = 0; s < blocks.size(); ++s)
      check(o.widths()[s] >= 1 && o.widths()[s] <= most, "ResNet: stage ", s + 1, "'s width must be in [1, ",
            most, "], got ", o.widths()[s]);
    return o;
  }

  // torchvision's 7x7 stride-2 stem conv or the CIFAR 3x3 stride-1 one.
  static StemUnit make_stem(const ResNetOptions& o) {
    const bool imagenet = o.stem() == Stem::ImageNet;
    const nn::Conv2dOptions conv = nn::Conv2dOptions(o.in_channels(), o.stem_width(), imagenet ? 7 : 3)
                                       .stride(imagenet ? 2 : 1)
                                       .padding(imagenet ? 3 : 1)
                                       .bias(false);
    if constexpr (kPreActivation)
      return nn::Conv2d<T>(conv);
    else
      return nn::ConvBn<T>(conv, nn::Activation::ReLU);
  }
  const nn::Conv2d<T>& stem_conv() const {
    if constexpr (kPreActivation)
      return stem_;
    else
      return stem_.conv();
  }

  // The architecture's name (see architecture()): torchvision_architecture_name() for BasicBlock and
  // Bottleneck models, preact_resnet18, wrn-<depth>-<k> or "preact-resnet-<blocks per stage>" for
  // pre-activation ones.
  std::string architecture_name() const {
    const std::vector<int>& b = blocks_per_stage();
    const std::vector<int>& w = widths();
    if (kPreActivation) {
      const std::string counts = detail::dash_joined(b);
      if (counts == "2-2-2-2" && base_width() == 64 && detail::doubling(w, 64, 4)) return "preact_resnet18";
      const bool wrn = b.size() == 3 && b[1] == b[0] && b[2] == b[0] && base_width() == 16 && w[0] % 16 == 0;
      if (wrn && detail::doubling(w, w[0], 3))
        return "wrn-" + std::to_string(6 * std::int64_t{b[0]} + 4) + "-" + std::to_string(w[0] / 16);
      return "preact-resnet-" + counts;
    }
    return torchvision_architecture_name(Block::expansion == 1 ? BlockKind::Basic : BlockKind::Bottleneck, b,
                                         block_shape(), base_width(), w);
  }

  // The number of parameters of one unit of the model (a block, the final BatchNorm, fc).
  template <typename Unit>
  static std::size_t parameters_of(Unit& unit) {
    std::vector<nn::Parameter<T>> parameters;
    nn::detail::StateCollector<T> collector{"", &parameters, nullptr};
    unit.visit(collector);
    return parameters.size();
  }

  // Training-mode BatchNorm needs more than one value per channel, as in PyTorch. The last stage's map is
  // the smallest, so the check is made here, where the message can say which input would do, and not deep
  // in that stage.
  void expect_batch_statistics(const Tensor<T>& input) {
    if (input.size(0) > 1 || last_map_side(input.size(2)) * last_map_side(input.size(3)) > 1) return;
    std::int64_t side = 1;
    while (last_map_side(side) < 2)
      ++side;
    fail("ResNet.forward: input shape ", shape_string(input.shape()),
         " leaves a single value per channel in layer", stages_.size(),
         " (a 1x1 map of 1 image), and training-mode BatchNorm needs more; train on batches of 2 or more "
         "images, or on images with H or W at least ",
         side, " for this stem (eval() runs any size)");
  }

  // The side of the last stage's output map for an input side `in`: through every conv and pool on the
  // main path.
  std::int64_t last_map_side(std::int64_t in) {
    const auto through = [](std::int64_t side, const auto& layer) {
      return kernels::window_output_size(side, layer.kernel_size(), layer.stride(), layer.padding());
    };
    std::int64_t side = through(in, stem_conv());
    if (maxpool_) side = through(side, *maxpool_);
    for (auto& stage : stages_) {
      for (auto& block : stage)
        side = block.output_size(side);
    }
    return side;
  }

  ResNetOptions options_;
  StemUnit stem_;  // conv1 (and bn1, ReLU)
  std::optional<nn::MaxPool2d<T>> maxpool_;
  std::vector<std::vector<Block>> stages_;
  std::optional<nn::BatchNorm2d<T>> bn_;  // pre-activation: the final BatchNorm (and its ReLU)
  nn::AdaptiveAvgPool2d<T> avgpool_;
  nn::Linear<T> fc_;
  Tensor<T> stem_output_;                   // training mode, post-activation: relu(bn1(conv1(x)))
  std::vector<std::int64_t> pooled_shape_;  // shape before flatten, from the last training-mode forward
  bool backward_ran_ = false;               // for the last forward: a second backward is refused by name
  bool folded_ = false;                     // fold_batchnorm() ran: inference-only
  nn::FlatParameters<T> flat_;              // where the parameters and gradients live
};

// A ResNet with torchvision's block counts, width per group and groups fixed by name, taking the constructor
// every named model has: (num_classes, stem, in_channels, seed).
template <typename T, template <typename> class Block, int blocks1, int blocks2, int blocks3, int blocks4,
          int width_per_group = 64, int groups = 1>
class NamedResNet : public ResNet<T, Block<T>> {
 public:
  explicit NamedResNet(int num_classes = 1000, Stem stem = Stem::ImageNet, int in_channels = 3,
                       std::uint64_t seed = 0)
      : ResNet<T, Block<T>>({blocks1, blocks2, blocks3, blocks4}, num_classes, stem, in_channels, seed, 64,
                            BlockShape{groups, width_per_group}) {}
};

// torchvision.models.resnet18 ... resnext101_32x8d.
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
template <typename T>
using ResNeXt50_32x4d = NamedResNet<T, Bottleneck, 3, 4, 6, 3, 4, 32>;
template <typename T>
using ResNeXt101_32x8d = NamedResNet<T, Bottleneck, 3, 4, 23, 3, 8, 32>;

// Any pre-activation ResNet: PreActResNet<float> net(ResNetOptions({1, 1}).widths({8,
// 16}).stem(Stem::Cifar)).
template <typename T>
using PreActResNet = ResNet<T, PreActBlock<T>>;

// The pre-activation ResNet-18 for CIFAR-sized input: 4 stages of 2 blocks of widths 64/128/256/512 after a
// 64-channel conv1.
template <typename T>
class PreActResNet18 : public PreActResNet<T> {
 public:
  explicit PreActResNet18(int num_classes = 10, int in_channels = 3, std::uint64_t seed = 0)
      : PreActResNet<T>(ResNetOptions({2, 2, 2, 2})
                            .stem(Stem::Cifar)
                            .num_classes(num_classes)
                            .in_channels(in_channels)
                            .seed(seed)) {}
};

// WRN-depth-k (Zagoruyko and Komodakis, 2016), without dropout: a 16-channel conv1, then 3 stages of
// (depth - 4) / 6 pre-activation blocks of widths 16k, 32k, 64k, strides 1, 2, 2.
template <typename T>
class WideResNet : public PreActResNet<T> {
 public:
  WideResNet(int depth, int widen_factor, int num_classes = 10, int in_channels = 3, std::uint64_t seed = 0)
      : PreActResNet<T>(
            options(depth, widen_factor).num_classes(num_classes).in_channels(in_channels).seed(seed)) {}

 private:
  static ResNetOptions options(int depth, int k) {
    check(depth >= 10 && (depth - 4) % 6 == 0,
          "WideResNet: depth must be 6n + 4 for n >= 1 blocks per stage (10, 16, 22, 28, 40, ...), got ",
          depth);
    check(k >= 1 && k <= INT_MAX / 64, "WideResNet: widen_factor must be in [1, ", INT_MAX / 64, "], got ",
          k);
    const int n = (depth - 4) / 6;
    return ResNetOptions({n, n, n}).widths({16 * k, 32 * k, 64 * k}).stem_width(16).stem(Stem::Cifar);
  }
};

}  // namespace resnet::models
