// train/evaluate.hpp: loss, accuracy and per-class counts over a tiny dataset with a model whose answers are
// known, in batches that do not divide it, in eval mode, and every module's mode put back afterwards (also
// when the forward throws).

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "resnet/resnet.hpp"

namespace {

using resnet::Tensor;

// logits [B, 3] = (x[b, 0, 0, 0], 0, -50): class 0 for a bright first pixel, class 1 for a dark one, never 2.
class FirstPixel : public resnet::nn::Module<FirstPixel, float> {
 public:
  template <typename Visitor>
  void visit(Visitor& v) {
    v.child("relu", relu);
  }
  Tensor<float> forward(const Tensor<float>& x) {
    ++calls;
    if (calls == throw_at) throw std::runtime_error("forward failed");
    forwards_in_training += is_training() || relu.is_training();
    const std::int64_t B = x.size(0), pixels = x.numel() / B;
    Tensor<float> logits({B, 3});
    for (std::int64_t b = 0; b < B; ++b) {
      logits.at({b, 0}) = x[b * pixels];
      logits.at({b, 2}) = -50.0f;
    }
    return logits;
  }
  resnet::nn::ReLU<float> relu;
  int calls = 0, throw_at = 0, forwards_in_training = 0;
};

// Five 1x2x2 images whose first pixel is 255 (normalised to +1) or 0 (-1): predicted 0, 1, 0, 1, 0.
resnet::data::Dataset five_images() {
  resnet::data::Dataset d;
  d.name = "five";
  d.images = Tensor<std::uint8_t>({5, 1, 2, 2}, 128);
  for (std::int64_t i = 0; i < 5; ++i)
    d.images[i * 4] = i % 2 == 0 ? 255 : 0;
  d.labels = {0, 1, 1, 1, 0};  // image 2 is wrong
  d.class_names = {"bright", "dark", "none"};
  d.normalization = {{0.5f}, {0.5f}};
  return d;
}

TEST(Evaluate, LossAccuracyAndPerClassCounts) {
  FirstPixel model;
  const resnet::train::Evaluation e = resnet::train::evaluate(model, five_images(), 2);
  EXPECT_EQ(model.calls, 3);  // batches of 2, 2 and 1
  EXPECT_EQ(model.forwards_in_training, 0);
  EXPECT_DOUBLE_EQ(e.accuracy, 0.8);
  EXPECT_EQ(e.correct, (std::vector<std::int64_t>{2, 2, 0}));
  EXPECT_EQ(e.total, (std::vector<std::int64_t>{2, 3, 0}));
  // Cross-entropy of logits (v, 0, -50) with v = +1 or -1: log(e^v + 1 + e^-50) - z[label].
  const auto nll = [](double v, int label) {
    const double z[3] = {v, 0.0, -50.0};
    return std::log(std::exp(v) + 1.0 + std::exp(-50.0)) - z[label];
  };
  const double expected = (nll(1, 0) + nll(-1, 1) + nll(1, 1) + nll(-1, 1) + nll(1, 0)) / 5;
  EXPECT_NEAR(e.loss, expected, 1e-6);
}

// Shards of the images (a data-parallel evaluation), merged by summing their counts, give the evaluation of
// the whole set; a shard with nothing in a last batch (5 images over 3 shards in batches of 4) skips it.
TEST(Evaluate, ShardsMergeIntoTheWholeEvaluation) {
  FirstPixel model;
  const resnet::train::Evaluation whole = resnet::train::evaluate(model, five_images(), 4);
  std::vector<resnet::train::Evaluation> shards;
  for (std::int64_t r = 0; r < 3; ++r)
    shards.push_back(resnet::train::evaluate(model, five_images(), 4, {r, 3}));
  EXPECT_EQ(shards[0].images + shards[1].images + shards[2].images, 5);
  EXPECT_EQ(shards[2].images,
            1);  // positions 2 of the first batch; none of the last (position 4 is shard 0's)
  for (std::size_t r = 0; r < shards.size(); ++r) {
    // The other shards' sums, added as an allreduce would.
    const auto merged = resnet::train::merge(shards[r], [&](double* values, std::int64_t count) {
      for (std::size_t other = 0; other < shards.size(); ++other) {
        if (other == r) continue;
        const auto& o = shards[other];
        std::vector<double> theirs{o.loss * static_cast<double>(o.images), static_cast<double>(o.images)};
        for (std::size_t c = 0; c < o.correct.size(); ++c) {
          theirs.push_back(static_cast<double>(o.correct[c]));
          theirs.push_back(static_cast<double>(o.total[c]));
        }
        ASSERT_EQ(static_cast<std::int64_t>(theirs.size()), count);
        for (std::int64_t i = 0; i < count; ++i)
          values[i] += theirs[static_cast<std::size_t>(i)];
      }
    });
    EXPECT_EQ(merged.images, 5);
    EXPECT_DOUBLE_EQ(merged.accuracy, whole.accuracy);
    // Each batch's loss is a float mean, and the shards batch the images differently: equal to float
    // rounding.
    EXPECT_NEAR(merged.loss, whole.loss, 1e-6 * whole.loss);
    EXPECT_EQ(merged.correct, whole.correct);
    EXPECT_EQ(merged.total, whole.total);
  }
}

TEST(Evaluate, PutsEveryModuleBackInItsMode) {
  FirstPixel model;
  resnet::train::evaluate(model, five_images(), 4);
  EXPECT_TRUE(model.is_training());
  EXPECT_TRUE(model.relu.is_training());

  model.eval();
  resnet::train::evaluate(model, five_images(), 4);
  EXPECT_FALSE(model.is_training());
  EXPECT_FALSE(model.relu.is_training());

  model.train();
  model.relu.eval();
  resnet::train::evaluate(model, five_images(), 4);
  EXPECT_TRUE(model.is_training());
  EXPECT_FALSE(model.relu.is_training());
  EXPECT_EQ(model.forwards_in_training, 0);

  model.relu.train();
  model.throw_at = model.calls + 2;
  EXPECT_THROW(resnet::train::evaluate(model, five_images(), 4), std::runtime_error);
  EXPECT_TRUE(model.is_training());
  EXPECT_TRUE(model.relu.is_training());
}

TEST(Evaluate, ResNetOnItsOwnPredictions) {
  // A small ResNet's accuracy on labels set to its own eval-mode predictions is 1, and on shifted ones 0.
  resnet::models::ResNet<float> net({1, 1, 1, 1}, 3, resnet::models::Stem::Cifar, 1, 7, 4);
  resnet::data::Dataset d;
  d.name = "noise";
  d.images = Tensor<std::uint8_t>({6, 1, 8, 8});
  resnet::Rng rng(3);
  for (std::int64_t i = 0; i < d.images.numel(); ++i)
    d.images[i] = static_cast<std::uint8_t>(rng.below(256));
  d.class_names = {"a", "b", "c"};
  d.normalization = {{0.5f}, {0.25f}};
  d.labels.assign(6, 0);
  resnet::data::BatchLoader<float> all(d, {6, false, false, {}, 0});
  resnet::data::Batch<float> batch;
  all.start_epoch(0);
  ASSERT_TRUE(all.next(batch));
  net.eval();
  d.labels = resnet::nn::argmax(net.forward(batch.images));
  net.train();
  EXPECT_DOUBLE_EQ(resnet::train::evaluate(net, d, 4).accuracy, 1.0);
  for (int& label : d.labels)
    label = (label + 1) % 3;
  EXPECT_DOUBLE_EQ(resnet::train::evaluate(net, d, 4).accuracy, 0.0);
  EXPECT_TRUE(net.is_training());
}

}  // namespace
