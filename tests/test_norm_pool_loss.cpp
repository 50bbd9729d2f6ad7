// BatchNorm2d, MaxPool2d, AdaptiveAvgPool2d and CrossEntropyLoss: gradients against central differences in
// double, and forward values against formulas written out here independently of the kernels.

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "resnet/core/parallel.hpp"
#include "resnet/nn/adaptive_avgpool2d.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/cross_entropy_loss.hpp"
#include "resnet/nn/maxpool2d.hpp"
#include "support/expect_error.hpp"
#include "support/gradcheck.hpp"

using resnet::Tensor;

using resnet::testing::expect_error;

namespace {

Tensor<double> random_tensor(std::vector<std::int64_t> shape, std::uint64_t seed, double mean = 0.0,
                             double std = 1.0) {
  resnet::Rng rng(seed);
  Tensor<double> t(std::move(shape));
  t.fill_normal(rng, mean, std);
  return t;
}

// Per-channel mean and biased variance of [N, C, H, W], written plainly.
void channel_moments(const Tensor<double>& x, int c, double& mean, double& biased_var) {
  const std::int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  double sum = 0;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t w = 0; w < W; ++w)
        sum += x.at({n, c, h, w});
  mean = sum / static_cast<double>(N * H * W);
  double squares = 0;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t w = 0; w < W; ++w)
        squares += (x.at({n, c, h, w}) - mean) * (x.at({n, c, h, w}) - mean);
  biased_var = squares / static_cast<double>(N * H * W);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// BatchNorm2d

TEST(BatchNorm2d, ParametersAndBuffersAreNamedAsPyTorch) {
  resnet::nn::BatchNorm2d<float> bn(4);
  const auto params = bn.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "weight");
  EXPECT_EQ(params[1].name, "bias");
  const auto buffers = bn.named_buffers();
  ASSERT_EQ(buffers.size(), 3u);
  EXPECT_EQ(buffers[0].name, "running_mean");
  EXPECT_EQ(buffers[1].name, "running_var");
  EXPECT_EQ(buffers[2].name, "num_batches_tracked");
  EXPECT_EQ(buffers[2].value->shape(), std::vector<std::int64_t>{});
  EXPECT_EQ(buffers[2].value->numel(), 1);
  for (int c = 0; c < 4; ++c) {
    EXPECT_EQ(bn.weight()[c], 1.0f);
    EXPECT_EQ(bn.bias()[c], 0.0f);
    EXPECT_EQ(bn.running_mean()[c], 0.0f);
    EXPECT_EQ(bn.running_var()[c], 1.0f);
  }
  EXPECT_EQ(bn.num_features(), 4);
  EXPECT_EQ(bn.eps(), 1e-5);
}

TEST(BatchNorm2d, TrainingGradientMatchesCentralDifferences) {
  resnet::nn::BatchNorm2d<double> bn(4);
  bn.weight() = random_tensor({4}, 11, 1.0, 0.5);
  bn.bias() = random_tensor({4}, 12);
  resnet::testing::expect_module_gradients(bn, random_tensor({3, 4, 5, 7}, 13, 0.5, 2.0));
}

TEST(BatchNorm2d, TrainingGradientWithOneImage) {
  resnet::nn::BatchNorm2d<double> bn(3);
  bn.weight() = random_tensor({3}, 21, 1.0, 0.5);
  bn.bias() = random_tensor({3}, 22);
  resnet::testing::expect_module_gradients(bn, random_tensor({1, 3, 4, 3}, 23));
}

TEST(BatchNorm2d, TrainingNormalisesWithBatchMeanAndBiasedVariance) {
  resnet::nn::BatchNorm2d<double> bn(3);
  bn.weight() = random_tensor({3}, 31, 1.0, 0.5);
  bn.bias() = random_tensor({3}, 32);
  const Tensor<double> x = random_tensor({2, 3, 4, 5}, 33, 3.0, 2.0);
  const Tensor<double> y = bn.forward(x);
  for (int c = 0; c < 3; ++c) {
    double mean, var;
    channel_moments(x, c, mean, var);
    for (std::int64_t n = 0; n < 2; ++n)
      for (std::int64_t h = 0; h < 4; ++h)
        for (std::int64_t w = 0; w < 5; ++w) {
          const double expected =
              (x.at({n, c, h, w}) - mean) / std::sqrt(var + 1e-5) * bn.weight()[c] + bn.bias()[c];
          EXPECT_NEAR(y.at({n, c, h, w}), expected, 1e-12);
        }
  }
}

