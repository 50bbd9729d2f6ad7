#pragma once
// The training run behind examples/train_cifar10: data, model, optimizer, schedule, the epoch loop with its
// progress bar and test evaluation, the metrics logs and checkpoints. main.cpp parses the command line into a
// Config and calls run(); the tests call run() directly (resume equals an uninterrupted run, a small ResNet
// learns). The model is the one --arch names (architectures.hpp); the loop is a template over its type.
//
// The checkpoints are the library's (train::Checkpoints): weights, BatchNorm statistics, momentum buffers,
// the loader position (its randomness is a pure function of seed, epoch and position) and the update count
// (the schedule is a function of it); this run adds its running sums and its two logs (train::MetricsLog):
// metrics.csv, a row every --log-every updates (training loss and accuracy since the last row, lr, img/s),
// and evaluations.csv, a row per test evaluation. So a run stopped at any step and resumed gives bitwise the
// same weights and logs as one that never stopped.
//
// Under mpirun (ranks.hpp) the run is data-parallel: --batch-size stays the images per update, split evenly
// over the ranks; each rank's loader takes its shard of every batch (DistributedSampler's order), the
// gradients are averaged over the ranks as backward produces them (distributed::GradientReducer), and with
// --sync-bn the BatchNorms use the statistics of the whole batch, so N ranks train as one process would.
// Progress, metrics and checkpoints come from rank 0 alone; a checkpoint resumes on the same number of ranks.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "architectures.hpp"
#include "progress.hpp"
#include "ranks.hpp"
#include "resnet/resnet.hpp"
#include "resnet/train/checkpoint.hpp"
#include "resnet/train/metrics_log.hpp"

#ifdef RESNET_TRAIN_WITH_MPI
#include "resnet/distributed/gradient_reducer.hpp"
#include "resnet/distributed/sync_batchnorm.hpp"
#endif

