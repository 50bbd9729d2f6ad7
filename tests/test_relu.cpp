#include <gtest/gtest.h>

#include "resnet/resnet.hpp"
#include "support/gradcheck.hpp"

using resnet::Tensor;

TEST(ReLU, ForwardZeroesNegatives) {
  Tensor<float> x({2, 3}, 0.0f);
  for (int i = 0; i < 6; ++i)
    x[i] = static_cast<float>(i) - 2.5f;
  resnet::nn::ReLU<float> relu;
  const Tensor<float> y = relu.forward(x);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(y[i], std::max(x[i], 0.0f));
}

TEST(ReLU, GradientMatchesCentralDifferences) {
  resnet::Rng rng(7);
  Tensor<double> x({3, 2, 5, 4});
  x.fill_normal(rng);
  resnet::nn::ReLU<double> relu;
  resnet::testing::expect_module_gradients(relu, x);
}

TEST(ReLU, BackwardWithoutForwardThrows) {
  resnet::nn::ReLU<float> relu;
  EXPECT_THROW(relu.backward(Tensor<float>({2, 2})), resnet::Error);
  relu.eval();
  relu.forward(Tensor<float>({2, 2}));
  EXPECT_THROW(relu.backward(Tensor<float>({2, 2})), resnet::Error);
}
