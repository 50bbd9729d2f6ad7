// Every layer against PyTorch: tools/make_fixtures.py ran torch.nn on awkward shapes (batch 3, odd and
// non-square sizes, stride 2, padding, ties) and stored input, parameters, buffers, a random grad_output and
// what PyTorch computed. Each case is rebuilt from the constructor arguments in the fixture's metadata, run
// forward and backward in float, and every output and gradient must be within relative L2 error 1e-5.
// Each comparison prints "parity <case> <tensor> rel_l2=<x>" so the tolerances reached can be reported.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "resnet/nn/adaptive_avgpool2d.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/cross_entropy_loss.hpp"
#include "resnet/nn/linear.hpp"
#include "resnet/nn/maxpool2d.hpp"
#include "resnet/nn/relu.hpp"
#include "support/compare.hpp"
#include "support/fixture.hpp"

namespace {

using resnet::Tensor;
using resnet::testing::Fixture;

constexpr double kTolerance = 1e-5;

const std::vector<std::string> kModuleCases = {
    "conv2d_3x3_s1_p1",
    "conv2d_3x3_s2_p1",
    "conv2d_1x1_s2_nobias",
    "conv2d_7x7_s2_p3",
    "conv2d_1x1_s1",
    "conv2d_3x3_s2_p0_nobias",
    "conv2d_3x3_s2_p1_g4",
    "conv2d_1x1_s1_g2_nobias",
    "conv2d_3x3_s1_p1_depthwise",
    "linear",
    "linear_nobias",
    "batchnorm2d_train",
    "batchnorm2d_train_eps_momentum",
    "batchnorm2d_eval",
    "relu",
    "maxpool2d_3x3_s2_p1",
    "maxpool2d_2x2_s2",
    "maxpool2d_3x3_s2_p1_ties",
    "adaptive_avg_pool2d_1x1",
    "adaptive_avg_pool2d_3x2",
};
const std::vector<std::string> kLossCases = {"cross_entropy", "cross_entropy_smoothing",
                                             "cross_entropy_large_logits"};

void expect_parity(const std::string& case_name, const std::string& what, const Tensor<float>& actual,
                   const Tensor<float>& expected) {
  const double error = resnet::testing::relative_l2(actual, expected);
  std::cout << "parity " << case_name << " " << what << " rel_l2=" << error << std::endl;
  EXPECT_LE(error, kTolerance) << case_name << " " << what << ": shape "
                               << resnet::shape_string(actual.shape()) << ", PyTorch "
                               << resnet::shape_string(expected.shape());
}

// Copies `from` into the module's own tensor (keeping its storage), after checking the shape.
void copy_into(Tensor<float>& to, const Tensor<float>& from, const std::string& what) {
  ASSERT_EQ(to.shape(), from.shape()) << what << ": module has " << resnet::shape_string(to.shape())
                                      << ", fixture " << resnet::shape_string(from.shape());
  std::copy(from.data(), from.data() + from.numel(), to.data());
}

// Loads the fixture's parameters and buffers into `module`, runs forward (and backward when the fixture has a
// grad_output) and compares everything PyTorch stored. The fixture's keys must be exactly those the module's
// parameter and buffer names imply, so a missing or an extra name fails.
template <typename M>
void check_module(M& module, const Fixture& fx) {
  const std::string& name = fx.name();
  const bool training = !fx.has_meta("training") || fx.meta_int("training") != 0;
  module.train(training);
  const bool has_backward = fx.has("grad_output");

  std::set<std::string> expected_keys = {"input", "output"};
  if (has_backward) expected_keys.insert({"grad_output", "grad_input"});
  auto parameters = module.named_parameters();
  auto buffers = module.named_buffers();
  for (auto& p : parameters) {
    expected_keys.insert(p.name);
    if (has_backward) expected_keys.insert("grad." + p.name);
    copy_into(*p.value, fx.tensor<float>(p.name), name + " " + p.name);
  }
  for (auto& b : buffers) {
    expected_keys.insert(b.name);
    if (training) expected_keys.insert("after." + b.name);
    copy_into(*b.value, fx.tensor<float>(b.name), name + " " + b.name);
  }
  const std::vector<std::string> keys = fx.keys();
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()), expected_keys) << name;

  const Tensor<float> input = fx.tensor<float>("input");
  const Tensor<float> output = module.forward(input);
  expect_parity(name, "output", output, fx.tensor<float>("output"));
  for (auto& b : buffers)
    if (training) expect_parity(name, "after." + b.name, *b.value, fx.tensor<float>("after." + b.name));
  if (!has_backward) return;

  module.zero_grad();
  const Tensor<float> grad_input = module.backward(fx.tensor<float>("grad_output"));
  expect_parity(name, "grad_input", grad_input, fx.tensor<float>("grad_input"));
  for (auto& p : parameters)
    expect_parity(name, "grad." + p.name, *p.grad, fx.tensor<float>("grad." + p.name));
}