TEST(BatchNorm2d, RunningStatsAfterTwoTrainingForwards) {
  const double momentum = 0.3;
  resnet::nn::BatchNorm2d<double> bn(2, 1e-5, momentum);
  const Tensor<double> x1 = random_tensor({3, 2, 2, 3}, 41, 1.0, 2.0);
  const Tensor<double> x2 = random_tensor({3, 2, 2, 3}, 42, -2.0, 0.5);
  bn.forward(x1);
  bn.forward(x2);
  const double n = 3 * 2 * 3;
  for (int c = 0; c < 2; ++c) {
    double running_mean = 0, running_var = 1;
    for (const Tensor<double>* x : {&x1, &x2}) {
      double mean, var;
      channel_moments(*x, c, mean, var);
      running_mean = (1 - momentum) * running_mean + momentum * mean;
      running_var = (1 - momentum) * running_var + momentum * var * n / (n - 1);  // unbiased
    }
    EXPECT_NEAR(bn.running_mean()[c], running_mean, 1e-12);
    EXPECT_NEAR(bn.running_var()[c], running_var, 1e-12);
  }
  EXPECT_EQ(bn.num_batches_tracked()[0], 2.0);
}

TEST(BatchNorm2d, EvalUsesRunningStatsAndLeavesThemAlone) {
  resnet::nn::BatchNorm2d<double> bn(3, 1e-3);
  bn.weight() = random_tensor({3}, 51, 1.0, 0.5);
  bn.bias() = random_tensor({3}, 52);
  bn.running_mean() = random_tensor({3}, 53);
  Tensor<double> var({3});
  for (int c = 0; c < 3; ++c)
    var[c] = 0.5 + c;
  bn.running_var() = var;
  bn.eval();
  const Tensor<double> x = random_tensor({2, 3, 3, 2}, 54);
  const Tensor<double> y = bn.forward(x);
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t h = 0; h < 3; ++h)
        for (std::int64_t w = 0; w < 2; ++w) {
          const double expected =
              (x.at({n, c, h, w}) - bn.running_mean()[c]) / std::sqrt(var[c] + 1e-3) * bn.weight()[c] +
              bn.bias()[c];
          EXPECT_NEAR(y.at({n, c, h, w}), expected, 1e-12);
        }
  EXPECT_EQ(bn.running_var()[1], 1.5);
  EXPECT_EQ(bn.num_batches_tracked()[0], 0.0);
}

TEST(BatchNorm2d, FloatVarianceSurvivesALargeMean) {
  // E[x^2] - E[x]^2 in float would lose every digit here; two passes with a double accumulator keep them.
  resnet::nn::BatchNorm2d<float> bn(1, 0.0, 1.0);  // momentum 1: running_var is the batch's unbiased variance
  resnet::Rng rng(61);
  Tensor<float> x({4, 1, 8, 8});
  x.fill_normal(rng, 1e4, 1.0);
  bn.forward(x);
  double mean = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i)
    mean += x[i];
  mean /= static_cast<double>(x.numel());
  double squares = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i)
    squares += (x[i] - mean) * (x[i] - mean);
  const double unbiased = squares / static_cast<double>(x.numel() - 1);
  EXPECT_NEAR(bn.running_var()[0], unbiased, 1e-4 * unbiased);
  EXPECT_NEAR(bn.running_mean()[0], mean, 1e-3);
}

