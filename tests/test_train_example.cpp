// The training example's run(): a stopped and resumed run ends bitwise where an
// uninterrupted one does (a ResNet18 and a Wide ResNet), a small ResNet learns a
// generated dataset, --arch builds the model it names, and checkpoints refuse a
// run with other settings or another --arch.

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "train_cifar10/training.hpp"

namespace fs = std::filesystem;

namespace {

// CIFAR-format files whose classes can be learned: class k is a stripe pattern
// with its own orientation and frequency and its own tint, plus per-image noise
// and a random phase, so the test split is new images.
void write_learnable_cifar(const std::string& dir, int per_train_file, int test_count) {
  fs::create_directories(dir);
  resnet::Rng rng(5);
  const auto write = [&](const std::string& name, int count) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    for (int i = 0; i < count; ++i) {
      const int label = static_cast<int>(rng.below(10));
      const double phase = rng.uniform(0, 6.28);
      out.put(static_cast<char>(label));
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 32; ++y)
          for (int x = 0; x < 32; ++x) {
            const double along = label % 2 ? x : y;
            const double stripes = std::sin(along * (0.3 + 0.15 * (label / 2)) + phase);
            const double tint = (label + c) % 3 == 0 ? 40 : 0;
            const double value = 110 + 70 * stripes + tint + rng.normal(0, 20);
            out.put(static_cast<char>(static_cast<unsigned char>(std::clamp(value, 0.0, 255.0))));
          }
    }
  };
  for (int f = 1; f <= 5; ++f)
    write("data_batch_" + std::to_string(f) + ".bin", per_train_file);
  write("test_batch.bin", test_count);
}

class TrainExample : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("resnet_train_test_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    write_learnable_cifar((root_ / "data").string(), 16, 40);
  }
  void TearDown() override { fs::remove_all(root_); }

  train::Config config(const std::string& run) const {
    train::Config c;
    c.dataset = "cifar10";
    c.data_dir = (root_ / "data").string();
    c.checkpoint_dir = (root_ / run).string();
    c.epochs = 2;
    c.batch_size = 24;  // 80 training images: 4 batches, the last one partial
    c.width = 4;
    c.lr = 0.05;
    c.show_progress = false;
    return c;
  }

  // One epoch from `weights` at lr 0, so that the final checkpoint holds the weights as they were loaded.
  train::Config frozen_from(const std::string& run, const std::string& weights) const {
    train::Config c = config(run);
    c.epochs = 1;
    c.schedule = "constant";
    c.lr = 0;
    c.init_weights = weights;
    return c;
  }

  void expect_resume_ends_where_a_whole_run_does(const std::string& arch, int width);

  // What run(c) throws, or "no error".
  std::string error_of(const train::Config& c) const {
    try {
      train::run(c, no_stop_);
    } catch (const resnet::Error& e) {
      return e.what();
    }
    return "no error";
  }

  fs::path root_;
  std::atomic<bool> no_stop_{false};
};

// The final weights of a run, read back from its newest checkpoint into the model its --arch names.
std::vector<resnet::Tensor<float>> final_state(const train::Config& config) {
  arch::ModelArgs args;
  args.seed = 99;
  args.width = config.width;
  return arch::with_model(arch::parse_arch(config.arch), args, [&](auto& model) {
    resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1, 0.9);
    resnet::io::load_checkpoint(
        resnet::train::Checkpoints(config.checkpoint_dir).newest_first().front().string(), model, sgd);
    std::vector<resnet::Tensor<float>> state;
    for (auto& p : model.named_parameters())
      state.push_back(p.value->clone());
    for (auto& b : model.named_buffers())
      state.push_back(b.value->clone());
    for (auto& m : sgd.momentum_buffers())
      state.push_back(m.clone());
    return state;
  });
}

void expect_bitwise_equal(const std::vector<resnet::Tensor<float>>& expected,
                          const std::vector<resnet::Tensor<float>>& actual) {
  ASSERT_EQ(expected.size(), actual.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(expected[i].shape(), actual[i].shape());
    for (std::int64_t j = 0; j < expected[i].numel(); ++j)
      ASSERT_EQ(expected[i][j], actual[i][j]) << i << " " << j;
  }
}

}  // namespace

