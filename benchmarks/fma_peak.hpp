#pragma once
// The machine's FP32 FMA peak, measured: every thread runs independent chains of multiply-adds on the widest
// vectors the compiler targets (AVX-512, AVX or SSE, as the flags allow; fused only when FMA is enabled), so
// "% of peak" in the benchmarks is relative to what this binary's flags can reach, not to a datasheet.

#include <algorithm>
#include <chrono>

#include "resnet/core/parallel.hpp"

namespace resnet::bench {

namespace detail {
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 4;
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

// Ten independent accumulators, named so they stay in registers, cover the FMA latency (4 cycles) times the
// FMA ports (2).
inline float fma_chains(long iterations) {
  const Vec a = Vec{} + 0.999999f, b = Vec{} + 1e-7f;
  Vec c0 = a, c1 = b, c2 = a + b, c3 = a - b, c4 = b * b, c5 = a * a, c6 = a * b, c7 = b - a, c8 = c2 * a,
      c9 = c3 * b;
  for (long i = 0; i < iterations; ++i) {
    c0 = c0 * a + b, c1 = c1 * a + b, c2 = c2 * a + b, c3 = c3 * a + b, c4 = c4 * a + b;
    c5 = c5 * a + b, c6 = c6 * a + b, c7 = c7 * a + b, c8 = c8 * a + b, c9 = c9 * a + b;
    asm volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4));  // no folding across iterations
  }
  const Vec sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9;
  float total = 0;
  for (int lane = 0; lane < kLanes; ++lane)
    total += sum[lane];
  return total;
}
}  // namespace detail

// GFLOP/s of `threads` threads each calling chains() once, which runs `flops` operations: best of three.
template <typename Chains>
double best_gflops(int threads, double flops, Chains chains) {
  double best = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    volatile double sink = 0;
    const auto start = std::chrono::steady_clock::now();
    RESNET_OMP(parallel num_threads(threads))
    { sink = sink + chains(); }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, flops * threads / seconds / 1e9);
  }
  return best;
}

// GFLOP/s of `threads` threads each running the chains (2 flops per lane per multiply-add), best of three.
inline double fma_peak_gflops(int threads) {
  constexpr long kIterations = 20'000'000;
  return best_gflops(threads, 2.0 * detail::kLanes * 10 * static_cast<double>(kIterations),
                     [] { return detail::fma_chains(kIterations); });
}

}  // namespace resnet::bench
