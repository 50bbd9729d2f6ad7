// models/summary.hpp: torchinfo's totals for ResNet18 (torchvision counts 11,689,512 parameters for the
// ImageNet model with 1000 classes), per-module output shapes from the layer geometry, the modes left as
// they were, and bad input shapes refused.

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/expect_error.hpp"

namespace {

using resnet::models::ResNet18;
using resnet::models::Stem;

// The row of the module named `name` ("(layer4.1.conv2)"), or "" when there is none.
std::string row_of(const std::string& summary, const std::string& name) {
  std::istringstream lines(summary);
  for (std::string line; std::getline(lines, line);)
    if (line.find(" (" + name + ")") != std::string::npos) return line;
  return "";
}

// Rows of the modules under the model.
int count_rows(const std::string& summary) {
  std::istringstream lines(summary);
  int rows = 0;
  for (std::string line; std::getline(lines, line);)
    rows += line.rfind("├─", 0) == 0 || line.rfind("│", 0) == 0;
  return rows;
}

TEST(Summary, ImageNetResNet18AsTorchinfo) {
  ResNet18<float> net(1000, Stem::ImageNet);
  const std::string text = resnet::summary(net, {1, 3, 224, 224});
  EXPECT_NE(text.find("\nTotal params: 11,689,512\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nTrainable params: 11,689,512\n"), std::string::npos);
  EXPECT_NE(text.find("\nInput shape: [1, 3, 224, 224]\n"), std::string::npos);
  EXPECT_NE(text.find("\nOutput shape: [1, 1000]\n"), std::string::npos);
  EXPECT_NE(text.find("\nParams size (MB): 46.76\n"), std::string::npos);
  EXPECT_EQ(text.find("Layer (type (var_name))"), text.find('\n') + 1);
  EXPECT_NE(text.find("\nResNet "), std::string::npos);
  // 3 stem modules, 8 blocks of 4 and 3 downsample pairs, avgpool, fc.
  EXPECT_EQ(count_rows(text), 3 + 8 * 5 + 3 * 2 + 2);
  const auto expect_row = [&](const std::string& name, const std::string& shape, const std::string& params) {
    const std::string row = row_of(text, name);
    EXPECT_NE(row.find(" " + shape + " "), std::string::npos) << name << ": '" << row << "'";
    EXPECT_EQ(row.substr(row.find_last_of(' ') + 1), params) << name << ": '" << row << "'";
  };
  expect_row("conv1", "[1, 64, 112, 112]", "9,408");
  expect_row("bn1", "[1, 64, 112, 112]", "128");
  expect_row("maxpool", "[1, 64, 56, 56]", "--");
  expect_row("layer1.0", "[1, 64, 56, 56]", "--");
  expect_row("layer2.0.conv1", "[1, 128, 28, 28]", "73,728");
  expect_row("layer2.0.downsample.0", "[1, 128, 28, 28]", "8,192");
  expect_row("layer3.1", "[1, 256, 14, 14]", "--");
  expect_row("layer4.1.conv2", "[1, 512, 7, 7]", "2,359,296");
  expect_row("avgpool", "[1, 512, 1, 1]", "--");
  expect_row("fc", "[1, 1000]", "513,000");
  EXPECT_EQ(row_of(text, "layer4.1.conv2").rfind("│    └─Conv2d (layer4.1.conv2)", 0), 0u);
  EXPECT_EQ(row_of(text, "layer4.1").rfind("├─BasicBlock (layer4.1)", 0), 0u);
}

TEST(Summary, CifarResNet18) {
  ResNet18<float> net(10, Stem::Cifar);
  const std::string text = resnet::summary(net, {2, 3, 32, 32});
  EXPECT_NE(text.find("\nTotal params: 11,173,962\n"), std::string::npos) << text;
  EXPECT_EQ(net.parameter_count(), 11173962);
  EXPECT_NE(row_of(text, "conv1").find(" [2, 64, 32, 32] "), std::string::npos);
  EXPECT_EQ(row_of(text, "maxpool"), "");
  EXPECT_NE(row_of(text, "layer4.0.downsample.1").find(" [2, 512, 4, 4] "), std::string::npos);
  EXPECT_NE(row_of(text, "fc").find(" [2, 10] "), std::string::npos);
  EXPECT_NE(text.find("\nOutput shape: [2, 10]\n"), std::string::npos);
}

TEST(Summary, FoldedModel) {
  ResNet18<float> net(10, Stem::Cifar);
  auto folded = resnet::models::fold_batchnorm(net);
  const std::string text = resnet::summary(folded, {1, 3, 32, 32});
  EXPECT_NE(text.find("\nResNet "), std::string::npos) << text;
  EXPECT_NE(row_of(text, "layer3.0").find("BasicBlock"), std::string::npos);
  EXPECT_EQ(row_of(text, "layer3.0.bn1"), "");
  // Each BatchNorm's two vectors folded into a conv bias of one.
  EXPECT_NE(text.find("\nTotal params: " + resnet::models::detail::with_thousands(folded.parameter_count())),
            std::string::npos);
}

// Every module of a tree by dotted name, with its mode; `to_eval` names modules to put in eval mode.
struct Modes {
  std::string prefix;
  std::vector<std::pair<std::string, bool>>* modes;
  std::vector<std::string> to_eval;
  void parameter(const std::string&, resnet::Tensor<float>&, resnet::Tensor<float>&) {}
  void buffer(const std::string&, resnet::Tensor<float>&) {}
  template <typename Child>
  void child(const std::string& name, Child& module) {
    for (const auto& target : to_eval)
      if (prefix + name == target) module.eval();
    modes->push_back({prefix + name, module.is_training()});
    Modes nested{prefix + name + ".", modes, to_eval};
    module.visit(nested);
  }
};

template <typename Model>
std::vector<std::pair<std::string, bool>> modes_of(Model& model,
                                                   const std::vector<std::string>& to_eval = {}) {
  std::vector<std::pair<std::string, bool>> modes;
  Modes walker{"", &modes, to_eval};
  model.visit(walker);
  return modes;
}

TEST(Summary, LeavesEveryModeAsItWas) {
  ResNet18<float> net(10, Stem::Cifar);
  resnet::summary(net, {1, 3, 32, 32});
  EXPECT_TRUE(net.is_training());
  for (const auto& [name, training] : modes_of(net))
    EXPECT_TRUE(training) << name;

  net.eval();
  resnet::summary(net, {1, 3, 32, 32});
  EXPECT_FALSE(net.is_training());
  for (const auto& [name, training] : modes_of(net))
    EXPECT_FALSE(training) << name;

  // Some modules in eval mode under a model in training mode (a frozen BatchNorm) stay so.
  net.train();
  const auto before = modes_of(net, {"layer2.0.bn1", "layer3.1.conv2"});
  EXPECT_EQ(std::count_if(before.begin(), before.end(), [](const auto& m) { return !m.second; }), 2);
  resnet::summary(net, {1, 3, 32, 32});
  EXPECT_TRUE(net.is_training());
  EXPECT_EQ(modes_of(net), before);
}

TEST(Summary, RefusesInputsTheModelDoesNotTake) {
  ResNet18<float> net(10, Stem::Cifar);
  resnet::testing::expect_error(
      [&] {
        resnet::summary(net, {1, 1, 32, 32});
      },
      {"summary", "conv1 (Conv2d)", "[N, 3, H, W]", "[1, 1, 32, 32]"});
  resnet::testing::expect_error([&] { resnet::summary(net, {3, 32, 32}); }, {"summary", "[3, 32, 32]"});
  resnet::nn::MaxPool2d<float> pool(3, 2);
  resnet::testing::expect_error(
      [&] {
        resnet::summary(pool, {1, 4, 2, 2});
      },
      {"summary", "MaxPool2d", "has no output for input [1, 4, 2, 2]"});
  EXPECT_TRUE(net.is_training());
}

// A module whose forward does more than its children: a 1x1 conv, then a flatten no module stands for.
class ConvThenFlatten : public resnet::nn::Module<ConvThenFlatten, float> {
 public:
  template <typename Visitor>
  void visit(Visitor& v) {
    v.child("conv", conv_);
  }
  resnet::Tensor<float> forward(const resnet::Tensor<float>& x) {
    const resnet::Tensor<float> y = conv_.forward(x);
    return y.reshape({y.size(0), y.numel() / y.size(0)});
  }

