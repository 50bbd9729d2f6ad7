#pragma once
// bf16 GEMM for CPUs with AVX512-BF16: C = alpha * op(A) op(B) + beta * C with A and B in bfloat16 and C in
// float, the products summed in float. vdpbf16ps (_mm512_dpbf16_ps) multiplies, in each of 16 float lanes, a
// pair of bf16 values of one operand by a pair of the other and adds both products to the lane: a depth pair
// per lane, twice the multiply-adds of an FMA. The structure is sgemm_avx512.hpp's (packed Goto blocks, a
// register tile of 24 accumulators, a row-tiled form for few columns) with depths taken two at a time.
//
// Packed layout ("pair panel" of width W): [ceil(depth / 2)][W][2] bf16, the values of depths 2p and 2p + 1
// of lane x adjacent, so a 32-bit word is one lane's pair (broadcast with _mm512_set1_epi32) and 64 bytes are
// 16 lanes x 2 depths (the vector vdpbf16ps reads). An odd depth pads its last pair with zero, lanes past the
// operand's edge are zero.
//  - op(A) is packed in panels of kPanelRows = 32 rows, and the same way in both forms below.
//  - wide form: op(B) in panels of 32 columns, two vectors a pair; each tile broadcasts <= 12 rows of A.
//  - narrow form (few columns): A's panel is the vector operand (32 rows in two vectors) and B is broadcast,
//    in column tiles of <= 12; sums kept as C^T and transposed at the end, as sgemm_narrow does.
// Compiled for AVX512-BF16 with target attributes, so the library's default x86-64 build has it too. Loops
// over a tile's registers carry #pragma GCC unroll, so that -O2 keeps them in registers as -O3 does.
//
// The blocking depends on the shape alone, never on the thread count, and each call runs on the calling
// thread, so results are bitwise reproducible; A packed ahead (pack_a) gives bitwise the same results.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "resnet/core/bfloat16.hpp"
#include "resnet/core/cpu_features.hpp"
#include "resnet/core/error.hpp"
#include "resnet/kernels/sgemm_avx512.hpp"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define RESNET_HAVE_BGEMM_AVX512 1
#endif

