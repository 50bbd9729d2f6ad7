// train_cifar10: trains a ResNet (--arch; ResNet18 with the CIFAR stem by default) on CIFAR-10, Fashion-MNIST
// or MNIST with the standard recipe (SGD with Nesterov momentum, weight decay, one-cycle / cosine / step
// schedule, crop + flip augmentation), showing a progress bar, evaluating on the test split every epoch,
// writing metrics.csv (every few updates), evaluations.csv and a checkpoint per epoch (and on Ctrl-C),
// resuming with --resume, and plotting the curves at the end. Under mpirun it trains data-parallel over the
// ranks (training.hpp, ranks.hpp).

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "training.hpp"

namespace {

std::atomic<bool> stop_requested{false};

extern "C" void request_stop(int) {
  stop_requested.store(true);
}

void print_per_class(const train::Outcome& outcome) {
  std::printf("\n%-14s %8s %8s\n", "class", "correct", "accuracy");
  for (std::size_t c = 0; c < outcome.class_names.size(); ++c) {
    const auto total = outcome.final_test.total[c], correct = outcome.final_test.correct[c];
    std::printf("%-14s %4lld/%-4lld %7.2f%%\n", outcome.class_names[c].c_str(),
                static_cast<long long>(correct), static_cast<long long>(total),
                total ? 100.0 * static_cast<double>(correct) / total : 0.0);
  }
}

// tools/plot_metrics.sh from this source tree draws the curves; without gnuplot the CSV files stay.
void plot(const std::string& checkpoint_dir) {
  const std::filesystem::path script = std::filesystem::path(RESNET_SOURCE_DIR) / "tools" / "plot_metrics.sh";
  const std::filesystem::path dir(checkpoint_dir);
  if (!std::filesystem::exists(script) || !std::filesystem::exists(dir / "metrics.csv")) return;
  const std::string command = "bash '" + script.string() + "' '" + dir.string() + "'";
  std::fflush(stdout);  // our lines first, then the script's
  if (std::system(command.c_str()) != 0) std::printf("(no plot: the metrics are in %s)\n", dir.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // Under mpirun: this rank of the job (MPI starts here, before the arguments are read).
  train::Ranks ranks;
  try {
    ranks = train::Ranks::of_job(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_cifar10: %s\n", e.what());
    return 1;
  }
  CLI::App app{"Train a ResNet (ResNet18 by default) on CIFAR-10, Fashion-MNIST or MNIST"};
  // An option given twice takes its last value, so that scripts/train.sh's defaults can be overridden.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  train::Config config;
  // A bad name is refused here, before any data is read, with the list of good ones.
  const CLI::Validator known_arch(
      [](std::string& name) {
        try {
          arch::parse_arch(name);
          return std::string();
        } catch (const resnet::Error& e) {
          return std::string(e.what());
        }
      },
      "ARCH");
  app.add_option("--arch", config.arch,
                 "the model: " + arch::arch_names() +
                     ". torchvision's take --stem (default cifar) and --width; the pre-activation ones have "
                     "their own CIFAR stem")
      ->check(known_arch)
      ->capture_default_str();
  app.add_option("--dataset", config.dataset, "cifar10, fashion-mnist or mnist")
      ->check(CLI::IsMember({"cifar10", "fashion-mnist", "mnist"}))
      ->capture_default_str();
  app.add_option("--data", config.data_dir,
                 "dataset directory (default: data/cifar-10-batches-bin for cifar10, Debian's "
                 "/usr/share/datasets/fashion-mnist for fashion-mnist)");
  app.add_option("--epochs", config.epochs, "passes over the training set")->capture_default_str();
  app.add_option("--batch-size", config.batch_size, "images per update")->capture_default_str();
  app.add_option("--lr", config.lr, "peak learning rate (onecycle) or initial one (step, cosine)")
      ->capture_default_str();
  app.add_option("--schedule", config.schedule, "onecycle, cosine, step or constant")
      ->check(CLI::IsMember({"onecycle", "cosine", "step", "constant"}))
      ->capture_default_str();
  app.add_option("--warmup-epochs", config.warmup_epochs, "cosine: linear warm-up length in epochs")
      ->capture_default_str();
  app.add_option("--step-epochs", config.step_epochs, "step: divide the lr by 10 every N epochs (0: a third)")
      ->capture_default_str();
  app.add_option("--momentum", config.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", config.weight_decay, "L2 weight decay")->capture_default_str();
  app.add_flag("!--no-nesterov", config.nesterov, "plain momentum instead of Nesterov");
  app.add_flag("--decay-bn-and-bias", config.decay_bn_and_bias,
               "apply weight decay to BatchNorm parameters and biases too");
  app.add_option("--label-smoothing", config.label_smoothing, "label smoothing of the loss")
      ->capture_default_str();
  app.add_option("--crop-padding", config.crop_padding, "random crop after padding by N pixels (0: no crop)")
      ->capture_default_str();
  app.add_flag("!--no-flip", config.flip, "no random horizontal flip");
  app.add_flag_callback(
      "--no-augment", [&config] { config.crop_padding = 0, config.flip = false; }, "no random crop and flip");
  app.add_option("--pct-start", config.pct_start, "onecycle: share of the run spent warming up")
      ->capture_default_str();
  app.add_option("--div-factor", config.div_factor, "onecycle: start at lr / div-factor")
      ->capture_default_str();
  app.add_flag("!--no-cycle-momentum", config.cycle_momentum,
               "onecycle: keep --momentum fixed instead of cycling it between 0.95 and 0.85");
  app.add_flag("--zero-init-residual", config.zero_init_residual,
               "start each residual block's last BatchNorm at weight 0 (torchvision's zero_init_residual)");
  app.add_option(
      "--threads", config.threads,
      "OpenMP threads (per rank under mpirun; default: the cores, shared by the ranks on a machine)");
  app.add_flag(
      "--sync-bn", config.sync_bn,
      "under mpirun: BatchNorm statistics over the whole batch (torch.nn.SyncBatchNorm), so that N ranks "
      "train as one process would; default: each rank's share alone, as DDP");
  app.add_option("--precision", config.precision,
                 "fp32, bf16 (operands of convs and Linear rounded to bfloat16, as torch.autocast) or auto "
                 "(bf16 where the CPU has AVX512-BF16 or AMX)")
      ->check(CLI::IsMember({"fp32", "bf16", "auto"}))
      ->capture_default_str();
  app.add_flag("--conv-search", config.conv_search,
               "time the candidate algorithms of each new conv shape once and use the fastest (as "
               "torch.backends.cudnn.benchmark; results then follow the timings: keep them with "
               "--conv-choices to repeat the run)");
  app.add_option("--conv-choices", config.conv_choices,
                 "load conv algorithm choices from FILE if it exists (used as they are, without timing) and "
                 "save the choices there at the end");
  app.add_option("--seed", config.seed, "seed for the weights, the shuffling and the augmentation")
      ->capture_default_str();
  app.add_option("--train-subset", config.train_subset, "train on the first N images only (0: all)");
  app.add_option("--test-subset", config.test_subset, "evaluate on the first N test images only (0: all)");
  app.add_option("--init-weights", config.init_weights,
                 "start from these weights (safetensors, torchvision names; tools/export_torchvision.py)");
  app.add_option(
         "--skip", config.skip_prefixes,
         "with --init-weights: leave out keys starting with this prefix (repeatable), e.g. --skip fc.")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--width", config.width,
                 "torchvision archs: channels of the first stage (64: torchvision's; less: faster; with "
                 "--init-weights: the weights' width)")
      ->capture_default_str();
  app.add_option("--stem", config.stem,
                 "torchvision archs: imagenet (7x7/2 conv and max-pool, torchvision's) or cifar (3x3/1 "
                 "conv); default: what --init-weights describes, else cifar")
      ->check(CLI::IsMember({"imagenet", "cifar"}));
  app.add_option("--in-channels", config.in_channels,
                 "channels of the first conv; default: what --init-weights describes, else the dataset's "
                 "(grayscale images are repeated to 3 channels for RGB weights)");
  app.add_option("--checkpoint-dir", config.checkpoint_dir, "checkpoints, metrics.csv and curves.png go here")
      ->capture_default_str();
  app.add_flag("--resume", config.resume, "continue from the newest checkpoint in --checkpoint-dir");
  app.add_option("--max-steps", config.max_steps,
                 "stop with a checkpoint after N updates (for quick checks)");
  app.add_option("--log-every", config.log_every,
                 "a metrics.csv row every N updates (0: about 50 rows over the run)")
      ->capture_default_str();
  app.add_flag("!--no-progress", config.show_progress, "no progress bar");
  app.add_option("--ema", config.ema_decay,
                 "evaluate an exponential moving average of the weights with this decay, e.g. 0.99 (0: off); "
                 "the checkpoints keep it")
      ->capture_default_str();
  app.add_flag(
      "--test-flip", config.test_flip,
      "evaluate each test image and its mirror image, averaging the logits (twice the evaluation time)");
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  try {
    // run() sets the thread count and conv search too; set here, so that runtime_info reports them.
    if (config.threads <= 0 && ranks.size() > 1) config.threads = ranks.default_threads();
    if (config.threads > 0) resnet::set_num_threads(config.threads);
    if (config.conv_search) resnet::set_conv_search(true);
    if (ranks.leader()) std::printf("%s\n", resnet::runtime_info().c_str());
    const train::Outcome outcome = train::run(config, stop_requested, ranks);
    if (!ranks.leader()) return outcome.interrupted && stop_requested.load() ? 130 : 0;
    if (outcome.interrupted) {
      std::printf(
          "Stopped after %lld updates; checkpoint %s. Continue with the same command plus --resume.\n",
          static_cast<long long>(outcome.updates), outcome.checkpoint.c_str());
      return stop_requested.load() ? 130 : 0;
    }
    std::printf("\nTest accuracy: %.2f%% (loss %.4f) after %lld updates", 100 * outcome.final_test.accuracy,
                outcome.final_test.loss, static_cast<long long>(outcome.updates));
    if (outcome.final_test_plain)
      std::printf(", with test-time flip (%.2f%% without)", 100 * outcome.final_test_plain->accuracy);
    std::printf("\n");
    print_per_class(outcome);
    // A child process after MPI has started is what OpenMPI warns against: under mpirun, plot afterwards.
    if (ranks.size() == 1)
      plot(config.checkpoint_dir);
    else
      std::printf("Plot the curves with: bash tools/plot_metrics.sh %s\n", config.checkpoint_dir.c_str());
  } catch (const std::exception& e) {
    ranks.abort_job(std::string("train_cifar10: ") + e.what());  // every rank ends, not only this one
    std::fprintf(stderr, "train_cifar10: %s\n", e.what());
    return 1;
  }
  return 0;
}