TEST(BatchNorm2d, FloatForwardAndBackwardRun) {
  resnet::nn::BatchNorm2d<float> bn(2);
  resnet::Rng rng(62);
  Tensor<float> x({2, 2, 3, 3});
  x.fill_normal(rng);
  const Tensor<float> y = bn.forward(x);
  const Tensor<float> dx = bn.backward(Tensor<float>(y.shape(), 1.0f));
  // A constant upstream gradient is absorbed by the mean: dx = 0, dbias = N*H*W.
  for (std::int64_t i = 0; i < dx.numel(); ++i)
    EXPECT_NEAR(dx[i], 0.0f, 1e-5f);
  const auto params = bn.named_parameters();
  EXPECT_FLOAT_EQ((*params[1].grad)[0], 18.0f);
}

TEST(BatchNorm2d, OneValuePerChannelThrowsInTrainingOnly) {
  resnet::nn::BatchNorm2d<float> bn(4);
  expect_error(
      [&] {
        bn.forward(Tensor<float>({1, 4, 1, 1}));
      },
      {"more than 1 value per channel", "[1, 4, 1, 1]"});
  bn.eval();
  EXPECT_NO_THROW(bn.forward(Tensor<float>({1, 4, 1, 1})));
}

TEST(BatchNorm2d, EvalCachesNothingSoBackwardThrows) {
  resnet::nn::BatchNorm2d<float> bn(2);
  expect_error([&] { bn.backward(Tensor<float>({2, 2, 3, 3})); }, {"BatchNorm2d.backward"});
  bn.forward(Tensor<float>({2, 2, 3, 3}));
  bn.eval();
  bn.forward(Tensor<float>({2, 2, 3, 3}));
  expect_error([&] { bn.backward(Tensor<float>({2, 2, 3, 3})); }, {"BatchNorm2d.backward", "training-mode"});
}

TEST(BatchNorm2d, BadArgumentsThrowNamingShapes) {
  expect_error([] { resnet::nn::BatchNorm2d<float>(0); }, {"num_features", "0"});
  expect_error([] { resnet::nn::BatchNorm2d<float>(3, -1.0); }, {"eps"});
  expect_error([] { resnet::nn::BatchNorm2d<float>(3, 1e-5, 1.5); }, {"momentum"});
  resnet::nn::BatchNorm2d<float> bn(3);
  expect_error(
      [&] {
        bn.forward(Tensor<float>({2, 4, 5, 5}));
      },
      {"4 channels", "expected 3", "[2, 4, 5, 5]"});
  expect_error([&] { bn.forward(Tensor<float>({3, 5, 5})); }, {"4-d", "[3, 5, 5]"});
  bn.forward(Tensor<float>({2, 3, 5, 5}));
  expect_error(
      [&] {
        bn.backward(Tensor<float>({2, 3, 5, 4}));
      },
      {"grad_output", "[2, 3, 5, 4]", "[2, 3, 5, 5]"});
}

// ---------------------------------------------------------------------------------------------------------------
// MaxPool2d

TEST(MaxPool2d, GradientMatchesCentralDifferences) {
  struct Case {
    int k, s, p;
    std::vector<std::int64_t> shape;
  };
  const std::vector<Case> cases = {
      {3, 2, 1, {2, 3, 7, 9}},  // ResNet's stem pool on odd sizes
      {2, 2, 0, {2, 2, 6, 8}},  //
      {3, 2, 1, {1, 2, 5, 8}},  // non-square
      {2, 1, 1, {1, 2, 4, 3}},  // overlapping windows, padding on both sides
      {1, 1, 0, {2, 2, 3, 4}},  // kernel 1: the identity
      {1, 2, 0, {1, 2, 5, 4}},  // kernel 1, stride 2: a subsample
  };
  std::uint64_t seed = 70;
  for (const Case& c : cases) {
    SCOPED_TRACE("k " + std::to_string(c.k) + " s " + std::to_string(c.s) + " p " + std::to_string(c.p));
    resnet::nn::MaxPool2d<double> pool(c.k, c.s, c.p);
    resnet::testing::expect_module_gradients(pool, random_tensor(c.shape, ++seed));
  }
}

