#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/compare.hpp"
#include "support/expect_error.hpp"
#include "support/gradcheck.hpp"

using resnet::Tensor;
using resnet::models::ResNet;
using resnet::models::ResNet18;
using resnet::models::Stem;
using resnet::testing::expect_error;

namespace {

std::vector<std::string> parameter_names(ResNet<float>& net) {
  std::vector<std::string> names;
  for (auto& p : net.named_parameters())
    names.push_back(p.name);
  return names;
}

Tensor<double> random_tensor(std::vector<std::int64_t> shape, std::uint64_t seed) {
  resnet::Rng rng(seed);
  Tensor<double> t(std::move(shape));
  t.fill_normal(rng);
  return t;
}

}  // namespace

TEST(ResNet18, ParameterCountsAreTorchvisions) {
  ResNet18<float> imagenet;
  EXPECT_EQ(imagenet.parameter_count(), 11689512);
  ResNet18<float> cifar(10, Stem::Cifar);
  EXPECT_EQ(cifar.parameter_count(), 11173962);
  resnet::models::ResNet34<float> resnet34;
  EXPECT_EQ(resnet34.parameter_count(), 21797672);
}

TEST(ResNet18, StateDictNamesFollowTorchvision) {
  ResNet18<float> net;
  const auto names = parameter_names(net);
  ASSERT_EQ(names.size(), 62u);
  EXPECT_EQ(net.named_buffers().size(), 60u);
  EXPECT_EQ(names.front(), "conv1.weight");
  EXPECT_EQ(names[1], "bn1.weight");
  EXPECT_EQ(names[3], "layer1.0.conv1.weight");
  EXPECT_EQ(names.back(), "fc.bias");
  const std::vector<std::string> buffers = [&] {
    std::vector<std::string> b;
    for (auto& buffer : net.named_buffers())
      b.push_back(buffer.name);
    return b;
  }();
  EXPECT_EQ(buffers[0], "bn1.running_mean");
  EXPECT_EQ(buffers[2], "bn1.num_batches_tracked");
  EXPECT_NE(std::find(names.begin(), names.end(), "layer2.0.downsample.0.weight"), names.end());
  EXPECT_NE(std::find(buffers.begin(), buffers.end(), "layer4.0.downsample.1.running_var"), buffers.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "layer1.0.downsample.0.weight"), names.end());
}

TEST(ResNet18, OutputShapesForBothStems) {
  ResNet18<float> imagenet;
  imagenet.eval();
  EXPECT_EQ(imagenet.forward(Tensor<float>({2, 3, 224, 224})).shape(), (std::vector<std::int64_t>{2, 1000}));
  ResNet18<float> cifar(10, Stem::Cifar);
  EXPECT_EQ(cifar.forward(Tensor<float>({3, 3, 32, 32})).shape(), (std::vector<std::int64_t>{3, 10}));
  ResNet18<float> gray(10, Stem::Cifar, 1);
  EXPECT_EQ(gray.forward(Tensor<float>({1, 1, 28, 28})).shape(), (std::vector<std::int64_t>{1, 10}));
}

TEST(ResNet18, InitIsKaimingFanOutAndReproducibleFromTheSeed) {
  ResNet18<float> a(10, Stem::Cifar, 3, 5), b(10, Stem::Cifar, 3, 5), c(10, Stem::Cifar, 3, 6);
  auto pa = a.named_parameters(), pb = b.named_parameters(), pc = c.named_parameters();
  bool any_differs = false;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ((pa[i].value->vector() - pb[i].value->vector()).norm(), 0.0f) << pa[i].name;
    any_differs |= (pa[i].value->vector() - pc[i].value->vector()).norm() > 0;
  }
  EXPECT_TRUE(any_differs);
  // layer3.0.conv2.weight is [256, 256, 3, 3]: fan_out 2304, so std sqrt(2 / 2304).
  for (auto& p : pa) {
    if (p.name == "layer3.0.conv2.weight") {
      const double n = static_cast<double>(p.value->numel());
      const double std = std::sqrt(p.value->vector().squaredNorm() / n);
      EXPECT_NEAR(std, std::sqrt(2.0 / 2304.0), 0.01 * std);
    }
    if (p.name == "layer1.1.bn2.weight") {
      EXPECT_EQ(p.value->vector().minCoeff(), 1.0f);
    }
    if (p.name == "fc.weight") {
      EXPECT_LE(p.value->vector().cwiseAbs().maxCoeff(), 1.0f / std::sqrt(512.0f));
    }
  }
}