namespace train {

using resnet::Tensor;
namespace data = resnet::data;

struct Config {
  std::string arch = "resnet18";    // an arch::parse_arch name: resnet18 ... resnext101_32x8d, wrn-D-K
  std::string dataset = "cifar10";  // cifar10 | fashion-mnist | mnist
  std::string data_dir;  // "" : cifar10 looks in data/cifar-10-batches-bin, fashion-mnist in Debian's
  int epochs = 1;
  int batch_size = 128;
  double lr = 0.1;  // the peak for onecycle, the start for step and cosine
  std::string schedule = "onecycle";
  double warmup_epochs = 0;  // cosine: linear warm-up length
  int step_epochs = 0;       // step: multiply by 0.1 every this many epochs (0: a third of the run)
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = true;
  bool decay_bn_and_bias = false;  // false: no weight decay on BatchNorm parameters and biases
  double label_smoothing = 0;
  int crop_padding = 4;    // RandomCrop padding; 0: no crop
  bool flip = true;        // RandomHorizontalFlip (never for MNIST digits, which are not mirror-symmetric)
  double pct_start = 0.3;  // onecycle: share of the run spent warming up (PyTorch's default)
  double div_factor = 25;  // onecycle: the run starts at lr / div_factor (PyTorch's default)
  bool cycle_momentum = true;       // onecycle: momentum 0.95 -> 0.85 -> 0.95; false: --momentum throughout
  bool zero_init_residual = false;  // torchvision's zero_init_residual: each block starts as the identity
  int threads = 0;                  // 0: OpenMP's default
  std::string precision = "auto";   // fp32 | bf16 | auto (resnet::parse_precision)
  bool conv_search = false;         // time each new conv shape's candidate plans (kernels/conv_search.hpp)
  std::string conv_choices;         // conv choices: loaded from here if it exists, saved here at the end
  std::uint64_t seed = 0;
  std::int64_t train_subset = 0;  // 0: the whole split
  std::int64_t test_subset = 0;
  std::string init_weights;                // safetensors file to start from (e.g. exported from torchvision)
  std::vector<std::string> skip_prefixes;  // keys of init_weights to leave out, e.g. {"fc."} for a new head
  int width = 64;       // torchvision archs: channels of the first stage; 64 is torchvision's, less is faster
  std::string stem;     // "imagenet" or "cifar"; "": what init_weights describes, else cifar
  int in_channels = 0;  // 0: what init_weights describes, else the dataset's
  std::string checkpoint_dir = "runs/latest";
  bool resume = false;
  std::int64_t max_steps = 0;  // > 0: stop with a checkpoint after this many updates in this process
  std::int64_t log_every = 0;  // a metrics.csv row every N updates; 0: about 50 rows over the run
  bool show_progress = true;
  double ema_decay = 0;    // > 0: evaluate an exponential moving average of the weights (optim/ema.hpp)
  bool test_flip = false;  // evaluate on each test image and its mirror image (resnet::train::TestTime::Flip)
  bool sync_bn = false;    // under mpirun: BatchNorm statistics over the whole batch (SyncBatchNorm)
};

// An evaluations.csv row: the epoch's training means, the test evaluation after it, and the run's wall
// time so far (training and evaluation, over every process of a resumed run).
struct EpochMetrics {
  std::int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0, images_per_sec = 0, seconds = 0;
};

// A test evaluation: loss (without label smoothing, as a test loss is usually reported), accuracy and the
// per-class counts, by the library's evaluate() (train/evaluate.hpp), which runs in eval mode and then puts
// the model back in the mode it was in.
using resnet::train::evaluate;
using resnet::train::Evaluation;

struct Outcome {
  std::vector<EpochMetrics> history;
  Evaluation final_test;                       // of the last completed epoch
  std::optional<Evaluation> final_test_plain;  // with --test-flip: the last epoch's without the flip
  std::vector<std::string> class_names;
  bool interrupted = false;  // stopped by a signal or max_steps before the last epoch ended
  std::int64_t updates = 0;  // optimizer steps taken so far, over all runs
  std::string checkpoint;    // the last checkpoint written
};

// The test evaluation of a run, of the weights' moving average if there is one: each rank evaluates its
// shard of the images, and the counts are summed.
template <typename Model>
Evaluation evaluate_on_ranks(Model& model, resnet::optim::ExponentialMovingAverage<float>* ema,
                             const data::Dataset& test, int batch_size, const Ranks& ranks,
                             resnet::train::TestTime test_time) {
  if (ema) ema->swap(model);
  Evaluation result = evaluate(model, test, batch_size, {ranks.rank(), ranks.size()}, test_time);
  if (ema) ema->swap(model);
  if (ranks.size() == 1) return result;
  return resnet::train::merge(result, [&](double* values, std::int64_t count) { ranks.sum(values, count); });
}

// The two splits, as the config asks.
struct Splits {
  data::Dataset train, test;
};

inline std::string default_data_dir(const std::string& dataset) {
  if (dataset == "cifar10") return "data/cifar-10-batches-bin";
  if (dataset == "fashion-mnist") return data::kDebianFashionMnistDir;
  return "data/mnist";
}

inline Splits load_splits(const Config& config) {
  const std::string dir = config.data_dir.empty() ? default_data_dir(config.dataset) : config.data_dir;
  Splits splits;
  if (config.dataset == "cifar10") {
    splits = {data::load_cifar10(dir, data::Split::Train), data::load_cifar10(dir, data::Split::Test)};
  } else if (config.dataset == "fashion-mnist") {
    splits = {data::load_fashion_mnist(data::Split::Train, dir),
              data::load_fashion_mnist(data::Split::Test, dir)};
  } else if (config.dataset == "mnist") {
    splits = {data::load_mnist(dir, data::Split::Train), data::load_mnist(dir, data::Split::Test)};
  } else {
    resnet::fail("unknown dataset '", config.dataset, "' (expected cifar10, fashion-mnist or mnist)");
  }
  if (config.train_subset > 0 && config.train_subset < splits.train.size())
    splits.train = splits.train.head(config.train_subset);
  if (config.test_subset > 0 && config.test_subset < splits.test.size())
    splits.test = splits.test.head(config.test_subset);
  return splits;
}

inline resnet::optim::Schedule make_schedule(const Config& config, std::int64_t steps_per_epoch) {
  using resnet::optim::Schedule;
  const std::int64_t total = steps_per_epoch * config.epochs;
  switch (Schedule::kind_from_name(config.schedule)) {
    case Schedule::Kind::Constant:
      return Schedule::constant(config.lr);
    case Schedule::Kind::Step: {
      const int every = config.step_epochs > 0 ? config.step_epochs : std::max(1, config.epochs / 3);
      return Schedule::step(config.lr, every * steps_per_epoch, 0.1);
    }
    case Schedule::Kind::Cosine:
      return Schedule::cosine(
          config.lr, total,
          static_cast<std::int64_t>(config.warmup_epochs * static_cast<double>(steps_per_epoch)));
    case Schedule::Kind::OneCycle: {
      // PyTorch's OneCycleLR ends its warm-up at pct_start * total - 1: both phases need an update.
      const auto least = static_cast<std::int64_t>(std::floor(1 / config.pct_start)) + 1;
      resnet::check(
          config.pct_start <= 0 || config.pct_start >= 1 || total >= least, "--schedule onecycle with ",
          "--pct-start ", config.pct_start, " needs at least ", least, " updates, and this run has ", total,
          " (--epochs ", config.epochs, " x ", steps_per_epoch,
          " batches): train on more images (--train-subset) or epochs, use a smaller --batch-size, or ",
          "--schedule constant");
      return Schedule::one_cycle(config.lr, total, config.pct_start, config.div_factor, 1e4,
                                 config.cycle_momentum);
    }
  }
  return Schedule::constant(config.lr);
}

// The arguments of the model a run trains. Without weights: the CIFAR stem on the dataset's channels, --width
// wide. With weights (init_weights, read into `weights`): what they describe, from their metadata ("stem") or
// conv1.weight [width, channels, k, k] (k 7: torchvision's ImageNet stem), so that a torchvision export loads
// as it is. --stem and --in-channels override either; --stem and --width are the torchvision archs' alone.
inline arch::ModelArgs model_args(const Config& config, const arch::Arch& arch,
                                  const resnet::io::Safetensors* weights, std::int64_t data_channels,
                                  int num_classes) {
  arch::ModelArgs args;
  args.num_classes = num_classes;
  args.in_channels = static_cast<int>(data_channels);
  args.seed = config.seed;
  args.width = config.width;
  resnet::check(arch.torchvision() || (config.stem.empty() && config.width == 64), "--arch ", arch.name,
                " has its own stem and widths: --stem and --width are for torchvision's models (",
                arch::arch_names(true), ")");
  if (weights) {
    const resnet::io::NamedTensor* conv1 = weights->find("conv1.weight");
    resnet::check(conv1 && conv1->shape.size() == 4, config.init_weights,
                  ": no 4-d conv1.weight to build the model from (is it a ResNet's state dict?)");
    // A file that records another of the --arch models says which to give.
    const auto recorded = weights->metadata.find("architecture");
    if (recorded != weights->metadata.end() && recorded->second != arch.name &&
        arch::find_arch(recorded->second))
      resnet::fail(config.init_weights, " holds a ", recorded->second, " (its metadata says), and --arch is ",
                   arch.name, ": give --arch ", recorded->second);
    args.width = static_cast<int>(conv1->shape[0]);
    args.in_channels = static_cast<int>(conv1->shape[1]);
    const auto stem = weights->metadata.find("stem");
    const bool imagenet = stem != weights->metadata.end() ? stem->second == "imagenet" : conv1->shape[2] == 7;
    args.stem = imagenet ? resnet::models::Stem::ImageNet : resnet::models::Stem::Cifar;
  }
  if (!config.stem.empty()) {
    resnet::check(config.stem == "imagenet" || config.stem == "cifar",
                  "--stem must be imagenet or cifar, got '", config.stem, "'");
    args.stem = config.stem == "imagenet" ? resnet::models::Stem::ImageNet : resnet::models::Stem::Cifar;
  }
  resnet::check(config.in_channels >= 0, "--in-channels must be positive, got ", config.in_channels);
  if (config.in_channels > 0) args.in_channels = config.in_channels;
  return args;
}

// ---- checkpoints and metrics ----------------------------------------------------------------------------

inline std::string numbers_text(const std::vector<double>& values) {
  std::string text;
  for (double v : values) {
    char field[32];
    std::snprintf(field, sizeof field, "%.17g", v);
    text += (text.empty() ? "" : " ") + std::string(field);
  }
  return text;
}

// The settings a resumed run must share with the run that wrote the checkpoint (the rank count is checked on
// its own, to say how to resume).
inline resnet::io::Metadata run_settings(const Config& c, const Ranks& ranks) {
  std::ostringstream lr;
  lr.precision(17);
  lr << c.lr << ' ' << c.momentum << ' ' << c.weight_decay << ' ' << c.label_smoothing << ' '
     << c.warmup_epochs << ' ' << c.pct_start << ' ' << c.div_factor << ' ' << c.cycle_momentum;
  return {{"arch", c.arch},
          {"dataset", c.dataset},
          {"epochs", std::to_string(c.epochs)},
          {"batch_size", std::to_string(c.batch_size)},
          {"schedule", c.schedule + " " + std::to_string(c.step_epochs)},
          {"hyperparameters", lr.str()},
          {"nesterov", c.nesterov ? "1" : "0"},
          {"decay_bn_and_bias", c.decay_bn_and_bias ? "1" : "0"},
          {"augment", std::to_string(c.crop_padding) + (c.flip ? " flip" : "")},
          {"zero_init_residual", c.zero_init_residual ? "1" : "0"},
          {"seed", std::to_string(c.seed)},
          {"width", std::to_string(c.width)},
          {"train_subset", std::to_string(c.train_subset)},
          {"test_subset", std::to_string(c.test_subset)},
          {"sync_bn", c.sync_bn && ranks.size() > 1 ? "1" : "0"},
          {"ema", numbers_text({c.ema_decay})}};
}

// Checkpoints written before --arch were all of resnet18, and those from before MPI of one process.
inline resnet::train::CheckpointOptions checkpoint_options() {
  resnet::train::CheckpointOptions options;
  options.implied = {{"arch", "resnet18"}, {"ranks", "1"}, {"sync_bn", "0"}};
  return options;
}

// Running sums of the training batches over a span of updates (an epoch, or the updates since the last
// metrics row), summed over the ranks.
struct Sums {
  double loss = 0;  // of loss * batch size
  double correct = 0, seen = 0;
  double seconds = 0;  // spent training (no evaluation)

