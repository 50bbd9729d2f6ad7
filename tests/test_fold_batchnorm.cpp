// models/fold_batchnorm.hpp: the folded model gives the eval-mode logits (in double to rounding, in float to
// float rounding), on both stems and through the downsample shortcuts; the trainable model is never changed.
// Against PyTorch, folded and not: test_safetensors.cpp (torchvision resnet18 export).

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "resnet/io/safetensors.hpp"
#include "resnet/models/fold_batchnorm.hpp"
#include "resnet/models/resnet.hpp"
#include "support/compare.hpp"

namespace {

using resnet::Tensor;
using resnet::models::ResNet;
using resnet::models::Stem;

// Random weights, and BatchNorm parameters and running statistics far from the identity, so that folding
// changes every conv noticeably.
template <typename Model>
void randomise_batchnorm(Model& model, std::uint64_t seed) {
  resnet::Rng rng(seed);
  for (const auto& entry : resnet::io::state_entries(model)) {
    const std::string& name = entry.name;
    if (entry.value->dim() != 1 || name.compare(0, 3, "fc.") == 0) continue;
    if (name.find("running_var") != std::string::npos)
      entry.value->fill_uniform(rng, 0.3, 2.0);
    else if (name.find(".weight") != std::string::npos)
      entry.value->fill_uniform(rng, 0.5, 1.5);
    else
      entry.value->fill_uniform(rng, -0.5, 0.5);
  }
}

template <typename T>
Tensor<T> random_input(std::vector<std::int64_t> shape, std::uint64_t seed) {
  resnet::Rng rng(seed);
  Tensor<T> x(std::move(shape));
  x.fill_normal(rng);
  return x;
}

struct Case {
  const char* name;
  std::array<int, 4> blocks;
  Stem stem;
  std::vector<std::int64_t> input;
  bool bottleneck = false;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"cifar stem, 2 blocks per stage", {2, 2, 2, 2}, Stem::Cifar, {3, 3, 16, 16}},
      {"imagenet stem, 1 block per stage", {1, 1, 1, 1}, Stem::ImageNet, {2, 3, 45, 38}},
      {"bottleneck, imagenet stem", {2, 1, 1, 1}, Stem::ImageNet, {2, 3, 37, 33}, true},
      {"bottleneck, cifar stem", {1, 1, 2, 1}, Stem::Cifar, {3, 3, 12, 10}, true},
  };
  return all;
}

template <typename T, typename Block>
double folded_error(const Case& c) {
  // A Bottleneck 1.5 times as wide inside as ResNet50 is, so that its width rule is exercised too.
  const resnet::models::BlockShape shape{1, Block::expansion == 1 ? 64 : 96};
  ResNet<T, Block> model(c.blocks, 7, c.stem, 3, /*seed=*/1, /*base_width=*/8, shape);
  randomise_batchnorm(model, 2);
  model.eval();
  const Tensor<T> x = random_input<T>(c.input, 3);
  const Tensor<T> expected = model.forward(x);
  auto folded = resnet::models::fold_batchnorm(model);
  EXPECT_TRUE(folded.is_folded());
  EXPECT_FALSE(model.is_folded());
  EXPECT_THROW(resnet::models::fold_batchnorm(folded), resnet::Error);
  return resnet::testing::relative_l2(folded.forward(x), expected);
}

template <typename T>
double folded_error(const Case& c) {
  using resnet::models::BasicBlock;
  using resnet::models::Bottleneck;
  return c.bottleneck ? folded_error<T, Bottleneck<T>>(c) : folded_error<T, BasicBlock<T>>(c);
}

TEST(FoldBatchNorm, GivesTheEvalModeLogitsOnBothStemsAndBlocks) {
  for (const Case& c : cases()) {
    const double in_double = folded_error<double>(c);
    const double in_float = folded_error<float>(c);
    std::cout << "fold_batchnorm, " << c.name << ": relative L2 to the eval-mode logits " << in_double
              << " (double), " << in_float << " (float)" << std::endl;
    EXPECT_LE(in_double, 1e-13) << c.name;
    EXPECT_LE(in_float, 1e-5) << c.name;
  }
}

TEST(FoldBatchNorm, OneConvWithBiasAndItsBatchNorm) {
  resnet::nn::Conv2d<double> conv(3, 5, 3, 2, 1, /*bias=*/true, /*seed=*/4);
  resnet::nn::BatchNorm2d<double> bn(5, /*eps=*/1e-3);
  resnet::Rng rng(5);
  bn.weight().fill_uniform(rng, 0.5, 1.5);
  bn.bias().fill_uniform(rng, -1, 1);
  bn.running_mean().fill_uniform(rng, -1, 1);
  bn.running_var().fill_uniform(rng, 0.1, 3);
  conv.eval();
  bn.eval();
  const Tensor<double> x = random_input<double>({2, 3, 9, 7}, 6);
  const Tensor<double> expected = bn.forward(conv.forward(x));
  resnet::nn::Conv2d<double> folded = resnet::models::fold_conv_batchnorm(conv, bn);
  EXPECT_EQ(folded.stride(), 2);
  EXPECT_EQ(folded.padding(), 1);
  EXPECT_LE(resnet::testing::relative_l2(folded.forward(x), expected), 1e-14);

  resnet::nn::BatchNorm2d<double> wrong(4);
  EXPECT_THROW(resnet::models::fold_conv_batchnorm(conv, wrong), resnet::Error);
}