TEST(ResNet, EvalForwardTreatsImagesIndependently) {
  // In eval mode BatchNorm uses running statistics, so an image's logits do not depend on its batch.
  ResNet<double> net({1, 1, 1, 1}, 5, Stem::Cifar, 3, 11, 4);
  net.train();
  net.forward(random_tensor({4, 3, 8, 8}, 1));  // moves the running statistics away from 0 and 1
  net.eval();
  const Tensor<double> batch = random_tensor({3, 3, 8, 8}, 2);
  const Tensor<double> logits = net.forward(batch);
  for (std::int64_t n = 0; n < 3; ++n) {
    Tensor<double> one({1, 3, 8, 8});
    std::copy(batch.data() + n * 192, batch.data() + (n + 1) * 192, one.data());
    const Tensor<double> single = net.forward(one);
    for (std::int64_t k = 0; k < 5; ++k)
      EXPECT_NEAR(single[k], logits.at({n, k}), 1e-12);
  }
  EXPECT_THROW(net.backward(Tensor<double>({3, 5})), resnet::Error);
}

// As PyTorch frees a graph's saved tensors after backward, every module's backward releases what its forward
// cached: a second backward throws, naming the module, and the next forward caches again.
template <typename Module>
void expect_one_backward_per_forward(Module module, const Tensor<double>& input, const char* name) {
  module.train();
  const Tensor<double> output = module.forward(input);
  module.backward(output);
  expect_error([&] { module.backward(output); }, {name, "one backward"});
  module.forward(input);
  EXPECT_EQ(module.backward(output).shape(), input.shape()) << name;
}

TEST(Modules, BackwardReleasesTheForwardCache) {
  const Tensor<double> x = random_tensor({2, 4, 6, 6}, 3);
  expect_one_backward_per_forward(resnet::nn::Conv2d<double>(4, 4, 3, 1, 1), x, "Conv2d.backward");
  expect_one_backward_per_forward(resnet::nn::BatchNorm2d<double>(4), x, "BatchNorm2d.backward");
  expect_one_backward_per_forward(resnet::nn::ReLU<double>(), x, "ReLU.backward");
  expect_one_backward_per_forward(resnet::nn::MaxPool2d<double>(3, 1, 1), x, "MaxPool2d.backward");
  expect_one_backward_per_forward(resnet::nn::AdaptiveAvgPool2d<double>(6, 6), x,
                                  "AdaptiveAvgPool2d.backward");
  expect_one_backward_per_forward(resnet::nn::BasicBlock<double>(4, 4, 1), x, "BasicBlock.backward");
  expect_one_backward_per_forward(resnet::nn::BasicBlock<double>(4, 8, 2), x, "BasicBlock.backward");
  expect_one_backward_per_forward(resnet::nn::Linear<double>(5, 5), random_tensor({3, 5}, 4),
                                  "Linear.backward");
  ResNet<double> net({1, 1, 1, 1}, 5, Stem::Cifar, 4, 11, 4);
  net.train();
  const Tensor<double> logits = net.forward(x);
  net.backward(logits);
  expect_error([&] { net.backward(logits); },
               {"ResNet.backward", "backward already ran for the last forward", "one backward"});
}

