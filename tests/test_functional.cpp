// nn/functional.hpp: softmax against a hand computation (and logits that would overflow exp without the
// max subtracted), argmax's ties to the lowest index as torch.argmax, accuracy.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/expect_error.hpp"

namespace {

using resnet::Tensor;

template <typename T>
Tensor<T> matrix(std::int64_t rows, std::int64_t cols, const std::vector<T>& values) {
  Tensor<T> t({rows, cols});
  for (std::int64_t i = 0; i < t.numel(); ++i)
    t[i] = values[static_cast<std::size_t>(i)];
  return t;
}

TEST(Softmax, ByHand) {
  // Row 0: e^(z - 3) / (e^-2 + e^-1 + 1). Row 1: three equal logits too large for exp: 1/3 each.
  const Tensor<float> p = resnet::nn::softmax(matrix<float>(2, 3, {1, 2, 3, 1000, 1000, 1000}));
  ASSERT_EQ(p.shape(), (std::vector<std::int64_t>{2, 3}));
  const double sum = std::exp(-2.0) + std::exp(-1.0) + 1.0;
  EXPECT_NEAR(p[0], std::exp(-2.0) / sum, 1e-7);  // 0.0900306
  EXPECT_NEAR(p[1], std::exp(-1.0) / sum, 1e-7);  // 0.2447285
  EXPECT_NEAR(p[2], 1.0 / sum, 1e-7);             // 0.6652410
  for (std::int64_t c = 3; c < 6; ++c)
    EXPECT_NEAR(p[c], 1.0 / 3.0, 1e-7);

  // exp(710) overflows a double: 1 / (1 + e^-1) and e^-1 / (1 + e^-1).
  const Tensor<double> q = resnet::nn::softmax(matrix<double>(1, 2, {710.0, 709.0}));
  EXPECT_NEAR(q[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-15);
  EXPECT_NEAR(q[1], std::exp(-1.0) / (1.0 + std::exp(-1.0)), 1e-15);
}

TEST(Softmax, RefusesWhatIsNotLogits) {
  resnet::testing::expect_error([] { resnet::nn::softmax(Tensor<float>({3})); }, {"softmax", "[3]"});
  resnet::testing::expect_error([] { resnet::nn::softmax(Tensor<float>({2, 0})); }, {"softmax", "[2, 0]"});
}

TEST(Argmax, TiesGoToTheLowestIndex) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor<float> logits = matrix<float>(5, 3, {1, 3, 3, 5, 5, 5, -1, -2, -3, 0, 0, 7, 1, nan, 9});
  // A NaN counts as the largest, as torch.argmax's.
  EXPECT_EQ(resnet::nn::argmax(logits), (std::vector<int>{1, 0, 0, 2, 1}));
}

TEST(Accuracy, FractionOfRowsWhoseArgmaxIsTheLabel) {
  const Tensor<float> logits = matrix<float>(4, 2, {1, 0, 0, 1, 2, 2, 5, -5});  // predicts 0, 1, 0, 0
  EXPECT_DOUBLE_EQ(resnet::nn::accuracy(logits, {0, 1, 1, 0}), 0.75);
  EXPECT_DOUBLE_EQ(resnet::nn::accuracy(logits, {1, 0, 1, 1}), 0.0);
  resnet::testing::expect_error(
      [&] {
        resnet::nn::accuracy(logits, {0, 1});
      },
      {"accuracy", "2 labels", "[4, 2]"});
  resnet::testing::expect_error(
      [&] {
        resnet::nn::accuracy(logits, {0, 1, 2, 0});
      },
      {"accuracy", "labels[2] = 2", "[0, 2)"});
}

}  // namespace
