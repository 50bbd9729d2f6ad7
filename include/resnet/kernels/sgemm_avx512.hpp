#pragma once
// Single-precision GEMM for AVX-512 CPUs, in the classic packed form (Goto and van de Geijn, "Anatomy of
// high-performance matrix multiplication", 2008): op(A) and op(B) are copied into cache-sized blocks laid out
// in the order a 12x32 register-tile micro-kernel reads them, so the kernel streams both with unit stride and
// keeps 24 of the 32 vector registers as accumulators. Compiled for AVX-512 with a target attribute, so the
// library's default (generic x86-64) build gets it too; gemm.hpp calls it when the CPU has AVX-512F.
//
// The blocking depends on the shape alone, never on the thread count, and each call runs on the calling
// thread, so results are bitwise reproducible as kernels/conv2d.hpp requires.

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define RESNET_HAVE_SGEMM_AVX512 1
#endif

namespace resnet::kernels {

#ifdef RESNET_HAVE_SGEMM_AVX512

namespace avx512 {

constexpr std::int64_t kTileRows = 12;       // MR: rows of op(A) per micro-tile, broadcast one at a time
constexpr std::int64_t kTileColumns = 32;    // NR: two 16-float vectors of op(B) per row
constexpr std::int64_t kDepthBlock = 256;    // KC: a 256 x 32 B panel (32 KB) stays in the 48 KB L1
constexpr std::int64_t kRowBlock = 144;      // MC: a 144 x 256 A block (144 KB) stays in L2
constexpr std::int64_t kColumnBlock = 1536;  // NC: a 256 x 1536 B block (1.5 MB) stays in L2 / L3

inline bool cpu_supported() {
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return supported;
}

// C[rows, columns] (row stride ldc) = alpha * sum_k a[k][0 .. rows)^T b[k][0 .. 32) + beta * C, for a tile of
// at most kTileRows x kTileColumns; beta == 0 does not read C. The row count is a template parameter so each
// height gets fully unrolled code with only its own accumulators, and partial column tiles are masked, so
// edges cost no extra pass.
template <int rows>
__attribute__((target("avx512f,fma"))) void micro_tile(std::int64_t depth, const float* a, const float* b,
                                                       float alpha, float beta, float* c, std::int64_t ldc,
                                                       std::int64_t columns) {
  __m512 acc[rows][2];
  for (auto& row : acc)
    row[0] = row[1] = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < depth; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    for (int r = 0; r < rows; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += kTileRows;
    b += kTileColumns;
  }
  const auto mask_of = [](std::int64_t n) {
    return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
  };
  const __mmask16 masks[2] = {mask_of(columns), mask_of(columns - 16)};
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int r = 0; r < rows; ++r) {
    float* row = c + r * ldc;
    for (int h = 0; h < 2; ++h) {
      __m512 value = _mm512_mul_ps(va, acc[r][h]);
      if (beta != 0.0f) value = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(masks[h], row + 16 * h), value);
      _mm512_mask_storeu_ps(row + 16 * h, masks[h], value);
    }
  }
}

using MicroTile = void (*)(std::int64_t, const float*, const float*, float, float, float*, std::int64_t,
                           std::int64_t);

// micro_tile<rows> for rows = 1 .. kTileRows, indexed by rows - 1.
template <int... rows>
constexpr std::array<MicroTile, sizeof...(rows)> micro_tiles(std::integer_sequence<int, rows...>) {
  return {&micro_tile<rows + 1>...};
}
inline const auto& micro_tile_for_rows() {
  static constexpr auto table = micro_tiles(std::make_integer_sequence<int, kTileRows>{});
  return table;
}