// A run stopped and resumed twice ends bitwise where an uninterrupted one does, for the model `arch` names.
void TrainExample::expect_resume_ends_where_a_whole_run_does(const std::string& arch, int width) {
  train::Config whole = config("whole"), pieces = config("pieces");
  whole.arch = pieces.arch = arch;
  whole.width = pieces.width = width;
  const train::Outcome reference = train::run(whole, no_stop_);
  ASSERT_FALSE(reference.interrupted);
  EXPECT_EQ(reference.updates, 8);
  ASSERT_EQ(reference.history.size(), 2u);

  // Stopped mid-epoch (after update 3), then across the epoch boundary (after
  // update 6), then to the end.
  pieces.max_steps = 3;
  const train::Outcome first = train::run(pieces, no_stop_);
  EXPECT_TRUE(first.interrupted);
  EXPECT_EQ(first.updates, 3);
  pieces.resume = true;
  const train::Outcome second = train::run(pieces, no_stop_);
  EXPECT_TRUE(second.interrupted);
  EXPECT_EQ(second.updates, 6);
  EXPECT_EQ(second.history.size(), 1u);
  pieces.max_steps = 0;
  const train::Outcome last = train::run(pieces, no_stop_);
  EXPECT_FALSE(last.interrupted);
  EXPECT_EQ(last.updates, 8);

  expect_bitwise_equal(final_state(whole), final_state(pieces));
  ASSERT_EQ(last.history.size(), 2u);
  for (std::size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(last.history[e].train_loss, reference.history[e].train_loss);
    EXPECT_EQ(last.history[e].train_acc, reference.history[e].train_acc);
    EXPECT_EQ(last.history[e].test_loss, reference.history[e].test_loss);
    EXPECT_EQ(last.history[e].test_acc, reference.history[e].test_acc);
  }
  // evaluations.csv has a header and one row per epoch, metrics.csv one row per update (8 updates: fewer
  // than 50), the same in both runs but for the timings; at most two checkpoints are kept.
  const auto rows_of = [](const std::string& path) {
    std::ifstream csv(path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(csv, line);)
      lines.push_back(line.substr(0, line.rfind(',', line.rfind(',') - 1)));  // without the two timings
    return lines;
  };
  const auto evaluations = rows_of(pieces.checkpoint_dir + "/evaluations.csv");
  ASSERT_EQ(evaluations.size(), 3u);
  EXPECT_EQ(evaluations[0], "update,epoch,train_loss,train_acc,test_loss,test_acc");
  EXPECT_EQ(evaluations, rows_of(whole.checkpoint_dir + "/evaluations.csv"));
  const auto metrics = rows_of(pieces.checkpoint_dir + "/metrics.csv");
  ASSERT_EQ(metrics.size(), 9u);
  EXPECT_EQ(metrics[0], "update,epoch,train_loss,train_acc,lr");
  EXPECT_EQ(metrics[8].substr(0, 4), "8,2,");
  EXPECT_EQ(metrics, rows_of(whole.checkpoint_dir + "/metrics.csv"));
  EXPECT_EQ(resnet::train::Checkpoints(pieces.checkpoint_dir).newest_first().size(), 2u);
}

TEST_F(TrainExample, ResumedRunEndsBitwiseWhereAnUninterruptedOneDoes) {
  expect_resume_ends_where_a_whole_run_does("resnet18", 4);
}

// The same for a pre-activation model, the other kind of model --arch builds.
TEST_F(TrainExample, ResumedWideResNetRunEndsBitwiseWhereAnUninterruptedOneDoes) {
  expect_resume_ends_where_a_whole_run_does("wrn-10-1", 64);
}

