// optim/ema.hpp: the moving average follows its formula (with the warm-up) for parameters and BatchNorm
// statistics, copies num_batches_tracked, swaps in and out exactly, and round-trips through a checkpoint.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/data_files.hpp"
#include "support/expect_error.hpp"

namespace {

using Model = resnet::models::ResNet<float>;
using resnet::optim::ExponentialMovingAverage;

Model small_model(std::uint64_t seed) {
  return Model({1, 1, 1, 1}, 10, resnet::models::Stem::Cifar, 3, seed, 4);
}

// A training step on fixed random images (the BatchNorm statistics move too).
void step(Model& model, resnet::optim::SGD<float>& sgd, std::uint64_t seed) {
  resnet::Rng rng(seed);
  resnet::Tensor<float> x({4, 3, 8, 8});
  for (std::int64_t i = 0; i < x.numel(); ++i)
    x[i] = static_cast<float>(rng.normal(0, 1));
  sgd.zero_grad();
  resnet::nn::CrossEntropyLoss<float> loss;
  loss.forward(model.forward(x), {1, 7, 3, 3});
  model.backward(loss.backward());
  sgd.step();
}

std::vector<std::vector<float>> state_of(Model& model) {
  std::vector<std::vector<float>> state;
  for (const auto& entry : resnet::io::state_entries(model))
    state.emplace_back(entry.value->cdata(), entry.value->cdata() + entry.value->numel());
  return state;
}

}  // namespace

TEST(ExponentialMovingAverage, FollowsItsFormulaWithTheWarmUp) {
  Model model = small_model(1);
  resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1, 0.9);
  ExponentialMovingAverage<float> ema(model, 0.5);
  auto expected = state_of(model);
  for (int n = 0; n < 3; ++n) {
    step(model, sgd, 10 + n);
    ema.update(model);
    const double d = std::min(0.5, (1.0 + n) / (10.0 + n));  // 0.1, 0.18..., then 0.5
    const auto now = state_of(model);
    const auto entries = resnet::io::state_entries(model);
    for (std::size_t i = 0; i < now.size(); ++i)
      for (std::size_t j = 0; j < now[i].size(); ++j)
        expected[i][j] = entries[i].name.find("num_batches_tracked") != std::string::npos
                             ? now[i][j]
                             : static_cast<float>(d) * expected[i][j] + static_cast<float>(1 - d) * now[i][j];
  }
  EXPECT_EQ(ema.updates(), 3);
  const auto trained = state_of(model);
  ema.swap(model);
  const auto averaged = state_of(model);
  const auto entries = resnet::io::state_entries(model);
  bool statistics_checked = false;
  for (std::size_t i = 0; i < averaged.size(); ++i) {
    statistics_checked |= entries[i].name.find("running_var") != std::string::npos;
    for (std::size_t j = 0; j < averaged[i].size(); ++j)
      ASSERT_NEAR(averaged[i][j], expected[i][j], 1e-6f * (1 + std::abs(expected[i][j]))) << entries[i].name;
  }
  EXPECT_TRUE(statistics_checked);
  EXPECT_NE(averaged, trained);
  ema.swap(model);
  EXPECT_EQ(state_of(model), trained);  // swapped back exactly
}

TEST(ExponentialMovingAverage, RoundTripsThroughACheckpoint) {
  resnet::testing::TempDir dir;
  Model model = small_model(1);
  resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1, 0.9);
  ExponentialMovingAverage<float> ema(model, 0.9);
  for (int n = 0; n < 2; ++n) {
    step(model, sgd, 20 + n);
    ema.update(model);
  }
  resnet::train::Checkpoints checkpoints(dir.path());
  checkpoints.save(model, sgd, {{0, 0, 2}, 2}, {}, ema.tensors());
  // Without a place for them, the average's tensors are refused by name.
  resnet::testing::expect_error(
      [&] { resnet::io::load_checkpoint(checkpoints.newest_first().front().string(), model, sgd); },
      {"neither model. nor momentum.", "ema.conv1.weight"});

  Model other = small_model(2);
  resnet::optim::SGD<float> other_sgd(other.named_parameters(), 0.1, 0.9);
  ExponentialMovingAverage<float> restored(other, 0.9);
  const auto resumed = resnet::train::Checkpoints(dir.path()).resume(other, other_sgd);
  ASSERT_TRUE(resumed.has_value());
  restored.restore(resumed->tensors);
  EXPECT_EQ(restored.updates(), 2);
  ema.swap(model);
  restored.swap(other);
  EXPECT_EQ(state_of(other), state_of(model));

  ExponentialMovingAverage<float> fresh(other, 0.9);
  resnet::testing::expect_error([&] { fresh.restore({}); }, {"no tensor ema.conv1.weight"});
  resnet::testing::expect_error([&] { ExponentialMovingAverage<float>(other, 1.0); },
                                {"decay must be in [0, 1)"});
}