 private:
  resnet::nn::Conv2d<float> conv_{2, 4, 1};
};

// A residual block whose shortcut does not end at the main path's shape.
class BadShortcut : public resnet::nn::Module<BadShortcut, float> {
 public:
  template <typename Visitor>
  void visit(Visitor& v) {
    v.child("conv", conv_);
    v.child("downsample.0", downsample_);
  }
  resnet::Tensor<float> forward(const resnet::Tensor<float>& x) { return conv_.forward(x); }

 private:
  resnet::nn::Conv2d<float> conv_{2, 4, 1}, downsample_{2, 4, 1, 2};
};

TEST(Summary, RefusesAModelWhoseShapesItCannotFollow) {
  ConvThenFlatten model;
  const auto flatten = [&] { resnet::summary(model, {1, 2, 3, 3}); };
  resnet::testing::expect_error(flatten, {"summary", "end at [1, 4, 3, 3]", "forward gives [1, 36]"});
  EXPECT_TRUE(model.is_training());
  BadShortcut block;
  const auto shortcut = [&] { resnet::summary(block, {1, 2, 4, 4}); };
  resnet::testing::expect_error(shortcut,
                                {"summary", "adds its shortcut [1, 4, 2, 2] to its main path [1, 4, 4, 4]"});
}

}  // namespace
