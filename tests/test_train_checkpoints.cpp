// train/checkpoint.hpp's run-level Checkpoints and train/metrics_log.hpp's MetricsLog: a run directory keeps
// its newest checkpoints, resume() restores the model, optimizer and position exactly and refuses another
// run's settings by name before it changes anything, and a metrics log round-trips through a checkpoint.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/data_files.hpp"
#include "support/expect_error.hpp"

namespace {

using resnet::testing::expect_error;
using resnet::train::Checkpoints;
using resnet::train::MetricsLog;
using resnet::train::Position;
using Model = resnet::models::ResNet<float>;

Model small_model(std::uint64_t seed) {
  return Model({1, 1, 1, 1}, 10, resnet::models::Stem::Cifar, 3, seed, 4);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// One SGD step on random data, so that the momentum buffers exist.
void step(Model& model, resnet::optim::SGD<float>& sgd) {
  resnet::Rng rng(3);
  resnet::Tensor<float> x({2, 3, 8, 8});
  for (std::int64_t i = 0; i < x.numel(); ++i)
    x[i] = static_cast<float>(rng.normal(0, 1));
  sgd.zero_grad();
  resnet::nn::CrossEntropyLoss<float> loss;
  loss.forward(model.forward(x), {1, 7});
  model.backward(loss.backward());
  sgd.step();
}

}  // namespace

TEST(MetricsLog, WritesEachRowAndRoundTripsExactly) {
  resnet::testing::TempDir dir;
  const std::string path = dir.file("run/metrics.csv");  // the directory is created
  MetricsLog log(path, {"update", "loss"});
  log.add({1, 0.1});
  log.add({2, 1.0 / 3});
  EXPECT_EQ(read_text(path), "update,loss\n1,0.1\n2,0.3333333333333333\n");
  log.add({3, std::numeric_limits<double>::quiet_NaN()});

  MetricsLog resumed(dir.file("other.csv"), {"update", "loss"});
  resumed.restore(log.csv());
  ASSERT_EQ(resumed.rows().size(), 3u);
  EXPECT_EQ(resumed.rows()[1][1], 1.0 / 3);
  EXPECT_TRUE(std::isnan(resumed.rows()[2][1]));
  EXPECT_EQ(read_text(dir.file("other.csv")), log.csv());
}

TEST(MetricsLog, RefusesRowsThatDoNotFitItsColumns) {
  MetricsLog log("", {"update", "loss"});
  expect_error([&] { log.add({1}); }, {"1 values for the 2 columns"});
  expect_error([&] { log.restore("update,lr\n1,2\n"); }, {"columns 'update,lr'", "'update,loss'"});
  expect_error([&] { log.restore("update,loss\n1,x\n"); }, {"'x' is not a number"});
  expect_error([&] { log.restore("update,loss\n1,2,3\n"); }, {"has 3 values for 2 columns"});
  EXPECT_TRUE(log.rows().empty());
}

TEST(Checkpoints, ResumeRestoresTheNewestExactlyAndKeepsTwo) {
  resnet::testing::TempDir dir;
  Model model = small_model(1);
  resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1, 0.9);
  Checkpoints checkpoints(dir.file("run"), {{"lr", "0.1"}});
  Position at{{7, 0, 0}, 0};
  for (int update = 1; update <= 3; ++update) {
    step(model, sgd);
    at = {{7, 1, update}, update};
    checkpoints.save(model, sgd, at, {{"note", "update " + std::to_string(update)}});
  }
  const auto files = checkpoints.newest_first();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].filename(), Checkpoints::file_name(3));
  EXPECT_EQ(files[1].filename(), "checkpoint-0000000002.safetensors");

  Model restored = small_model(2);
  resnet::optim::SGD<float> restored_sgd(restored.named_parameters(), 0.1, 0.9);
  Checkpoints again(dir.file("run"), {{"lr", "0.1"}});
  const auto resumed = again.resume(restored, restored_sgd);
  ASSERT_TRUE(resumed.has_value());
  EXPECT_EQ(resumed->path, files[0].string());
  EXPECT_EQ(resumed->position.updates, 3);
  EXPECT_EQ(resumed->position.loader.seed, 7u);
  EXPECT_EQ(resumed->position.loader.epoch, 1);
  EXPECT_EQ(resumed->position.loader.batch, 3);
  EXPECT_EQ(resumed->metadata.at("note"), "update 3");
  const auto expected = model.named_parameters(), actual = restored.named_parameters();
  for (std::size_t p = 0; p < expected.size(); ++p) {
    for (std::int64_t i = 0; i < expected[p].value->numel(); ++i)
      ASSERT_EQ((*actual[p].value)[i], (*expected[p].value)[i]) << expected[p].name;
    const auto& m = sgd.momentum_buffers()[p];
    for (std::int64_t i = 0; i < m.numel(); ++i)
      ASSERT_EQ(restored_sgd.momentum_buffers()[p][i], m[i]) << expected[p].name;
  }
}