TEST(MaxPool2d, ForwardMatchesANaiveMaxWithMinusInfinityPadding) {
  // All inputs negative: padding counted as 0 instead of -inf would show.
  const int k = 3, s = 2, p = 1;
  const std::int64_t H = 7, W = 6, OH = 4, OW = 3;
  Tensor<double> x = random_tensor({2, 2, H, W}, 81);
  for (std::int64_t i = 0; i < x.numel(); ++i)
    x[i] = -1.0 - std::abs(x[i]);
  resnet::nn::MaxPool2d<double> pool(k, s, p);
  const Tensor<double> y = pool.forward(x);
  ASSERT_EQ(y.shape(), (std::vector<std::int64_t>{2, 2, OH, OW}));
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t c = 0; c < 2; ++c)
      for (std::int64_t oh = 0; oh < OH; ++oh)
        for (std::int64_t ow = 0; ow < OW; ++ow) {
          double best = -std::numeric_limits<double>::infinity();
          for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) {
              const std::int64_t h = oh * s - p + i, w = ow * s - p + j;
              if (h >= 0 && h < H && w >= 0 && w < W) best = std::max(best, x.at({n, c, h, w}));
            }
          EXPECT_EQ(y.at({n, c, oh, ow}), best);
        }
}

TEST(MaxPool2d, TiesGoToTheFirstMaximumInScanOrder) {
  // 3x3/2/1 over a constant 3x3 plane: four overlapping windows, each takes its top-left real element.
  resnet::nn::MaxPool2d<float> pool(3, 2, 1);
  const Tensor<float> y = pool.forward(Tensor<float>({1, 1, 3, 3}, 2.0f));
  ASSERT_EQ(y.shape(), (std::vector<std::int64_t>{1, 1, 2, 2}));
  const Tensor<float> dx = pool.backward(Tensor<float>({1, 1, 2, 2}, 1.0f));
  const std::vector<float> expected = {1, 1, 0, 1, 1, 0, 0, 0, 0};
  for (int i = 0; i < 9; ++i)
    EXPECT_EQ(dx[i], expected[i]) << i;

  // A later equal value does not displace an earlier one.
  resnet::nn::MaxPool2d<float> pool2(2, 2);
  Tensor<float> x({1, 1, 2, 2});
  x[0] = 1;
  x[1] = 3;
  x[2] = 3;
  x[3] = 2;
  EXPECT_EQ(pool2.forward(x)[0], 3.0f);
  const Tensor<float> dx2 = pool2.backward(Tensor<float>({1, 1, 1, 1}, 5.0f));
  EXPECT_EQ(dx2[1], 5.0f);
  EXPECT_EQ(dx2[0] + dx2[2] + dx2[3], 0.0f);
}

// Eval takes the separable path (no argmax): the same values as training's scan, NaNs and ties included,
// for every kernel, stride and padding, on odd sizes.
TEST(MaxPool2d, EvalGivesTheValuesOfTraining) {
  for (auto [k, s, p] :
       std::vector<std::array<int, 3>>{{3, 2, 1}, {2, 2, 0}, {3, 1, 1}, {5, 3, 2}, {1, 1, 0}}) {
    const Tensor<double> values = random_tensor({2, 3, 9, 8}, 83);
    Tensor<float> x({2, 3, 9, 8});
    for (std::int64_t i = 0; i < x.numel(); ++i)  // every fifth rounded, for ties
      x[i] = static_cast<float>(i % 5 == 0 ? std::round(values[i]) : values[i]);
    x[17] = x[100] = std::numeric_limits<float>::quiet_NaN();
    resnet::nn::MaxPool2d<float> pool(k, s, p);
    const Tensor<float> trained = pool.forward(x);
    pool.eval();
    const Tensor<float> evaluated = pool.forward(x);
    ASSERT_EQ(evaluated.shape(), trained.shape());
    for (std::int64_t i = 0; i < trained.numel(); ++i) {
      if (std::isnan(trained[i])) {
        EXPECT_TRUE(std::isnan(evaluated[i])) << "k " << k << " s " << s << " p " << p << " at " << i;
      } else {
        EXPECT_EQ(evaluated[i], trained[i]) << "k " << k << " s " << s << " p " << p << " at " << i;
      }
    }
  }
}

