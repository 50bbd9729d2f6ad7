#pragma once
// The machine's bf16 peak, measured, for "% of peak" of the bf16 benchmarks: every thread runs independent
// chains of VDPBF16PS (16 lanes x 2 bf16 products into float per instruction) on register-resident operands,
// compiled by target attribute so that a generic build measures it too. 0 on a CPU (or under a cap) without
// AVX512-BF16, where bf16 runs the float path and its peak is fma_peak_gflops.

#include "fma_peak.hpp"
#include "resnet/core/cpu_features.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace resnet::bench {

namespace detail {
#if defined(__GNUC__) && defined(__x86_64__)
// Ten accumulators cover the instruction's latency times its ports, as fma_chains.
__attribute__((target("avx512f,avx512bf16"))) inline float dpbf16_chains(long iterations) {
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3F803F80), b = (__m512bh)_mm512_set1_epi32(0x33D633D6);
  __m512 c[10];
  for (int i = 0; i < 10; ++i)
    c[i] = _mm512_set1_ps(static_cast<float>(i));
  for (long i = 0; i < iterations; ++i) {
    for (int j = 0; j < 10; ++j)
      c[j] = _mm512_dpbf16_ps(c[j], a, b);
    asm volatile("" : "+v"(c[0]), "+v"(c[1]), "+v"(c[2]), "+v"(c[3]), "+v"(c[4]));
  }
  __m512 sum = c[0];
  for (int j = 1; j < 10; ++j)
    sum = _mm512_add_ps(sum, c[j]);
  return _mm512_reduce_add_ps(sum);
}
#endif
}  // namespace detail

// GFLOP/s of `threads` threads each running the chains (64 flops per instruction), best of three.
inline double bf16_peak_gflops(int threads) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (!isa_enabled(Isa::Avx512Bf16)) return 0;
  constexpr long kIterations = 10'000'000;
  return best_gflops(threads, 64.0 * 10 * static_cast<double>(kIterations),
                     [] { return detail::dpbf16_chains(kIterations); });
#else
  (void)threads;
  return 0;
#endif
}

}  // namespace resnet::bench