// backward with InputGrad::Skip (and backward_parameters, its older spelling) is backward without the input
// gradient: the same parameter gradients, bitwise, on both stems (the ImageNet stem's 7x7 conv has a
// different input-gradient path from the CIFAR stem's 3x3).
TEST(ResNet, BackwardParametersGivesBackwardsParameterGradients) {
  for (Stem stem : {Stem::Cifar, Stem::ImageNet}) {
    const Tensor<double> x = random_tensor({2, 3, 16, 16}, 5), grad = random_tensor({2, 5}, 6);
    std::vector<std::vector<double>> runs;
    for (int variant : {0, 1, 2}) {
      ResNet<double> net({1, 1, 1, 1}, 5, stem, 3, 11, 4);
      net.train();
      net.forward(x);
      if (variant == 0) {
        EXPECT_EQ(net.backward(grad).shape(), x.shape());
      } else if (variant == 1) {
        EXPECT_TRUE(net.backward(grad, resnet::nn::InputGrad::Skip).empty());
      } else {
        net.backward_parameters(grad);
      }
      std::vector<double> grads;
      for (const auto& p : net.named_parameters())
        grads.insert(grads.end(), p.grad->data(), p.grad->data() + p.grad->numel());
      runs.push_back(grads);
    }
    EXPECT_EQ(runs[0], runs[1]);
    EXPECT_EQ(runs[0], runs[2]);
  }
}

TEST(ResNet, ZeroInitResidualZeroesExactlyEachBlocksLastBatchNormWeight) {
  // torchvision's zero_init_residual: bn2.weight of every BasicBlock, no other weight (biases start at 0
  // anyway).
  ResNet<double> net({2, 2, 2, 2}, 10, Stem::Cifar, 3, 5, 4);
  net.zero_init_residual();
  int zeroed = 0;
  for (const auto& p : net.named_parameters()) {
    if (p.name.find("weight") == std::string::npos) continue;
    bool all_zero = true;
    for (std::int64_t i = 0; i < p.value->numel(); ++i)
      all_zero = all_zero && (*p.value)[i] == 0;
    const bool ends_bn2_weight = p.name.find(".bn2.weight") != std::string::npos;
    EXPECT_EQ(all_zero, ends_bn2_weight) << p.name;
    zeroed += ends_bn2_weight;
  }
  EXPECT_EQ(zeroed, 8);
}

TEST(BasicBlock, GradientsWithIdentityShortcut) {
  resnet::nn::BasicBlock<double> block(4, 4, 1, 3);
  EXPECT_FALSE(block.has_downsample());
  resnet::testing::expect_module_gradients(block, random_tensor({2, 4, 5, 6}, 4));
}

TEST(BasicBlock, GradientsWithProjectionShortcutStride2) {
  resnet::nn::BasicBlock<double> block(3, 5, 2, 3);
  EXPECT_TRUE(block.has_downsample());
  resnet::testing::expect_module_gradients(block, random_tensor({2, 3, 7, 6}, 5));
}

TEST(BasicBlock, GradientsWithProjectionShortcutChannelsOnly) {
  resnet::nn::BasicBlock<double> block(3, 6, 1, 3);
  EXPECT_TRUE(block.has_downsample());
  resnet::testing::expect_module_gradients(block, random_tensor({3, 3, 5, 5}, 6));
}

TEST(ResNet, NarrowNetworkGradientsEndToEndCifarStem) {
  ResNet<double> net({1, 1, 1, 1}, 3, Stem::Cifar, 2, 7, 2);
  resnet::testing::GradcheckOptions options;
  options.max_elements = 60;
  resnet::testing::expect_module_gradients(net, random_tensor({2, 2, 8, 8}, 7), options);
}

TEST(ResNet, NarrowNetworkGradientsEndToEndImageNetStem) {
  ResNet<double> net({2, 1, 1, 1}, 4, Stem::ImageNet, 3, 8, 2);
  resnet::testing::GradcheckOptions options;
  options.max_elements = 60;
  resnet::testing::expect_module_gradients(net, random_tensor({2, 3, 19, 17}, 8), options);
}