TEST(MaxPool2d, NaNWinsItsWindow) {
  resnet::nn::MaxPool2d<float> pool(2, 2);
  Tensor<float> x({1, 1, 2, 4}, 1.0f);
  x[3] = std::numeric_limits<float>::quiet_NaN();  // second in its window's scan, before a larger 9
  x[7] = 9.0f;
  const Tensor<float> y = pool.forward(x);
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_TRUE(std::isnan(y[1]));
  const Tensor<float> dx = pool.backward(Tensor<float>({1, 1, 1, 2}, 1.0f));
  EXPECT_EQ(dx[3], 1.0f);
  EXPECT_EQ(dx[7], 0.0f);
}

// The gradient goes to the element PyTorch's scan keeps: the last of several NaNs; the window's first real
// element when every value is -inf (never a padding position); and windows wider than the map.
TEST(MaxPool2d, GradientGoesToTheLastNaNAndToTheFirstRealElementOfAllMinusInf) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  resnet::nn::MaxPool2d<float> pool(3, 2, 1);
  Tensor<float> x({1, 2, 3, 3}, -inf);  // plane 0: all -inf; plane 1: two NaNs in the top-left window
  for (std::int64_t i = 9; i < 18; ++i)
    x[i] = static_cast<float>(i);
  x[9 + 1] = nan;
  x[9 + 3] = nan;
  const Tensor<float> y = pool.forward(x);  // [1, 2, 2, 2]
  EXPECT_EQ(y[0], -inf);
  EXPECT_TRUE(std::isnan(y[4]));
  Tensor<float> dy({1, 2, 2, 2}, 0.0f);
  dy[0] = 1.0f;  // plane 0, window rows 0-1, columns 0-1 (row -1 and column -1 are padding)
  dy[3] = 2.0f;  // plane 0, window rows 1-2, columns 1-2
  dy[4] = 4.0f;  // plane 1, top-left window: NaNs at (0, 1) and (1, 0), the later one in scan order wins
  const Tensor<float> dx = pool.backward(dy);
  EXPECT_EQ(dx[0], 1.0f);  // (0, 0), the first real element
  EXPECT_EQ(dx[4], 2.0f);  // (1, 1)
  EXPECT_EQ(dx[9 + 3], 4.0f);
  EXPECT_EQ(dx[9 + 1], 0.0f);

  resnet::nn::MaxPool2d<float> wide(3, 2, 1);  // a 3x3 window on 1x2 and 2x1 maps
  for (const auto& shape : {std::vector<std::int64_t>{1, 1, 1, 2}, std::vector<std::int64_t>{1, 1, 2, 1}}) {
    Tensor<float> m(shape);
    m[0] = 1.0f;
    m[1] = 5.0f;
    const Tensor<float> out = wide.forward(m);
    ASSERT_EQ(out.numel(), 1);
    EXPECT_EQ(out[0], 5.0f);
    const Tensor<float> back = wide.backward(Tensor<float>({1, 1, 1, 1}, 1.0f));
    EXPECT_EQ(back[0], 0.0f);
    EXPECT_EQ(back[1], 1.0f);
  }
}

TEST(MaxPool2d, EvalCachesNothingSoBackwardThrows) {
  resnet::nn::MaxPool2d<float> pool(2, 2);
  expect_error([&] { pool.backward(Tensor<float>({1, 1, 2, 2})); }, {"MaxPool2d.backward"});
  pool.eval();
  const Tensor<float> y = pool.forward(Tensor<float>({1, 1, 4, 4}, 1.0f));
  EXPECT_EQ(y.shape(), (std::vector<std::int64_t>{1, 1, 2, 2}));
  expect_error([&] { pool.backward(Tensor<float>({1, 1, 2, 2})); }, {"MaxPool2d.backward", "training-mode"});
}

