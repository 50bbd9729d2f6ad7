// libFuzzer target: a training checkpoint (train/checkpoint.hpp) as the newest file of a run's directory,
// resumed into a tiny ResNet and its SGD optimizer with momentum (train::Checkpoints: the file, the
// position's counts, the extra tensors), then its metrics log (train::MetricsLog) and the weights' moving
// average (optim::ExponentialMovingAverage) restored from what it holds.

#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "resnet/optim/ema.hpp"
#include "resnet/train/checkpoint.hpp"
#include "resnet/train/metrics_log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const resnet::fuzz::ScratchDir scratch;
  static resnet::models::ResNet<float> model = resnet::fuzz::tiny_model();
  static resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1, 0.9);
  static resnet::optim::ExponentialMovingAverage<float> ema(model, 0.9);
  scratch.write(resnet::train::Checkpoints::file_name(1), data, size);
  try {
    resnet::train::Checkpoints checkpoints(scratch.path(), {{"seed", "0"}});
    if (const auto resumed = checkpoints.resume(model, sgd)) {
      resnet::train::MetricsLog log("", {"update", "train_loss"});
      const auto metrics = resumed->metadata.find("metrics");
      if (metrics != resumed->metadata.end()) log.restore(metrics->second);
      ema.restore(resumed->tensors);
    }
  } catch (const resnet::Error&) {  // the one way a reader may refuse its input
  }
  return 0;
}