TEST(FoldBatchNorm, LeavesTheTrainableModelAloneAndIsIndependentOfIt) {
  ResNet<float> model({1, 1, 1, 1}, 5, Stem::Cifar, 3, 7, 8);
  randomise_batchnorm(model, 8);
  std::vector<Tensor<float>> before;
  for (const auto& entry : resnet::io::state_entries(model))
    before.push_back(entry.value->clone());

  // Folded from a model in training mode: BatchNorm still folds in its eval-mode form (running statistics).
  auto folded = resnet::models::fold_batchnorm(model);
  EXPECT_TRUE(model.is_training());
  const auto entries = resnet::io::state_entries(model);
  for (std::size_t i = 0; i < entries.size(); ++i)
    EXPECT_TRUE(std::equal(before[i].data(), before[i].data() + before[i].numel(), entries[i].value->data()))
        << entries[i].name;

  const Tensor<float> x = random_input<float>({2, 3, 12, 12}, 9);
  model.eval();
  const Tensor<float> expected = model.forward(x);
  EXPECT_LE(resnet::testing::relative_l2(folded.forward(x), expected), 1e-5);

  // Training the model further does not reach the folded copy.
  model.train();
  model.forward(x);  // updates the running statistics
  for (auto& p : model.named_parameters())
    p.value->fill(0.0f);
  EXPECT_LE(resnet::testing::relative_l2(folded.forward(x), expected), 1e-5);
}

TEST(FoldBatchNorm, FoldedModelIsInferenceOnlyWithTorchvisionNames) {
  ResNet<float> model({1, 1, 1, 1}, 5, Stem::ImageNet, 3, 10, 8);
  auto folded = resnet::models::fold_batchnorm(model);
  EXPECT_FALSE(folded.is_training());
  EXPECT_EQ(folded.stem(), Stem::ImageNet);
  EXPECT_EQ(folded.num_classes(), 5);
  std::vector<std::string> names;
  for (const auto& p : folded.named_parameters())
    names.push_back(p.name);
  const std::vector<std::string> expected = {"conv1.weight",
                                             "conv1.bias",
                                             "layer1.0.conv1.weight",
                                             "layer1.0.conv1.bias",
                                             "layer1.0.conv2.weight",
                                             "layer1.0.conv2.bias",
                                             "layer2.0.conv1.weight",
                                             "layer2.0.conv1.bias",
                                             "layer2.0.conv2.weight",
                                             "layer2.0.conv2.bias",
                                             "layer2.0.downsample.0.weight",
                                             "layer2.0.downsample.0.bias",
                                             "layer3.0.conv1.weight",
                                             "layer3.0.conv1.bias",
                                             "layer3.0.conv2.weight",
                                             "layer3.0.conv2.bias",
                                             "layer3.0.downsample.0.weight",
                                             "layer3.0.downsample.0.bias",
                                             "layer4.0.conv1.weight",
                                             "layer4.0.conv1.bias",
                                             "layer4.0.conv2.weight",
                                             "layer4.0.conv2.bias",
                                             "layer4.0.downsample.0.weight",
                                             "layer4.0.downsample.0.bias",
                                             "fc.weight",
                                             "fc.bias"};
  EXPECT_EQ(names, expected);
  EXPECT_TRUE(folded.named_buffers().empty());

  const Tensor<float> x = random_input<float>({1, 3, 32, 32}, 11);
  folded.train();
  try {
    folded.forward(x);
    FAIL() << "a folded model in training mode must refuse forward";
  } catch (const resnet::Error& e) {
    EXPECT_NE(std::string(e.what()).find("inference-only"), std::string::npos) << e.what();
  }
  folded.eval();
  EXPECT_EQ(folded.forward(x).shape(), (std::vector<std::int64_t>{1, 5}));
  EXPECT_THROW(folded.forward(random_input<float>({1, 4, 32, 32}, 12)), resnet::Error);
}

// A pre-activation model folds each block's bn2 into conv1; bn1 and the final bn stay (a ReLU separates each
// from the conv after it), and conv1 has no BatchNorm to fold.
TEST(FoldBatchNorm, PreActivationModelFoldsBn2AndKeepsTheOthers) {
  using resnet::models::PreActResNet;
  using resnet::models::ResNetOptions;
  const auto options =
      ResNetOptions({1, 2, 1}).widths({8, 12, 16}).stem_width(4).stem(Stem::Cifar).num_classes(7).seed(13);
  const auto error = [&](auto zero) {
    using T = decltype(zero);
    PreActResNet<T> model(options);
    randomise_batchnorm(model, 14);
    model.eval();
    const Tensor<T> x = random_input<T>({3, 3, 12, 10}, 15);
    const Tensor<T> expected = model.forward(x);
    auto folded = resnet::models::fold_batchnorm(model);
    EXPECT_TRUE(folded.is_folded());
    std::vector<std::string> names;
    for (const auto& p : folded.named_parameters())
      names.push_back(p.name);
    for (const char* kept : {"conv1.weight", "layer1.0.bn1.weight", "layer1.0.conv1.bias",
                             "layer2.1.conv2.weight", "layer3.0.shortcut.weight", "bn.weight", "fc.bias"})
      EXPECT_NE(std::find(names.begin(), names.end(), kept), names.end()) << kept;
    for (const char* gone : {"conv1.bias", "layer1.0.bn2.weight", "layer2.1.bn2.bias", "layer2.1.conv2.bias"})
      EXPECT_EQ(std::find(names.begin(), names.end(), gone), names.end()) << gone;
    folded.train();
    EXPECT_THROW(folded.forward(x), resnet::Error);
    folded.eval();
    return resnet::testing::relative_l2(folded.forward(x), expected);
  };
  const double in_double = error(double{}), in_float = error(float{});
  std::cout << "fold_batchnorm, pre-activation: relative L2 to the eval-mode logits " << in_double
            << " (double), " << in_float << " (float)" << std::endl;
  EXPECT_LE(in_double, 1e-13);
  EXPECT_LE(in_float, 1e-5);
}

}  // namespace