TEST(ResNet, BadConfigurationsAndInputsThrow) {
  EXPECT_THROW(ResNet18<float>(0), resnet::Error);
  EXPECT_THROW(ResNet18<float>(10, Stem::Cifar, 0), resnet::Error);
  ResNet18<float> net(10, Stem::Cifar);
  try {
    net.forward(Tensor<float>({2, 1, 32, 32}));
    FAIL() << "wrong channel count must throw";
  } catch (const resnet::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 1, 32, 32]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(net.forward(Tensor<float>({3, 32, 32})), resnet::Error);
  EXPECT_THROW(net.backward(Tensor<float>({2, 10})), resnet::Error);
}

// torchvision's parameter counts (1000 classes, ImageNet stem) and names of the Bottleneck models.
TEST(ResNetFamily, ParameterCountsAndNamesAreTorchvisions) {
  using namespace resnet::models;
  EXPECT_EQ(ResNet50<float>().parameter_count(), 25557032);
  EXPECT_EQ(ResNet101<float>().parameter_count(), 44549160);
  EXPECT_EQ(ResNet152<float>().parameter_count(), 60192808);
  EXPECT_EQ(WideResNet50_2<float>().parameter_count(), 68883240);
  EXPECT_EQ(WideResNet101_2<float>().parameter_count(), 126886696);
  EXPECT_EQ(ResNet50<float>().architecture().at("architecture"), "resnet50");
  EXPECT_EQ(ResNet152<float>().architecture().at("architecture"), "resnet152");
  EXPECT_EQ(WideResNet101_2<float>().architecture().at("architecture"), "wide_resnet101_2");
  EXPECT_EQ(WideResNet50_2<float>().architecture().at("width_per_group"), "128");
  EXPECT_EQ(ResNet34<float>().architecture().at("block"), "basic");
  const ResNet<float, Bottleneck<float>> other({1, 2, 1, 1}, 10, Stem::Cifar, 3, 0, 16);
  EXPECT_EQ(other.architecture().at("architecture"), "resnet-bottleneck-1-2-1-1");
  // Bottleneck names: conv3/bn3 and a projection shortcut in every stage's first block (64 -> 256 channels
  // in layer1 too).
  ResNet50<float> net;
  std::vector<std::string> names;
  for (auto& p : net.named_parameters())
    names.push_back(p.name + " " + resnet::shape_string(p.value->shape()));
  EXPECT_EQ(names.size(), 161u);
  for (const char* expected :
       {"layer1.0.conv1.weight [64, 64, 1, 1]", "layer1.0.conv3.weight [256, 64, 1, 1]",
        "layer1.0.downsample.0.weight [256, 64, 1, 1]", "layer2.0.conv2.weight [128, 128, 3, 3]",
        "layer4.2.bn3.bias [2048]", "fc.weight [1000, 2048]"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  EXPECT_EQ(std::find(names.begin(), names.end(), "layer1.1.downsample.0.weight [256, 256, 1, 1]"),
            names.end());
}

TEST(Bottleneck, GradientsWithIdentityShortcut) {
  resnet::models::Bottleneck<double> block(8, 2, 1);
  EXPECT_FALSE(block.has_downsample());
  resnet::testing::expect_module_gradients(block, random_tensor({2, 8, 5, 4}, 21));
}

TEST(Bottleneck, GradientsWithProjectionShortcutStride2AndWiderGroups) {
  resnet::models::Bottleneck<double> block(3, 2, 2, resnet::models::BlockShape{1, 96});  // width 3
  EXPECT_TRUE(block.has_downsample());
  EXPECT_EQ(block.conv2().out_channels(), 3);
  resnet::testing::expect_module_gradients(block, random_tensor({2, 3, 7, 6}, 22));
}

// groups > 1, as ResNeXt: conv2 is grouped, planes * width_per_group / 64 * groups channels in `groups`
// groups.
TEST(Bottleneck, GradientsWithGroupsForBothShortcuts) {
  using resnet::models::BlockShape;
  resnet::models::Bottleneck<double> identity(8, 2, 1, BlockShape{2, 64});  // width 4 in 2 groups
  EXPECT_FALSE(identity.has_downsample());
  EXPECT_EQ(identity.conv2().groups(), 2);
  EXPECT_EQ(identity.conv2().weight().shape(), (std::vector<std::int64_t>{4, 2, 3, 3}));
  resnet::testing::expect_module_gradients(identity, random_tensor({2, 8, 5, 4}, 24));
  resnet::models::Bottleneck<double> projection(3, 2, 2, BlockShape{3, 32});  // width 3 in 3 groups
  EXPECT_TRUE(projection.has_downsample());
  EXPECT_EQ(projection.conv2().weight().shape(), (std::vector<std::int64_t>{3, 1, 3, 3}));
  resnet::testing::expect_module_gradients(projection, random_tensor({2, 3, 7, 6}, 25));
}

TEST(Bottleneck, BadShapesThrow) {
  using resnet::models::BlockShape;
  EXPECT_THROW(resnet::models::Bottleneck<float>(4, 2, 1, BlockShape{1, 0}), resnet::Error);
  EXPECT_THROW(resnet::models::Bottleneck<float>(4, 1, 1, BlockShape{1, 32}), resnet::Error);  // width 0
  EXPECT_THROW(resnet::models::BasicBlock<float>(4, 4, 1, BlockShape{1, 128}), resnet::Error);
}

TEST(ResNet, NarrowBottleneckNetworkGradientsEndToEnd) {
  resnet::models::ResNet<double, resnet::models::Bottleneck<double>> net({1, 1, 1, 1}, 3, Stem::ImageNet, 2,
                                                                         7, 2);
  resnet::testing::GradcheckOptions options;
  options.max_elements = 60;
  resnet::testing::expect_module_gradients(net, random_tensor({2, 2, 17, 19}, 23), options);
  net.zero_init_residual();
  for (auto& p : net.named_parameters()) {
    if (p.name.find("bn3.weight") != std::string::npos) {
      EXPECT_EQ(p.value->vector().norm(), 0.0) << p.name;
    }
  }
}

TEST(PreActBlock, GradientsWithIdentityShortcut) {
  resnet::models::PreActBlock<double> block(4, 4, 1);
  EXPECT_FALSE(block.has_projection());
  resnet::testing::expect_module_gradients(block, random_tensor({2, 4, 5, 6}, 31));
}

TEST(PreActBlock, GradientsWithProjectionShortcutStride2) {
  resnet::models::PreActBlock<double> block(3, 5, 2);
  EXPECT_TRUE(block.has_projection());
  resnet::testing::expect_module_gradients(block, random_tensor({2, 3, 7, 6}, 32));
}

// torchvision-style names for the pre-activation unit: bn1, conv1, bn2, conv2, shortcut.
TEST(PreActBlock, NamesAndFoldedEvalForward) {
  resnet::models::PreActBlock<double> block(3, 5, 2);
  std::vector<std::string> names;
  for (auto& p : block.named_parameters())
    names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"bn1.weight", "bn1.bias", "conv1.weight", "bn2.weight",
                                             "bn2.bias", "conv2.weight", "shortcut.weight"}));
  resnet::Rng rng(33);
  for (auto& b : block.named_buffers()) {
    if (b.name.find("running_var") != std::string::npos) b.value->fill_uniform(rng, 0.5, 2.0);
    if (b.name.find("running_mean") != std::string::npos) b.value->fill_uniform(rng, -1.0, 1.0);
  }
  block.eval();
  const Tensor<double> x = random_tensor({2, 3, 8, 9}, 34);
  const Tensor<double> expected = block.forward(x);
  block.fold_batchnorm();
  EXPECT_LE(resnet::testing::relative_l2(block.forward(x), expected), 1e-14);
  block.train();
  EXPECT_THROW(block.forward(x), resnet::Error);  // folded: inference-only
  EXPECT_THROW(resnet::models::PreActBlock<double> bad(3, 5, 1, resnet::models::BlockShape{2, 64}),
               resnet::Error);
}

