#pragma once
// bf16 GEMM on AMX tiles: C = alpha * op(A) op(B) + beta * C with A and B in bfloat16 and C in float, the
// products summed in float. An AMX tile is a 2-D register of up to 16 rows of 64 bytes. TDPBF16PS adds to a
// float tile C [16, 16] the product of a bf16 tile A [16 rows][32 depths] and a bf16 tile B [16 depth
// pairs][16 columns][2]: 16 x 16 x 32 multiply-adds in one instruction.
//
// Layouts (all zero-padded past the operand's edges, so every tile is a full 16 x 64 bytes):
//  - A panel: 32 rows of op(A) as [ceil(depth / 32) steps][32 rows][32 depths]; a step holds the A tiles of
//    rows 0-15 and 16-31, 1 KB each with a row stride of 64 bytes.
//  - B panel: 32 columns of op(B) as the pair panel of bgemm_avx512.hpp, [pairs][32][2], its pairs rounded
//    up to whole steps of 16; a step holds the B tiles of columns 0-15 and 16-31, row stride 128 bytes.
//  - a register tile of C is 32 x 32 (four C tiles, two A tiles, two B tiles: all eight AMX tiles), or
//    16 rows or 16 columns of it at the edges.
// The blocking (depth, row and column blocks) is bgemm_avx512.hpp's, and so are the packing routines: the B
// panel is its pair panel, and a transposed A is its pair panel transposed as 32-bit words, which turns
// [pair][row] into [row][pair]. Packing needs AVX-512BW, which every AMX CPU has.
//
// The tile instructions are written as inline assembly, so the library's default x86-64 build has them
// without target attributes. They are our own rather than GCC's <amxtileintrin.h> macros, which do not tell
// the compiler that tileloadd reads memory (nor does _tile_loadconfig, which declares 8 of its 64 bytes):
// ours clobber "memory" and take the whole 64-byte configuration as their operand. The tiles are configured
// at the start of each bgemm call on the calling thread (it is per-thread state) and released at its end.
// Linux lets a process use tiles only once it has asked (core/cpu_features.hpp asks, once); cpu_supported()
// is false where it was refused.
//
// The driver is a template over the tile instructions (HardwareTiles here), so that a test can run the same
// driver and packing on a CPU without AMX, on an emulation of the tiles that also checks the configuration
// and the tile shapes of every instruction (tests/support/amx_emulator.hpp).
//
// The blocking depends on the shape alone, never on the thread count, and each call runs on the calling
// thread, so results are bitwise reproducible; A packed ahead (pack_a) gives bitwise the same results.

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "resnet/core/bfloat16.hpp"
#include "resnet/core/cpu_features.hpp"
#include "resnet/core/error.hpp"
#include "resnet/kernels/bgemm_avx512.hpp"

#if defined(RESNET_HAVE_BGEMM_AVX512)
#define RESNET_HAVE_BGEMM_AMX 1
#endif