TEST(MaxPool2d, BadArgumentsThrowNamingShapes) {
  expect_error([] { resnet::nn::MaxPool2d<float>(3, 2, 2); }, {"padding", "2", "kernel_size", "3"});
  expect_error([] { resnet::nn::MaxPool2d<float>(0, 1); }, {"kernel_size"});
  expect_error([] { resnet::nn::MaxPool2d<float>(2, 0); }, {"stride"});
  resnet::nn::MaxPool2d<float> pool(3, 2, 1);
  expect_error([&] { pool.forward(Tensor<float>({2, 3, 4})); }, {"MaxPool2d.forward", "[2, 3, 4]"});
  resnet::nn::MaxPool2d<float> big(5, 1);
  expect_error([&] { big.forward(Tensor<float>({1, 2, 4, 6})); }, {"MaxPool2d.forward", "[1, 2, 4, 6]"});
  pool.forward(Tensor<float>({1, 2, 5, 5}));
  expect_error(
      [&] {
        pool.backward(Tensor<float>({1, 2, 2, 3}));
      },
      {"grad_output", "[1, 2, 2, 3]", "[1, 2, 3, 3]"});
}

// ---------------------------------------------------------------------------------------------------------------
// AdaptiveAvgPool2d

TEST(AdaptiveAvgPool2d, GradientMatchesCentralDifferences) {
  struct Case {
    int oh, ow;
    std::vector<std::int64_t> shape;
  };
  const std::vector<Case> cases = {
      {1, 1, {2, 3, 4, 5}},  // global average
      {3, 2, {2, 2, 7, 5}},  // overlapping windows
      {5, 4, {1, 2, 3, 2}},  // output larger than the input
  };
  std::uint64_t seed = 90;
  for (const Case& c : cases) {
    SCOPED_TRACE("output " + std::to_string(c.oh) + "x" + std::to_string(c.ow));
    resnet::nn::AdaptiveAvgPool2d<double> pool(c.oh, c.ow);
    resnet::testing::expect_module_gradients(pool, random_tensor(c.shape, ++seed));
  }
}

TEST(AdaptiveAvgPool2d, WindowsMatchAHandComputedCase) {
  // x[h][w] = 5h + w on 3x5 pooled to 2x3: rows [0,2) [1,3), columns [0,2) [1,4) [3,5).
  Tensor<double> x({1, 1, 3, 5});
  for (int i = 0; i < 15; ++i)
    x[i] = i;
  resnet::nn::AdaptiveAvgPool2d<double> pool(2, 3);
  const Tensor<double> y = pool.forward(x);
  const std::vector<double> expected = {
      (0 + 1 + 5 + 6) / 4.0,   (1 + 2 + 3 + 6 + 7 + 8) / 6.0,    (3 + 4 + 8 + 9) / 4.0,
      (5 + 6 + 10 + 11) / 4.0, (6 + 7 + 8 + 11 + 12 + 13) / 6.0, (8 + 9 + 13 + 14) / 4.0};
  ASSERT_EQ(y.shape(), (std::vector<std::int64_t>{1, 1, 2, 3}));
  for (int i = 0; i < 6; ++i)
    EXPECT_DOUBLE_EQ(y[i], expected[i]) << i;

  // 2 -> 3: windows [0,1) [0,2) [1,2), so [a, b] becomes [a, (a+b)/2, b].
  Tensor<double> row({1, 1, 1, 2});
  row[0] = 2;
  row[1] = 6;
  resnet::nn::AdaptiveAvgPool2d<double> up(1, 3);
  const Tensor<double> z = up.forward(row);
  EXPECT_EQ(z[0], 2.0);
  EXPECT_EQ(z[1], 4.0);
  EXPECT_EQ(z[2], 6.0);
  const Tensor<double> dz = up.backward(Tensor<double>({1, 1, 1, 3}, 1.0));
  EXPECT_EQ(dz[0], 1.5);
  EXPECT_EQ(dz[1], 1.5);
}