// With the weights' moving average (--ema) and test-time flip, a stopped and resumed run ends with the same
// checkpoint tensors (the model's, the momentum's and the average's) and test accuracies as a whole run; the
// evaluations are of the average, which differs from the weights.
TEST_F(TrainExample, ResumedRunWithMovingAverageEndsBitwiseWhereAWholeRunDoes) {
  train::Config whole = config("ema_whole"), pieces = config("ema_pieces");
  for (train::Config* c : {&whole, &pieces}) {
    c->ema_decay = 0.5;
    c->test_flip = true;
  }
  const train::Outcome reference = train::run(whole, no_stop_);
  ASSERT_TRUE(reference.final_test_plain.has_value());
  pieces.max_steps = 3;
  EXPECT_TRUE(train::run(pieces, no_stop_).interrupted);
  pieces.resume = true;
  pieces.max_steps = 0;
  const train::Outcome last = train::run(pieces, no_stop_);
  EXPECT_EQ(last.final_test.loss, reference.final_test.loss);
  const auto tensors_of = [](const train::Config& c) {
    return resnet::io::read_safetensors(
               resnet::train::Checkpoints(c.checkpoint_dir).newest_first().front().string())
        .tensors;
  };
  const auto expected = tensors_of(whole), actual = tensors_of(pieces);
  ASSERT_EQ(expected.size(), actual.size());
  int averages = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(expected[i].name, actual[i].name);
    EXPECT_EQ(expected[i].data, actual[i].data) << expected[i].name;
    averages += expected[i].name.rfind("ema.", 0) == 0;
  }
  EXPECT_GT(averages, 0);

  // The evaluation is the average's: the same weights without it evaluate differently.
  train::Config plain = config("no_ema");
  plain.test_flip = true;
  EXPECT_NE(train::run(plain, no_stop_).final_test.loss, reference.final_test.loss);
}

// --conv-search with --conv-choices saves what it searched; a run that loads the file (search off, nothing
// cached, as in a new process) uses those choices without timing and ends bitwise where the searched run did.
TEST_F(TrainExample, ConvSearchRunRepeatsBitwiseFromItsSavedChoices) {
  namespace kernels = resnet::kernels;
  struct Restore {
    bool search = resnet::conv_search();
    ~Restore() {
      resnet::set_conv_search(search);
      kernels::clear_conv_choices();
    }
  } restore;
  kernels::clear_conv_choices();
  train::Config searched = config("searched");
  searched.epochs = 1;
  searched.conv_search = true;
  searched.conv_choices = (root_ / "choices.json").string();
  train::run(searched, no_stop_);
  const std::int64_t count = kernels::conv_choice_count(kernels::ConvChoiceSource::Searched);
  EXPECT_GT(count, 0);
  ASSERT_TRUE(fs::exists(searched.conv_choices));

  kernels::clear_conv_choices();
  resnet::set_conv_search(false);
  train::Config repeated = config("repeated");
  repeated.epochs = 1;
  repeated.conv_choices = searched.conv_choices;
  const std::int64_t searches = kernels::conv_searches();
  train::run(repeated, no_stop_);
  EXPECT_EQ(kernels::conv_searches(), searches);
  EXPECT_EQ(kernels::conv_choice_count(kernels::ConvChoiceSource::Loaded), count);
  EXPECT_EQ(kernels::conv_choice_count(kernels::ConvChoiceSource::Searched), 0);
  expect_bitwise_equal(final_state(searched), final_state(repeated));
}

TEST_F(TrainExample, ResumeWithoutCheckpointStartsFreshAndAFinishedRunStaysFinished) {
  train::Config c = config("fresh");
  c.epochs = 1;
  c.resume = true;
  const train::Outcome outcome = train::run(c, no_stop_);
  EXPECT_EQ(outcome.updates, 4);
  // What a save killed mid-write leaves behind is removed when the next run starts; other files are kept.
  const std::string leftover = c.checkpoint_dir + "/checkpoint-0000000004.safetensors.tmp-123-0";
  const std::string unrelated = c.checkpoint_dir + "/notes.tmp-1";
  std::ofstream(leftover) << "partial";
  std::ofstream(unrelated) << "mine";
  const train::Outcome again = train::run(c, no_stop_);
  EXPECT_FALSE(std::filesystem::exists(leftover));
  EXPECT_TRUE(std::filesystem::exists(unrelated));
  EXPECT_EQ(again.updates, 4);
  EXPECT_EQ(again.history.size(), 1u);
  EXPECT_EQ(again.final_test.accuracy, outcome.final_test.accuracy);
}

