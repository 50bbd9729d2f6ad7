// Bad input at every public entry point throws resnet::Error with a message a user can act on: the entry
// point, and the offending and the expected values. Cases other suites already cover are not repeated here.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/expect_error.hpp"

using resnet::Tensor;
using resnet::models::ResNet;
using resnet::models::Stem;
using resnet::nn::Activation;
using resnet::nn::AdaptiveAvgPool2d;
using resnet::nn::BasicBlock;
using resnet::nn::BatchNorm2d;
using resnet::nn::Conv2d;
using resnet::nn::Linear;
using resnet::nn::MaxPool2d;
using resnet::nn::Parameter;
using resnet::nn::ReLU;
using resnet::optim::Schedule;
using resnet::optim::SGD;

using resnet::testing::expect_error;

namespace {

// One bad call and what its message must mention, for the table-driven tests.
struct Case {
  std::string name;
  std::function<void()> run;
  std::vector<std::string> parts;
};
std::ostream& operator<<(std::ostream& out, const Case& c) {
  return out << c.name;
}
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

// Each INSTANTIATE_TEST_SUITE_P below is one family of bad calls to this test.
class BadCall : public ::testing::TestWithParam<Case> {};
TEST_P(BadCall, ThrowsNamingTheFacts) {
  expect_error(GetParam().run, GetParam().parts);
}

Tensor<float> random_tensor(std::vector<std::int64_t> shape, std::uint64_t seed) {
  resnet::Rng rng(seed);
  Tensor<float> t(std::move(shape));
  t.fill_normal(rng);
  return t;
}

// A narrow ResNet (one block per stage, 4 base channels): the real architecture, cheap to run.
ResNet<float> small_resnet(Stem stem) {
  return ResNet<float>({1, 1, 1, 1}, 3, stem, 3, 0, 4);
}

// ---------------------------------------------------------------------------------------------------------------
// Tensor and Rng

TEST(Validation, TensorWithMoreElementsThanMemoryThrows) {
  const std::int64_t big = std::int64_t{1} << 40;
  expect_error([&] { Tensor<float>({big, big}); }, {"Tensor", "[1099511627776, 1099511627776]"});
  // A zero anywhere makes it empty, however large the rest.
  EXPECT_EQ(Tensor<float>({big, big, 0}).numel(), 0);
}

TEST(Validation, TensorReshapeToNegativeSizesThrows) {
  const Tensor<float> t({2, 3});
  expect_error([&] { t.reshape({-2, -3}); }, {"negative dimension", "[-2, -3]"});
}

TEST(Validation, TensorMatrixWithNegativeSizesThrows) {
  Tensor<float> t({2, 3});
  expect_error([&] { t.matrix(-1, -6); }, {"Tensor::matrix", "-1x-6", "[2, 3]"});
}

TEST(Validation, RngBelowZeroThrows) {
  resnet::Rng rng(1);
  expect_error([&] { rng.below(0); }, {"Rng::below", "empty"});
}

// ---------------------------------------------------------------------------------------------------------------
// Kernels and init

TEST(Validation, WindowOutputSizeWithZeroStrideThrows) {
  expect_error([] { resnet::kernels::window_output_size(8, 3, 0, 1); }, {"window_output_size", "stride 0"});
}

TEST(Validation, Im2colTablesBeyondInt32Throw) {
  expect_error([] { resnet::kernels::im2col_offsets(1 << 16, 1 << 16, 1, 1, 0, 0, 0, nullptr); },
               {"im2col", "65536x65536", "int32"});
}

TEST(Validation, FanOfAnEmptyWeightThrows) {
  expect_error([] { resnet::nn::init::fan_in(Tensor<float>({0, 3})); }, {"fan_in", "[0, 3]"});
}

// ---------------------------------------------------------------------------------------------------------------
// Empty dimensions: nothing to compute, and a pooling window over an empty map would read outside it.

INSTANTIATE_TEST_SUITE_P(
    EmptyInput, BadCall,
    ::testing::Values(
        Case{"Conv2dPaddedEmptyMap",
             [] {
               Conv2d<float>(3, 4, 1, 1, 1).forward(Tensor<float>({1, 3, 0, 8}));
             },
             {"Conv2d.forward", "[1, 3, 0, 8]", "empty dimension"}},
        Case{"MaxPool2dPaddedEmptyMap",
             [] {
               MaxPool2d<float>(2, 2, 1).forward(Tensor<float>({1, 1, 0, 4}));
             },
             {"MaxPool2d.forward", "[1, 1, 0, 4]", "empty dimension"}},
        Case{"BatchNorm2dEvalEmptyBatch",
             [] {
               BatchNorm2d<float> bn(3);
               bn.eval();
               bn.forward(Tensor<float>({0, 3, 4, 4}));
             },
             {"BatchNorm2d.forward", "[0, 3, 4, 4]", "empty dimension"}},
        Case{"AdaptiveAvgPool2dEmptyBatch",
             [] {
               AdaptiveAvgPool2d<float>(1, 1).forward(Tensor<float>({0, 3, 4, 4}));
             },
             {"AdaptiveAvgPool2d.forward", "[0, 3, 4, 4]"}},
        Case{"BasicBlockEmptyBatch",
             [] {
               BasicBlock<float>(4, 4).forward(Tensor<float>({0, 4, 4, 4}));
             },
             {"BasicBlock.forward", "[0, 4, 4, 4]"}},
        Case{"ResNetEmptyMap",
             [] {
               small_resnet(Stem::ImageNet).forward(Tensor<float>({2, 3, 0, 32}));
             },
             {"ResNet.forward", "[2, 3, 0, 32]", "empty dimension"}},
        Case{"FoldedResNetEmptyBatch",
             [] {
               resnet::models::fold_batchnorm(small_resnet(Stem::Cifar)).forward(Tensor<float>({0, 3, 8, 8}));
             },
             {"ResNet.forward", "[0, 3, 8, 8]"}},
        Case{"ReLUDefaultTensor", [] { ReLU<float>().forward(Tensor<float>()); }, {"ReLU.forward", "empty"}}),
    case_name);

// ---------------------------------------------------------------------------------------------------------------
// A kernel larger than the padded input: the message says the least size that works.

INSTANTIATE_TEST_SUITE_P(
    WindowLargerThanInput, BadCall,
    ::testing::Values(Case{"Conv2d",
                           [] {
                             Conv2d<float>(3, 4, 7, 2, 1).forward(Tensor<float>({1, 3, 4, 9}));
                           },
                           {"Conv2d.forward", "[1, 3, 4, 9]", "kernel_size 7", "at least 5"}},
                      Case{"MaxPool2d",
                           [] {
                             MaxPool2d<float>(5, 1).forward(Tensor<float>({1, 2, 4, 6}));
                           },
                           {"MaxPool2d.forward", "[1, 2, 4, 6]", "kernel_size 5", "at least 5"}}),
    case_name);

// ---------------------------------------------------------------------------------------------------------------
// backward with a gradient of the right element count but the wrong shape (transposed): refused by shape, not
// by count, and the message names both shapes.

INSTANTIATE_TEST_SUITE_P(
    GradientOfTheRightSizeButWrongShape, BadCall,
    ::testing::Values(
        Case{"Conv2d",
             [] {
               Conv2d<float> conv(3, 4, 3);
               conv.forward(random_tensor({2, 3, 8, 8}, 1));  // -> [2, 4, 6, 6]
               conv.backward(Tensor<float>({2, 4, 36, 1}));
             },
             {"Conv2d.backward", "grad_output", "[2, 4, 36, 1]", "[2, 4, 6, 6]"}},
        Case{"BatchNorm2d",
             [] {
               BatchNorm2d<float> bn(3);
               bn.forward(random_tensor({2, 3, 4, 5}, 2));
               bn.backward(Tensor<float>({2, 3, 5, 4}));
             },
             {"BatchNorm2d.backward", "grad_output", "[2, 3, 5, 4]", "[2, 3, 4, 5]"}},
        Case{"BatchNorm2dBackwardRelu",
             [] {
               BatchNorm2d<float> bn(3);
               const Tensor<float> y = bn.forward(random_tensor({2, 3, 4, 5}, 3), Activation::ReLU);
               bn.backward(Tensor<float>({2, 3, 5, 4}), y);
             },
             {"BatchNorm2d.backward", "grad_output", "[2, 3, 5, 4]", "[2, 3, 4, 5]"}},
        Case{"BatchNorm2dBackwardReluOutput",
             [] {
               BatchNorm2d<float> bn(3);
               bn.forward(random_tensor({2, 3, 4, 5}, 3), Activation::ReLU);
               bn.backward(Tensor<float>({2, 3, 4, 5}), Tensor<float>({2, 3, 5, 4}));
             },
             {"BatchNorm2d.backward", "relu_output", "[2, 3, 5, 4]", "[2, 3, 4, 5]"}},
        Case{"ReLU",
             [] {
               ReLU<float> relu;
               relu.forward(random_tensor({2, 6}, 4));
               relu.backward(Tensor<float>({6, 2}));
             },
             {"ReLU.backward", "grad_output", "[6, 2]", "[2, 6]"}},
        Case{"MaxPool2d",
             [] {
               MaxPool2d<float> pool(2, 2);
               pool.forward(random_tensor({1, 2, 4, 8}, 5));  // -> [1, 2, 2, 4]
               pool.backward(Tensor<float>({1, 2, 4, 2}));
             },
             {"MaxPool2d.backward", "grad_output", "[1, 2, 4, 2]", "[1, 2, 2, 4]"}},
        Case{"AdaptiveAvgPool2d",
             [] {
               AdaptiveAvgPool2d<float> pool(2, 3);
               pool.forward(random_tensor({1, 2, 6, 6}, 6));
               pool.backward(Tensor<float>({1, 2, 3, 2}));
             },
             {"AdaptiveAvgPool2d.backward", "grad_output", "[1, 2, 3, 2]", "[1, 2, 2, 3]"}},
        Case{"Linear",
             [] {
               Linear<float> linear(4, 3);
               linear.forward(random_tensor({2, 4}, 7));
               linear.backward(Tensor<float>({3, 2}));
             },
             {"Linear.backward", "grad_output", "[3, 2]", "[2, 3]"}},
        Case{"BasicBlock",
             [] {
               BasicBlock<float> block(4, 8, 2);
               block.forward(random_tensor({2, 4, 6, 6}, 8));  // -> [2, 8, 3, 3]
               block.backward(Tensor<float>({2, 3, 8, 3}));
             },
             {"BasicBlock.backward", "grad_output", "[2, 3, 8, 3]", "[2, 8, 3, 3]"}},
        Case{"ResNet",
             [] {
               ResNet<float> net = small_resnet(Stem::Cifar);
               net.forward(random_tensor({3, 3, 8, 8}, 9));  // -> [3, 3]: two of the three are swapped below
               net.backward(Tensor<float>({1, 9}));
             },
             {"ResNet.backward", "grad_logits", "[1, 9]", "[3, 3]"}}),
    case_name);

// ---------------------------------------------------------------------------------------------------------------
// Layers and blocks

TEST(Validation, BasicBlockWrongChannelsThrowsNamingTheBlock) {
  BasicBlock<float> block(4, 8, 2);
  expect_error(
      [&] {
        block.forward(Tensor<float>({2, 3, 6, 6}));
      },
      {"BasicBlock.forward", "3 channels", "expected 4", "[2, 3, 6, 6]"});
}

TEST(Validation, BasicBlockBackwardWithoutTrainingForwardThrows) {
  BasicBlock<float> block(4, 4);
  expect_error(
      [&] {
        block.backward(Tensor<float>({1, 4, 4, 4}));
      },
      {"BasicBlock.backward", "training-mode"});
  block.forward(random_tensor({2, 4, 4, 4}, 10));
  block.eval();
  block.forward(random_tensor({2, 4, 4, 4}, 11));
  expect_error(
      [&] {
        block.backward(Tensor<float>({2, 4, 4, 4}));
      },
      {"BasicBlock.backward", "training-mode"});
}

TEST(Validation, BatchNorm2dBackwardReluAfterEvalForwardThrows) {
  BatchNorm2d<float> bn(2);
  const Tensor<float> y = bn.forward(random_tensor({2, 2, 3, 3}, 12), Activation::ReLU);
  bn.eval();
  bn.forward(y, Activation::ReLU);
  expect_error([&] { bn.backward(y, y); }, {"BatchNorm2d.backward", "training-mode"});
}

TEST(Validation, BatchNorm2dForwardReluNamesItself) {
  BatchNorm2d<float> bn(3);
  expect_error(
      [&] {
        bn.forward(Tensor<float>({2, 4, 3, 3}), Activation::ReLU);
      },
      {"BatchNorm2d.forward", "4 channels", "expected 3", "[2, 4, 3, 3]"});
}

// Parameters and buffers are assignable through the accessors; a wrong shape is refused before the kernels
// would index past it.
TEST(Validation, Conv2dAssignedWeightOfTheWrongShapeThrows) {
  Conv2d<float> conv(3, 4, 3);
  conv.weight() = Tensor<float>({4, 3, 5, 5});
  expect_error(
      [&] {
        conv.forward(random_tensor({1, 3, 8, 8}, 13));
      },
      {"Conv2d.forward", "weight", "[4, 3, 5, 5]", "[4, 3, 3, 3]"});
}

TEST(Validation, Conv2dBiasAssignedToALayerBuiltWithoutOneThrows) {
  Conv2d<float> conv(3, 4, 3, 1, 0, /*bias=*/false);
  conv.bias() = Tensor<float>({4});
  expect_error(
      [&] {
        conv.forward(random_tensor({1, 3, 8, 8}, 14));
      },
      {"Conv2d.forward", "bias gradient", "[]", "[4]"});
}

TEST(Validation, Conv2dReplacedGradientOfTheWrongShapeThrows) {
  Conv2d<float> conv(3, 4, 3);
  conv.forward(random_tensor({1, 3, 8, 8}, 15));
  *conv.named_parameters()[0].grad = Tensor<float>({4});
  expect_error(
      [&] {
        conv.backward(Tensor<float>({1, 4, 6, 6}));
      },
      {"Conv2d.backward", "weight gradient", "[4]", "[4, 3, 3, 3]"});
}

TEST(Validation, LinearAssignedWeightOfTheWrongShapeThrows) {
  Linear<float> linear(4, 3);
  linear.weight() = Tensor<float>({4, 3});
  expect_error(
      [&] {
        linear.forward(random_tensor({2, 4}, 16));
      },
      {"Linear.forward", "weight", "[4, 3]", "[3, 4]"});
}

TEST(Validation, BatchNorm2dAssignedRunningVarOfTheWrongShapeThrows) {
  BatchNorm2d<float> bn(3);
  bn.running_var() = Tensor<float>({2});
  bn.eval();
  expect_error(
      [&] {
        bn.forward(random_tensor({1, 3, 2, 2}, 17));
      },
      {"BatchNorm2d.forward", "running_var", "[2]", "[3]"});
}

TEST(Validation, FoldConvBatchNormChecksTheAssignedStatistics) {
  const Conv2d<float> conv(3, 4, 3);
  BatchNorm2d<float> bn(4);
  bn.running_mean() = Tensor<float>({2, 2});
  expect_error([&] { resnet::models::fold_conv_batchnorm(conv, bn); },
               {"fold_conv_batchnorm", "running_mean", "[2, 2]", "[4]"});
}

// ---------------------------------------------------------------------------------------------------------------
// ResNet configuration and input size

TEST(Validation, ResNetBaseWidthZeroThrowsNamingIt) {
  expect_error([] { ResNet<float>({1, 1, 1, 1}, 10, Stem::Cifar, 3, 0, 0); }, {"ResNet", "base_width", "0"});
}

TEST(Validation, ResNetEmptyStageThrows) {
  expect_error([] { ResNet<float>({2, 0, 2, 2}, 10, Stem::Cifar, 3, 0, 4); }, {"ResNet", "stage 2", "0"});
}

// In training, BatchNorm needs more than one value per channel; layer4's map is the smallest. With the
// ImageNet stem a 32x32 image shrinks to 1x1 there (33 is the least side that leaves 2), with the CIFAR
// stem an 8x8 one (9).
INSTANTIATE_TEST_SUITE_P(
    ResNetTrainingInputTooSmall, BadCall,
    ::testing::Values(Case{"ImageNetStem",
                           [] {
                             small_resnet(Stem::ImageNet).forward(Tensor<float>({1, 3, 32, 32}));
                           },
                           {"ResNet.forward", "[1, 3, 32, 32]", "layer4", "batches of 2", "at least 33"}},
                      Case{"CifarStem",
                           [] {
                             small_resnet(Stem::Cifar).forward(Tensor<float>({1, 3, 8, 8}));
                           },
                           {"ResNet.forward", "[1, 3, 8, 8]", "layer4", "batches of 2", "at least 9"}}),
    case_name);

TEST(Validation, ResNetRunsTheSizesItsMessageSuggests) {
  ResNet<float> net = small_resnet(Stem::ImageNet);
  EXPECT_EQ(net.forward(random_tensor({1, 3, 33, 1}, 18)).shape(), (std::vector<std::int64_t>{1, 3}));
  EXPECT_EQ(net.forward(random_tensor({2, 3, 1, 1}, 19)).shape(), (std::vector<std::int64_t>{2, 3}));
  net.eval();
  EXPECT_EQ(net.forward(random_tensor({1, 3, 1, 1}, 20)).shape(), (std::vector<std::int64_t>{1, 3}));
}

// ---------------------------------------------------------------------------------------------------------------
// SGD

TEST(Validation, SgdSameParameterTwiceThrowsNamingBoth) {
  Tensor<float> value({2}), grad({2});
  expect_error(
      [&] {
        SGD<float>({Parameter<float>{"a", &value, &grad}, Parameter<float>{"b", &value, &grad}}, 0.1);
      },
      {"SGD", "'b'", "'a'"});
}

TEST(Validation, SgdEmptyParameterListThrows) {
  expect_error([] { SGD<float>(std::vector<Parameter<float>>{}, 0.1); }, {"SGD", "empty parameter list"});
}

TEST(Validation, SgdStepAfterTheGradientWasReplacedThrows) {
  Tensor<float> value({3}), grad({3});
  SGD<float> sgd({Parameter<float>{"w", &value, &grad}}, 0.1);
  grad = Tensor<float>({2});
  expect_error([&] { sgd.step(); }, {"SGD", "'w'", "[3]", "[2]"});
}

TEST(Validation, SgdStepWithAMomentumBufferOfTheWrongShapeThrows) {
  Tensor<float> value({3}), grad({3});
  SGD<float> sgd({Parameter<float>{"w", &value, &grad}}, 0.1, 0.9);
  sgd.momentum_buffers()[0] = Tensor<float>({1});
  expect_error([&] { sgd.step(); }, {"SGD", "'w'", "momentum buffer", "[1]", "[3]"});
}

std::vector<Parameter<float>> one_parameter() {
  static Tensor<float> value({2}), grad({2});
  return {Parameter<float>{"w", &value, &grad}};
}

INSTANTIATE_TEST_SUITE_P(
    SgdArguments, BadCall,
    ::testing::Values(
        Case{"NegativeMomentum", [] { SGD<float>(one_parameter(), 0.1, -0.5); }, {"momentum", "-0.5"}},
        Case{"NegativeWeightDecay",
             [] { SGD<float>(one_parameter(), 0.1, 0.0, -1e-4); },
             {"weight_decay", "-0.0001"}},
        Case{"NaNLearningRate", [] { SGD<float>(one_parameter(), std::nan("")); }, {"learning rate", "nan"}},
        Case{"NullGradient",
             [] {
               SGD<float>({Parameter<float>{"w", one_parameter()[0].value, nullptr}}, 0.1);
             },
             {"'w'", "no value or gradient"}},
        Case{"SetNegativeLearningRate",
             [] { SGD<float>(one_parameter(), 0.1).set_lr(-0.1); },
             {"learning rate", "-0.1"}},
        Case{"SetNegativeMomentum",
             [] { SGD<float>(one_parameter(), 0.1, 0.9).set_momentum(-1); },
             {"momentum", "-1"}}),
    case_name);

// ---------------------------------------------------------------------------------------------------------------
// Schedules

INSTANTIATE_TEST_SUITE_P(
    ScheduleArguments, BadCall,
    ::testing::Values(
        Case{"StepNegativeGamma", [] { Schedule::step(0.1, 10, -0.5); }, {"Schedule::step", "gamma", "-0.5"}},
        Case{"CosineNegativeEtaMin",
             [] { Schedule::cosine(0.1, 100, 0, 1.0 / 3.0, -0.01); },
             {"Schedule::cosine", "eta_min", "-0.01"}},
        Case{"CosineZeroWarmupStartFactor",
             [] { Schedule::cosine(0.1, 100, 10, 0.0); },
             {"Schedule::cosine", "warmup_start_factor", "0"}},
        Case{"OneCycleZeroDivFactor",
             [] { Schedule::one_cycle(0.1, 100, 0.3, 0.0); },
             {"Schedule::one_cycle", "div_factor", "0"}},
        Case{"OneCycleZeroFinalDivFactor",
             [] { Schedule::one_cycle(0.1, 100, 0.3, 25.0, 0.0); },
             {"Schedule::one_cycle", "final_div_factor", "0"}},
        Case{"OneCycleNegativeMomentum",
             [] { Schedule::one_cycle(0.1, 100, 0.3, 25.0, 1e4, true, -0.1); },
             {"Schedule::one_cycle", "base_momentum", "-0.1"}},
        Case{"OneCyclePctStartOne",
             [] { Schedule::one_cycle(0.1, 100, 1.0); },
             {"Schedule::one_cycle", "pct_start", "1"}},
        Case{"NaNLearningRate", [] { Schedule::constant(std::nan("")); }, {"Schedule", "lr", "nan"}},
        Case{"MomentumAtNegativeStep",
             [] { Schedule::one_cycle(0.1, 100).momentum(-1); },
             {"Schedule::momentum", "negative step -1"}}),
    case_name);

}  // namespace