// ---------------------------------------------------------------------------------------------------------------
// The pre-activation models (PreActResNet18, WideResNet, any PreActResNet) and the ResNeXt aliases.

namespace {

using resnet::models::PreActResNet;
using resnet::models::ResNetOptions;

// "name [shape]" of every parameter (or buffer), in state-dict order.
template <typename Named>
std::vector<std::string> names_and_shapes(const std::vector<Named>& entries) {
  std::vector<std::string> names;
  for (const auto& e : entries)
    names.push_back(e.name + " " + resnet::shape_string(e.value->shape()));
  return names;
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Three stages of 1, 2 and 1 blocks after a 3-channel conv1: a channels-only projection (3 -> 4) in layer1.0,
// an identity shortcut in layer2.1, stride-2 projections in layer2.0 and layer3.0.
PreActResNet<double> narrow_preact(std::uint64_t seed) {
  return PreActResNet<double>(ResNetOptions({1, 2, 1})
                                  .widths({4, 6, 8})
                                  .stem_width(3)
                                  .stem(Stem::Cifar)
                                  .num_classes(3)
                                  .in_channels(2)
                                  .seed(seed));
}

}  // namespace

TEST(PreActResNet, ParameterCountsNamesAndArchitecture) {
  using namespace resnet::models;
  PreActResNet18<float> net;
  EXPECT_EQ(net.parameter_count(), 11172170);
  const auto names = names_and_shapes(net.named_parameters());
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.front(), "conv1.weight [64, 3, 3, 3]");
  EXPECT_EQ(names[1], "layer1.0.bn1.weight [64]");
  EXPECT_EQ(names.back(), "fc.bias [10]");
  for (const char* expected :
       {"layer1.0.conv1.weight [64, 64, 3, 3]", "layer1.0.bn2.bias [64]", "layer2.0.bn1.weight [64]",
        "layer2.0.shortcut.weight [128, 64, 1, 1]", "layer4.1.conv2.weight [512, 512, 3, 3]",
        "bn.weight [512]", "bn.bias [512]", "fc.weight [10, 512]"})
    EXPECT_TRUE(contains(names, expected)) << expected;
  for (const char* absent : {"bn1.weight [64]", "layer1.0.shortcut.weight [64, 64, 1, 1]"})
    EXPECT_FALSE(contains(names, absent)) << absent;
  const auto buffers = names_and_shapes(net.named_buffers());
  EXPECT_EQ(buffers.front(), "layer1.0.bn1.running_mean [64]");
  EXPECT_EQ(buffers.back(), "bn.num_batches_tracked []");
  const auto arch = net.architecture();
  EXPECT_EQ(arch.at("architecture"), "preact_resnet18");
  EXPECT_EQ(arch.at("block"), "preact");
  EXPECT_EQ(arch.at("stem"), "cifar");
  EXPECT_EQ(arch.at("widths"), "64-128-256-512");