// Transposes 16 rows of 16 floats in registers: rows[k] becomes column k (unpack pairs, then shuffle pairs
// of pairs, then 128-bit lanes twice). The zero-masked forms with every lane selected are the plain
// instructions; GCC 12's unmasked ones start from _mm512_undefined_ps, which -Wmaybe-uninitialized flags.
__attribute__((target("avx512f"))) inline void transpose_16x16(__m512 rows[16]) {
  constexpr __mmask16 all = 0xFFFF;
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_ps(all, rows[2 * i], rows[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_ps(all, rows[2 * i], rows[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    rows[4 * i] = _mm512_maskz_shuffle_ps(all, t[4 * i], t[4 * i + 2], 0x44);
    rows[4 * i + 1] = _mm512_maskz_shuffle_ps(all, t[4 * i], t[4 * i + 2], 0xEE);
    rows[4 * i + 2] = _mm512_maskz_shuffle_ps(all, t[4 * i + 1], t[4 * i + 3], 0x44);
    rows[4 * i + 3] = _mm512_maskz_shuffle_ps(all, t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_maskz_shuffle_f32x4(all, rows[i], rows[4 + i], 0x88);
    t[4 + i] = _mm512_maskz_shuffle_f32x4(all, rows[i], rows[4 + i], 0xDD);
    t[8 + i] = _mm512_maskz_shuffle_f32x4(all, rows[8 + i], rows[12 + i], 0x88);
    t[12 + i] = _mm512_maskz_shuffle_f32x4(all, rows[8 + i], rows[12 + i], 0xDD);
  }
  for (int i = 0; i < 4; ++i) {
    rows[i] = _mm512_maskz_shuffle_f32x4(all, t[i], t[8 + i], 0x88);
    rows[4 + i] = _mm512_maskz_shuffle_f32x4(all, t[4 + i], t[12 + i], 0x88);
    rows[8 + i] = _mm512_maskz_shuffle_f32x4(all, t[i], t[8 + i], 0xDD);
    rows[12 + i] = _mm512_maskz_shuffle_f32x4(all, t[4 + i], t[12 + i], 0xDD);
  }
}

// op(A)[i0 .. i0+rows, k0 .. k0+depth] into panels of kTileRows rows, each [depth][kTileRows], zero-padded.
// A weight matrix is A, [M, K] row-major, and at batch 1 packing it took a quarter of a layer4 GEMM one
// element at a time: 16 depths of a panel's rows are read as vectors and transposed in registers instead.
__attribute__((target("avx512f"))) inline void pack_a(bool transpose, const float* A, std::int64_t lda,
                                                      std::int64_t i0, std::int64_t rows, std::int64_t k0,
                                                      std::int64_t depth, float* packed) {
  static_assert(kTileRows <= 16, "a panel row is one masked vector");
  constexpr __mmask16 kPanel = (1u << kTileRows) - 1;
  for (std::int64_t p = 0; p < rows; p += kTileRows) {
    const std::int64_t height = std::min(kTileRows, rows - p);
    const float* a = transpose ? A + k0 * lda + i0 + p : A + (i0 + p) * lda + k0;
    std::int64_t k = 0;
    if (transpose) {  // op(A)[i, k] = A[k, i]: each depth's panel row is contiguous
      const __mmask16 inside = static_cast<__mmask16>((1u << height) - 1);
      for (; k < depth; ++k)
        _mm512_mask_storeu_ps(packed + k * kTileRows, kPanel, _mm512_maskz_loadu_ps(inside, a + k * lda));
    } else {
      for (; k + 16 <= depth; k += 16) {
        __m512 block[16];
        for (int r = 0; r < 16; ++r)
          block[r] = r < height ? _mm512_loadu_ps(a + r * lda + k) : _mm512_setzero_ps();
        transpose_16x16(block);
        for (int j = 0; j < 16; ++j)
          _mm512_mask_storeu_ps(packed + (k + j) * kTileRows, kPanel, block[j]);
      }
      for (; k < depth; ++k) {
        for (std::int64_t r = 0; r < kTileRows; ++r)
          packed[k * kTileRows + r] = r < height ? a[r * lda + k] : 0.0f;
      }
    }
    packed += depth * kTileRows;
  }
}

// op(B)[k0 .. k0+depth, j0 .. j0+columns] into panels of kTileColumns columns, each [depth][kTileColumns].
inline void pack_b(bool transpose, const float* B, std::int64_t ldb, std::int64_t k0, std::int64_t depth,
                   std::int64_t j0, std::int64_t columns, float* packed) {
  for (std::int64_t p = 0; p < columns; p += kTileColumns) {
    const std::int64_t width = std::min(kTileColumns, columns - p);
    if (transpose) {
      // op(B)[k, j] = B[j, k]: read each of the panel's columns with unit stride.
      if (width < kTileColumns) std::fill(packed, packed + depth * kTileColumns, 0.0f);
      for (std::int64_t j = 0; j < width; ++j) {
        const float* src = B + (j0 + p + j) * ldb + k0;
        for (std::int64_t k = 0; k < depth; ++k)
          packed[k * kTileColumns + j] = src[k];
      }
    } else {
      for (std::int64_t k = 0; k < depth; ++k) {
        const float* src = B + (k0 + k) * ldb + j0 + p;
        float* dst = packed + k * kTileColumns;
        std::memcpy(dst, src, static_cast<std::size_t>(width) * sizeof(float));
        std::fill(dst + width, dst + kTileColumns, 0.0f);
      }
    }
    packed += depth * kTileColumns;
  }
}

// The packing buffers of the calling thread, 64-byte aligned, grown once and kept.
inline float* thread_buffer(std::int64_t floats, int which) {
  struct Buffer {
    std::vector<float> storage;
    float* aligned(std::int64_t n) {
      if (static_cast<std::int64_t>(storage.size()) < n + 16)
        storage.resize(static_cast<std::size_t>(n + 16));
      const auto address = reinterpret_cast<std::uintptr_t>(storage.data());
      return storage.data() + ((64 - address % 64) % 64) / sizeof(float);
    }
  };
  thread_local Buffer buffers[2];
  return buffers[which].aligned(floats);
}

// The same contract as kernels::gemm (row-major, leading dimensions, beta == 0 does not read C).
inline void sgemm(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K,
                  float alpha, const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta,
                  float* C, std::int64_t ldc) {
  const auto round_up = [](std::int64_t n, std::int64_t to) { return (n + to - 1) / to * to; };
  float* packed_b =
      thread_buffer(std::min(kDepthBlock, K) * round_up(std::min(kColumnBlock, N), kTileColumns), 0);
  float* packed_a = thread_buffer(std::min(kDepthBlock, K) * round_up(std::min(kRowBlock, M), kTileRows), 1);
  for (std::int64_t j0 = 0; j0 < N; j0 += kColumnBlock) {
    const std::int64_t columns = std::min(kColumnBlock, N - j0);
    for (std::int64_t k0 = 0; k0 < K; k0 += kDepthBlock) {
      const std::int64_t depth = std::min(kDepthBlock, K - k0);
      const float block_beta = k0 == 0 ? beta : 1.0f;  // later depth blocks add to what the first wrote
      pack_b(transpose_b, B, ldb, k0, depth, j0, columns, packed_b);
      for (std::int64_t i0 = 0; i0 < M; i0 += kRowBlock) {
        const std::int64_t rows = std::min(kRowBlock, M - i0);
        pack_a(transpose_a, A, lda, i0, rows, k0, depth, packed_a);
        for (std::int64_t jr = 0; jr < columns; jr += kTileColumns) {
          const float* b_panel = packed_b + jr * depth;
          const std::int64_t width = std::min(kTileColumns, columns - jr);
          for (std::int64_t ir = 0; ir < rows; ir += kTileRows) {
            const std::int64_t height = std::min(kTileRows, rows - ir);
            micro_tile_for_rows()[height - 1](depth, packed_a + ir * depth, b_panel, alpha, block_beta,
                                              C + (i0 + ir) * ldc + j0 + jr, ldc, width);
          }
        }
      }
    }
  }
}

}  // namespace avx512

#endif  // RESNET_HAVE_SGEMM_AVX512

}  // namespace resnet::kernels
