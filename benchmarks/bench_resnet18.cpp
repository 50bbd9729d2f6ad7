// Whole-model ResNet18 benchmarks: a CIFAR training step (forward, loss, backward, SGD) and eval forwards.
// Counters report images per second. Threads: --threads is not a Google Benchmark flag, so use
// OMP_NUM_THREADS.

#include <benchmark/benchmark.h>

#include <vector>

#include "resnet/resnet.hpp"

namespace {

using resnet::models::ResNet18;
using resnet::models::Stem;

resnet::Tensor<float> random_images(std::int64_t batch, std::int64_t size) {
  resnet::Rng rng(1);
  resnet::Tensor<float> images({batch, 3, size, size});
  images.fill_normal(rng);
  return images;
}

void BM_CifarTrainStep(benchmark::State& state) {
  const auto batch = state.range(0);
  ResNet18<float> net(10, Stem::Cifar);
  const auto images = random_images(batch, 32);
  std::vector<int> labels(static_cast<std::size_t>(batch));
  for (std::size_t i = 0; i < labels.size(); ++i)
    labels[i] = static_cast<int>(i % 10);
  resnet::nn::CrossEntropyLoss<float> loss;
  resnet::optim::SGD<float> sgd(net.named_parameters(), 0.01, 0.9, 5e-4);
  for (auto _ : state) {
    sgd.zero_grad();
    benchmark::DoNotOptimize(loss.forward(net.forward(images), labels));
    net.backward(loss.backward());
    sgd.step();
  }
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CifarTrainStep)->Arg(2)->Arg(32)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_EvalForward(benchmark::State& state) {
  const auto batch = state.range(0);
  const bool cifar = state.range(1) == 32;
  ResNet18<float> net(cifar ? 10 : 1000, cifar ? Stem::Cifar : Stem::ImageNet);
  net.eval();
  const auto images = random_images(batch, state.range(1));
  for (auto _ : state)
    benchmark::DoNotOptimize(net.forward(images).data());
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EvalForward)
    ->Args({128, 32})
    ->Args({1, 224})
    ->Args({16, 224})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