  WideResNet<float> wrn(28, 10);  // ~150 MB of parameters and gradients
  EXPECT_EQ(wrn.parameter_count(), 36479194);
  EXPECT_EQ(wrn.architecture().at("architecture"), "wrn-28-10");
  EXPECT_EQ(wrn.architecture().at("base_width"), "16");
  EXPECT_EQ(wrn.architecture().at("widths"), "160-320-640");
  const auto wrn_names = names_and_shapes(wrn.named_parameters());
  for (const char* expected :
       {"conv1.weight [16, 3, 3, 3]", "layer1.0.shortcut.weight [160, 16, 1, 1]",
        "layer3.3.conv2.weight [640, 640, 3, 3]", "bn.weight [640]", "fc.weight [10, 640]"})
    EXPECT_TRUE(contains(wrn_names, expected)) << expected;
  EXPECT_FALSE(contains(wrn_names, "layer4.0.bn1.weight [640]"));
  EXPECT_EQ(WideResNet<float>(10, 1, 100, 1).architecture().at("architecture"), "wrn-10-1");
  EXPECT_EQ(narrow_preact(0).architecture().at("architecture"), "preact-resnet-1-2-1");
}

TEST(PreActResNet, BadConfigurationsThrowNamingTheValue) {
  using namespace resnet::models;
  expect_error([] { WideResNet<float>(27, 2); }, {"WideResNet", "depth", "6n + 4", "27"});
  expect_error([] { WideResNet<float>(4, 2); }, {"WideResNet", "depth", "got 4"});
  expect_error([] { WideResNet<float>(-2, 2); }, {"WideResNet", "depth", "got -2"});
  expect_error([] { WideResNet<float>(16, 0); }, {"WideResNet", "widen_factor", "got 0"});
  expect_error([] { PreActResNet18<float>(0); }, {"num_classes", "got 0"});
  expect_error([] { PreActResNet<float>(ResNetOptions({1, 1})); }, {"pre-activation", "Stem::ImageNet"});
  expect_error(
      [] {
        PreActResNet<float>(ResNetOptions({1, 1}).stem(Stem::Cifar).widths({8}));
      },
      {"1 widths for 2 stages"});
  expect_error(
      [] {
        PreActResNet<float>(ResNetOptions({1, 1}).stem(Stem::Cifar).widths({8, 0}));
      },
      {"stage 2's width", "got 0"});
  expect_error([] { PreActResNet<float>(ResNetOptions({}).stem(Stem::Cifar)); },
               {"blocks_per_stage is empty"});
  expect_error(
      [] {
        PreActResNet<float>(ResNetOptions({2, 0}).stem(Stem::Cifar));
      },
      {"stage 2 needs at least one block, got 0"});
  expect_error([] { ResNet<float>(ResNetOptions({1, 1}).stem_width(0)); }, {"base_width", "got 0"});
  // A 4x4 image leaves WRN's layer3 a 1x1 map: training-mode BatchNorm there needs a second value.
  WideResNet<float> wrn(10, 1);
  expect_error([&] { wrn.forward(Tensor<float>({1, 3, 4, 4})); }, {"ResNet.forward", "layer3", "at least 5"});
}