class LayerParity : public ::testing::TestWithParam<std::string> {};

TEST_P(LayerParity, MatchesPyTorch) {
  const Fixture fx(GetParam());
  const std::string kind = fx.meta("module");
  using namespace resnet::nn;
  if (kind == "Conv2d") {
    Conv2d<float> m(resnet::testing::conv2d_options(fx));
    check_module(m, fx);
  } else if (kind == "Linear") {
    Linear<float> m(fx.meta_int("in_features"), fx.meta_int("out_features"), fx.meta_int("bias") != 0);
    check_module(m, fx);
  } else if (kind == "BatchNorm2d") {
    BatchNorm2d<float> m(fx.meta_int("num_features"), fx.meta_double("eps"), fx.meta_double("momentum"));
    check_module(m, fx);
  } else if (kind == "ReLU") {
    ReLU<float> m;
    check_module(m, fx);
  } else if (kind == "MaxPool2d") {
    MaxPool2d<float> m(fx.meta_int("kernel_size"), fx.meta_int("stride"), fx.meta_int("padding"));
    check_module(m, fx);
  } else if (kind == "AdaptiveAvgPool2d") {
    AdaptiveAvgPool2d<float> m(fx.meta_int("output_h"), fx.meta_int("output_w"));
    check_module(m, fx);
  } else {
    FAIL() << GetParam() << ": unknown module " << kind;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LayerParity, ::testing::ValuesIn(kModuleCases),
                         [](const auto& info) { return info.param; });

class LossParity : public ::testing::TestWithParam<std::string> {};

TEST_P(LossParity, MatchesPyTorch) {
  const Fixture fx(GetParam());
  ASSERT_EQ(fx.meta("module"), "CrossEntropyLoss");
  const std::vector<std::string> keys = fx.keys();
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()),
            (std::set<std::string>{"input", "targets", "output", "grad_input"}));
  resnet::nn::CrossEntropyLoss<float> loss(fx.meta_double("label_smoothing"));
  const float value = loss.forward(fx.tensor<float>("input"), fx.ints("targets"));
  expect_parity(GetParam(), "output", Tensor<float>({}, value), fx.tensor<float>("output"));
  expect_parity(GetParam(), "grad_input", loss.backward(), fx.tensor<float>("grad_input"));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LossParity, ::testing::ValuesIn(kLossCases),
                         [](const auto& info) { return info.param; });

// A fixture that no case lists would silently go untested.
TEST(LayerParityFixtures, EveryLayerFixtureIsTested) {
  std::set<std::string> listed(kModuleCases.begin(), kModuleCases.end());
  listed.insert(kLossCases.begin(), kLossCases.end());
  for (const auto& entry : std::filesystem::directory_iterator(RESNET_FIXTURE_DIR)) {
    const std::string stem = entry.path().stem().string();
    if (entry.path().extension() != ".safetensors" || stem.rfind("resnet18_", 0) == 0) continue;
    EXPECT_EQ(listed.count(stem), 1u) << entry.path() << " is not listed in test_parity_layers.cpp";
  }
}

}  // namespace
