// Every ResNet18 layer forward and backward (training mode) at CIFAR batch 128 and ImageNet batch 1 and 16:
// each distinct convolution, BatchNorm2d, ReLU, MaxPool2d, AdaptiveAvgPool2d and the fc Linear; and each
// convolution's eval-mode forward, which runs on its weight packed once (nn/conv2d.hpp) and may take another
// algorithm. Names read BM_Conv<Forward|EvalForward|Backward>/<cifar|imagenet>/<layer>/batch:N. Convolutions
// report GFLOP/s and % of the FMA peak (backward counts two GEMMs per forward one: weight and input
// gradients).
//   bench_layers [--threads=N] [Google Benchmark flags]

#include <string>

#include "bench_common.hpp"
#include "resnet/nn/adaptive_avgpool2d.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/linear.hpp"
#include "resnet/nn/maxpool2d.hpp"
#include "resnet/nn/relu.hpp"
#include "resnet18_shapes.hpp"

namespace {

using resnet::Tensor;
using resnet::bench::random_tensor;

// Times forward (backward = false) or backward alone: each backward follows an untimed forward, because
// backward releases what forward cached.
template <typename Layer>
void run_layer(benchmark::State& state, Layer& layer, const Tensor<float>& input, bool backward,
               double images, double flops) {
  const Tensor<float> grad = random_tensor(layer.forward(input).shape(), 2);
  double seconds = 0;
  for (auto _ : state) {
    if (backward) layer.forward(input);
    const resnet::bench::LoopTimer timer;
    benchmark::DoNotOptimize((backward ? layer.backward(grad) : layer.forward(input)).data());
    state.SetIterationTime(timer.seconds());
    seconds += timer.seconds();
  }
  resnet::bench::set_counters(state, seconds, images, flops);
}

void register_convs(bool cifar, std::int64_t batch) {
  for (const auto& c : resnet::bench::resnet18_convs(cifar)) {
    for (const char* pass : {"Forward", "EvalForward", "Backward"}) {
      const bool backward = pass == std::string("Backward"), eval = pass == std::string("EvalForward");
      const std::string name = std::string("BM_Conv") + pass + "/" + (cifar ? "cifar/" : "imagenet/") +
                               c.name + "/batch:" + std::to_string(batch);
      benchmark::RegisterBenchmark(
          name.c_str(),
          [c, batch, backward, eval](benchmark::State& state) {
            resnet::nn::Conv2d<float> conv(static_cast<int>(c.C), static_cast<int>(c.O),
                                           static_cast<int>(c.k), static_cast<int>(c.s),
                                           static_cast<int>(c.k / 2), false);
            if (eval) conv.eval();
            const std::int64_t o = resnet::kernels::window_output_size(c.H, c.k, c.s, c.k / 2);
            const double flops = resnet::bench::conv_flops(batch, c.C, c.O, o * o, c.k) * (backward ? 2 : 1);
            run_layer(state, conv, random_tensor({batch, c.C, c.H, c.H}), backward,
                      static_cast<double>(batch), flops);
          })
          ->Unit(benchmark::kMillisecond)
          ->UseManualTime();
    }
  }
}

// Args: batch, channels, size, backward.
template <typename Make>
void elementwise_layer(benchmark::State& state, Make make) {
  auto layer = make();
  layer.train();
  const std::int64_t batch = state.range(0);
  run_layer(state, layer, random_tensor({batch, state.range(1), state.range(2), state.range(2)}),
            state.range(3) != 0, static_cast<double>(batch), 0);
}
// CIFAR batch 128 at each stage's size, ImageNet batch 16 after the stem and at layer4; forward and backward.
void layer_args(benchmark::internal::Benchmark* b) {
  for (int backward : {0, 1}) {
    b->Args({2, 8, 8, backward});  // CI's smoke size
    for (auto [c, h] : {std::pair{64, 32}, {128, 16}, {256, 8}, {512, 4}})
      b->Args({128, c, h, backward});
    b->Args({16, 64, 112, backward});
    b->Args({16, 512, 7, backward});
  }
  b->Unit(benchmark::kMillisecond)->UseManualTime();
}

void BM_BatchNorm2d(benchmark::State& state) {
  elementwise_layer(state, [&] { return resnet::nn::BatchNorm2d<float>(static_cast<int>(state.range(1))); });
}
BENCHMARK(BM_BatchNorm2d)->Apply(layer_args);

void BM_ReLU(benchmark::State& state) {
  elementwise_layer(state, [] { return resnet::nn::ReLU<float>(); });
}
BENCHMARK(BM_ReLU)->Apply(layer_args);

void BM_MaxPool2d(benchmark::State& state) {
  elementwise_layer(state, [] { return resnet::nn::MaxPool2d<float>(3, 2, 1); });
}
BENCHMARK(BM_MaxPool2d)->Apply(layer_args);

void BM_AdaptiveAvgPool2d(benchmark::State& state) {
  elementwise_layer(state, [] { return resnet::nn::AdaptiveAvgPool2d<float>(1, 1); });
}
BENCHMARK(BM_AdaptiveAvgPool2d)->Apply(layer_args);

// Args: batch, classes, backward.
void BM_Linear(benchmark::State& state) {
  const std::int64_t batch = state.range(0), classes = state.range(1);
  resnet::nn::Linear<float> fc(512, static_cast<int>(classes));
  run_layer(state, fc, random_tensor({batch, 512}), state.range(2) != 0, static_cast<double>(batch),
            2.0 * static_cast<double>(batch * classes * 512) * (state.range(2) ? 2 : 1));
}
BENCHMARK(BM_Linear)
    ->ArgsProduct({{128}, {10}, {0, 1}})
    ->ArgsProduct({{1, 16}, {1000}, {0, 1}})
    ->UseManualTime();

}  // namespace

int main(int argc, char** argv) {
  register_convs(true, 128);
  register_convs(false, 1);
  register_convs(false, 16);
  return resnet::bench::main(argc, argv);
}