TEST_F(TrainExample, DivergingRunStopsNamingTheUpdateAndLeavesOnlyFiniteCheckpoints) {
  train::Config c = config("diverge");
  c.schedule = "constant";
  c.lr = 1e10;
  std::string message;
  try {
    train::run(c, no_stop_);
  } catch (const resnet::Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("training diverged: loss is"), std::string::npos) << message;
  EXPECT_NE(message.find(" at update "), std::string::npos) << message;
  for (const auto& path : resnet::train::Checkpoints(c.checkpoint_dir).newest_first()) {
    for (const auto& tensor : resnet::io::read_safetensors(path.string()).tensors) {
      std::vector<double> values(static_cast<std::size_t>(tensor.numel()));
      resnet::io::decode_into(tensor, values.data());
      for (double v : values)
        ASSERT_TRUE(std::isfinite(v)) << path << " " << tensor.name;
    }
  }
}

TEST_F(TrainExample, CheckpointRefusesOtherSettings) {
  train::Config c = config("settings");
  c.max_steps = 1;
  train::run(c, no_stop_);
  c.resume = true;
  c.batch_size = 16;
  try {
    train::run(c, no_stop_);
    FAIL() << "resuming with another batch size must throw";
  } catch (const resnet::Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch_size"), std::string::npos) << e.what();
  }
}

// A fresh run in a directory that holds another run's checkpoints is refused (a later --resume would pick
// whichever is newest); the message names both ways on.
TEST_F(TrainExample, FreshRunRefusesADirectoryWithCheckpoints) {
  train::Config c = config("taken");
  c.max_steps = 1;
  train::run(c, no_stop_);
  try {
    train::run(c, no_stop_);
    FAIL() << "a fresh run beside another run's checkpoints must throw";
  } catch (const resnet::Error& e) {
    const std::string message = e.what();
    for (const char* part :
         {"already holds checkpoints", "checkpoint-0000000001", "--resume", "new --checkpoint-dir"})
      EXPECT_NE(message.find(part), std::string::npos) << message;
  }
  c.resume = true;
  EXPECT_EQ(train::run(c, no_stop_).updates, 2);
}

// A run too short for one-cycle's two phases says which options make it long enough.
TEST_F(TrainExample, TooShortOneCycleRunNamesTheOptionsToChange) {
  train::Config c = config("short");
  c.epochs = 1;
  c.batch_size = 40;  // 80 images: 2 updates, and one-cycle at pct_start 0.3 needs 4
  try {
    train::run(c, no_stop_);
    FAIL() << "2 updates cannot hold one-cycle's warm-up and annealing";
  } catch (const resnet::Error& e) {
    const std::string message = e.what();
    for (const char* part : {"needs at least 4 updates", "has 2", "--train-subset", "--schedule constant"})
      EXPECT_NE(message.find(part), std::string::npos) << message;
  }
  c.batch_size = 20;  // 4 updates
  EXPECT_EQ(train::run(c, no_stop_).updates, 4);
}

// The model a file's tensor shapes describe (classify's) has the name ResNet::architecture() gives the model
// saved in it: a BasicBlock 2-2-2-2 is resnet18 at base width 8 too; a Bottleneck is named by the table at
// base width 64 only.
TEST(Architectures, FileModelHasTheNameOfTheModelSavedInIt) {
  using namespace resnet::models;
  const fs::path path = fs::temp_directory_path() / ("resnet_arch_test_" + std::to_string(::getpid()));
  const auto name_in_file = [&](auto&& model) {
    resnet::io::save_safetensors(model, path.string());
    const std::string name =
        arch::torchvision_model_in(resnet::io::read_safetensors(path.string()), "test").arch.name;
    fs::remove(path);
    EXPECT_EQ(name, model.architecture().at("architecture"));
    return name;
  };
  EXPECT_EQ(name_in_file(ResNet<float>({2, 2, 2, 2}, 10, Stem::Cifar, 3, 0, 8)), "resnet18");
  EXPECT_EQ(name_in_file(ResNet<float>({1, 2, 1, 1}, 10, Stem::Cifar, 3, 0, 8)), "resnet-1-2-1-1");
  EXPECT_EQ(name_in_file(ResNet<float, Bottleneck<float>>({3, 4, 6, 3}, 10, Stem::Cifar, 3, 0, 8)),
            "resnet-bottleneck-3-4-6-3");
}

