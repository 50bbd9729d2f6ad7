#pragma once
// Single-precision GEMM for AVX-512 CPUs, in the classic packed form (Goto and van de Geijn, "Anatomy of
// high-performance matrix multiplication", 2008): op(A) and op(B) are copied into cache-sized blocks laid out
// in the order a 12x32 register-tile micro-kernel reads them, so the kernel streams both with unit stride and
// keeps 24 of the 32 vector registers as accumulators; and sgemm_narrow, for products of fewer than 256
// columns, which keeps rows of C in vectors instead. Compiled for AVX-512 with a target attribute, so the
// library's default (generic x86-64) build gets them too; gemm.hpp calls them on any build when the CPU has
// AVX-512F. The register tiles' loops carry `#pragma GCC unroll`: at -O2, GCC would not unroll them and
// would keep the accumulators in memory (benchmarks/README.md).
//
// The blocking depends on the shape alone, never on the thread count, and each call runs on the calling
// thread, so results are bitwise reproducible as kernels/conv2d.hpp requires.

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "resnet/core/cpu_features.hpp"
#include "resnet/core/error.hpp"

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

// Whether these kernels run: the CPU has AVX-512F and FMA, and the cap allows them (core/cpu_features.hpp).
inline bool cpu_supported() {
  return isa_enabled(Isa::Avx512);
}

// The first n of a vector's 16 lanes: none for n <= 0, all for n >= 16.
constexpr __mmask16 first_lanes(std::int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
}

// {instance(1), ..., instance(count)} for a kernel templated on a tile size, so that a size known only at
// run time indexes a table of fully unrolled instances (entry size - 1).
template <typename Instance, int... sizes>
constexpr auto instances(Instance instance, std::integer_sequence<int, sizes...>) {
  return std::array{instance(std::integral_constant<int, sizes + 1>{})...};
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
#pragma GCC unroll 16
  for (auto& row : acc)
    row[0] = row[1] = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < depth; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
    for (int r = 0; r < rows; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += kTileRows;
    b += kTileColumns;
  }
  const __mmask16 masks[2] = {first_lanes(columns), first_lanes(columns - 16)};
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int r = 0; r < rows; ++r) {
    float* row = c + r * ldc;
#pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
      __m512 value = _mm512_mul_ps(va, acc[r][h]);
      if (beta != 0.0f) value = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(masks[h], row + 16 * h), value);
      _mm512_mask_storeu_ps(row + 16 * h, masks[h], value);
    }
  }
}