namespace resnet::kernels {

#ifdef RESNET_HAVE_BGEMM_AMX

namespace amx_bf16 {

constexpr std::int64_t kPanelRows = 32;                      // rows of op(A) per packed panel: two A tiles
constexpr std::int64_t kPanelColumns = 32;                   // columns of op(B) per packed panel: two B tiles
constexpr std::int64_t kStepDepth = 32;                      // depths per tile step: 16 pairs
constexpr std::int64_t kStepSize = kPanelRows * kStepDepth;  // bf16 of a step of an A or a B panel
constexpr std::int64_t kDepthBlock = avx512_bf16::kDepthBlock;
constexpr std::int64_t kRowBlock = 192;  // whole panels; a 192 x 512 bf16 A block (192 KB) stays in L2
constexpr std::int64_t kColumnBlock = avx512_bf16::kColumnBlock;

static_assert(kDepthBlock % kStepDepth == 0, "depth blocks are whole steps, so packed A can be sliced");
static_assert(kRowBlock % kPanelRows == 0 && kColumnBlock % kPanelColumns == 0, "blocks are whole panels");
static_assert(kPanelColumns == avx512_bf16::kTileColumns, "B panels are bgemm_avx512.hpp's pair panels");

// Whether the CPU runs these kernels: AMX-BF16 with the OS's permission, under the cap of set_max_isa.
inline bool cpu_supported() {
  return isa_enabled(Isa::AmxBf16);
}

// The 64-byte operand of ldtilecfg (palette 1): the bytes per row and rows of each of the 8 tiles, the
// reserved bytes and the entries of tiles 8-15 zero.
struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

// Every tile 16 rows of 64 bytes: C tiles 0-3 (16 x 16 float), A tiles 4-5 (16 x 32 bf16), B tiles 6-7
// (16 pairs x 16 x 2 bf16). A static object, so the configuration is in memory when ldtilecfg reads it.
inline const TileConfig& tile_config() {
  static const TileConfig config = [] {
    TileConfig c;
    for (int t = 0; t < 8; ++t) {
      c.bytes_per_row[t] = 64;
      c.rows[t] = 16;
    }
    return c;
  }();
  return config;
}

// The tile instructions, for the driver below. Tile numbers are template parameters: they are encoded in
// the instruction. Strides are in bytes.
struct HardwareTiles {
  static void configure(const TileConfig& config) { asm volatile("ldtilecfg %0" ::"m"(config) : "memory"); }
  static void release() { asm volatile("tilerelease" ::: "memory"); }
  template <int tile>
  static void zero() {
    asm volatile("tilezero %%tmm%c0" ::"i"(tile));
  }
  template <int tile>
  static void load(const void* p, std::int64_t stride) {
    asm volatile("{tileloadd (%0,%1,1), %%tmm%c2|tileloadd %%tmm%c2, [%0+%1*1]}" ::"r"(p), "r"(stride),
                 "i"(tile)
                 : "memory");
  }
  template <int tile>
  static void store(void* p, std::int64_t stride) {
    asm volatile("{tilestored %%tmm%c2, (%0,%1,1)|tilestored [%0+%1*1], %%tmm%c2}" ::"r"(p), "r"(stride),
                 "i"(tile)
                 : "memory");
  }
  template <int c, int a, int b>  // C tile c += A tile a x B tile b
  static void dot() {
    asm volatile("{tdpbf16ps %%tmm%c0, %%tmm%c1, %%tmm%c2|tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0}" ::"i"(b),
                 "i"(a), "i"(c));
  }
};

// op(A)[i0 .. i0 + rows, k0 .. k0 + depth] (rows <= 32) as an A panel of ceil(depth / 32) steps. A [M, K]
// rows are copied 32 depths at a time; a transposed A [K, M] is packed as a pair panel ([pairs][32][2]) one
// step at a time, and each half of it transposed as 16 x 16 words into [16 rows][16 pairs].
__attribute__((target("avx512f,avx512bw"))) inline void pack_a_panel(bool transpose, const bfloat16* A,
                                                                     std::int64_t lda, std::int64_t i0,
                                                                     std::int64_t rows, std::int64_t k0,
                                                                     std::int64_t depth, bfloat16* panel) {
  const std::int64_t steps = (depth + kStepDepth - 1) / kStepDepth;
  for (std::int64_t s = 0; s < steps; ++s) {
    const std::int64_t d = std::min(kStepDepth, depth - s * kStepDepth);
    bfloat16* out = panel + s * kStepSize;
    if (!transpose) {
      const __mmask32 inside = avx512_bf16::first_halves(d);
      for (std::int64_t r = 0; r < kPanelRows; ++r) {
        const __m512i row = r < rows
                                ? _mm512_maskz_loadu_epi16(inside, A + (i0 + r) * lda + k0 + s * kStepDepth)
                                : _mm512_setzero_si512();
        _mm512_storeu_si512(out + r * kStepDepth, row);
      }
      continue;
    }
    alignas(64) bfloat16 pairs[kStepSize];  // [16 pairs][32 rows][2]
    avx512_bf16::pack_pairs(A, lda, false, k0 + s * kStepDepth, d, i0, rows, kPanelRows, pairs);
    const std::int64_t filled = (d + 1) / 2;
    for (int half = 0; half < 2; ++half) {
      __m512i words[16];
#pragma GCC unroll 16
      for (int p = 0; p < 16; ++p)
        words[p] =
            p < filled ? _mm512_load_si512(pairs + (p * kPanelRows + 16 * half) * 2) : _mm512_setzero_si512();
      avx512_bf16::transpose_words(words);  // words[r] = the 16 pairs of row 16 * half + r
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r)
        _mm512_storeu_si512(out + (16 * half + r) * kStepDepth, words[r]);
    }
  }
}

// op(B)[k0 .. k0 + depth, j0 .. j0 + width] (width <= 32) as a B panel: the pair panel, then zero pairs up to
// a whole step.
inline void pack_b_panel(const bfloat16* B, std::int64_t ldb, bool transpose, std::int64_t k0,
                         std::int64_t depth, std::int64_t j0, std::int64_t width, bfloat16* panel) {
  avx512_bf16::pack_pairs(B, ldb, transpose, k0, depth, j0, width, kPanelColumns, panel);
  const std::int64_t pairs = (depth + 1) / 2, padded = (depth + kStepDepth - 1) / kStepDepth * kStepDepth / 2;
  std::memset(static_cast<void*>(panel + pairs * 2 * kPanelColumns), 0,
              static_cast<std::size_t>((padded - pairs) * 2 * kPanelColumns) * sizeof(bfloat16));
}

// Where one C tile of a register tile starts and ends: its memory (C itself, or a scratch tile that the
// caller combines into C), the row stride in bytes, and whether it starts from that memory or from zero.
struct TileTarget {
  float* c;
  std::int64_t stride;
  bool load;
};

template <typename Tiles, int tile>
void begin_tile(const TileTarget& t) {
  if (t.load) {
    Tiles::template load<tile>(t.c, t.stride);
  } else {
    Tiles::template zero<tile>();
  }
}

// The register tile of `row_tiles` x `column_tiles` C tiles (of 2 x 2: tiles 0, 1 / 2, 3) over `steps`
// steps of an A panel a and a B panel b: target[t] += A rows of t / 2 x B columns of t % 2.
template <typename Tiles, int row_tiles, int column_tiles>
void register_tile(std::int64_t steps, const bfloat16* a, const bfloat16* b, const TileTarget target[4]) {
  begin_tile<Tiles, 0>(target[0]);
  if (column_tiles == 2) begin_tile<Tiles, 1>(target[1]);
  if (row_tiles == 2) begin_tile<Tiles, 2>(target[2]);
  if (row_tiles == 2 && column_tiles == 2) begin_tile<Tiles, 3>(target[3]);
  constexpr std::int64_t a_stride = kStepDepth * sizeof(bfloat16),
                         b_stride = 2 * kPanelColumns * sizeof(bfloat16);
  for (std::int64_t s = 0; s < steps; ++s) {
    const bfloat16* as = a + s * kStepSize;
    const bfloat16* bs = b + s * kStepSize;
    Tiles::template load<4>(as, a_stride);
    Tiles::template load<6>(bs, b_stride);
    Tiles::template dot<0, 4, 6>();
    if (column_tiles == 2) {
      Tiles::template load<7>(bs + 32, b_stride);
      Tiles::template dot<1, 4, 7>();
    }
    if (row_tiles == 2) {
      Tiles::template load<5>(as + 16 * kStepDepth, a_stride);
      Tiles::template dot<2, 5, 6>();
      if (column_tiles == 2) Tiles::template dot<3, 5, 7>();
    }
  }
  Tiles::template store<0>(target[0].c, target[0].stride);
  if (column_tiles == 2) Tiles::template store<1>(target[1].c, target[1].stride);
  if (row_tiles == 2) Tiles::template store<2>(target[2].c, target[2].stride);
  if (row_tiles == 2 && column_tiles == 2) Tiles::template store<3>(target[3].c, target[3].stride);
}

// C[rows, columns] (rows, columns <= 32; row stride ldc) = alpha * a . b + beta * C for a register tile over
// `steps` steps; beta == 0 does not read C. A C tile wholly inside C, with alpha 1 and beta 0 or 1, is
// loaded (or zeroed) and stored where it is; any other goes through a scratch tile.
template <typename Tiles>
void product_tile(std::int64_t steps, const bfloat16* a, const bfloat16* b, float alpha, float beta, float* C,
                  std::int64_t ldc, std::int64_t rows, std::int64_t columns) {
  alignas(64) float scratch[4][16 * 16];
  const bool direct = alpha == 1.0f && (beta == 0.0f || beta == 1.0f);
  TileTarget target[4];
  for (int t = 0; t < 4; ++t) {
    const std::int64_t r0 = t / 2 * 16, c0 = t % 2 * 16;
    if (direct && rows >= r0 + 16 && columns >= c0 + 16) {
      target[t] = {C + r0 * ldc + c0, ldc * static_cast<std::int64_t>(sizeof(float)), beta == 1.0f};
    } else {
      target[t] = {scratch[t], 16 * sizeof(float), false};
    }
  }
  const int row_tiles = rows > 16 ? 2 : 1, column_tiles = columns > 16 ? 2 : 1;
  if (row_tiles == 2) {
    column_tiles == 2 ? register_tile<Tiles, 2, 2>(steps, a, b, target)
                      : register_tile<Tiles, 2, 1>(steps, a, b, target);
  } else {
    column_tiles == 2 ? register_tile<Tiles, 1, 2>(steps, a, b, target)
                      : register_tile<Tiles, 1, 1>(steps, a, b, target);
  }
  for (int t = 0; t < 4; ++t) {
    if (target[t].c != scratch[t]) continue;
    const std::int64_t r0 = t / 2 * 16, c0 = t % 2 * 16;
    const std::int64_t height = std::min<std::int64_t>(16, rows - r0),
                       width = std::min<std::int64_t>(16, columns - c0);
    for (std::int64_t r = 0; r < height; ++r) {
      float* c = C + (r0 + r) * ldc + c0;
      const float* s = scratch[t] + r * 16;
      for (std::int64_t j = 0; j < width; ++j)
        c[j] = beta == 0.0f ? alpha * s[j] : alpha * s[j] + beta * c[j];
    }
  }
}

// A [M, K] (row stride lda, not transposed) packed ahead for bgemm's packed_a, into packed_a_size(M, K)
// bf16 (64-byte aligned): each panel of 32 rows over all of K, so that a depth block of it is contiguous.
// For a weight used again and again, such as an eval-mode conv's; on a CPU where cpu_supported().
inline std::int64_t packed_a_size(std::int64_t M, std::int64_t K) {
  return (M + kPanelRows - 1) / kPanelRows * ((K + kStepDepth - 1) / kStepDepth) * kStepSize;
}
inline void pack_a(const bfloat16* A, std::int64_t lda, std::int64_t M, std::int64_t K, bfloat16* packed) {
  const std::int64_t panel_size = packed_a_size(kPanelRows, K);
  for (std::int64_t i0 = 0; i0 < M; i0 += kPanelRows)
    pack_a_panel(false, A, lda, i0, std::min(kPanelRows, M - i0), 0, K,
                 packed + i0 / kPanelRows * panel_size);
}

// The contract of kernels::gemm (row-major, leading dimensions, beta == 0 does not read C) with A and B in
// bf16, C in float, products summed in float, on the tile instructions of `Tiles`. Per (column block, depth
// block, row block): A packed (or read from packed_a), each B panel packed once per column and depth block
// (just before the first row block uses it), then every register tile; later depth blocks add to what the
// first wrote.
template <typename Tiles>
void bgemm_on(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
              const bfloat16* A, std::int64_t lda, const bfloat16* B, std::int64_t ldb, float beta, float* C,
              std::int64_t ldc, const bfloat16* packed_a = nullptr) {
  check(!(packed_a && transpose_a), "bgemm: a packed A is not transposed");
  check(reinterpret_cast<std::uintptr_t>(packed_a) % 64 == 0, "bgemm: packed A is not 64-byte aligned");
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) return avx512_bf16::scale_c(M, N, beta, C, ldc);  // A and B not read
  const auto round_up = [](std::int64_t n, std::int64_t to) { return (n + to - 1) / to * to; };
  const std::int64_t block_steps = (std::min(kDepthBlock, K) + kStepDepth - 1) / kStepDepth;
  const std::int64_t panel_steps = (K + kStepDepth - 1) / kStepDepth;  // of a panel of packed_a
  bfloat16* packed_b = avx512_bf16::thread_buffer<bfloat16>(
      block_steps * kStepSize * (round_up(std::min(kColumnBlock, N), kPanelColumns) / kPanelColumns), 0);
  bfloat16* packing =
      packed_a
          ? nullptr
          : avx512_bf16::thread_buffer<bfloat16>(
                block_steps * kStepSize * (round_up(std::min(kRowBlock, M), kPanelRows) / kPanelRows), 1);
  Tiles::configure(tile_config());
  for (std::int64_t j0 = 0; j0 < N; j0 += kColumnBlock) {
    const std::int64_t columns = std::min(kColumnBlock, N - j0);
    for (std::int64_t k0 = 0; k0 < K; k0 += kDepthBlock) {
      const std::int64_t depth = std::min(kDepthBlock, K - k0), steps = (depth + kStepDepth - 1) / kStepDepth;
      const float block_beta = k0 == 0 ? beta : 1.0f;
      for (std::int64_t i0 = 0; i0 < M; i0 += kRowBlock) {
        const std::int64_t rows = std::min(kRowBlock, M - i0);
        std::int64_t panel_size = steps * kStepSize;
        const bfloat16* a_block = packing;
        if (packed_a) {
          panel_size = panel_steps * kStepSize;
          a_block = packed_a + i0 / kPanelRows * panel_size + k0 / kStepDepth * kStepSize;
        } else {
          for (std::int64_t ir = 0; ir < rows; ir += kPanelRows)
            pack_a_panel(transpose_a, A, lda, i0 + ir, std::min(kPanelRows, rows - ir), k0, depth,
                         packing + ir / kPanelRows * panel_size);
        }
        for (std::int64_t jr = 0; jr < columns; jr += kPanelColumns) {
          bfloat16* b_panel = packed_b + jr / kPanelColumns * steps * kStepSize;
          const std::int64_t width = std::min(kPanelColumns, columns - jr);
          if (i0 == 0) pack_b_panel(B, ldb, transpose_b, k0, depth, j0 + jr, width, b_panel);
          for (std::int64_t ir = 0; ir < rows; ir += kPanelRows) {
            product_tile<Tiles>(steps, a_block + ir / kPanelRows * panel_size, b_panel, alpha, block_beta,
                                C + (i0 + ir) * ldc + j0 + jr, ldc, std::min(kPanelRows, rows - ir), width);
          }
        }
      }
    }
  }
  Tiles::release();
}

// bgemm on the CPU's tiles; on a CPU where cpu_supported(). With packed_a (from pack_a, 64-byte aligned;
// transpose_a false), A is read from there and `A`, lda are not used: bitwise the same C.
inline void bgemm(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K,
                  float alpha, const bfloat16* A, std::int64_t lda, const bfloat16* B, std::int64_t ldb,
                  float beta, float* C, std::int64_t ldc, const bfloat16* packed_a = nullptr) {
  bgemm_on<HardwareTiles>(transpose_a, transpose_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, packed_a);
}

}  // namespace amx_bf16

#endif  // RESNET_HAVE_BGEMM_AMX

}  // namespace resnet::kernels