  double mean_loss() const { return seen > 0 ? loss / seen : 0; }
  double accuracy() const { return seen > 0 ? correct / seen : 0; }
  double images_per_sec() const { return seconds > 0 ? seen / seconds : 0; }
  std::vector<double> values() const { return {loss, correct, seen, seconds}; }
};

// What a run carries from update to update besides its tensors, all of it in each checkpoint.
struct RunState {
  resnet::train::Position at;
  Sums epoch, window;  // window: since the last metrics.csv row
  double elapsed = 0;  // wall seconds of the run so far, training and evaluation, over every process
  resnet::train::MetricsLog metrics, evaluations;
};

inline const std::vector<std::string> kMetricsColumns = {
    "update", "epoch", "train_loss", "train_acc", "lr", "images_per_sec", "seconds"};
inline const std::vector<std::string> kEvaluationColumns = {
    "update", "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "images_per_sec", "seconds"};

inline Sums parse_sums(const std::string& text, const std::string& path) {
  Sums sums;
  std::istringstream fields(text);
  fields >> sums.loss >> sums.correct >> sums.seen >> sums.seconds;
  resnet::check(!fields.fail(), "checkpoint ", path, ": bad running sums '", text, "'");
  return sums;
}

// The run's own metadata in a checkpoint (the position and settings are Checkpoints').
inline resnet::io::Metadata run_metadata(const RunState& state, const Ranks& ranks) {
  return {{"ranks", std::to_string(ranks.size())},
          {"epoch_sums", numbers_text(state.epoch.values())},
          {"window_sums", numbers_text(state.window.values())},
          {"elapsed_seconds", numbers_text({state.elapsed})},
          {"metrics", state.metrics.csv()},
          {"evaluations", state.evaluations.csv()}};
}

// Restores what run_metadata saved (older checkpoints, without metrics logs, start them empty).
inline void restore_run(RunState& state, const resnet::train::Resumed& resumed, const Ranks& ranks) {
  const resnet::io::Metadata& m = resumed.metadata;
  const std::string& ranks_then = m.at("ranks");
  resnet::check(ranks_then == std::to_string(ranks.size()), "checkpoint ", resumed.path, " was written by ",
                ranks_then, " ranks and this run has ", ranks.size(), ": resume it with mpirun -np ",
                ranks_then,
                " (each rank's share of a batch, and so the run, depends on the number of ranks)");
  state.at = resumed.position;
  const auto get = [&](const char* key) {
    const auto it = m.find(key);
    return it == m.end() ? std::string() : it->second;
  };
  if (!get("epoch_sums").empty()) state.epoch = parse_sums(get("epoch_sums"), resumed.path);
  if (!get("window_sums").empty()) state.window = parse_sums(get("window_sums"), resumed.path);
  if (!get("elapsed_seconds").empty()) state.elapsed = std::stod(get("elapsed_seconds"));
  if (!get("metrics").empty()) state.metrics.restore(get("metrics"));
  if (!get("evaluations").empty()) state.evaluations.restore(get("evaluations"));
}

// The rows of evaluations.csv as the per-epoch history the caller reports.
inline std::vector<EpochMetrics> history_of(const resnet::train::MetricsLog& evaluations) {
  std::vector<EpochMetrics> history;
  for (const auto& r : evaluations.rows())
    history.push_back({static_cast<std::int64_t>(std::llround(r[1])), r[2], r[3], r[4], r[5], r[6], r[7]});
  return history;
}

// A metrics.csv row every this many updates: the given number, else about 50 rows over the run.
inline std::int64_t log_interval(const Config& config, std::int64_t total_updates) {
  resnet::check(config.log_every >= 0, "--log-every must be >= 0, got ", config.log_every);
  if (config.log_every > 0) return config.log_every;
  return std::max<std::int64_t>(1, (total_updates + 25) / 50);
}

// ---- the run ---------------------------------------------------------------------------------------------

// The run, for the model `config.arch` names: the data and weights first, then train_model over that type.
template <typename Model>
Outcome train_model(const Config& config, const Ranks& ranks, const Splits& splits,
                    const resnet::io::Safetensors* weights, Model& model,
                    const std::atomic<bool>& stop_requested);

inline Outcome train_and_evaluate(const Config& config, const Ranks& ranks,
                                  const std::atomic<bool>& stop_requested) {
  resnet::check(config.epochs >= 1, "--epochs must be >= 1, got ", config.epochs);
  resnet::check(config.batch_size >= 1, "--batch-size must be >= 1, got ", config.batch_size);
  const arch::Arch arch = arch::parse_arch(config.arch);
  if (config.threads > 0) resnet::set_num_threads(config.threads);

  Splits splits = load_splits(config);
  const resnet::io::Safetensors weights = config.init_weights.empty()
                                              ? resnet::io::Safetensors{}
                                              : resnet::io::read_safetensors(config.init_weights);
  const resnet::io::Safetensors* init = config.init_weights.empty() ? nullptr : &weights;
  const arch::ModelArgs args =
      model_args(config, arch, init, splits.train.channels(), splits.train.num_classes());
  if (args.in_channels != splits.train.channels()) {
    // Grayscale images for RGB weights: each image's channel repeated, as torchvision's Grayscale(3).
    resnet::check(splits.train.channels() == 1, "the model takes ", args.in_channels, " channels and ",
                  splits.train.name, " has ", splits.train.channels(), ": give --in-channels ",
                  splits.train.channels(), " or weights for such images");
    if (ranks.leader())
      std::printf("Repeating the %s images' one channel %d times for the model's first conv.\n",
                  config.dataset.c_str(), args.in_channels);
    splits.train = splits.train.repeat_channel(args.in_channels);
    splits.test = splits.test.repeat_channel(args.in_channels);
  }
  return arch::with_model(arch, args, [&](auto& model) {
    return train_model(config, ranks, splits, init, model, stop_requested);
  });
}

template <typename Model>
Outcome train_model(const Config& config, const Ranks& ranks, const Splits& splits,
                    const resnet::io::Safetensors* weights, Model& model,
                    const std::atomic<bool>& stop_requested) {
  const std::int64_t rank_count = ranks.size(), images = splits.train.size();
  resnet::check(config.batch_size % rank_count == 0, "--batch-size ", config.batch_size,
                " (images per update) does not split evenly over ", rank_count, " ranks: give a multiple of ",
                rank_count);
  const std::int64_t last = images % config.batch_size;
  resnet::check(last == 0 || last >= rank_count, "the last batch of an epoch holds ", last, " of the ",
                images, " training images, fewer than the ", rank_count,
                " ranks: choose a --batch-size or --train-subset that leaves each rank an image");
  data::LoaderOptions options;
  options.batch_size = config.batch_size;
  options.shard = {ranks.rank(), rank_count};
  options.seed = config.seed;
  resnet::check(config.crop_padding >= 0, "--crop-padding must be >= 0, got ", config.crop_padding);
  options.augmentation = {config.crop_padding, config.flip && config.dataset != "mnist"};
  data::BatchLoader<float> loader(splits.train, options);
  const std::int64_t steps_per_epoch = loader.batches_per_epoch();

  // What every rank would print, printed once.
  const auto say = [&](const char* format, auto... values) {
    if (ranks.leader()) std::printf(format, values...);
  };
  say("Model: %s, %lld parameters.\n", config.arch.c_str(), static_cast<long long>(model.parameter_count()));
  if (config.zero_init_residual) model.zero_init_residual();
  model.set_precision(resnet::parse_precision(config.precision));
  say("Precision: %s%s\n", resnet::precision_name(model.precision()),
      config.precision == "auto" ? " (auto: bf16 where the CPU multiplies bf16 natively)" : "");
  if (weights) {
    resnet::io::LoadOptions load;
    load.skip_prefixes = config.skip_prefixes;
    const auto report = resnet::io::load_state(model, *weights, load, config.init_weights);
    say("Initialised %zu tensors from %s (%zu skipped).\n", report.loaded.size(), config.init_weights.c_str(),
        report.skipped.size());
  }
  const auto params = model.named_parameters();
  auto groups = config.decay_bn_and_bias
                    ? std::vector<resnet::optim::ParamGroup<float>>{{params, config.weight_decay}}
                    : resnet::optim::decay_and_no_decay_groups(params, config.weight_decay);
  resnet::optim::SGD<float> sgd(groups, config.lr, config.momentum, config.nesterov);
  const resnet::optim::Schedule schedule = make_schedule(config, steps_per_epoch);
  resnet::nn::CrossEntropyLoss<float> criterion(config.label_smoothing);

  resnet::check(config.ema_decay >= 0 && config.ema_decay < 1, "--ema must be in [0, 1), got ",
                config.ema_decay);
  std::optional<resnet::optim::ExponentialMovingAverage<float>> ema;
  if (config.ema_decay > 0) ema.emplace(model, config.ema_decay);
  const std::filesystem::path dir(config.checkpoint_dir);
  // Rank 0 writes the logs; the others keep theirs in memory (they evaluate and sum, so they hold the same).
  const auto log_path = [&](const char* name) {
    return ranks.leader() ? (dir / name).string() : std::string();
  };
  RunState state{{{config.seed, 0, 0}, 0},
                 {},
                 {},
                 0,
                 resnet::train::MetricsLog(log_path("metrics.csv"), kMetricsColumns),
                 resnet::train::MetricsLog(log_path("evaluations.csv"), kEvaluationColumns)};
  resnet::train::Position& at = state.at;
  Outcome outcome;
  outcome.class_names = splits.train.class_names;
  resnet::train::Checkpoints checkpoints(config.checkpoint_dir, run_settings(config, ranks),
                                         checkpoint_options());
  const auto found = checkpoints.newest_first();
  // A fresh run beside another run's checkpoints would be mixed up with it by a later --resume.
  resnet::check(config.resume || found.empty(), config.checkpoint_dir, " already holds checkpoints (",
                found.empty() ? "" : found.front().filename().string(),
                "): continue that run with --resume, or start this one in a new --checkpoint-dir");
  if (ranks.leader()) std::filesystem::create_directories(dir);
  if (config.resume) {
    if (const auto resumed = checkpoints.resume(model, sgd)) {
      restore_run(state, *resumed, ranks);
      if (ema) ema->restore(resumed->tensors);
      outcome.checkpoint = resumed->path;
      say("Resuming from %s (epoch %lld, batch %lld of %lld).\n", resumed->path.c_str(),
          static_cast<long long>(at.loader.epoch + 1), static_cast<long long>(at.loader.batch),
          static_cast<long long>(steps_per_epoch));
    } else {
      say("No checkpoint in %s: starting a fresh run.\n", config.checkpoint_dir.c_str());
    }
  }
  // Every rank holds the same state: one writes it.
  const auto save = [&] {
    if (!ranks.leader()) return (dir / resnet::train::Checkpoints::file_name(at.updates)).string();
    return checkpoints.save(model, sgd, at, run_metadata(state, ranks),
                            ema ? ema->tensors() : std::vector<resnet::io::NamedTensor>{});
  };

  resnet::check(ranks.agree(at.updates), "the ranks resumed at different updates: give --checkpoint-dir a ",
                "directory every rank sees (rank 0 writes the checkpoints)");
  resnet::nn::GradientsReady gradients_ready;
  std::function<void()> synchronize_step = [] {};
#ifdef RESNET_TRAIN_WITH_MPI
  std::optional<resnet::distributed::GradientReducer<float>> reducer;
  if (rank_count > 1) {
    const resnet::distributed::Communicator& world = *ranks.world();
    resnet::distributed::broadcast_state(world, model);
    if (config.sync_bn) resnet::distributed::synchronize_batchnorm(world, model);
    reducer.emplace(world, model);
    gradients_ready = reducer->ready();
    synchronize_step = [&reducer, &world, &model, sync_bn = config.sync_bn] {
      reducer->finish();
      if (!sync_bn) resnet::distributed::broadcast_buffers(world, model);
    };
  }
#endif
  if (rank_count > 1)
    say("Ranks: %lld, %lld images each per update, BatchNorm %s.\n", static_cast<long long>(rank_count),
        static_cast<long long>(config.batch_size / rank_count),
        config.sync_bn ? "over the whole batch" : "per rank");
  const std::int64_t total_updates = steps_per_epoch * config.epochs;
  const auto test_time = config.test_flip ? resnet::train::TestTime::Flip : resnet::train::TestTime::Plain;
  const std::int64_t log_every = log_interval(config, total_updates);
  std::int64_t updates_this_process = 0;
  constexpr std::int64_t kEstimateAfter = 5;  // updates timed for the estimate of the run's length
  double first_timed = 0;                     // the run's clock after this process's first update
  auto clock = std::chrono::steady_clock::now();
  // Wall time since the last call, added to the run's clock.
  const auto tick = [&] {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - clock).count();
    clock = now;
    state.elapsed += seconds;
    return seconds;
  };
  const auto fractional_epoch = [&] {
    return static_cast<double>(at.updates) / static_cast<double>(steps_per_epoch);
  };
  for (std::int64_t epoch = at.loader.epoch; epoch < config.epochs; ++epoch) {
    loader.start_epoch(epoch, epoch == at.loader.epoch ? at.loader.batch : 0);
    if (epoch != at.loader.epoch || at.loader.batch == 0) state.epoch = {};
    const bool show_progress = config.show_progress && ranks.leader();
    ProgressBar progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(config.epochs),
                         steps_per_epoch, epoch == at.loader.epoch ? at.loader.batch : 0,
                         steps_per_epoch * (config.epochs - epoch - 1));
    data::Batch<float> batch;
    tick();
    while (loader.next(batch)) {
      const double lr = schedule.lr(at.updates);
      sgd.set_lr(lr);
      if (const auto momentum = schedule.momentum(at.updates)) sgd.set_momentum(*momentum);
      sgd.zero_grad();
      const Tensor<float> logits = model.forward(batch.images);
      const float loss = criterion.forward(logits, batch.labels);
      resnet::check(std::isfinite(loss), "training diverged: loss is ", loss, " at update ", at.updates,
                    " (epoch ", epoch + 1, ", batch ", batch.index + 1, "); the last checkpoint in ",
                    config.checkpoint_dir, " is from before it. Try a lower --lr.");
      // Each rank's loss is the mean over its share; averaged over the ranks, the gradients are those of the
      // whole batch's mean as long as the shares are equal. A last, partial batch may split unevenly: each
      // rank's share then weighs by its size.
      Tensor<float> grad_logits = criterion.backward();
      const std::int64_t whole = loader.whole_batch_size(batch.index);
      if (batch.size() * rank_count != whole) {
        const float weight = static_cast<float>(batch.size() * rank_count) / static_cast<float>(whole);
        float* g = grad_logits.data();
        for (std::int64_t i = 0; i < grad_logits.numel(); ++i)
          g[i] *= weight;
      }
      model.backward(grad_logits, resnet::nn::InputGrad::Skip, gradients_ready);
      synchronize_step();
      sgd.step();
      if (ema) ema->update(model);
      ++at.updates;
      ++updates_this_process;

      const std::vector<int> predicted = resnet::nn::argmax(logits);
      std::int64_t correct = 0;
      for (std::size_t n = 0; n < predicted.size(); ++n)
        correct += predicted[n] == batch.labels[n];
      // The batch's sums over every rank, and whether any rank was asked to stop: all stop together.
      double sums[4] = {static_cast<double>(loss) * static_cast<double>(batch.size()),
                        static_cast<double>(correct), static_cast<double>(batch.size()),
                        stop_requested.load() ? 1.0 : 0.0};
      ranks.sum(sums, 4);
      const double seconds = tick();
      for (Sums* span : {&state.epoch, &state.window}) {
        span->loss += sums[0];
        span->correct += sums[1];
        span->seen += sums[2];
        span->seconds += seconds;
      }
      at.loader = loader.state();
      // The run's length, once the first updates (after the first, which warms up) have been timed.
      if (updates_this_process == 1) first_timed = state.elapsed;
      if (updates_this_process == kEstimateAfter + 1 && total_updates > at.updates) {
        const double per_update = (state.elapsed - first_timed) / kEstimateAfter;
        say("Estimated time: %s for the %lld updates left (%.3f s each), plus %lld test evaluations.\n",
            ProgressBar::format_duration(per_update * static_cast<double>(total_updates - at.updates))
                .c_str(),
            static_cast<long long>(total_updates - at.updates), per_update,
            static_cast<long long>(config.epochs - epoch));
      }
      if (at.updates % log_every == 0 || at.updates == total_updates) {
        const Sums& w = state.window;
        state.metrics.add({static_cast<double>(at.updates), fractional_epoch(), w.mean_loss(), w.accuracy(),
                           lr, w.images_per_sec(), state.elapsed});
        state.window = {};
      }
      if (show_progress)
        progress.update(batch.index + 1, state.epoch.mean_loss(), state.epoch.accuracy(),
                        state.epoch.images_per_sec());

      const bool stop = sums[3] > 0 || (config.max_steps > 0 && updates_this_process >= config.max_steps);
      if (stop && loader.state().batch < steps_per_epoch) {
        outcome.checkpoint = save();
        outcome.interrupted = true;
        outcome.updates = at.updates;
        outcome.history = history_of(state.evaluations);
        return outcome;
      }
    }

    outcome.final_test =
        evaluate_on_ranks(model, ema ? &*ema : nullptr, splits.test, config.batch_size, ranks, test_time);
    if (config.test_flip && epoch + 1 == config.epochs)
      outcome.final_test_plain = evaluate_on_ranks(model, ema ? &*ema : nullptr, splits.test,
                                                   config.batch_size, ranks, resnet::train::TestTime::Plain);
    tick();
    const Sums& e = state.epoch;
    state.evaluations.add({static_cast<double>(at.updates), fractional_epoch(), e.mean_loss(), e.accuracy(),
                           outcome.final_test.loss, outcome.final_test.accuracy, e.images_per_sec(),
                           state.elapsed});
    say("epoch %lld: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f img/s | %s so far\n",
        static_cast<long long>(epoch + 1), e.mean_loss(), 100 * e.accuracy(), outcome.final_test.loss,
        100 * outcome.final_test.accuracy, e.images_per_sec(),
        ProgressBar::format_duration(state.elapsed).c_str());
    at.loader = {config.seed, epoch + 1, 0};
    outcome.checkpoint = save();
    double stop_votes = stop_requested.load() ? 1.0 : 0.0;  // all ranks stop together
    ranks.sum(&stop_votes, 1);
    const bool stop = stop_votes > 0 || (config.max_steps > 0 && updates_this_process >= config.max_steps);
    if (stop && epoch + 1 < config.epochs) {
      outcome.interrupted = true;
      break;
    }
  }
  // A resumed run that had already finished still reports its final test evaluation.
  if (outcome.final_test.total.empty())
    outcome.final_test =
        evaluate_on_ranks(model, ema ? &*ema : nullptr, splits.test, config.batch_size, ranks, test_time);
  outcome.updates = at.updates;
  outcome.history = history_of(state.evaluations);
  return outcome;
}

// The run: train_and_evaluate, with the conv choices of config.conv_choices loaded first (if the file
// exists) and saved at the end, so that a run with --conv-search can be repeated with its choices.
inline Outcome run(const Config& config, const std::atomic<bool>& stop_requested, const Ranks& ranks = {}) {
  if (config.conv_search) resnet::set_conv_search(true);
  if (!config.conv_choices.empty() && std::filesystem::exists(config.conv_choices))
    std::printf("Loaded %zu conv choices from %s.\n", resnet::io::load_conv_choices(config.conv_choices),
                config.conv_choices.c_str());
  Outcome outcome = train_and_evaluate(config, ranks, stop_requested);
  if (!config.conv_choices.empty() && ranks.leader()) resnet::io::save_conv_choices(config.conv_choices);
  if ((resnet::conv_search() || !config.conv_choices.empty()) && ranks.leader())
    std::printf("%s%s%s\n", resnet::kernels::conv_search_info().c_str(),
                config.conv_choices.empty() ? "" : "; saved to ", config.conv_choices.c_str());
  return outcome;
}

}  // namespace train