// micro_tile<rows> for rows = 1 .. kTileRows, indexed by rows - 1.
inline const auto& micro_tile_for_rows() {
  static constexpr auto table = instances([](auto rows) { return &micro_tile<decltype(rows)::value>; },
                                          std::make_integer_sequence<int, kTileRows>{});
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

// op(A)[i0 .. i0+rows, k0 .. k0+depth] into panels of `panel` rows, each [depth][panel], zero-padded: a panel
// row is one masked vector per 16 rows. A weight matrix is A, [M, K] row-major, whose panel rows are strided
// columns: rather than read them one element at a time, 16 depths of 16 rows are read as vectors and
// transposed in registers (at one image each weight is used only N times, so its packing shows in the GEMM).
template <int panel = kTileRows>
__attribute__((target("avx512f"))) void pack_a(bool transpose, const float* A, std::int64_t lda,
                                               std::int64_t i0, std::int64_t rows, std::int64_t k0,
                                               std::int64_t depth, float* packed) {
  for (std::int64_t p = 0; p < rows; p += panel) {
    for (int r0 = 0; r0 < panel; r0 += 16) {  // 16 rows of the panel at a time
      const std::int64_t height =
          std::clamp<std::int64_t>(std::min<std::int64_t>(rows - p, panel) - r0, 0, 16);
      const __mmask16 lanes = first_lanes(panel - r0), inside = first_lanes(height);
      const std::int64_t first_row = i0 + p + r0;  // of A, read only if height > 0
      const float* a = height == 0 ? A : transpose ? A + k0 * lda + first_row : A + first_row * lda + k0;
      float* out = packed + r0;
      std::int64_t k = 0;
      if (transpose) {  // op(A)[i, k] = A[k, i]: each depth's panel row is contiguous
        for (; k < depth; ++k)
          _mm512_mask_storeu_ps(out + k * panel, lanes, _mm512_maskz_loadu_ps(inside, a + k * lda));
      } else {
        for (; k + 16 <= depth; k += 16) {
          __m512 block[16];
          for (int r = 0; r < 16; ++r)
            block[r] = r < height ? _mm512_loadu_ps(a + r * lda + k) : _mm512_setzero_ps();
          transpose_16x16(block);
          for (int j = 0; j < 16; ++j)
            _mm512_mask_storeu_ps(out + (k + j) * panel, lanes, block[j]);
        }
        for (; k < depth; ++k) {
          for (int r = 0; r < std::min(16, panel - r0); ++r)
            out[k * panel + r] = r < height ? a[r * lda + k] : 0.0f;
        }
      }
    }
    packed += depth * panel;
  }
}

// op(B)[k0 .. k0+depth, j0 .. j0+columns] into panels of kTileColumns columns, each [depth][kTileColumns].
// A transposed B (a weight gradient's cols^T, Linear's weight^T) is read as A is in pack_a: 16 depths of
// 16 columns as vectors, transposed in registers.
__attribute__((target("avx512f"))) inline void pack_b(bool transpose, const float* B, std::int64_t ldb,
                                                      std::int64_t k0, std::int64_t depth, std::int64_t j0,
                                                      std::int64_t columns, float* packed) {
  for (std::int64_t p = 0; p < columns; p += kTileColumns) {
    const std::int64_t width = std::min(kTileColumns, columns - p);
    if (transpose) {
      // op(B)[k, j] = B[j, k]: each of the panel's columns is a row of B.
      for (int c0 = 0; c0 < kTileColumns; c0 += 16) {
        const std::int64_t height = std::clamp<std::int64_t>(width - c0, 0, 16);
        const float* src = height == 0 ? B : B + (j0 + p + c0) * ldb + k0;
        for (std::int64_t k = 0; k < depth; k += 16) {
          const __mmask16 inside = first_lanes(depth - k);
          __m512 block[16];
          for (int j = 0; j < 16; ++j)
            block[j] = j < height ? _mm512_maskz_loadu_ps(inside, src + j * ldb + k) : _mm512_setzero_ps();
          transpose_16x16(block);  // block[d] = depth k + d of columns c0 .. c0 + 16
          for (std::int64_t d = 0; d < std::min<std::int64_t>(16, depth - k); ++d)
            _mm512_store_ps(packed + (k + d) * kTileColumns + c0, block[d]);
        }
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

// The packing buffers of the calling thread, 64-byte aligned, grown to the largest request and kept until
// the thread exits (core/buffer_pool.hpp lists such state): [0] B, [1] A, [2] sgemm_narrow's sums.
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
  thread_local Buffer buffers[3];
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

// GEMM for few columns (B [K, N] with N under 256: the 14x14 and 7x7 maps of one image). The kernel above
// spreads a row of C over 32 columns, so at N = 49 it computes 64 and keeps 49. This one turns the tile
// around: 32 rows of C in two vectors (a panel of A) times up to 12 columns (each B value broadcast), and
// cuts N into tiles of nearly equal width (49 = 4 x 10 + 9, not 4 x 12 + 1). At one image every weight is
// used only N times, so streaming A from memory costs as much as the arithmetic: while a panel computes, the
// kernel prefetches the rows of A the next panel will pack, a cache line every other depth (so with fewer
// than 4 column tiles, only part of them).
constexpr std::int64_t kNarrowPanelRows = 32;
constexpr int kNarrowTileColumns = 12;
constexpr std::int64_t kNarrowDepthBlock = 256;  // a 256 x 32 panel of A (32 KB) stays in L1
constexpr std::int64_t kNarrowMaxColumns = 255;  // gemm.hpp sends fewer than 256 columns here
constexpr std::int64_t kMaxNarrowTiles = (kNarrowMaxColumns + kNarrowTileColumns - 1) / kNarrowTileColumns;

// Cache lines of a block of A's rows, handed out one at a time: the block's rows in order, each from its
// start for `row_lines` lines of 16 floats (a panel packed ahead is one such row). `remaining` is how many
// the holder may still take.
struct RowLines {
  const float* row = nullptr;
  std::int64_t lda = 0, row_lines = 0, rows_after = 0, line = 0, remaining = 0;
  const float* next() {
    const float* at = row + 16 * line;
    --remaining;
    if (++line == row_lines && rows_after > 0) {  // never steps past the block's last row
      line = 0;
      row += lda;
      --rows_after;
    }
    return at;
  }
};

// tile [columns][32] = sum_k a[k][0 .. 32) b[k][0 .. columns) (+ tile unless `first`): a packed panel of A
// times a packed row block of B ([depth][columns]), prefetching into L2 a line of `ahead` every other depth.
template <int columns>
__attribute__((target("avx512f,fma"))) void narrow_tile(std::int64_t depth, const float* a, const float* b,
                                                        bool first, float* tile, RowLines* ahead) {
  __m512 acc[columns][2];
#pragma GCC unroll 16
  for (int j = 0; j < columns; ++j) {
    acc[j][0] = first ? _mm512_setzero_ps() : _mm512_load_ps(tile + j * kNarrowPanelRows);
    acc[j][1] = first ? _mm512_setzero_ps() : _mm512_load_ps(tile + j * kNarrowPanelRows + 16);
  }
  for (std::int64_t k = 0; k < depth; ++k) {
    const __m512 a0 = _mm512_load_ps(a), a1 = _mm512_load_ps(a + 16);
#pragma GCC unroll 16
    for (int j = 0; j < columns; ++j) {
      const __m512 bj = _mm512_set1_ps(b[j]);
      acc[j][0] = _mm512_fmadd_ps(a0, bj, acc[j][0]);
      acc[j][1] = _mm512_fmadd_ps(a1, bj, acc[j][1]);
    }
    if ((k & 1) == 0 && ahead->remaining > 0)
      _mm_prefetch(reinterpret_cast<const char*>(ahead->next()), _MM_HINT_T1);
    a += kNarrowPanelRows;
    b += columns;
  }
#pragma GCC unroll 16
  for (int j = 0; j < columns; ++j) {
    _mm512_store_ps(tile + j * kNarrowPanelRows, acc[j][0]);
    _mm512_store_ps(tile + j * kNarrowPanelRows + 16, acc[j][1]);
  }
}

// narrow_tile<columns> for columns = 1 .. kNarrowTileColumns, indexed by columns - 1.
inline const auto& narrow_tile_for_columns() {
  static constexpr auto table = instances([](auto columns) { return &narrow_tile<decltype(columns)::value>; },
                                          std::make_integer_sequence<int, kNarrowTileColumns>{});
  return table;
}

// B [depth, N] (row stride ldb) as one [depth][columns] block per column tile, row by row (so B is read in
// order), a masked vector per tile.
__attribute__((target("avx512f"))) inline void pack_narrow_b(const float* B, std::int64_t ldb,
                                                             std::int64_t depth, std::int64_t N,
                                                             std::int64_t tiles, float* packed) {
  static_assert(kNarrowTileColumns <= 16, "a tile row is one masked vector");
  std::int64_t starts[kMaxNarrowTiles + 1];
  __mmask16 masks[kMaxNarrowTiles];
  for (std::int64_t t = 0; t <= tiles; ++t)
    starts[t] = t * N / tiles;
  for (std::int64_t t = 0; t < tiles; ++t)
    masks[t] = first_lanes(starts[t + 1] - starts[t]);
  for (std::int64_t k = 0; k < depth; ++k) {
    for (std::int64_t t = 0; t < tiles; ++t) {
      const std::int64_t j0 = starts[t], columns = starts[t + 1] - j0;
      _mm512_mask_storeu_ps(packed + j0 * depth + k * columns, masks[t],
                            _mm512_maskz_loadu_ps(masks[t], B + k * ldb + j0));
    }
  }
}

// C [rows, N] = alpha * sums^T + beta * C for the sums [N][32] of one panel: 16 x 16 blocks transposed in
// registers.
__attribute__((target("avx512f,fma"))) inline void store_narrow_panel(const float* sums, std::int64_t rows,
                                                                      std::int64_t N, float alpha, float beta,
                                                                      float* C, std::int64_t ldc) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (std::int64_t j0 = 0; j0 < N; j0 += 16) {
    const std::int64_t width = std::min<std::int64_t>(16, N - j0);
    const __mmask16 mask = first_lanes(width);
    for (std::int64_t r0 = 0; r0 < rows; r0 += 16) {
      __m512 block[16];
      for (int j = 0; j < 16; ++j)
        block[j] = j < width ? _mm512_load_ps(sums + (j0 + j) * kNarrowPanelRows + r0) : _mm512_setzero_ps();
      transpose_16x16(block);  // block[r] = row r0 + r of C, columns j0 ..
      for (std::int64_t r = 0; r < std::min<std::int64_t>(16, rows - r0); ++r) {
        float* c = C + (r0 + r) * ldc + j0;
        __m512 value = _mm512_mul_ps(va, block[r]);
        if (beta != 0.0f) value = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, c), value);
        _mm512_mask_storeu_ps(c, mask, value);
      }
    }
  }
}

// A [M, K] (row stride lda) packed ahead of time for sgemm_narrow, in the order it reads A: for each depth
// block, each 32-row panel as [depth][32], zero-padded. An eval-mode conv packs its weight once this way, so
// that a GEMM of one image, which uses each weight only N times, does not pack it again at every call
// (measurements: benchmarks/README.md).
inline std::int64_t narrow_packed_size(std::int64_t M, std::int64_t K) {
  return (M + kNarrowPanelRows - 1) / kNarrowPanelRows * kNarrowPanelRows * K;
}
inline void pack_narrow_a(const float* A, std::int64_t lda, std::int64_t M, std::int64_t K, float* packed) {
  for (std::int64_t k0 = 0; k0 < K; k0 += kNarrowDepthBlock) {
    const std::int64_t depth = std::min(kNarrowDepthBlock, K - k0);
    pack_a<kNarrowPanelRows>(false, A, lda, 0, M, k0, depth, packed);
    packed += narrow_packed_size(M, depth);
  }
}

// C = alpha * A [M, K] x B [K, N] + beta * C, row-major with leading dimensions, no transposes; beta == 0
// does not read C; N at most kNarrowMaxColumns. A is read from `packed_a` (64-byte aligned) when it was
// packed ahead by pack_narrow_a, else from A. For each depth block: B is packed once, then each panel of A
// (packed as it comes, if it was not) is multiplied by every column tile, the products summed over depth
// blocks in a buffer of C^T.
inline void sgemm_narrow(std::int64_t M, std::int64_t N, std::int64_t K, float alpha, const float* A,
                         std::int64_t lda, const float* B, std::int64_t ldb, float beta, float* C,
                         std::int64_t ldc, const float* packed_a = nullptr) {
  check(N <= kNarrowMaxColumns, "sgemm_narrow: ", N, " columns, at most ", kNarrowMaxColumns);
  check(reinterpret_cast<std::uintptr_t>(packed_a) % 64 == 0,
        "sgemm_narrow: packed A is not 64-byte aligned");
  const std::int64_t panels = (M + kNarrowPanelRows - 1) / kNarrowPanelRows;
  const std::int64_t tiles = (N + kNarrowTileColumns - 1) / kNarrowTileColumns;
  const std::int64_t blocks = (K + kNarrowDepthBlock - 1) / kNarrowDepthBlock;
  float* packing = packed_a ? nullptr : thread_buffer(std::min(K, kNarrowDepthBlock) * kNarrowPanelRows, 1);
  float* packed_b = thread_buffer(std::min(K, kNarrowDepthBlock) * N, 0);
  float* sums = thread_buffer(panels * N * kNarrowPanelRows, 2);  // [panels][N][32]
  // Panel p of depth block d is step d * panels + p. The packed panel of a step, if A was packed ahead.
  const auto packed_panel = [&](std::int64_t block, std::int64_t panel) {
    const std::int64_t k0 = block * kNarrowDepthBlock;
    return packed_a + narrow_packed_size(M, k0) +
           panel * std::min(kNarrowDepthBlock, K - k0) * kNarrowPanelRows;
  };
  // What the prefetcher reads for a step: A's rows of it, or its packed panel.
  const auto lines_of = [&](std::int64_t step) {
    if (step >= panels * blocks) return RowLines{};
    const std::int64_t block = step / panels, panel = step % panels;
    const std::int64_t i0 = panel * kNarrowPanelRows, k0 = block * kNarrowDepthBlock;
    const std::int64_t rows = std::min(kNarrowPanelRows, M - i0), depth = std::min(kNarrowDepthBlock, K - k0);
    if (packed_a) {
      const std::int64_t lines = depth * kNarrowPanelRows / 16;
      return RowLines{packed_panel(block, panel), 0, lines, 0, 0, lines};
    }
    const std::int64_t row_lines = (depth + 15) / 16;
    return RowLines{A + i0 * lda + k0, lda, row_lines, rows - 1, 0, rows * row_lines};
  };
  for (std::int64_t block = 0; block < blocks; ++block) {
    const std::int64_t k0 = block * kNarrowDepthBlock, depth = std::min(kNarrowDepthBlock, K - k0);
    pack_narrow_b(B + k0 * ldb, ldb, depth, N, tiles, packed_b);
    for (std::int64_t panel = 0; panel < panels; ++panel) {
      const std::int64_t i0 = panel * kNarrowPanelRows;
      const float* a = packed_a ? packed_panel(block, panel) : packing;
      if (!packed_a)
        pack_a<kNarrowPanelRows>(false, A, lda, i0, std::min(kNarrowPanelRows, M - i0), k0, depth, packing);
      RowLines ahead = lines_of(block * panels + panel + 1);
      const std::int64_t lines = std::exchange(ahead.remaining, 0);
      for (std::int64_t t = 0; t < tiles; ++t) {
        const std::int64_t j0 = t * N / tiles, columns = (t + 1) * N / tiles - j0;
        // The lines spread over the tiles, plus what earlier tiles had no steps for.
        ahead.remaining += (t + 1) * lines / tiles - t * lines / tiles;
        narrow_tile_for_columns()[columns - 1](depth, a, packed_b + j0 * depth, block == 0,
                                               sums + (panel * N + j0) * kNarrowPanelRows, &ahead);
      }
    }
  }
  for (std::int64_t panel = 0; panel < panels; ++panel) {
    const std::int64_t i0 = panel * kNarrowPanelRows;
    store_narrow_panel(sums + panel * N * kNarrowPanelRows, std::min(kNarrowPanelRows, M - i0), N, alpha,
                       beta, C + i0 * ldc, ldc);
  }
}

}  // namespace avx512

#endif  // RESNET_HAVE_SGEMM_AVX512

}  // namespace resnet::kernels