TEST(PreActResNet, NarrowNetworkGradientsEndToEnd) {
  PreActResNet<double> net = narrow_preact(41);
  resnet::testing::GradcheckOptions options;
  options.max_elements = 60;
  resnet::testing::expect_module_gradients(net, random_tensor({2, 2, 8, 8}, 42), options);
}

TEST(PreActResNet, WideResNetGradientsEndToEnd) {
  resnet::models::WideResNet<double> net(10, 1, 4, 3, 43);
  resnet::testing::GradcheckOptions options;
  options.max_elements = 30;
  resnet::testing::expect_module_gradients(net, random_tensor({2, 3, 8, 8}, 44), options);
}

// A pre-activation branch ends in conv2, not a BatchNorm: zero_init_residual zeroes conv2's weight, so the
// network starts as its shortcuts, and conv2 still gets a gradient (a zero bn2 weight before the ReLU would
// not: the ReLU would pass nothing back to it).
TEST(PreActResNet, ZeroInitResidualZeroesEachBlocksConv2AndConv2StillLearns) {
  PreActResNet<double> net = narrow_preact(45);
  net.zero_init_residual();
  int zeroed = 0;
  for (const auto& p : net.named_parameters()) {
    if (p.name.find("weight") == std::string::npos) continue;  // biases start at 0 anyway
    const bool zero = p.value->vector().norm() == 0;
    const bool conv2 = p.name.find(".conv2.weight") != std::string::npos;
    EXPECT_EQ(zero, conv2) << p.name;
    zeroed += conv2;
  }
  EXPECT_EQ(zeroed, 4);
  net.forward(random_tensor({2, 2, 8, 8}, 46));
  net.backward(random_tensor({2, 3}, 47));
  for (const auto& p : net.named_parameters()) {
    if (p.name.find(".conv2.weight") != std::string::npos) {
      EXPECT_GT(p.grad->vector().norm(), 0) << p.name;
    }
  }
}

