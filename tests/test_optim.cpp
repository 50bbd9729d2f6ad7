#include <gtest/gtest.h>

#include <vector>

#include "resnet/resnet.hpp"

using resnet::Tensor;
using resnet::nn::Parameter;
using resnet::optim::SGD;

namespace {

// Runs three steps of SGD on one parameter with fixed gradients and returns the values after each step.
std::vector<double> run_sgd(double lr, double momentum, double decay, bool nesterov) {
  Tensor<double> value({1}, 1.0), grad({1});
  SGD<double> sgd({Parameter<double>{"w", &value, &grad}}, lr, momentum, decay, nesterov);
  std::vector<double> values;
  for (double g : {0.5, -0.25, 1.0}) {
    sgd.zero_grad();
    grad[0] += g;
    sgd.step();
    values.push_back(value[0]);
  }
  return values;
}

// The same three steps written out from torch.optim.SGD's documented update rule.
std::vector<double> reference_sgd(double lr, double momentum, double decay, bool nesterov) {
  double p = 1.0, buf = 0.0;
  std::vector<double> values;
  bool first = true;
  for (double grad : {0.5, -0.25, 1.0}) {
    double g = grad + decay * p;
    if (momentum != 0) {
      buf = first ? g : momentum * buf + g;
      g = nesterov ? g + momentum * buf : buf;
    }
    first = false;
    p -= lr * g;
    values.push_back(p);
  }
  return values;
}

}  // namespace

TEST(SGD, MatchesTorchUpdateRule) {
  struct Case {
    double lr, momentum, decay;
    bool nesterov;
  };
  for (const Case& c : {Case{0.1, 0, 0, false}, Case{0.1, 0, 0.01, false}, Case{0.05, 0.9, 0, false},
                        Case{0.05, 0.9, 5e-4, false}, Case{0.05, 0.9, 5e-4, true}}) {
    const auto actual = run_sgd(c.lr, c.momentum, c.decay, c.nesterov);
    const auto expected = reference_sgd(c.lr, c.momentum, c.decay, c.nesterov);
    for (std::size_t i = 0; i < expected.size(); ++i)
      EXPECT_DOUBLE_EQ(actual[i], expected[i]) << "step " << i;
  }
  // First step with momentum: the buffer starts as the gradient, so the step is lr * g, not lr * (1-m) * g.
  EXPECT_DOUBLE_EQ(run_sgd(0.1, 0.9, 0, false)[0], 1.0 - 0.1 * 0.5);
}

TEST(SGD, LearningRateIsSettable) {
  Tensor<float> value({2}, 1.0f), grad({2}, 1.0f);
  SGD<float> sgd({Parameter<float>{"w", &value, &grad}}, 0.1);
  sgd.set_lr(0.5);
  EXPECT_EQ(sgd.lr(), 0.5);
  sgd.step();
  EXPECT_FLOAT_EQ(value[0], 0.5f);
  sgd.zero_grad();
  EXPECT_EQ(grad[1], 0.0f);
}

TEST(SGD, BadArgumentsThrow) {
  Tensor<float> value({2}), grad({3});
  EXPECT_THROW(SGD<float>({Parameter<float>{"w", &value, &grad}}, 0.1), resnet::Error);
  Tensor<float> good_grad({2});
  EXPECT_THROW(SGD<float>({Parameter<float>{"w", &value, &good_grad}}, -1.0), resnet::Error);
  EXPECT_THROW(SGD<float>({Parameter<float>{"w", &value, &good_grad}}, 0.1, 0.0, 0.0, true), resnet::Error);
}

TEST(SGD, TrainingAModelLowersTheLoss) {
  // A narrow ResNet memorises a tiny random batch: the loss must fall well below its starting value.
  resnet::models::ResNet<float> net({1, 1, 1, 1}, 4, resnet::models::Stem::Cifar, 3, 1, 8);
  resnet::Rng rng(2);
  Tensor<float> images({8, 3, 8, 8});
  images.fill_normal(rng);
  const std::vector<int> labels = {0, 1, 2, 3, 0, 1, 2, 3};
  resnet::nn::CrossEntropyLoss<float> loss;
  SGD<float> sgd(net.named_parameters(), 0.05, 0.9, 5e-4);
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    sgd.zero_grad();
    last = loss.forward(net.forward(images), labels);
    if (step == 0) first = last;
    net.backward(loss.backward());
    sgd.step();
  }
  EXPECT_LT(last, 0.3f * first);
}

TEST(SGD, ParamGroupsHaveTheirOwnWeightDecay) {
  Tensor<double> w({2, 2}, 1.0), w_grad({2, 2}), b({2}, 1.0), b_grad({2});
  const std::vector<Parameter<double>> params = {{"weight", &w, &w_grad}, {"bias", &b, &b_grad}};
  auto groups = resnet::optim::decay_and_no_decay_groups(params, 0.5);
  ASSERT_EQ(groups.size(), 2u);
  ASSERT_EQ(groups[0].params.size(), 1u);
  EXPECT_EQ(groups[0].params[0].name, "weight");
  EXPECT_EQ(groups[1].params[0].name, "bias");
  EXPECT_EQ(groups[1].weight_decay, 0.0);
  SGD<double> sgd(groups, 0.1);
  sgd.step();  // zero gradients: only weight decay moves anything
  EXPECT_DOUBLE_EQ(w[0], 1.0 - 0.1 * 0.5);
  EXPECT_DOUBLE_EQ(b[0], 1.0);
  EXPECT_EQ(sgd.weight_decays(), (std::vector<double>{0.5, 0.0}));
}

TEST(SGD, NoDecayGroupOfResNet18HoldsBatchNormAndBiases) {
  resnet::models::ResNet18<float> net(10, resnet::models::Stem::Cifar);
  const auto groups = resnet::optim::decay_and_no_decay_groups(net.named_parameters(), 5e-4);
  EXPECT_EQ(groups[0].params.size(), 21u);  // 20 convs + fc.weight
  EXPECT_EQ(groups[1].params.size(), 41u);  // 20 BatchNorms x (weight, bias) + fc.bias
}

TEST(SGD, MomentumIsSettable) {
  EXPECT_EQ(run_sgd(0.1, 0.9, 0, false).size(), 3u);
  Tensor<float> value({1}, 1.0f), grad({1}, 1.0f);
  SGD<float> sgd({Parameter<float>{"w", &value, &grad}}, 0.1, 0.9, 0.0, true);
  sgd.set_momentum(0.85);
  EXPECT_EQ(sgd.momentum(), 0.85);
  EXPECT_THROW(sgd.set_momentum(0.0), resnet::Error);  // Nesterov needs momentum
}