// After a resume, the ETA comes from the steps this process has timed, not from the whole epoch's count.
TEST(ProgressBar, EtaCountsOnlyTheStepsItTimed) {
  // Resumed at step 20 of 79, 1 step done in 3 s: 58 steps left at 3 s each.
  EXPECT_DOUBLE_EQ(train::ProgressBar::eta_seconds(3.0, 21, 79, 20), 58 * 3.0);
  EXPECT_DOUBLE_EQ(train::ProgressBar::eta_seconds(10.0, 10, 20, 0), 10.0);
  EXPECT_DOUBLE_EQ(train::ProgressBar::eta_seconds(0.0, 20, 79, 20), 0.0);
}

// With --init-weights the run builds the model the weights describe: here the ImageNet stem (7x7/2 conv and
// max-pool) at width 8, as a torchvision export has it at 64; --stem overrides it (and then cannot load).
TEST_F(TrainExample, BuildsTheModelItsInitWeightsDescribe) {
  resnet::models::ResNet<float> pretrained({2, 2, 2, 2}, 5, resnet::models::Stem::ImageNet, 3, 77, 8);
  const std::string weights = (root_ / "imagenet_stem.safetensors").string();
  resnet::io::save_safetensors(pretrained, weights);
  train::Config c = frozen_from("imagenet_stem", weights);
  c.width = 4;  // the weights' width (8) wins
  c.skip_prefixes = {"fc."};
  train::run(c, no_stop_);
  const auto saved = resnet::io::read_safetensors(
      resnet::train::Checkpoints(c.checkpoint_dir).newest_first().front().string());
  EXPECT_EQ(saved.metadata.at("stem"), "imagenet");
  EXPECT_EQ(saved.metadata.at("base_width"), "8");
  c.stem = "cifar";
  c.checkpoint_dir = (root_ / "cifar_stem").string();
  EXPECT_THROW(train::run(c, no_stop_), resnet::Error);  // conv1 is 7x7 in the file, 3x3 in the model
}

TEST_F(TrainExample, SmallResNetLearnsAGeneratedDatasetWellAboveChance) {
  fs::remove_all(root_ / "data");
  write_learnable_cifar((root_ / "data").string(), 100,
                        200);  // 500 training images, 200 test images
  train::Config c = config("learn");
  c.epochs = 4;
  c.batch_size = 25;
  c.width = 8;
  c.lr = 0.1;
  const train::Outcome outcome = train::run(c, no_stop_);
  ASSERT_EQ(outcome.history.size(), 4u);
  EXPECT_GT(outcome.final_test.accuracy, 0.6) << "chance is 0.1";
  EXPECT_LT(outcome.history.back().train_loss, outcome.history.front().train_loss);
}

TEST_F(TrainExample, FineTunesFromSavedWeightsSkippingTheHead) {
  // A 5-class model's weights; the 10-class run takes everything but fc. With lr 0 nothing moves, so the
  // final checkpoint must hold exactly the file's convolution weights.
  resnet::models::ResNet<float> pretrained({2, 2, 2, 2}, 5, resnet::models::Stem::Cifar, 3, 77, 4);
  const std::string weights = (root_ / "pretrained.safetensors").string();
  resnet::io::save_safetensors(pretrained, weights);
  train::Config c = frozen_from("finetune", weights);
  EXPECT_THROW(train::run(c, no_stop_), resnet::Error);  // fc is [5, 32] in the file, [10, 32] in the model
  c.skip_prefixes = {"fc."};
  train::run(c, no_stop_);
  const auto state = final_state(c);
  const auto expected = pretrained.named_parameters();
  ASSERT_EQ(expected.front().name, "conv1.weight");
  for (std::int64_t j = 0; j < expected.front().value->numel(); ++j)
    ASSERT_EQ(state.front()[j], (*expected.front().value)[j]);
}