TEST(AdaptiveAvgPool2d, EvalCachesNothingSoBackwardThrows) {
  resnet::nn::AdaptiveAvgPool2d<float> pool(1, 1);
  pool.eval();
  const Tensor<float> y = pool.forward(Tensor<float>({2, 3, 4, 4}, 2.0f));
  EXPECT_EQ(y.shape(), (std::vector<std::int64_t>{2, 3, 1, 1}));
  EXPECT_EQ(y[0], 2.0f);
  expect_error(
      [&] {
        pool.backward(Tensor<float>({2, 3, 1, 1}));
      },
      {"AdaptiveAvgPool2d.backward", "training-mode"});
}

TEST(AdaptiveAvgPool2d, BadArgumentsThrowNamingShapes) {
  expect_error([] { resnet::nn::AdaptiveAvgPool2d<float>(0, 1); }, {"output size", "0x1"});
  resnet::nn::AdaptiveAvgPool2d<float> pool(2, 2);
  expect_error([&] { pool.forward(Tensor<float>({2, 4, 4})); }, {"AdaptiveAvgPool2d.forward", "[2, 4, 4]"});
  expect_error(
      [&] {
        pool.forward(Tensor<float>({2, 3, 0, 4}));
      },
      {"AdaptiveAvgPool2d.forward", "[2, 3, 0, 4]"});
  pool.forward(Tensor<float>({2, 3, 4, 4}));
  expect_error(
      [&] {
        pool.backward(Tensor<float>({2, 3, 1, 1}));
      },
      {"grad_output", "[2, 3, 1, 1]", "[2, 3, 2, 2]"});
}

// ---------------------------------------------------------------------------------------------------------------
// CrossEntropyLoss

TEST(CrossEntropyLoss, GradientMatchesCentralDifferences) {
  for (double smoothing : {0.0, 0.1, 0.35}) {
    SCOPED_TRACE("label_smoothing " + std::to_string(smoothing));
    resnet::nn::CrossEntropyLoss<double> loss(smoothing);
    Tensor<double> logits = random_tensor({4, 6}, 101, 0.0, 2.0);
    const std::vector<int> targets = {0, 5, 2, 2};
    loss.forward(logits, targets);
    const Tensor<double> analytic = loss.backward();
    resnet::testing::expect_central_differences([&] { return loss.forward(logits, targets); }, logits,
                                                analytic, "logits");
  }
}

TEST(CrossEntropyLoss, MatchesANaiveLogSumExp) {
  const Tensor<double> logits = random_tensor({5, 7}, 111, 0.5, 3.0);
  const std::vector<int> targets = {6, 0, 3, 3, 1};
  for (double e : {0.0, 0.2}) {
    double expected = 0;
    for (int n = 0; n < 5; ++n) {
      double sum = 0, sum_neg_log_p = 0;
      for (int c = 0; c < 7; ++c)
        sum += std::exp(logits.at({n, c}));
      for (int c = 0; c < 7; ++c)
        sum_neg_log_p += std::log(sum) - logits.at({n, c});
      expected += (1 - e) * (std::log(sum) - logits.at({n, targets[n]})) + e * sum_neg_log_p / 7;
    }
    expected /= 5;
    resnet::nn::CrossEntropyLoss<double> loss(e);
    EXPECT_NEAR(loss.forward(logits, targets), expected, 1e-12);
    resnet::nn::CrossEntropyLoss<float> loss_float(e);
    Tensor<float> logits_float(logits.shape());
    for (std::int64_t i = 0; i < logits.numel(); ++i)
      logits_float[i] = static_cast<float>(logits[i]);
    EXPECT_NEAR(loss_float.forward(logits_float, targets), expected, 1e-5 * expected);
  }
}

TEST(CrossEntropyLoss, GradientRowsSumToZero) {
  resnet::nn::CrossEntropyLoss<double> loss(0.1);
  loss.forward(random_tensor({3, 4}, 121), {1, 2, 3});
  const Tensor<double> grad = loss.backward();
  for (int n = 0; n < 3; ++n) {
    double sum = 0;
    for (int c = 0; c < 4; ++c)
      sum += grad.at({n, c});
    EXPECT_NEAR(sum, 0.0, 1e-15);
  }
}