TEST(PreActResNet, SummaryShowsTheBlocksAndTheFinalBatchNorm) {
  PreActResNet<double> net = narrow_preact(48);
  const std::string text = resnet::summary(net, {1, 2, 8, 8});
  for (const char* row : {"Conv2d (conv1)", "PreActBlock (layer1.0)", "Conv2d (layer2.0.shortcut)",
                          "BatchNorm2d (bn)", "[1, 8, 2, 2]", "Linear (fc)"})
    EXPECT_NE(text.find(row), std::string::npos) << row << "\n" << text;
  EXPECT_TRUE(net.is_training());
}

// Every row of models::torchvision_architectures() builds a model that architecture() calls by the row's
// name: a BasicBlock model at any stem width (16 here, cheap), a Bottleneck one at torchvision's 64 only (at
// 16, the narrowest a ResNeXt row builds at, it is "resnet-bottleneck-<blocks per stage>").
TEST(ResNetFamily, EveryTorchvisionArchitectureNamesTheModelItBuilds) {
  using namespace resnet::models;
  for (const TorchvisionArchitecture& row : torchvision_architectures()) {
    const auto name_at = [&row](int stem_width) {
      if (row.block == BlockKind::Basic)
        return ResNet<float>(row.blocks_per_stage, 1, Stem::Cifar, 3, 0, stem_width, row.shape)
            .architecture()
            .at("architecture");
      return ResNet<float, Bottleneck<float>>(row.blocks_per_stage, 1, Stem::Cifar, 3, 0, stem_width,
                                              row.shape)
          .architecture()
          .at("architecture");
    };
    if (row.block == BlockKind::Basic) {
      EXPECT_EQ(name_at(16), row.name);
    } else {
      EXPECT_EQ(name_at(64), row.name);
      const std::vector<int> counts(row.blocks_per_stage.begin(), row.blocks_per_stage.end());
      EXPECT_EQ(name_at(16), "resnet-bottleneck-" + detail::dash_joined(counts)) << row.name;
    }
  }
}

// torchvision's resnext50_32x4d and resnext101_32x8d: parameter counts (1000 classes, ImageNet stem), the
// grouped conv2 shapes and the architecture names.
TEST(ResNeXt, ParameterCountsNamesAndArchitectureAreTorchvisions) {
  using namespace resnet::models;
  ResNeXt50_32x4d<float> net;
  EXPECT_EQ(net.parameter_count(), 25028904);
  const auto names = names_and_shapes(net.named_parameters());
  for (const char* expected :
       {"layer1.0.conv1.weight [128, 64, 1, 1]", "layer1.0.conv2.weight [128, 4, 3, 3]",
        "layer1.0.conv3.weight [256, 128, 1, 1]", "layer4.2.conv2.weight [1024, 32, 3, 3]",
        "fc.weight [1000, 2048]"})
    EXPECT_TRUE(contains(names, expected)) << expected;
  EXPECT_EQ(net.architecture().at("architecture"), "resnext50_32x4d");
  EXPECT_EQ(net.architecture().at("groups"), "32");
  EXPECT_EQ(net.architecture().at("width_per_group"), "4");
  ResNeXt101_32x8d<float> large;
  EXPECT_EQ(large.parameter_count(), 88791336);
  EXPECT_EQ(large.architecture().at("architecture"), "resnext101_32x8d");
  const ResNet<float, Bottleneck<float>> other({1, 1, 1, 1}, 10, Stem::Cifar, 3, 0, 64, BlockShape{32, 4});
  EXPECT_EQ(other.architecture().at("architecture"), "resnet-bottleneck-1-1-1-1");
}