// --arch picks the model: a narrow ResNet50 trains, its checkpoints record the arch, and a resume with
// another
// --arch is refused by name before any tensor is read.
TEST_F(TrainExample, TrainsTheArchItNamesAndResumesOnlyWithThatArch) {
  train::Config c = config("resnet50");
  c.arch = "resnet50";
  c.max_steps = 3;
  EXPECT_TRUE(train::run(c, no_stop_).interrupted);
  const auto saved = resnet::io::read_safetensors(
      resnet::train::Checkpoints(c.checkpoint_dir).newest_first().front().string());
  EXPECT_EQ(saved.metadata.at("arch"), "resnet50");
  EXPECT_EQ(saved.metadata.at("block"), "bottleneck");
  EXPECT_TRUE(saved.find("model.layer4.2.conv3.weight"));
  c.resume = true;
  c.arch = "resnet18";
  EXPECT_NE(error_of(c).find("arch = 'resnet50', this run has 'resnet18'"), std::string::npos) << error_of(c);
  c.arch = "resnet50";
  c.max_steps = 0;
  const train::Outcome outcome = train::run(c, no_stop_);
  EXPECT_FALSE(outcome.interrupted);
  EXPECT_EQ(outcome.updates, 8);
}

// Checkpoints written before --arch existed hold a resnet18 and record no arch: they resume as one.
TEST_F(TrainExample, CheckpointWithoutArchResumesAsResNet18) {
  train::Config c = config("old");
  c.max_steps = 1;
  train::run(c, no_stop_);
  const std::string path = resnet::train::Checkpoints(c.checkpoint_dir).newest_first().front().string();
  resnet::io::Safetensors file = resnet::io::read_safetensors(path);
  ASSERT_EQ(file.metadata.erase("arch"), 1u);
  resnet::io::write_safetensors(path, file.tensors, file.metadata);
  const fs::path copy = root_ / "old34" / fs::path(path).filename();
  fs::create_directories(copy.parent_path());
  fs::copy_file(path, copy);
  c.resume = true;
  c.max_steps = 0;
  EXPECT_EQ(train::run(c, no_stop_).updates, 8);
  c.arch = "resnet34";
  c.checkpoint_dir = copy.parent_path().string();
  EXPECT_NE(error_of(c).find("arch = 'resnet18', this run has 'resnet34'"), std::string::npos) << error_of(c);
}

// A name outside the table, a malformed wrn-D-K and options a pre-activation model has no use for are
// refused, naming what is wrong.
TEST_F(TrainExample, BadArchIsRefusedWithTheValidNames) {
  train::Config c = config("bad");
  const auto message = [&](const std::string& arch) {
    c.arch = arch;
    return error_of(c);
  };
  for (const char* part : {"unknown --arch 'resnet19'", "resnet18, resnet34, resnet50", "wide_resnet101_2",
                           "resnext101_32x8d", "preact_resnet18", "wrn-D-K"})
    EXPECT_NE(message("resnet19").find(part), std::string::npos) << message("resnet19");
  EXPECT_NE(message("wrn-016-4").find("unknown --arch"), std::string::npos) << message("wrn-016-4");
  // config()'s --width 4: the pre-activation models set their own widths.
  EXPECT_NE(message("wrn-16-4").find("--stem and --width are for torchvision's models"), std::string::npos)
      << message("wrn-16-4");
  c.width = 64;
  EXPECT_NE(message("wrn-15-2").find("depth must be 6n + 4"), std::string::npos) << message("wrn-15-2");
  EXPECT_NE(message("wrn-16-0").find("widen_factor must be in [1,"), std::string::npos)
      << message("wrn-16-0");
  EXPECT_FALSE(fs::exists(c.checkpoint_dir));
}

// --init-weights from a file whose metadata names another --arch model says which --arch to give.
TEST_F(TrainExample, InitWeightsOfAnotherArchNameTheArchToGive) {
  resnet::models::ResNet<float> resnet34({3, 4, 6, 3}, 10, resnet::models::Stem::Cifar, 3, 77, 4);
  const std::string weights = (root_ / "resnet34.safetensors").string();
  resnet::io::save_safetensors(resnet34, weights);
  train::Config c = frozen_from("from34", weights);
  EXPECT_NE(
      error_of(c).find("holds a resnet34 (its metadata says), and --arch is resnet18: give --arch resnet34"),
      std::string::npos)
      << error_of(c);
  c.arch = "resnet34";
  EXPECT_EQ(train::run(c, no_stop_).updates, 4);
}
