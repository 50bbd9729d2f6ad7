// Whole-model benchmarks, the cases of the performance table. ResNet18: CIFAR training steps (forward, loss,
// backward, SGD with momentum) at batch 2 (CI's smoke size), 32 and 128, CIFAR eval forward, ImageNet eval
// forward at batch 1 and 16, ImageNet training step at batch 16. ResNet50 (ImageNet stem, 224x224): eval
// forward at batch 1 and 16, training step at batch 16. Counters: images/s, GFLOP/s (the convolutions and
// the classifier; a training step counts three forward passes) and % of the FMA peak.
//   bench_resnet18 [--threads=N] [--precision=fp32|bf16|auto] [--conv-search] [--conv-choices=FILE]
//                  [Google Benchmark flags]
// With --conv-search, one untimed step before each benchmark's loop runs the search of its new shapes.

#include <string>
#include <vector>

#include "bench_common.hpp"
#include "resnet/models/summary.hpp"
#include "resnet/resnet.hpp"

namespace {

using resnet::models::ResNet18;
using resnet::models::ResNet50;
using resnet::models::Stem;

// Forward FLOPs of one size x size image through the model's convolutions and fc (2 per multiply-add), from
// the layer shapes summary() traces: each conv's weight elements times its output positions. The trace asks
// each conv for its plan, so the search is off meanwhile: it would time batch-1 shapes no benchmark runs.
template <typename Net>
double forward_flops(Net& net, std::int64_t size) {
  const bool search = resnet::conv_search();
  resnet::set_conv_search(false);
  double flops = 0;
  for (const auto& row : resnet::models::detail::trace_layers(net, {1, 3, size, size})) {
    const auto positions = static_cast<double>(row.output.size() == 4 ? row.output[2] * row.output[3] : 1);
    if (row.type == std::string("Conv2d")) flops += 2.0 * static_cast<double>(row.parameters) * positions;
    if (row.type == std::string("Linear"))
      flops += 2.0 * static_cast<double>(row.parameters - row.output[1]);  // the bias adds, no multiply
  }
  resnet::set_conv_search(search);
  return flops;
}

template <typename Net>
void train_step(benchmark::State& state, std::int64_t batch, std::int64_t size, bool cifar) {
  const int classes = cifar ? 10 : 1000;
  Net net(classes, cifar ? Stem::Cifar : Stem::ImageNet);
  net.set_precision(resnet::bench::precision());
  const double flops = 3 * batch * forward_flops(net, size);
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
  resnet::bench::set_counters(state, timer, static_cast<double>(batch), flops);
}

template <typename Net>
void eval_forward(benchmark::State& state, std::int64_t batch, std::int64_t size, bool cifar) {
  Net net(cifar ? 10 : 1000, cifar ? Stem::Cifar : Stem::ImageNet);
  net.set_precision(resnet::bench::precision());
  net.eval();
  const double flops = batch * forward_flops(net, size);
  const auto images = resnet::bench::random_tensor({batch, 3, size, size});
  if (resnet::conv_search()) net.forward(images);
  const resnet::bench::LoopTimer timer;
  for (auto _ : state)
    benchmark::DoNotOptimize(net.forward(images).data());
  resnet::bench::set_counters(state, timer, static_cast<double>(batch), flops);
}

void BM_CifarTrainStep(benchmark::State& state) {
  train_step<ResNet18<float>>(state, state.range(0), 32, true);
}
BENCHMARK(BM_CifarTrainStep)->Arg(2)->Arg(32)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ImageNetTrainStep(benchmark::State& state) {
  train_step<ResNet18<float>>(state, state.range(0), 224, false);
}
BENCHMARK(BM_ImageNetTrainStep)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: batch, image size (32: CIFAR stem, 224: ImageNet stem).
void BM_EvalForward(benchmark::State& state) {
  eval_forward<ResNet18<float>>(state, state.range(0), state.range(1), state.range(1) == 32);
}
BENCHMARK(BM_EvalForward)
    ->Args({2, 32})
    ->Args({128, 32})
    ->Args({1, 224})
    ->Args({16, 224})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ResNet50 at 224x224 with the ImageNet stem. Arg: batch.
void BM_ResNet50EvalForward(benchmark::State& state) {
  eval_forward<ResNet50<float>>(state, state.range(0), 224, false);
}
BENCHMARK(BM_ResNet50EvalForward)->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_ResNet50TrainStep(benchmark::State& state) {
  train_step<ResNet50<float>>(state, state.range(0), 224, false);
}
BENCHMARK(BM_ResNet50TrainStep)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

RESNET_BENCHMARK_MAIN()
