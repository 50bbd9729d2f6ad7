// Parameters and gradients in one allocation each (nn/flat_parameters.hpp), as models::ResNet keeps them, and
// the GradientsReady reports of ResNet::backward that a data-parallel run reduces buckets on.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/expect_error.hpp"

using resnet::Tensor;
using resnet::models::ResNet;
using resnet::models::ResNetOptions;
using resnet::models::Stem;
using resnet::testing::expect_error;
namespace nn = resnet::nn;

namespace {

ResNet<float> narrow_resnet() {
  return ResNet<float>(ResNetOptions({1, 1, 1}).stem_width(4).num_classes(5).stem(Stem::Cifar).seed(3));
}

Tensor<float> random_input(std::vector<std::int64_t> shape) {
  resnet::Rng rng(11);
  Tensor<float> x(std::move(shape));
  x.fill_normal(rng);
  return x;
}

}  // namespace

TEST(TensorView, SharesTheBaseStorageAtTheOffset) {
  Tensor<float> base({64});
  for (std::int64_t i = 0; i < 64; ++i)
    base[i] = static_cast<float>(i);
  Tensor<float> view = Tensor<float>::view(base, 16, {2, 8});
  EXPECT_EQ(view.shape(), (std::vector<std::int64_t>{2, 8}));
  EXPECT_EQ(view.at({1, 0}), 24.0f);
  view.fill(-1.0f);
  EXPECT_EQ(base[16], -1.0f);
  EXPECT_EQ(base[31], -1.0f);
  EXPECT_EQ(base[32], 32.0f);
  EXPECT_EQ(base.version(), view.version());  // one storage, one version
  EXPECT_EQ(Tensor<float>::view(view, 0, {16}).cdata(), base.cdata() + 16);
}

TEST(TensorView, RefusesViewsOutsideTheBaseOrOffTheAlignment) {
  Tensor<float> base({64});
  expect_error([&] { Tensor<float>::view(base, 48, {32}); }, {"Tensor::view", "does not fit in 64 elements"});
  expect_error([&] { Tensor<float>::view(base, -16, {4}); }, {"Tensor::view", "offset -16"});
  expect_error([&] { Tensor<float>::view(base, 4, {4}); }, {"Tensor::view", "64-byte boundary"});
  expect_error([&] { Tensor<float>::view(Tensor<float>(), 0, {0}); }, {"Tensor::view", "empty"});
}

TEST(FlatParameters, EveryParameterAndGradientIsAViewOfOneAllocationInStateDictOrder) {
  auto net = narrow_resnet();
  const auto& flat = net.flat_parameters();
  auto parameters = net.named_parameters();
  ASSERT_TRUE(flat.holds(parameters));
  ASSERT_EQ(flat.offsets.size(), parameters.size());
  std::int64_t previous_end = 0;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    EXPECT_EQ(flat.offsets[i] % 16, 0) << parameters[i].name;  // 64-byte aligned floats
    EXPECT_GE(flat.offsets[i], previous_end) << parameters[i].name;
    EXPECT_EQ(parameters[i].value->cdata(), flat.values.cdata() + flat.offsets[i]) << parameters[i].name;
    EXPECT_EQ(parameters[i].grad->cdata(), flat.grads.cdata() + flat.offsets[i]) << parameters[i].name;
    previous_end = flat.offsets[i] + parameters[i].value->numel();
  }
  EXPECT_LE(previous_end, flat.size());
  EXPECT_EQ(parameters.front().name, "conv1.weight");
}

TEST(FlatParameters, FlatteningKeepsValuesAndTheModelsOutput) {
  auto net = narrow_resnet();
  net.eval();
  const Tensor<float> x = random_input({2, 3, 8, 8});
  const Tensor<float> before = net.forward(x);
  std::vector<std::vector<float>> values;
  for (auto& p : net.named_parameters())
    values.emplace_back(p.value->cdata(), p.value->cdata() + p.value->numel());
  const auto again = nn::flatten_parameters(net);  // a second flattening moves them once more
  auto parameters = net.named_parameters();
  EXPECT_TRUE(again.holds(parameters));
  EXPECT_FALSE(net.flat_parameters().holds(parameters));
  for (std::size_t i = 0; i < parameters.size(); ++i)
    EXPECT_TRUE(std::equal(values[i].begin(), values[i].end(), parameters[i].value->cdata()))
        << parameters[i].name;
  const Tensor<float> after = net.forward(x);
  for (std::int64_t i = 0; i < before.numel(); ++i)
    EXPECT_EQ(before[i], after[i]);
}