TEST(CrossEntropyLoss, StaysFiniteForHugeLogits) {
  Tensor<float> logits({2, 3});
  const std::vector<float> values = {1e4f, 0.0f, -1e4f, -1e4f, 1e4f, 1e4f};
  for (int i = 0; i < 6; ++i)
    logits[i] = values[i];
  resnet::nn::CrossEntropyLoss<float> loss;
  // Row 0 is certain and right (loss 0); row 1 splits between classes 1 and 2 and its target is 2 (log 2).
  EXPECT_NEAR(loss.forward(logits, {0, 2}), std::log(2.0) / 2, 1e-6);
  const Tensor<float> grad = loss.backward();
  for (int i = 0; i < 6; ++i)
    EXPECT_TRUE(std::isfinite(grad[i])) << i;
  EXPECT_NEAR(grad[4], 0.25f, 1e-6f);
  EXPECT_NEAR(grad[5], -0.25f, 1e-6f);
  // A confidently wrong row costs the logit gap.
  EXPECT_NEAR(loss.forward(logits, {2, 2}), 2e4 / 2 + std::log(2.0) / 2, 1e-2);
}

TEST(CrossEntropyLoss, BadArgumentsThrowNamingIndexAndValue) {
  expect_error([] { resnet::nn::CrossEntropyLoss<float>(1.5); }, {"label_smoothing", "1.5"});
  resnet::nn::CrossEntropyLoss<float> loss;
  expect_error([&] { loss.backward(); }, {"CrossEntropyLoss.backward"});
  const Tensor<float> logits({3, 4});
  expect_error([&] { loss.forward(logits, {0, 1, 7}); }, {"targets[2] = 7", "[3, 4]"});
  expect_error([&] { loss.forward(logits, {0, -1, 1}); }, {"targets[1] = -1"});
  expect_error([&] { loss.forward(logits, {0, 1}); }, {"2 targets", "[3, 4]"});
  expect_error([&] { loss.forward(Tensor<float>({0, 4}), {}); }, {"empty", "[0, 4]"});
  expect_error([&] { loss.forward(Tensor<float>({4}), {0, 1, 2, 3}); }, {"2-d", "[4]"});
}

// ---------------------------------------------------------------------------------------------------------------
// Threads: each channel or plane is reduced by one thread in a fixed order, so results are bitwise equal.

TEST(NormPoolThreads, ResultsDoNotDependOnThreadCount) {
  resnet::Rng rng(131);
  Tensor<float> x({8, 16, 32, 32});  // large enough for the kernels' parallel paths, the pools' included
  x.fill_normal(rng, 1.0, 2.0);
  Tensor<float> dy({8, 16, 32, 32});
  dy.fill_normal(rng);
  auto run = [&](int threads) {
    resnet::set_num_threads(threads);
    resnet::nn::BatchNorm2d<float> bn(16);
    resnet::nn::MaxPool2d<float> pool(3, 2, 1);
    resnet::nn::AdaptiveAvgPool2d<float> avg(3, 5);
    std::vector<Tensor<float>> results = {bn.forward(x), bn.backward(dy), bn.running_var().clone(),
                                          pool.forward(x), avg.forward(x)};
    results.push_back(pool.backward(results[3]));
    results.push_back(avg.backward(results[4]));
    pool.eval();
    results.push_back(pool.forward(x));
    return results;
  };
  const int original = resnet::num_threads();
  const auto one = run(1), two = run(2);
  resnet::set_num_threads(original);
  for (std::size_t r = 0; r < one.size(); ++r) {
    ASSERT_EQ(one[r].shape(), two[r].shape()) << r;
    for (std::int64_t i = 0; i < one[r].numel(); ++i)
      ASSERT_EQ(one[r][i], two[r][i]) << "result " << r << " element " << i;
  }
}
