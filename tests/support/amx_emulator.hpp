#pragma once
// The AMX tile instructions emulated in C++, as the Tiles parameter of kernels/bgemm_amx.hpp's driver, so
// that its blocking, packing and tile addressing are tested on CPUs without AMX. Each thread has 8 tiles of
// 16 rows x 64 bytes. What the CPU would fault on throws a resnet::Error instead:
//  - ldtilecfg (#GP): palette other than 1, a start row or reserved byte not zero, more than 16 rows or 64
//    bytes a row, a tile with rows but no bytes or bytes but no rows, any of tiles 8-15 configured;
//  - any tile instruction before ldtilecfg or after tilerelease, or on an unconfigured tile (#UD);
//  - tdpbf16ps (#UD): tiles not distinct, or shapes that do not chain: C rows == A rows, B rows == A bytes /
//  4,
//    C bytes == B bytes.
// tdpbf16ps follows the SDM's pseudocode: for each row of C and each depth pair, C[m][n] += a0 * b0, then
// += a1 * b1, in float with round to nearest even; bf16 denormals read as zero and denormal sums are flushed
// to zero, as the instruction does.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "resnet/core/bfloat16.hpp"
#include "resnet/core/error.hpp"
#include "resnet/kernels/bgemm_amx.hpp"

#ifdef RESNET_HAVE_BGEMM_AMX

namespace resnet::testing {

struct EmulatedTiles {
  using TileConfig = kernels::amx_bf16::TileConfig;

  struct State {
    TileConfig config;
    bool configured = false;
    std::uint8_t tiles[8][16 * 64] = {};
  };
  static State& state() {
    thread_local State s;
    return s;
  }

  static void configure(const TileConfig& c) {
    check(c.palette == 1, "ldtilecfg: palette ", int(c.palette), " (expected 1)");
    check(c.start_row == 0, "ldtilecfg: start row ", int(c.start_row), " (expected 0)");
    for (std::uint8_t r : c.reserved)
      check(r == 0, "ldtilecfg: a reserved byte is ", int(r));
    for (int t = 0; t < 16; ++t) {
      const int rows = c.rows[t], bytes = c.bytes_per_row[t];
      check(t < 8 || (rows == 0 && bytes == 0), "ldtilecfg: tile ", t, " does not exist in palette 1");
      check(rows <= 16 && bytes <= 64, "ldtilecfg: tile ", t, " is ", rows, " rows of ", bytes, " bytes");
      check((rows == 0) == (bytes == 0), "ldtilecfg: tile ", t, " has ", rows, " rows of ", bytes, " bytes");
    }
    State& s = state();
    s.config = c;
    s.configured = true;
    std::memset(s.tiles, 0, sizeof s.tiles);
  }
  static void release() { state().configured = false; }

  template <int tile>
  static void zero() {
    std::memset(configured_tile(tile, "tilezero"), 0, 16 * 64);
  }
  template <int tile>
  static void load(const void* p, std::int64_t stride) {
    std::uint8_t* t = configured_tile(tile, "tileloadd");
    const TileConfig& c = state().config;
    std::memset(t, 0, 16 * 64);
    for (int r = 0; r < c.rows[tile]; ++r)
      std::memcpy(t + r * 64, static_cast<const std::uint8_t*>(p) + r * stride, c.bytes_per_row[tile]);
  }
  template <int tile>
  static void store(void* p, std::int64_t stride) {
    const std::uint8_t* t = configured_tile(tile, "tilestored");
    const TileConfig& c = state().config;
    for (int r = 0; r < c.rows[tile]; ++r)
      std::memcpy(static_cast<std::uint8_t*>(p) + r * stride, t + r * 64, c.bytes_per_row[tile]);
  }

  template <int c, int a, int b>
  static void dot() {
    static_assert(c != a && c != b && a != b, "tdpbf16ps: the tiles must be distinct");
    std::uint8_t* tc = configured_tile(c, "tdpbf16ps");
    const std::uint8_t* ta = configured_tile(a, "tdpbf16ps");
    const std::uint8_t* tb = configured_tile(b, "tdpbf16ps");
    const TileConfig& cfg = state().config;
    check(cfg.rows[c] == cfg.rows[a] && cfg.rows[b] * 4 == cfg.bytes_per_row[a] &&
              cfg.bytes_per_row[c] == cfg.bytes_per_row[b],
          "tdpbf16ps: tiles ", c, ", ", a, ", ", b, " do not chain");
    const int rows = cfg.rows[c], pairs = cfg.rows[b], columns = cfg.bytes_per_row[c] / 4;
    float dst[16 * 16];
    std::memcpy(dst, tc, sizeof dst);
    for (int m = 0; m < rows; ++m) {
      for (int k = 0; k < pairs; ++k) {
        for (int n = 0; n < columns; ++n) {
          float& sum = dst[m * 16 + n];
          for (int half = 0; half < 2; ++half)
            sum = flush(sum +
                        bf16_at(ta, m * 64 + (2 * k + half) * 2) * bf16_at(tb, k * 64 + (2 * n + half) * 2));
        }
      }
    }
    std::memcpy(tc, dst, sizeof dst);
  }

 private:
  static std::uint8_t* configured_tile(int tile, const char* instruction) {
    State& s = state();
    check(s.configured, instruction, ": the tiles are not configured");
    check(s.config.rows[tile] > 0, instruction, ": tile ", tile, " is not configured");
    return s.tiles[tile];
  }
  // The bf16 at byte `offset` of a tile, denormals as zero.
  static float bf16_at(const std::uint8_t* tile, int offset) {
    bfloat16 x;
    std::memcpy(&x.bits, tile + offset, 2);
    if ((x.bits & 0x7F80) == 0) x.bits &= 0x8000;
    return static_cast<float>(x);
  }
  static float flush(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }
};

}  // namespace resnet::testing

#endif  // RESNET_HAVE_BGEMM_AMX