// Eval-mode forwards only read the parameters: the shared version stays, so no conv packs its weight again.
TEST(FlatParameters, EvalForwardLeavesTheParametersVersionAlone) {
  auto net = narrow_resnet();
  net.eval();
  const Tensor<float> x = random_input({1, 3, 8, 8});
  net.forward(x);
  const std::uint64_t version = net.flat_parameters().values.version();
  net.forward(x);
  net.forward(x);
  EXPECT_EQ(net.flat_parameters().values.version(), version);
}

// The state-dict writes of training (SGD, zero_grad) go through the views into the one allocation.
TEST(FlatParameters, SgdAndZeroGradWriteThroughTheViews) {
  auto net = narrow_resnet();
  resnet::optim::SGD<float> sgd(net.named_parameters(), 0.1, 0.9);
  net.train();
  Tensor<float> logits = net.forward(random_input({2, 3, 8, 8}));
  net.backward(Tensor<float>(logits.shape(), 1.0f), nn::InputGrad::Skip);
  const auto& flat = net.flat_parameters();
  const std::int64_t fc_bias = flat.offsets.back();
  EXPECT_EQ(flat.grads[fc_bias], 2.0f);  // d(sum of logits)/d bias over 2 images
  const float bias = flat.values[fc_bias];
  sgd.step();
  EXPECT_FLOAT_EQ(flat.values[fc_bias], bias - 0.1f * 2.0f);
  net.zero_grad();
  for (std::int64_t i = 0; i < flat.size(); ++i)
    ASSERT_EQ(flat.grads[i], 0.0f) << i;
}

// ready(i) comes with falling i down to 0, and when it comes the gradients of parameters i.. are final.
TEST(FlatParameters, BackwardReportsFinalGradientsFromTheLastParameterBack) {
  for (bool preact : {false, true}) {
    SCOPED_TRACE(preact ? "pre-activation" : "basic");
    auto run = [&](auto net) {
      net.train();
      Tensor<float> logits = net.forward(random_input({2, 3, 8, 8}));
      Tensor<float> grad = random_input(logits.shape());
      std::vector<std::pair<std::size_t, Tensor<float>>> reports;
      net.backward(grad, nn::InputGrad::Skip, [&](std::size_t first) {
        reports.emplace_back(first, net.flat_parameters().grads.clone());
      });
      const auto& flat = net.flat_parameters();
      const std::size_t count = net.named_parameters().size();
      ASSERT_GE(reports.size(), 4u);
      EXPECT_EQ(reports.back().first, 0u);
      std::size_t previous = count;
      for (const auto& [first, grads] : reports) {
        EXPECT_LT(first, previous);
        previous = first;
        const std::int64_t begin = flat.offsets[first];
        for (std::int64_t i = begin; i < flat.size(); ++i)
          ASSERT_EQ(grads[i], flat.grads[i])
              << "reported ready from parameter " << first << ", element " << i;
        // And the parameter just before is not final yet (it still is zero), unless it is the first.
        if (first > 0) {
          const std::int64_t before = flat.offsets[first - 1];
          bool all_zero = true;
          for (std::int64_t i = before; i < begin; ++i)
            all_zero = all_zero && grads[i] == 0.0f;
          EXPECT_TRUE(all_zero) << "parameter " << first - 1 << " had gradients before it was reported";
        }
      }
    };
    if (preact)
      run(resnet::models::PreActResNet<float>(ResNetOptions({1, 1}).widths({4, 8}).stem(Stem::Cifar)));
    else
      run(narrow_resnet());
  }
}

TEST(FlatParameters, FoldingBatchNormFlattensTheFoldedParametersAgain) {
  auto net = narrow_resnet();
  net.fold_batchnorm();
  EXPECT_TRUE(net.flat_parameters().holds(net.named_parameters()));
  auto folded = resnet::models::fold_batchnorm(narrow_resnet());
  EXPECT_TRUE(folded.flat_parameters().holds(folded.named_parameters()));
}
