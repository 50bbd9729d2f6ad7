// Whole-model ResNet18 benchmarks, the six cases of the performance table: CIFAR training steps (forward,
// loss, backward, SGD with momentum) at batch 2 (CI's smoke size), 32 and 128, CIFAR eval forward, ImageNet
// eval forward at batch 1 and 16, ImageNet training step at batch 16. Counters: images/s, GFLOP/s (the
// convolutions and the classifier; a training step counts three forward passes) and % of the FMA peak.
//   bench_resnet18 [--threads=N] [--precision=fp32|bf16|auto] [--conv-search] [--conv-choices=FILE]
//                  [Google Benchmark flags]
// With --conv-search, one untimed step before each benchmark's loop runs the search of its new shapes.

#include <vector>

#include "bench_common.hpp"
#include "resnet/resnet.hpp"

namespace {

using resnet::models::ResNet18;
using resnet::models::Stem;

// Forward FLOPs of one image through ResNet18's convolutions and fc.
double resnet18_flops(std::int64_t size, bool cifar) {
  using resnet::bench::conv_flops;
  using resnet::kernels::window_output_size;
  std::int64_t hw = cifar ? size : window_output_size(size, 7, 2, 3);
  double flops = conv_flops(1, 3, 64, hw * hw, cifar ? 3 : 7);
  if (!cifar) hw = window_output_size(hw, 3, 2, 1);
  std::int64_t in = 64;
  for (std::int64_t width : {64, 128, 256, 512}) {
    for (int block = 0; block < 2; ++block) {
      const bool down = block == 0 && width != 64;
      const std::int64_t out_hw = down ? window_output_size(hw, 3, 2, 1) : hw;
      flops += conv_flops(1, in, width, out_hw * out_hw, 3) + conv_flops(1, width, width, out_hw * out_hw, 3);
      if (down) flops += conv_flops(1, in, width, out_hw * out_hw, 1);
      in = width;
      hw = out_hw;
    }
  }
  return flops + 2.0 * 512 * (cifar ? 10 : 1000);
}

void train_step(benchmark::State& state, std::int64_t batch, std::int64_t size, bool cifar) {
  const int classes = cifar ? 10 : 1000;
  ResNet18<float> net(classes, cifar ? Stem::Cifar : Stem::ImageNet);
  net.set_precision(resnet::bench::precision());
  const auto images = resnet::bench::random_tensor({batch, 3, size, size});
  std::vector<int> labels(static_cast<std::size_t>(batch));
  for (std::size_t i = 0; i < labels.size(); ++i)
    labels[i] = static_cast<int>(i % static_cast<std::size_t>(classes));
  resnet::nn::CrossEntropyLoss<float> loss;
  resnet::optim::SGD<float> sgd(net.named_parameters(), 0.01, 0.9, 5e-4);
  const auto step = [&] {
    sgd.zero_grad();
    benchmark::DoNotOptimize(loss.forward(net.forward(images), labels));
    net.backward(loss.backward(), resnet::nn::InputGrad::Skip);
    sgd.step();
  };
  if (resnet::conv_search()) step();
  const resnet::bench::LoopTimer timer;
  for (auto _ : state)
    step();
  resnet::bench::set_counters(state, timer, static_cast<double>(batch),
                              3 * batch * resnet18_flops(size, cifar));
}

void eval_forward(benchmark::State& state, std::int64_t batch, std::int64_t size, bool cifar) {
  ResNet18<float> net(cifar ? 10 : 1000, cifar ? Stem::Cifar : Stem::ImageNet);
  net.set_precision(resnet::bench::precision());
  net.eval();
  const auto images = resnet::bench::random_tensor({batch, 3, size, size});
  if (resnet::conv_search()) net.forward(images);
  const resnet::bench::LoopTimer timer;
  for (auto _ : state)
    benchmark::DoNotOptimize(net.forward(images).data());
  resnet::bench::set_counters(state, timer, static_cast<double>(batch), batch * resnet18_flops(size, cifar));
}

void BM_CifarTrainStep(benchmark::State& state) {
  train_step(state, state.range(0), 32, true);
}
BENCHMARK(BM_CifarTrainStep)->Arg(2)->Arg(32)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ImageNetTrainStep(benchmark::State& state) {
  train_step(state, state.range(0), 224, false);
}
BENCHMARK(BM_ImageNetTrainStep)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: batch, image size (32: CIFAR stem, 224: ImageNet stem).
void BM_EvalForward(benchmark::State& state) {
  eval_forward(state, state.range(0), state.range(1), state.range(1) == 32);
}
BENCHMARK(BM_EvalForward)
    ->Args({2, 32})
    ->Args({128, 32})
    ->Args({1, 224})
    ->Args({16, 224})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

RESNET_BENCHMARK_MAIN()
