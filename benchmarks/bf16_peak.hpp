#pragma once
// The machine's bf16 peak, measured, for "% of peak" of the bf16 benchmarks, on the instruction the bf16
// GEMMs run: every thread runs independent chains of TDPBF16PS where the CPU has AMX tiles (16 x 16 x 32
// bf16 products into float per instruction, four accumulating tiles), else of VDPBF16PS (16 lanes x 2),
// on register-resident operands, compiled so that a generic build measures it too. 0 on a CPU (or under a
// cap) without AVX512-BF16, where bf16 runs the float path and its peak is fma_peak_gflops.

#include "fma_peak.hpp"
#include "resnet/core/cpu_features.hpp"
#include "resnet/kernels/bgemm_amx.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace resnet::bench {

namespace detail {
#if defined(__GNUC__) && defined(__x86_64__)
// Twelve accumulators, all kept in registers (the asm ties each to a vector register every iteration),
// cover the instruction's latency times its ports.
__attribute__((target("avx512f,avx512bf16"))) inline float dpbf16_chains(long iterations) {
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3F803F80), b = (__m512bh)_mm512_set1_epi32(0x33D633D6);
  __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
         c9 = c0, c10 = c0, c11 = c0;
  for (long i = 0; i < iterations; ++i) {
    c0 = _mm512_dpbf16_ps(c0, a, b), c1 = _mm512_dpbf16_ps(c1, a, b), c2 = _mm512_dpbf16_ps(c2, a, b);
    c3 = _mm512_dpbf16_ps(c3, a, b), c4 = _mm512_dpbf16_ps(c4, a, b), c5 = _mm512_dpbf16_ps(c5, a, b);
    c6 = _mm512_dpbf16_ps(c6, a, b), c7 = _mm512_dpbf16_ps(c7, a, b), c8 = _mm512_dpbf16_ps(c8, a, b);
    c9 = _mm512_dpbf16_ps(c9, a, b), c10 = _mm512_dpbf16_ps(c10, a, b), c11 = _mm512_dpbf16_ps(c11, a, b);
    asm volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3), "+v"(c4), "+v"(c5));
    asm volatile("" : "+v"(c6), "+v"(c7), "+v"(c8), "+v"(c9), "+v"(c10), "+v"(c11));
  }
  const __m512 sum = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                                                 _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7))),
                                   _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
  return _mm512_reduce_add_ps(sum);
}
#endif

#if defined(RESNET_HAVE_BGEMM_AMX)
// Four C tiles (0-3) accumulating A tiles 4-5 times B tiles 6-7, as bgemm_amx.hpp's register tile does,
// without its loads. The tiles hold zeros: the rate does not depend on the values.
inline float tdpbf16_chains(long iterations) {
  using Tiles = kernels::amx_bf16::HardwareTiles;
  Tiles::configure(kernels::amx_bf16::tile_config());
  Tiles::zero<0>(), Tiles::zero<1>(), Tiles::zero<2>(), Tiles::zero<3>();
  Tiles::zero<4>(), Tiles::zero<5>(), Tiles::zero<6>(), Tiles::zero<7>();
  for (long i = 0; i < iterations; ++i) {
    Tiles::dot<0, 4, 6>(), Tiles::dot<1, 4, 7>(), Tiles::dot<2, 5, 6>(), Tiles::dot<3, 5, 7>();
  }
  alignas(64) float c[16 * 16];
  Tiles::store<0>(c, 64);
  Tiles::release();
  return c[0];
}
#endif
}  // namespace detail

// The instruction bf16_peak_gflops measures: "TDPBF16PS", "VDPBF16PS", or "" where it measures nothing.
inline const char* bf16_peak_instruction() {
  if (isa_enabled(Isa::AmxBf16)) return "TDPBF16PS";
  return isa_enabled(Isa::Avx512Bf16) ? "VDPBF16PS" : "";
}

// GFLOP/s of `threads` threads each running the chains (16384 flops per TDPBF16PS, 64 per VDPBF16PS), best
// of three.
inline double bf16_peak_gflops(int threads) {
#if defined(RESNET_HAVE_BGEMM_AMX)
  if (isa_enabled(Isa::AmxBf16)) {
    constexpr long kIterations = 500'000;
    return best_gflops(threads, 16384.0 * 4 * static_cast<double>(kIterations),
                       [] { return detail::tdpbf16_chains(kIterations); });
  }
#endif
#if defined(__GNUC__) && defined(__x86_64__)
  if (!isa_enabled(Isa::Avx512Bf16)) return 0;
  constexpr long kIterations = 10'000'000;
  return best_gflops(threads, 64.0 * 12 * static_cast<double>(kIterations),
                     [] { return detail::dpbf16_chains(kIterations); });
#else
  (void)threads;
  return 0;
#endif
}

}  // namespace resnet::bench
