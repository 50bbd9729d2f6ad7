#pragma once
// bfloat16, as torch.bfloat16: the upper 16 bits of a float32 (1 sign, 8 exponent, 7 mantissa bits). A
// float becomes one by rounding to nearest, ties to even, as PyTorch's c10::BFloat16 does; NaN stays a
// (quiet) NaN. Every bfloat16 is exactly a float, and the product of two is exact in float (8 + 8 mantissa
// bits fit in 24), which is why a bf16 GEMM that accumulates in float differs from a double product of the
// same operands only by the float additions.

#include <cstdint>
#include <cstring>

#include "resnet/core/cpu_features.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace resnet {

struct bfloat16 {
  std::uint16_t bits = 0;

  bfloat16() = default;
  explicit bfloat16(float value) : bits(round_bits(value)) {}
  explicit operator float() const {
    const std::uint32_t word = static_cast<std::uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &word, sizeof value);
    return value;
  }
  static bfloat16 from_bits(std::uint16_t bits) {
    bfloat16 b;
    b.bits = bits;
    return b;
  }

  // The upper half of `value` rounded to nearest even; a NaN keeps its sign and becomes quiet.
  static std::uint16_t round_bits(float value) {
    std::uint32_t word;
    std::memcpy(&word, &value, sizeof word);
    if ((word & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((word >> 16) | 0x40u);
    return static_cast<std::uint16_t>((word + 0x7fffu + ((word >> 16) & 1u)) >> 16);
  }
};

// x rounded to the nearest bfloat16, as a float: what a bf16 operand holds.
inline float round_to_bfloat16(float x) {
  return static_cast<float>(bfloat16(x));
}

namespace detail {
#if defined(__GNUC__) && defined(__x86_64__)
// 16 floats at a time with AVX-512F integer operations: the same rounding, bit for bit, as bfloat16(float).
// (AVX512-BF16's vcvtneps2bf16 would be one instruction, but it flushes subnormals to zero.) The shifts are
// the zero-masked forms with every lane selected: GCC 12's unmasked ones start from an undefined vector,
// which -Wmaybe-uninitialized flags.
__attribute__((target("avx512f"))) inline void to_bfloat16_avx512(const float* in, std::int64_t n,
                                                                  bfloat16* out) {
  const __m512i rounding = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
  const __m512i quiet = _mm512_set1_epi32(0x40), magnitude = _mm512_set1_epi32(0x7fffffff);
  const __m512i infinity = _mm512_set1_epi32(0x7f800000);
  constexpr __mmask16 all = 0xFFFF;
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = static_cast<__mmask16>(n - i >= 16 ? 0xFFFF : (1u << (n - i)) - 1);
    const __m512i word = _mm512_castps_si512(_mm512_maskz_loadu_ps(lanes, in + i));
    const __m512i odd = _mm512_and_si512(_mm512_maskz_srli_epi32(all, word, 16), one);
    __m512i upper = _mm512_maskz_srli_epi32(all, _mm512_add_epi32(word, _mm512_add_epi32(rounding, odd)), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(word, magnitude), infinity);
    upper = _mm512_mask_or_epi32(upper, nan, _mm512_maskz_srli_epi32(all, word, 16), quiet);
    _mm512_mask_cvtepi32_storeu_epi16(out + i, lanes, upper);
  }
}
#endif
}  // namespace detail

// out[0 .. n) = bfloat16(in[0 .. n)), vectorised on CPUs with AVX-512F (any build).
inline void convert(const float* in, std::int64_t n, bfloat16* out) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (isa_enabled(Isa::Avx512)) return detail::to_bfloat16_avx512(in, n, out);
#endif
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = bfloat16(in[i]);
}

inline void convert(const bfloat16* in, std::int64_t n, float* out) {
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(in[i]);
}

}  // namespace resnet