TEST(Checkpoints, ResumeInAnEmptyDirectoryFindsNothing) {
  resnet::testing::TempDir dir;
  Model model = small_model(1);
  resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1);
  Checkpoints checkpoints(dir.file("none"));
  EXPECT_FALSE(checkpoints.resume(model, sgd).has_value());
  EXPECT_FALSE(std::filesystem::exists(dir.file("none")));
}

// Another run's settings are refused by name, before the model changes; a setting older files did not record
// takes the value `implied` gives it.
TEST(Checkpoints, ResumeRefusesOtherSettingsBeforeChangingTheModel) {
  resnet::testing::TempDir dir;
  Model model = small_model(1);
  resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1, 0.9);
  Checkpoints(dir.path(), {{"batch_size", "128"}}).save(model, sgd, {{0, 0, 1}, 1});

  Model other = small_model(2);
  const float before = (*other.named_parameters()[0].value)[0];
  resnet::optim::SGD<float> other_sgd(other.named_parameters(), 0.1, 0.9);
  Checkpoints larger(dir.path(), {{"batch_size", "256"}});
  expect_error([&] { larger.resume(other, other_sgd); },
               {"checkpoint-0000000001.safetensors", "batch_size = '128', this run has '256'"});
  Checkpoints newer(dir.path(), {{"batch_size", "128"}, {"width", "64"}});
  expect_error([&] { newer.resume(other, other_sgd); }, {"missing metadata 'width'"});
  EXPECT_EQ((*other.named_parameters()[0].value)[0], before);

  resnet::train::CheckpointOptions options;
  options.implied = {{"width", "64"}};
  Checkpoints implied(dir.path(), {{"batch_size", "128"}, {"width", "64"}}, options);
  ASSERT_TRUE(implied.resume(other, other_sgd).has_value());
  EXPECT_EQ((*other.named_parameters()[0].value)[0], (*model.named_parameters()[0].value)[0]);
}

// A save killed before its rename leaves a temporary file; the next run's resume removes it, and keeps
// everything else.
TEST(Checkpoints, ResumeRemovesWhatAnInterruptedSaveLeft) {
  resnet::testing::TempDir dir;
  Model model = small_model(1);
  resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1);
  Checkpoints(dir.path()).save(model, sgd, {{0, 0, 1}, 1});
  const std::string leftover = dir.file("checkpoint-0000000002.safetensors.tmp-123-0");
  const std::string mine = dir.file("notes.tmp-1");
  std::ofstream(leftover) << "partial";
  std::ofstream(mine) << "mine";
  Checkpoints checkpoints(dir.path());
  EXPECT_EQ(checkpoints.resume(model, sgd)->position.updates, 1);
  EXPECT_FALSE(std::filesystem::exists(leftover));
  EXPECT_TRUE(std::filesystem::exists(mine));
}

TEST(Checkpoints, ResumeRefusesAPositionThatIsNotACount) {
  resnet::testing::TempDir dir;
  Model model = small_model(1);
  resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1);
  const std::string path = Checkpoints(dir.path()).save(model, sgd, {{0, 0, 1}, 1});
  resnet::io::Safetensors file = resnet::io::read_safetensors(path);
  file.metadata["loader_batch"] = "-3";
  resnet::io::write_safetensors(path, file.tensors, file.metadata);
  expect_error([&] { Checkpoints(dir.path()).resume(model, sgd); }, {"'loader_batch' is '-3', not a count"});
}