namespace resnet::kernels {

#ifdef RESNET_HAVE_BGEMM_AVX512

namespace avx512_bf16 {

constexpr std::int64_t kPanelRows = 32;    // rows of op(A) per packed panel: two vectors of 16 lanes
constexpr int kTileRows = 12;              // wide: rows of a tile, broadcast one pair at a time
constexpr std::int64_t kTileColumns = 32;  // wide: columns of a tile, two vectors of op(B)
// The float kernel's blocks in bytes, with twice the depth: bf16 is half the size.
constexpr std::int64_t kDepthBlock = 512;        // KC: a 512 x 32 bf16 B panel (32 KB) for the L1
constexpr std::int64_t kRowBlock = 160;          // MC: a 160 x 512 bf16 A block (160 KB) stays in L2
constexpr std::int64_t kColumnBlock = 1536;      // NC: a 512 x 1536 bf16 B block (1.5 MB) stays in L2 / L3
constexpr int kNarrowTileColumns = 12;           // narrow: columns of a tile, broadcast one pair at a time
constexpr std::int64_t kNarrowDepthBlock = 512;  // a 512 x 32 bf16 A panel (32 KB) for the L1
constexpr std::int64_t kNarrowMaxColumns = 255;  // the narrow form's C^T sums: at most 255 x M floats

static_assert(kPanelRows == avx512::kNarrowPanelRows, "the narrow sums are stored by store_narrow_panel");
static_assert(kDepthBlock % 2 == 0 && kNarrowDepthBlock % 2 == 0, "depth blocks start on a pair");
static_assert(kRowBlock % kPanelRows == 0, "row blocks are whole panels");

// Whether the CPU runs these kernels, under the cap of set_max_isa (core/cpu_features.hpp).
inline bool cpu_supported() {
  return isa_enabled(Isa::Avx512Bf16);
}

// Whether bgemm runs the narrow form for these M and N: with few columns, when tiling rows (32 at a time)
// pads clearly less than tiling columns (32 at a time): the padded products of the narrow form under 49/50 of
// the wide form's; near-ties go to the wide form, whose B packing is cheaper. At N = 49 the wide form
// computes 64 columns, the narrow one 49 (M a multiple of 32).
inline bool runs_narrow(std::int64_t M, std::int64_t N) {
  const auto round_up = [](std::int64_t n, std::int64_t to) { return (n + to - 1) / to * to; };
  return N <= kNarrowMaxColumns && 50 * round_up(M, kPanelRows) * N < 49 * M * round_up(N, kTileColumns);
}

// The first n of 32 bf16 lanes: none for n <= 0, all for n >= 32.
constexpr __mmask32 first_halves(std::int64_t n) {
  return n >= 32 ? 0xFFFFFFFFu : n <= 0 ? 0u : (1u << n) - 1;
}

// The pair of bf16 at p as one 32-bit word in every lane.
__attribute__((target("avx512f,avx512bf16"))) inline __m512bh broadcast_pair(const bfloat16* p) {
  std::uint32_t word;
  std::memcpy(&word, p, sizeof word);
  return (__m512bh)_mm512_set1_epi32(static_cast<int>(word));
}

// 16 lanes' pairs at p (64-byte aligned).
__attribute__((target("avx512f,avx512bf16"))) inline __m512bh vector_pairs(const bfloat16* p) {
  return (__m512bh)_mm512_load_si512(p);
}

// Transposes 16 rows of 16 32-bit words in registers, rows[k] becoming column k: unpack words, then pairs of
// words, then 128-bit lanes twice. Always inlined into the packing loop, so the rows stay in registers. The
// zero-masked forms with every lane selected are the plain instructions (the unmasked ones start from an
// undefined vector, which GCC 12's -Wmaybe-uninitialized flags).
__attribute__((target("avx512f"), always_inline)) inline void transpose_words(__m512i rows[16]) {
  constexpr __mmask16 all = 0xFFFF;
  constexpr __mmask8 all8 = 0xFF;
  __m512i t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_epi32(all, rows[2 * i], rows[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_epi32(all, rows[2 * i], rows[2 * i + 1]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    rows[4 * i] = _mm512_maskz_unpacklo_epi64(all8, t[4 * i], t[4 * i + 2]);
    rows[4 * i + 1] = _mm512_maskz_unpackhi_epi64(all8, t[4 * i], t[4 * i + 2]);
    rows[4 * i + 2] = _mm512_maskz_unpacklo_epi64(all8, t[4 * i + 1], t[4 * i + 3]);
    rows[4 * i + 3] = _mm512_maskz_unpackhi_epi64(all8, t[4 * i + 1], t[4 * i + 3]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_maskz_shuffle_i32x4(all, rows[i], rows[4 + i], 0x88);
    t[4 + i] = _mm512_maskz_shuffle_i32x4(all, rows[i], rows[4 + i], 0xDD);
    t[8 + i] = _mm512_maskz_shuffle_i32x4(all, rows[8 + i], rows[12 + i], 0x88);
    t[12 + i] = _mm512_maskz_shuffle_i32x4(all, rows[8 + i], rows[12 + i], 0xDD);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    rows[i] = _mm512_maskz_shuffle_i32x4(all, t[i], t[8 + i], 0x88);
    rows[4 + i] = _mm512_maskz_shuffle_i32x4(all, t[4 + i], t[12 + i], 0x88);
    rows[8 + i] = _mm512_maskz_shuffle_i32x4(all, t[i], t[8 + i], 0xDD);
    rows[12 + i] = _mm512_maskz_shuffle_i32x4(all, t[4 + i], t[12 + i], 0xDD);
  }
}

// X(k, x) for k in [k0, k0 + depth), x in [x0, x0 + width) as a pair panel of width `panel` >= width
// (zero-padded), where X(k, x) is X[x * ld + k] if depth_contiguous, else X[k * ld + x]. Depth-contiguous
// lanes (A [M, K], B [N, K]) are pairs already: 16 lanes x 16 pairs are read as 16 vectors and transposed as
// 32-bit words in registers. Lane-contiguous rows (B [K, N], A [K, M]) are interleaved two rows at a time.
__attribute__((target("avx512f,avx512bw"))) inline void pack_pairs(const bfloat16* X, std::int64_t ld,
                                                                   bool depth_contiguous, std::int64_t k0,
                                                                   std::int64_t depth, std::int64_t x0,
                                                                   std::int64_t width, std::int64_t panel,
                                                                   bfloat16* out) {
  const std::int64_t pairs = (depth + 1) / 2;
  if (depth_contiguous) {
    for (std::int64_t c0 = 0; c0 < panel; c0 += 16) {
      const std::int64_t height = std::clamp<std::int64_t>(width - c0, 0, 16);
      const __mmask16 lanes = avx512::first_lanes(panel - c0);
      const bfloat16* x = height == 0 ? X : X + (x0 + c0) * ld + k0;  // read only if height > 0
      for (std::int64_t p0 = 0; p0 < pairs; p0 += 16) {
        const __mmask32 inside = first_halves(depth - 2 * p0);  // zero past the depth, odd pad included
        __m512i block[16];
#pragma GCC unroll 16
        for (int r = 0; r < 16; ++r)
          block[r] =
              r < height ? _mm512_maskz_loadu_epi16(inside, x + r * ld + 2 * p0) : _mm512_setzero_si512();
        transpose_words(block);                 // block[j] = pair p0 + j of 16 lanes
        const std::int64_t count = pairs - p0;  // pairs to store, of 16
        bfloat16* o = out + (p0 * panel + c0) * 2;
#pragma GCC unroll 16
        for (int j = 0; j < 16; ++j) {
          if (j < count) _mm512_mask_storeu_epi32(o + j * panel * 2, lanes, block[j]);
        }
      }
    }
    return;
  }
  // Word i of `low` picks bf16 i of the first row then i of the second (index 32 + i); `high`, 16 + i.
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i low =
      _mm512_add_epi32(_mm512_add_epi32(iota, _mm512_slli_epi32(iota, 16)), _mm512_set1_epi32(32 << 16));
  const __m512i high = _mm512_add_epi32(low, _mm512_set1_epi32(16 | 16 << 16));
  for (std::int64_t c0 = 0; c0 < panel; c0 += 32) {
    const std::int64_t n = std::clamp<std::int64_t>(width - c0, 0, 32);
    const __mmask32 inside = first_halves(n);
    const __mmask16 first = avx512::first_lanes(panel - c0), second = avx512::first_lanes(panel - c0 - 16);
    const bfloat16* rows = n == 0 ? X : X + k0 * ld + x0 + c0;  // read only if n > 0
    const std::int64_t step = n == 0 ? 0 : 2 * ld;
    for (std::int64_t p = 0; p < pairs; ++p) {  // rows 2p and 2p + 1 (or zero past the depth)
      const bfloat16* x = rows + p * step;
      const __m512i r0 = _mm512_maskz_loadu_epi16(inside, x);
      const __m512i r1 =
          2 * p + 1 < depth ? _mm512_maskz_loadu_epi16(inside, x + ld) : _mm512_setzero_si512();
      bfloat16* o = out + (p * panel + c0) * 2;
      _mm512_mask_storeu_epi32(o, first, _mm512_permutex2var_epi16(r0, low, r1));
      if (panel - c0 > 16) _mm512_mask_storeu_epi32(o + 32, second, _mm512_permutex2var_epi16(r0, high, r1));
    }
  }
}

// Wide tile: C[rows, columns] (row stride ldc) = alpha * sum_p a[p][0 .. rows) . b[p][0 .. 32) + beta * C for
// a panel's rows a (pair stride kPanelRows words) and a B panel b ([pairs][32][2]); beta == 0 does not read
// C. Each row's pair is broadcast and dotted with the 32 columns' pairs (two vectors).
template <int rows>
__attribute__((target("avx512f,avx512bf16,fma"))) void wide_tile(std::int64_t pairs, const bfloat16* a,
                                                                 const bfloat16* b, float alpha, float beta,
                                                                 float* c, std::int64_t ldc,
                                                                 std::int64_t columns) {
  __m512 acc[rows][2];
#pragma GCC unroll 16
  for (auto& row : acc)
    row[0] = row[1] = _mm512_setzero_ps();
  for (std::int64_t p = 0; p < pairs; ++p) {
    const __m512bh b0 = vector_pairs(b), b1 = vector_pairs(b + 32);
#pragma GCC unroll 16
    for (int r = 0; r < rows; ++r) {
      const __m512bh ar = broadcast_pair(a + 2 * r);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
    }
    a += 2 * kPanelRows;
    b += 2 * kTileColumns;
  }
  const __mmask16 masks[2] = {avx512::first_lanes(columns), avx512::first_lanes(columns - 16)};
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

// Narrow tile: tile [columns][32] = sum_p a[p][0 .. 32) . b[p][0 .. columns) (+ tile unless `first`) for an
// A panel a ([pairs][32][2]) and a B column tile b ([pairs][columns][2]): C^T's columns are A's 32 rows.
template <int columns>
__attribute__((target("avx512f,avx512bf16"))) void narrow_tile(std::int64_t pairs, const bfloat16* a,
                                                               const bfloat16* b, bool first, float* tile) {
  __m512 acc[columns][2];
#pragma GCC unroll 16
  for (int j = 0; j < columns; ++j) {
    acc[j][0] = first ? _mm512_setzero_ps() : _mm512_load_ps(tile + j * kPanelRows);
    acc[j][1] = first ? _mm512_setzero_ps() : _mm512_load_ps(tile + j * kPanelRows + 16);
  }
  for (std::int64_t p = 0; p < pairs; ++p) {
    const __m512bh a0 = vector_pairs(a), a1 = vector_pairs(a + 32);
#pragma GCC unroll 16
    for (int j = 0; j < columns; ++j) {
      const __m512bh bj = broadcast_pair(b + 2 * j);
      acc[j][0] = _mm512_dpbf16_ps(acc[j][0], a0, bj);
      acc[j][1] = _mm512_dpbf16_ps(acc[j][1], a1, bj);
    }
    a += 2 * kPanelRows;
    b += 2 * columns;
  }
#pragma GCC unroll 16
  for (int j = 0; j < columns; ++j) {
    _mm512_store_ps(tile + j * kPanelRows, acc[j][0]);
    _mm512_store_ps(tile + j * kPanelRows + 16, acc[j][1]);
  }
}

// wide_tile<rows> for rows = 1 .. kTileRows and narrow_tile<columns> for columns = 1 .. kNarrowTileColumns,
// indexed by size - 1.
inline const auto& wide_tile_for_rows() {
  static constexpr auto table = avx512::instances([](auto rows) { return &wide_tile<decltype(rows)::value>; },
                                                  std::make_integer_sequence<int, kTileRows>{});
  return table;
}
inline const auto& narrow_tile_for_columns() {
  static constexpr auto table =
      avx512::instances([](auto columns) { return &narrow_tile<decltype(columns)::value>; },
                        std::make_integer_sequence<int, kNarrowTileColumns>{});
  return table;
}

// op(A)[i0 .. i0+rows, k0 .. k0+depth] as pair panels of kPanelRows rows, one after the other.
inline void pack_a_block(bool transpose, const bfloat16* A, std::int64_t lda, std::int64_t i0,
                         std::int64_t rows, std::int64_t k0, std::int64_t depth, bfloat16* packed) {
  const std::int64_t panel_size = (depth + 1) / 2 * 2 * kPanelRows;
  for (std::int64_t q = 0; q < rows; q += kPanelRows)
    pack_pairs(A, lda, !transpose, k0, depth, i0 + q, std::min(kPanelRows, rows - q), kPanelRows,
               packed + q / kPanelRows * panel_size);
}

// A [M, K] (row stride lda, not transposed) packed ahead for bgemm's packed_a, into packed_a_size(M, K)
// bf16 (64-byte aligned): each panel of 32 rows over all of K ([ceil(K / 2)][32][2]), so that a depth block
// of it is contiguous, whatever the form and blocking of the product it is used in. For a weight used again
// and again, such as an eval-mode conv's; on a CPU where cpu_supported().
inline std::int64_t packed_a_size(std::int64_t M, std::int64_t K) {
  return (M + kPanelRows - 1) / kPanelRows * kPanelRows * ((K + 1) / 2 * 2);
}
inline void pack_a(const bfloat16* A, std::int64_t lda, std::int64_t M, std::int64_t K, bfloat16* packed) {
  pack_a_block(false, A, lda, 0, M, 0, K, packed);
}

// The packing buffers of the calling thread, 64-byte aligned, grown to the largest request and kept until
// the thread exits (core/buffer_pool.hpp lists such state): bf16 [0] B, [1] A; float [0] the narrow sums.
template <typename T>
T* thread_buffer(std::int64_t n, int which) {
  constexpr std::int64_t pad = 64 / sizeof(T);
  thread_local std::vector<T> buffers[2];
  std::vector<T>& storage = buffers[which];
  if (static_cast<std::int64_t>(storage.size()) < n + pad) storage.resize(static_cast<std::size_t>(n + pad));
  const auto address = reinterpret_cast<std::uintptr_t>(storage.data());
  return storage.data() + ((64 - address % 64) % 64) / sizeof(T);
}

// The wide form: per (column block, depth block, row block), A packed (or read from packed_a, [panels][all
// pairs][32][2]), then each 32-column B panel against every tile of <= 12 rows of the block's A panels (12,
// 12, 8 rows of each 32); later depth blocks add to what the first wrote. Each B panel is packed once per
// column and depth block, just before the first row block uses it, so it is still in L1 for those tiles
// rather than written out to L2 / L3 and read back (at M = 64, each B value serves only 64 rows).
inline void bgemm_wide(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K,
                       float alpha, const bfloat16* A, std::int64_t lda, const bfloat16* B, std::int64_t ldb,
                       float beta, float* C, std::int64_t ldc, const bfloat16* packed_a) {
  const auto round_up = [](std::int64_t n, std::int64_t to) { return (n + to - 1) / to * to; };
  const std::int64_t block_pairs = (std::min(kDepthBlock, K) + 1) / 2, all_pairs = (K + 1) / 2;
  bfloat16* packed_b = thread_buffer<bfloat16>(block_pairs * 2 * round_up(std::min(kColumnBlock, N), 32), 0);
  bfloat16* packing =
      packed_a ? nullptr : thread_buffer<bfloat16>(block_pairs * 2 * round_up(std::min(kRowBlock, M), 32), 1);
  for (std::int64_t j0 = 0; j0 < N; j0 += kColumnBlock) {
    const std::int64_t columns = std::min(kColumnBlock, N - j0);
    for (std::int64_t k0 = 0; k0 < K; k0 += kDepthBlock) {
      const std::int64_t depth = std::min(kDepthBlock, K - k0), pairs = (depth + 1) / 2;
      const float block_beta = k0 == 0 ? beta : 1.0f;
      for (std::int64_t i0 = 0; i0 < M; i0 += kRowBlock) {
        const std::int64_t rows = std::min(kRowBlock, M - i0);
        const bfloat16* a_block = packing;
        std::int64_t panel_size = pairs * 2 * kPanelRows;
        if (packed_a) {
          panel_size = all_pairs * 2 * kPanelRows;
          a_block = packed_a + i0 / kPanelRows * panel_size + k0 * kPanelRows;
        } else {
          pack_a_block(transpose_a, A, lda, i0, rows, k0, depth, packing);
        }
        for (std::int64_t jr = 0; jr < columns; jr += kTileColumns) {
          bfloat16* b_panel = packed_b + jr * pairs * 2;
          const std::int64_t width = std::min(kTileColumns, columns - jr);
          if (i0 == 0) pack_pairs(B, ldb, transpose_b, k0, depth, j0 + jr, width, kTileColumns, b_panel);
          for (std::int64_t ir = 0; ir < rows; ir += kPanelRows) {
            const bfloat16* a_panel = a_block + ir / kPanelRows * panel_size;
            const std::int64_t panel_rows = std::min(kPanelRows, rows - ir);
            for (std::int64_t r = 0; r < panel_rows; r += kTileRows) {
              const std::int64_t height = std::min<std::int64_t>(kTileRows, panel_rows - r);
              wide_tile_for_rows()[height - 1](pairs, a_panel + 2 * r, b_panel, alpha, block_beta,
                                               C + (i0 + ir + r) * ldc + j0 + jr, ldc, width);
            }
          }
        }
      }
    }
  }
}

// The narrow form: per depth block, B packed once in column tiles of nearly equal width (49 = 4 x 10 + 9),
// then each A panel (packed as it comes, or read from packed_a) against every column tile, the products
// summed over depth blocks in C^T [panels][N][32], stored at the end (alpha, beta) with 16 x 16 transposes.
inline void bgemm_narrow(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K,
                         float alpha, const bfloat16* A, std::int64_t lda, const bfloat16* B,
                         std::int64_t ldb, float beta, float* C, std::int64_t ldc, const bfloat16* packed_a) {
  const std::int64_t panels = (M + kPanelRows - 1) / kPanelRows;
  const std::int64_t tiles = (N + kNarrowTileColumns - 1) / kNarrowTileColumns;
  const std::int64_t block_pairs = (std::min(kNarrowDepthBlock, K) + 1) / 2, all_pairs = (K + 1) / 2;
  bfloat16* packed_b = thread_buffer<bfloat16>(block_pairs * 2 * N, 0);
  bfloat16* packing = packed_a ? nullptr : thread_buffer<bfloat16>(block_pairs * 2 * kPanelRows, 1);
  float* sums = thread_buffer<float>(panels * N * kPanelRows, 0);
  for (std::int64_t k0 = 0; k0 < K; k0 += kNarrowDepthBlock) {
    const std::int64_t depth = std::min(kNarrowDepthBlock, K - k0), pairs = (depth + 1) / 2;
    for (std::int64_t t = 0; t < tiles; ++t) {
      const std::int64_t j0 = t * N / tiles, columns = (t + 1) * N / tiles - j0;
      pack_pairs(B, ldb, transpose_b, k0, depth, j0, columns, columns, packed_b + j0 * pairs * 2);
    }
    for (std::int64_t panel = 0; panel < panels; ++panel) {
      const std::int64_t i0 = panel * kPanelRows;
      const bfloat16* a = packing;
      if (packed_a) {
        a = packed_a + panel * all_pairs * 2 * kPanelRows + k0 * kPanelRows;
      } else {
        pack_pairs(A, lda, !transpose_a, k0, depth, i0, std::min(kPanelRows, M - i0), kPanelRows, packing);
      }
      for (std::int64_t t = 0; t < tiles; ++t) {
        const std::int64_t j0 = t * N / tiles, columns = (t + 1) * N / tiles - j0;
        narrow_tile_for_columns()[columns - 1](pairs, a, packed_b + j0 * pairs * 2, k0 == 0,
                                               sums + (panel * N + j0) * kPanelRows);
      }
    }
  }
  for (std::int64_t panel = 0; panel < panels; ++panel) {
    const std::int64_t i0 = panel * kPanelRows;
    avx512::store_narrow_panel(sums + panel * N * kPanelRows, std::min(kPanelRows, M - i0), N, alpha, beta,
                               C + i0 * ldc, ldc);
  }
}

// C [M, N] (row stride ldc) = beta * C, not read if beta == 0: a product without terms (K = 0, alpha = 0).
inline void scale_c(std::int64_t M, std::int64_t N, float beta, float* C, std::int64_t ldc) {
  for (std::int64_t i = 0; i < M; ++i) {
    for (float* c = C + i * ldc; c != C + i * ldc + N; ++c)
      *c = beta == 0.0f ? 0.0f : beta * *c;
  }
}

// The contract of kernels::gemm (row-major, leading dimensions, beta == 0 does not read C) with A and B in
// bf16, C in float, products summed in float; on a CPU where cpu_supported(). With packed_a (from pack_a,
// 64-byte aligned; transpose_a false), A is read from there and `A`, lda are not used: bitwise the same C.
inline void bgemm(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K,
                  float alpha, const bfloat16* A, std::int64_t lda, const bfloat16* B, std::int64_t ldb,
                  float beta, float* C, std::int64_t ldc, const bfloat16* packed_a = nullptr) {
  check(!(packed_a && transpose_a), "bgemm: a packed A is not transposed");
  check(reinterpret_cast<std::uintptr_t>(packed_a) % 64 == 0, "bgemm: packed A is not 64-byte aligned");
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) return scale_c(M, N, beta, C, ldc);  // A and B not read
  if (runs_narrow(M, N)) {
    bgemm_narrow(transpose_a, transpose_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, packed_a);
  } else {
    bgemm_wide(transpose_a, transpose_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, packed_a);
  }
}

}  // namespace avx512_bf16

#endif  // RESNET_HAVE_BGEMM_AVX512

}  // namespace resnet::kernels
