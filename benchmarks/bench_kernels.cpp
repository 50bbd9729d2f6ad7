// Kernel benchmarks: the FMA and bf16 (TDPBF16PS or VDPBF16PS) peaks, the GEMM of every ResNet18 convolution
// (forward shape, one call on one thread, at 16 to 1024 columns: what one work unit of kernels/conv2d.hpp
// multiplies) with float and with bf16 operands, rounding ResNet18's weights to bf16 (what bf16 training does
// once a step), im2col and col2im of one image, batch-norm statistics and backward, and max pooling.
//   bench_kernels [--threads=N] [--precision=bf16: %peak against the bf16 peak] [Google Benchmark flags]

#include <array>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "resnet/core/bfloat16.hpp"
#include "resnet/kernels/batchnorm.hpp"
#include "resnet/kernels/conv2d.hpp"
#include "resnet/kernels/gemm.hpp"
#include "resnet/kernels/im2col.hpp"
#include "resnet/kernels/pooling.hpp"
#include "resnet18_shapes.hpp"

namespace {

using resnet::bench::random_tensor;

void BM_FmaPeak(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(resnet::bench::fma_peak_gflops(resnet::num_threads()));
}
BENCHMARK(BM_FmaPeak)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_Bf16Peak(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(resnet::bench::bf16_peak_gflops(resnet::num_threads()));
}
BENCHMARK(BM_Bf16Peak)->Unit(benchmark::kMillisecond)->Iterations(1);

// ResNet18's 11,173,962 parameters rounded to bf16 on one thread: what bf16 training adds once a step (each
// Conv2d and Linear rounds its weight when the weight's version changed).
void BM_RoundWeightsToBfloat16(benchmark::State& state) {
  const auto weights = random_tensor({11173962});
  std::vector<resnet::bfloat16> rounded(static_cast<std::size_t>(weights.numel()));
  const resnet::bench::LoopTimer timer;
  for (auto _ : state)
    resnet::convert(weights.cdata(), weights.numel(), rounded.data());
  resnet::bench::set_counters(state, timer, 0, 0);
}
BENCHMARK(BM_RoundWeightsToBfloat16)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: M (output channels), N (columns), K (C*k*k). Single-threaded: the GEMM of one work unit.
void BM_Gemm(benchmark::State& state) {
  const std::int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const auto a = random_tensor({M, K}), b = random_tensor({K, N});
  resnet::Tensor<float> c({M, N});
  const resnet::bench::LoopTimer timer;
  for (auto _ : state)
    resnet::kernels::gemm(false, false, M, N, K, 1.0f, a.data(), b.data(), 0.0f, c.data());
  // Against one thread's share of the peak: this call runs on one thread.
  resnet::bench::set_counters(state, timer, 0, 2.0 * static_cast<double>(M * N * K), 1);
}
void gemm_shapes(benchmark::internal::Benchmark* b) {
  for (bool cifar : {true, false}) {
    for (const auto& c : resnet::bench::resnet18_convs(cifar)) {
      for (std::int64_t n : {16, 64, 256, 1024})
        b->Args({c.O, n, c.C * c.k * c.k});
    }
  }
}
BENCHMARK(BM_Gemm)->Apply(gemm_shapes);

// BM_Gemm with bf16 operands (float C): the kernel Precision::BF16 runs.
void BM_GemmBf16(benchmark::State& state) {
  const std::int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const auto a = random_tensor({M, K}), b = random_tensor({K, N});
  std::vector<resnet::bfloat16> a16(static_cast<std::size_t>(M * K)), b16(static_cast<std::size_t>(K * N));
  resnet::convert(a.cdata(), M * K, a16.data());
  resnet::convert(b.cdata(), K * N, b16.data());
  resnet::Tensor<float> c({M, N});
  const resnet::bench::LoopTimer timer;
  for (auto _ : state)
    resnet::kernels::gemm(false, false, M, N, K, 1.0f, a16.data(), b16.data(), 0.0f, c.data());
  resnet::bench::set_counters(state, timer, 0, 2.0 * static_cast<double>(M * N * K), 1);
}
BENCHMARK(BM_GemmBf16)->Apply(gemm_shapes);

// Args: C, H, k, s of one image; im2col (0) or col2im (1).
void BM_Im2col(benchmark::State& state) {
  const std::int64_t C = state.range(0), H = state.range(1), k = state.range(2), s = state.range(3);
  const std::int64_t p = k / 2, OH = resnet::kernels::window_output_size(H, k, s, p);
  auto image = random_tensor({C, H, H});
  auto cols = random_tensor({C * k * k, OH * OH});
  for (auto _ : state) {
    if (state.range(4)) {
      resnet::kernels::col2im(cols.data(), OH * OH, C, H, H, k, s, p, image.data());
    } else {
      resnet::kernels::im2col(image.data(), C, H, H, k, s, p, cols.data());
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * C * k * k * OH * OH * 4);
}
void im2col_shapes(benchmark::internal::Benchmark* b) {
  for (int col2im : {0, 1}) {
    for (bool cifar : {true, false}) {
      for (const auto& c : resnet::bench::resnet18_convs(cifar))
        b->Args({c.C, c.H, c.k, c.s, col2im});
    }
  }
}
BENCHMARK(BM_Im2col)->Apply(im2col_shapes);

// Args: N, C (= O), H of a ResNet18 3x3 stride-1 conv; im2col + GEMM (0) or Winograd F(2x2, 3x3) (1), on
// all threads: the two forward algorithms kernels/conv2d.hpp chooses between. GFLOP/s count the direct
// convolution's 2 * 9 multiply-adds per output for both, so Winograd can pass the FMA peak.
void BM_ConvForward(benchmark::State& state) {
  const std::int64_t N = state.range(0), C = state.range(1), H = state.range(2);
  const resnet::kernels::ConvShape g{N, C, H, H, C, 3, 1, 1};
  const auto x = random_tensor({N, C, H, H}), w = random_tensor({C, C * 9});
  resnet::Tensor<float> y({N, C, H, H});
  resnet::kernels::ConvWorkspace<float> ws;
  const resnet::bench::LoopTimer timer;
  for (auto _ : state) {
    if (state.range(3)) {
      resnet::kernels::conv2d_forward_winograd(x.data(), w.data(), resnet::kernels::ConvEpilogue<float>{}, N,
                                               C, H, H, C, 1, y.data(), ws.scratch);
    } else {
      resnet::kernels::conv2d_forward_im2col(x.data(), w.data(), resnet::kernels::ConvEpilogue<float>{}, g,
                                             y.data(), ws);
    }
  }
  resnet::bench::set_counters(state, timer, static_cast<double>(N),
                              2.0 * static_cast<double>(N * C * C * 9 * H * H));
}
// Args as BM_ConvForward: the weight gradient of the same convs, im2col (0) or Winograd (1).
void BM_ConvWeightGrad(benchmark::State& state) {
  const std::int64_t N = state.range(0), C = state.range(1), H = state.range(2);
  const resnet::kernels::ConvShape g{N, C, H, H, C, 3, 1, 1};
  const auto x = random_tensor({N, C, H, H}), w = random_tensor({C, C * 9}), dy = random_tensor({N, C, H, H});
  resnet::Tensor<float> dw({C, C * 9});
  resnet::kernels::ConvWorkspace<float> ws;
  const resnet::bench::LoopTimer timer;
  for (auto _ : state) {
    if (state.range(3)) {
      resnet::kernels::conv2d_weight_grad_winograd(x.data(), dy.data(), N, C, H, H, C, 1, dw.data(),
                                                   ws.scratch);
    } else {
      resnet::kernels::conv2d_backward_im2col(x.data(), w.data(), dy.data(), g, static_cast<float*>(nullptr),
                                              dw.data(), ws);
    }
  }
  resnet::bench::set_counters(state, timer, static_cast<double>(N),
                              2.0 * static_cast<double>(N * C * C * 9 * H * H));
}
void conv_forward_shapes(benchmark::internal::Benchmark* b) {
  for (std::int64_t N : {128, 32, 16, 1}) {
    for (const auto& c : resnet::bench::resnet18_convs(N >= 32)) {
      if (c.k != 3 || c.s != 1 || c.C != c.O) continue;
      for (int winograd : {0, 1})
        b->Args({N, c.C, c.H, winograd});
    }
  }
}
BENCHMARK(BM_ConvForward)->Apply(conv_forward_shapes)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ConvWeightGrad)->Apply(conv_forward_shapes)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: N, C, HW: a tiny case, CIFAR's layer1 and layer4 at batch 128, ImageNet's stem at batch 16.
void batchnorm_shapes(benchmark::internal::Benchmark* b) {
  for (auto [N, C, HW] :
       {std::array<std::int64_t, 3>{2, 8, 64}, {128, 64, 1024}, {128, 512, 16}, {16, 64, 12544}})
    b->Args({N, C, HW});
}

// Args: N, C, HW.
void BM_BatchNormStatistics(benchmark::State& state) {
  const std::int64_t N = state.range(0), C = state.range(1), HW = state.range(2);
  const auto x = random_tensor({N, C, HW});
  std::vector<float> mean(C), var(C);
  for (auto _ : state)
    resnet::kernels::batchnorm_statistics(x.data(), N, C, HW, mean.data(), var.data());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * N * C * HW * 4);
}
BENCHMARK(BM_BatchNormStatistics)->Apply(batchnorm_shapes)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: N, C, HW. Training-mode backward with the fused ReLU mask, as after every ResNet18 BatchNorm+ReLU.
void BM_BatchNormBackward(benchmark::State& state) {
  const std::int64_t N = state.range(0), C = state.range(1), HW = state.range(2);
  const auto x = random_tensor({N, C, HW}), dy = random_tensor({N, C, HW}),
             relu_output = random_tensor({N, C, HW});
  std::vector<float> mean(C), var(C), invstd(C), gamma(C, 1.5f), dgamma(C), dbeta(C);
  resnet::kernels::batchnorm_statistics(x.data(), N, C, HW, mean.data(), var.data());
  resnet::kernels::batchnorm_invstd(var.data(), 1e-5, C, invstd.data());
  resnet::Tensor<float> dx({N, C, HW});
  for (auto _ : state)
    resnet::kernels::batchnorm_backward(x.data(), dy.data(), mean.data(), invstd.data(), gamma.data(), N, C,
                                        HW, dx.data(), dgamma.data(), dbeta.data(), relu_output.data());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * N * C * HW * 4);
}
BENCHMARK(BM_BatchNormBackward)->Apply(batchnorm_shapes)->Unit(benchmark::kMillisecond)->UseRealTime();

// Args: planes (N*C), H, with argmax (training) or not (eval); 3x3 stride-2 pad-1 max pooling, as the
// ImageNet stem.
void BM_MaxPool(benchmark::State& state) {
  const std::int64_t P = state.range(0), H = state.range(1),
                     OH = resnet::kernels::window_output_size(H, 3, 2, 1);
  const auto x = random_tensor({P, H, H});
  resnet::Tensor<float> y({P, OH, OH});
  std::vector<std::int64_t> argmax(static_cast<std::size_t>(P * OH * OH));
  for (auto _ : state)
    resnet::kernels::maxpool2d_forward(x.data(), P, H, H, 3, 2, 1, y.data(),
                                       state.range(2) ? argmax.data() : nullptr);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * P * H * H * 4);
}
BENCHMARK(BM_MaxPool)
    ->Args({16, 8, 1})
    ->Args({16 * 64, 112, 1})
    ->Args({16 * 64, 112, 0})
    ->Args({64, 112, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

RESNET_BENCHMARK_MAIN()
