#pragma once
// Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)
// for 3x3 stride-1 convolutions: each 2x2 block of outputs ("tile") comes from a 4x4 block of input,
//   Y = A^T [ sum_c (G g_oc G^T) .* (B^T d_c B) ] A,
// so the 16 elementwise products, summed over input channels, are 16 GEMMs
//   M_xi [O, tiles] = U_xi [O, C] x V_xi [C, tiles]     (xi = 0..15, U = G g G^T, V = B^T d B)
// with 16 multiplies per 4 outputs instead of 36: 2.25x fewer than im2col + GEMM. The weight gradient is the
// same computation transposed (conv2d_weight_grad_winograd), and the input gradient of a stride-1 conv is a
// stride-1 conv itself (kernels/conv2d.hpp), so all three products of training can run here. The transforms
// add a little rounding (tests/test_perf_paths.cpp compares it with the im2col path); the same arithmetic
// runs on any thread count, since work units depend on the shape alone, as in kernels/conv2d.hpp.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "resnet/core/parallel.hpp"
#include "resnet/kernels/conv_epilogue.hpp"
#include "resnet/kernels/gemm.hpp"

namespace resnet::kernels {

namespace winograd {

// How a batch is cut into work units: groups of whole images with about kMinTiles tiles between them, in an
// even number of groups so that two threads get equal shares (3 groups on 2 threads would leave one idle
// a third of the time), or, for an image with more tiles than that, slices of its tile rows (split further
// to give the threads at least kMinUnits units).
struct Partition {
  static constexpr std::int64_t kMinTiles = 192;
  static constexpr std::int64_t kMinUnits = 4;
  std::int64_t tile_rows, tile_cols;  // of one image
  std::int64_t images;                // per unit
  std::int64_t groups;                // ceil(N / images)
  std::int64_t slices;                // tile-row slices per image (1 when images > 1)
  std::int64_t slice_rows;            // tile rows per slice
  std::int64_t units() const { return groups * slices; }
  std::int64_t max_tiles() const { return images * slice_rows * tile_cols; }

  static Partition of(std::int64_t N, std::int64_t OH, std::int64_t OW) {
    Partition part{};
    part.tile_rows = (OH + 1) / 2;
    part.tile_cols = (OW + 1) / 2;
    const std::int64_t tiles = part.tile_rows * part.tile_cols;
    if (tiles >= kMinTiles) {
      part.images = 1;
    } else {
      const std::int64_t wanted = (N * tiles + kMinTiles - 1) / kMinTiles;
      const std::int64_t groups = std::min(N, wanted + wanted % 2);
      part.images = (N + groups - 1) / groups;
    }
    part.groups = (N + part.images - 1) / part.images;
    part.slices = 1;
    if (part.images == 1) {
      part.slices = std::max<std::int64_t>(1, tiles / (2 * kMinTiles));
      while (part.groups * part.slices < kMinUnits && tiles / (2 * part.slices) >= kMinTiles / 2)
        part.slices *= 2;
    }
    part.slice_rows = (part.tile_rows + part.slices - 1) / part.slices;
    // Rounding the slice up can leave fewer slices than asked for (5 tile rows in 4 slices are 3 of 2 rows):
    // count the ones that exist, so that no unit is empty.
    part.slices = (part.tile_rows + part.slice_rows - 1) / part.slice_rows;
    return part;
  }
};

// U, V and M hold 16 planes each, one per element xi of the 4x4 tile, that the transforms read or write side
// by side. Planes of 64 channels x 256 tiles (CIFAR's layer1) are 64 KB apart, a multiple of the 4 KB that
// maps to one set of L1 cache lines, so 16 streams would share its 12 ways and evict each other: planes are
// padded by one cache line.
inline std::int64_t plane_stride(std::int64_t plane_size) {
  return plane_size + 16;
}

// U [16, O, C] (planes plane_stride apart, as in V and M) = G g G^T for every 3x3 kernel g of weight
// [O, C, 3, 3], with
//   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
template <typename T>
void transform_weight(const T* weight, std::int64_t O, std::int64_t C, T* u) {
  const std::int64_t OC = O * C;
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (OC >= 4096))
  for (std::int64_t oc = 0; oc < OC; ++oc) {
    const T* g = weight + oc * 9;
    T gg[4][3];  // G g
    for (int j = 0; j < 3; ++j) {
      gg[0][j] = g[j];
      gg[1][j] = T(0.5) * (g[j] + g[3 + j] + g[6 + j]);
      gg[2][j] = T(0.5) * (g[j] - g[3 + j] + g[6 + j]);
      gg[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; ++i) {  // (G g) G^T
      const T row[4] = {gg[i][0], T(0.5) * (gg[i][0] + gg[i][1] + gg[i][2]),
                        T(0.5) * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2]};
      for (int j = 0; j < 4; ++j)
        u[(i * 4 + j) * plane_stride(OC) + oc] = row[j];
    }
  }
}

// row [n] = even[0], odd[0], even[1], odd[1], ... (ending on an even value when n is odd), and back, with
// odd[n / 2] = 0 for odd n: a tile row's outputs from their per-column arrays.
template <typename T>
void interleave(const T* even, const T* odd, std::int64_t n, T* row) {
  RESNET_OMP(simd)
  for (std::int64_t t = 0; t < n / 2; ++t) {
    row[2 * t] = even[t];
    row[2 * t + 1] = odd[t];
  }
  if (n % 2) row[n - 1] = even[n / 2];
}
template <typename T>
void deinterleave(const T* row, std::int64_t n, T* even, T* odd) {
  RESNET_OMP(simd)
  for (std::int64_t t = 0; t < n / 2; ++t) {
    even[t] = row[2 * t];
    odd[t] = row[2 * t + 1];
  }
  if (n % 2) {
    even[n / 2] = row[n - 1];
    odd[n / 2] = T(0);
  }
}

// The transforms below run each step as one loop over a flat run of tiles or columns, marked `omp simd`.
// GCC vectorises neither a loop that writes 16 planes through pointers it cannot prove apart nor one with a
// branch, so the loops index all planes from one base and the epilogue is a pass of its own.

// Scratch, in elements, that one call of any transform below needs for a unit of `part`.
inline std::int64_t transform_scratch(const Partition& part) {
  const std::int64_t rows = part.slice_rows, cols = part.tile_cols;
  return 8 * (rows + 1) * cols + 2 * (2 * cols + 2);
}

// V [16, C, ld] (columns first_tile..) = B^T d B for the tiles of tile rows [r0, r1) of one image x [C, H, W]
// padded by p, with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Tile (r, t) reads padded rows 2r..2r+3
// and columns 2t..2t+3. First d B along every padded row the tiles read, padded row 2r0 + q into row q / 2
// of the even (q even) or odd half of h, so that the four rows of tile (r, t) sit at index k = (r - r0) *
// tile_cols + t of the even and odd halves and at k + tile_cols of both; then B^T (d B) for all tiles of the
// slice in one pass per column j.
template <typename T>
void transform_input(const T* x, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t p,
                     std::int64_t tile_cols, std::int64_t r0, std::int64_t r1, T* v, std::int64_t ld,
                     std::int64_t first_tile, T* scratch) {
  const std::int64_t plane = plane_stride(C * ld), tiles = (r1 - r0) * tile_cols;
  const std::int64_t h_size = (r1 - r0 + 1) * tile_cols;
  const std::int64_t width = 2 * tile_cols + 2;  // padded columns the tiles read
  T* h = scratch;                                // [parity][j][h_size]
  T* zeros = h + 8 * h_size;                     // a padding row
  T* padded = zeros + width;                     // an input row between its padding
  std::fill(zeros, zeros + 2 * width, T(0));     // width >= W + 2p: the input row lands at [p, p + W)
  for (std::int64_t c = 0; c < C; ++c) {
    const T* image = x + c * H * W;
    for (std::int64_t q = 0; q < 2 * (r1 - r0) + 2; ++q) {
      const std::int64_t y = 2 * r0 - p + q;
      const T* d = zeros;
      if (y >= 0 && y < H) {
        std::copy(image + y * W, image + (y + 1) * W, padded + p);
        d = padded;
      }
      T* h0 = h + (q % 2) * 4 * h_size + q / 2 * tile_cols;
      RESNET_OMP(simd)
      for (std::int64_t t = 0; t < tile_cols; ++t) {
        const T a = d[2 * t], b = d[2 * t + 1], e = d[2 * t + 2], f = d[2 * t + 3];
        h0[t] = a - e;
        h0[h_size + t] = b + e;
        h0[2 * h_size + t] = e - b;
        h0[3 * h_size + t] = b - f;
      }
    }
    for (int j = 0; j < 4; ++j) {
      const T* even = h + j * h_size;
      const T* odd = even + 4 * h_size;
      T* vj = v + j * plane + c * ld + first_tile;
      RESNET_OMP(simd)
      for (std::int64_t k = 0; k < tiles; ++k) {
        const T d0 = even[k], d1 = odd[k], d2 = even[k + tile_cols], d3 = odd[k + tile_cols];
        vj[k] = d0 - d2;
        vj[4 * plane + k] = d1 + d2;
        vj[8 * plane + k] = d2 - d1;
        vj[12 * plane + k] = d1 - d3;
      }
    }
  }
}

// y rows of tile rows [r0, r1) of one image [O, OH, OW] = A^T M A (through the epilogue) from M [16, O, ld]
// (columns first_tile..), with A^T = [1 1 1 0; 0 1 -1 -1]: the four outputs of every tile of the slice in
// one pass, then interleaved into rows. An edge tile of an odd-sized map drops its second row or column.
template <typename T>
void transform_output(const T* m, std::int64_t O, std::int64_t ld, std::int64_t first_tile,
                      std::int64_t tile_cols, std::int64_t r0, std::int64_t r1,
                      const ConvEpilogue<T>& epilogue, std::int64_t OH, std::int64_t OW, T* y, T* scratch) {
  const std::int64_t plane = plane_stride(O * ld), tiles = (r1 - r0) * tile_cols;
  T* out = scratch;  // [row in tile][column in tile][tiles]
  for (std::int64_t o = 0; o < O; ++o) {
    const T* mo = m + o * ld + first_tile;
    RESNET_OMP(simd)
    for (std::int64_t k = 0; k < tiles; ++k) {
      const T* mk = mo + k;
      T a[2][4];  // A^T M
      for (int j = 0; j < 4; ++j) {
        const T m0 = mk[j * plane], m1 = mk[(4 + j) * plane], m2 = mk[(8 + j) * plane];
        const T m3 = mk[(12 + j) * plane];
        a[0][j] = m0 + m1 + m2;
        a[1][j] = m1 - m2 - m3;
      }
      for (int i = 0; i < 2; ++i) {  // (A^T M) A
        out[(2 * i) * tiles + k] = a[i][0] + a[i][1] + a[i][2];
        out[(2 * i + 1) * tiles + k] = a[i][1] - a[i][2] - a[i][3];
      }
    }
    epilogue.apply(o, out, out, 4 * tiles);
    for (std::int64_t tr = r0; tr < r1; ++tr) {
      for (std::int64_t i = 0; i < 2 && 2 * tr + i < OH; ++i) {
        const T* left = out + 2 * i * tiles + (tr - r0) * tile_cols;
        interleave(left, left + tiles, OW, y + (o * OH + 2 * tr + i) * OW);
      }
    }
  }
}

// dM [16, O, ld] (columns first_tile..) = A dY A^T for the tiles of tile rows [r0, r1) of one image's output
// gradient dy [O, OH, OW], the transpose of transform_output: outputs past OH or OW (the second row or column
// of an edge tile of an odd-sized map) were dropped there, so their gradient is zero here.
template <typename T>
void transform_output_gradient(const T* dy, std::int64_t O, std::int64_t OH, std::int64_t OW,
                               std::int64_t tile_cols, std::int64_t r0, std::int64_t r1, T* dm,
                               std::int64_t ld, std::int64_t first_tile, T* scratch) {
  const std::int64_t plane = plane_stride(O * ld), tiles = (r1 - r0) * tile_cols;
  T* e = scratch;  // dY by [row in tile][column in tile][tiles]
  for (std::int64_t o = 0; o < O; ++o) {
    for (std::int64_t tr = r0; tr < r1; ++tr) {
      for (std::int64_t i = 0; i < 2; ++i) {
        T* left = e + 2 * i * tiles + (tr - r0) * tile_cols;
        if (2 * tr + i < OH) {
          deinterleave(dy + (o * OH + 2 * tr + i) * OW, OW, left, left + tiles);
        } else {
          std::fill(left, left + tile_cols, T(0));
          std::fill(left + tiles, left + tiles + tile_cols, T(0));
        }
      }
    }
    T* out = dm + o * ld + first_tile;
    RESNET_OMP(simd)
    for (std::int64_t k = 0; k < tiles; ++k) {
      const T e0 = e[k], e1 = e[tiles + k], f0 = e[2 * tiles + k], f1 = e[3 * tiles + k];
      const T a[4][2] = {{e0, e1}, {e0 + f0, e1 + f1}, {e0 - f0, e1 - f1}, {-f0, -f1}};  // A dY
      for (int i = 0; i < 4; ++i) {                                                      // (A dY) A^T
        out[(4 * i) * plane + k] = a[i][0];
        out[(4 * i + 1) * plane + k] = a[i][0] + a[i][1];
        out[(4 * i + 2) * plane + k] = a[i][0] - a[i][1];
        out[(4 * i + 3) * plane + k] = -a[i][1];
      }
    }
  }
}

// weight_grad [O, C, 3, 3] += G^T dU G for every 4x4 dU of du [16, O, C], the transpose of transform_weight.
template <typename T>
void add_weight_gradient(const T* du, std::int64_t O, std::int64_t C, T* weight_grad) {
  const std::int64_t OC = O * C, plane = plane_stride(OC);
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (OC >= 4096))
  for (std::int64_t oc = 0; oc < OC; ++oc) {
    T t[3][4];  // G^T dU
    for (int j = 0; j < 4; ++j) {
      const T d0 = du[j * plane + oc], d1 = du[(4 + j) * plane + oc];
      const T d2 = du[(8 + j) * plane + oc], d3 = du[(12 + j) * plane + oc];
      t[0][j] = d0 + T(0.5) * (d1 + d2);
      t[1][j] = T(0.5) * (d1 - d2);
      t[2][j] = T(0.5) * (d1 + d2) + d3;
    }
    T* g = weight_grad + oc * 9;
    for (int i = 0; i < 3; ++i) {  // (G^T dU) G
      g[i * 3] += t[i][0] + T(0.5) * (t[i][1] + t[i][2]);
      g[i * 3 + 1] += T(0.5) * (t[i][1] - t[i][2]);
      g[i * 3 + 2] += T(0.5) * (t[i][1] + t[i][2]) + t[i][3];
    }
  }
}

}  // namespace winograd

// Whether conv2d_forward_winograd computes this convolution: 3x3, stride 1, padding at most 2.
inline bool winograd_applies(std::int64_t k, std::int64_t s, std::int64_t p) {
  return k == 3 && s == 1 && p <= 2;
}

// A weight transformed once ahead, for a caller that runs it again and again (an eval-mode Conv2d): U_xi
// [O, C] of every plane packed by pack_gemm_a, for Winograd GEMMs that run narrow (gemm_packs_a).
template <typename T>
std::int64_t packed_winograd_weight_size(std::int64_t O, std::int64_t C) {
  return 16 * packed_gemm_a_size<T>(O, C);
}
template <typename T>
void pack_winograd_weight(const T* weight, std::int64_t O, std::int64_t C, T* packed) {
  const std::int64_t plane = winograd::plane_stride(O * C), size = packed_gemm_a_size<T>(O, C);
  std::vector<T> u(static_cast<std::size_t>(16 * plane));
  winograd::transform_weight(weight, O, C, u.data());
  RESNET_OMP(parallel for num_threads(resnet::num_threads()))
  for (int xi = 0; xi < 16; ++xi)
    pack_gemm_a(u.data() + xi * plane, C, O, C, packed + xi * size);
}

// x [N, C, H, W], weight [O, C, 3, 3] -> y [N, O, OH, OW] (assigned, through the epilogue), OH = H + 2p - 2.
// `scratch` holds the transformed weight and the per-thread transform buffers; it grows as needed. With
// packed_u (pack_winograd_weight of this weight) the weight is neither transformed nor packed again. A
// batch that is one unit of work (one 14x14 image has 49 tiles) spreads the unit's 16 GEMMs over the
// threads instead, in a parallel region of their own: one nested in the units' region would start new
// threads beside the units' spinning ones.
template <typename T>
void conv2d_forward_winograd(const T* x, const T* weight, const ConvEpilogue<T>& epilogue, std::int64_t N,
                             std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t O, std::int64_t p,
                             T* y, std::vector<T>& scratch, const T* packed_u = nullptr) {
  const std::int64_t OH = H + 2 * p - 2, OW = W + 2 * p - 2;
  const winograd::Partition part = winograd::Partition::of(N, OH, OW);
  const std::int64_t ld = part.max_tiles();
  const std::int64_t work_size = winograd::transform_scratch(part);
  const std::int64_t u_plane = winograd::plane_stride(O * C), v_plane = winograd::plane_stride(C * ld);
  const std::int64_t m_plane = winograd::plane_stride(O * ld);
  const std::int64_t per_thread = 16 * (v_plane + m_plane) + work_size;
  const std::int64_t weight_size = packed_u ? 0 : 16 * u_plane;
  const auto needed = static_cast<std::size_t>(weight_size + resnet::num_threads() * per_thread);
  if (scratch.size() < needed) scratch.resize(needed);
  T* u_weight = scratch.data();
  if (!packed_u) winograd::transform_weight(weight, O, C, u_weight);
  const std::int64_t packed_plane = packed_u ? packed_gemm_a_size<T>(O, C) : 0;
  // Unit u's tiles, the input transform into the calling thread's V, plane xi's GEMM into its M, and the
  // output transform.
  struct Unit {
    std::int64_t n0, images, r0, r1, tiles;
    std::int64_t columns() const { return images * tiles; }
  };
  const auto unit_of = [&](std::int64_t unit) {
    const std::int64_t slice = unit % part.slices, n0 = unit / part.slices * part.images;
    const std::int64_t r0 = slice * part.slice_rows, r1 = std::min(part.tile_rows, r0 + part.slice_rows);
    return Unit{n0, std::min(part.images, N - n0), r0, r1, (r1 - r0) * part.tile_cols};
  };
  const auto v_of = [&](int thread) { return scratch.data() + weight_size + thread * per_thread; };
  const auto m_of = [&](T* v) { return v + 16 * v_plane; };
  const auto work_of = [&](T* v) { return v + 16 * (v_plane + m_plane); };
  const auto transform_in = [&](const Unit& u, T* v) {
    for (std::int64_t i = 0; i < u.images; ++i)
      winograd::transform_input(x + (u.n0 + i) * C * H * W, C, H, W, p, part.tile_cols, u.r0, u.r1, v, ld,
                                i * u.tiles, work_of(v));
  };
  const auto multiply = [&](const Unit& u, int xi, const T* v, T* m) {
    if (packed_u) {
      gemm_packed_a(O, u.columns(), C, T(1), packed_u + xi * packed_plane, v + xi * v_plane, ld, T(0),
                    m + xi * m_plane, ld);
    } else {
      gemm(false, false, O, u.columns(), C, T(1), u_weight + xi * u_plane, C, v + xi * v_plane, ld, T(0),
           m + xi * m_plane, ld);
    }
  };
  const auto transform_out = [&](const Unit& u, const T* m, T* work) {
    for (std::int64_t i = 0; i < u.images; ++i)
      winograd::transform_output(m, O, ld, i * u.tiles, part.tile_cols, u.r0, u.r1, epilogue, OH, OW,
                                 y + (u.n0 + i) * O * OH * OW, work);
  };
  if (part.units() == 1) {  // the 16 GEMMs over the threads, between transforms on this one
    const Unit u = unit_of(0);
    T* v = v_of(0);
    transform_in(u, v);
    RESNET_OMP(parallel for schedule(dynamic) num_threads(resnet::num_threads()))
    for (int xi = 0; xi < 16; ++xi)
      multiply(u, xi, v, m_of(v));
    transform_out(u, m_of(v), work_of(v));
    return;
  }
  RESNET_OMP(parallel for schedule(dynamic) num_threads(resnet::num_threads()))
  for (std::int64_t unit = 0; unit < part.units(); ++unit) {
    const Unit u = unit_of(unit);
    T* v = v_of(resnet::thread_index());
    transform_in(u, v);
    for (int xi = 0; xi < 16; ++xi)
      multiply(u, xi, v, m_of(v));
    transform_out(u, m_of(v), work_of(v));
  }
}

// The weight gradient of conv2d_forward_winograd: dU_xi [O, C] = sum over tiles of dM_xi [O, tiles] x
// V_xi [C, tiles]^T, with dM = A dY A^T and V = B^T d B recomputed from x, then dW += G^T dU G: 2.25x fewer
// multiplies than dY x cols^T of im2col. Unit u adds its product to partial sum u % slots, each owned by one
// thread at a time, and the slots are summed in their order, so the result ignores the thread count.
// x [N, C, H, W], dy [N, O, OH, OW] -> weight_grad [O, C, 3, 3] (ADDED to).
template <typename T>
void conv2d_weight_grad_winograd(const T* x, const T* dy, std::int64_t N, std::int64_t C, std::int64_t H,
                                 std::int64_t W, std::int64_t O, std::int64_t p, T* weight_grad,
                                 std::vector<T>& scratch) {
  constexpr std::int64_t kSlots = 4;
  const std::int64_t OH = H + 2 * p - 2, OW = W + 2 * p - 2;
  const winograd::Partition part = winograd::Partition::of(N, OH, OW);
  const std::int64_t ld = part.max_tiles(), slots = std::min(part.units(), kSlots);
  const std::int64_t work_size = winograd::transform_scratch(part);
  const std::int64_t u_plane = winograd::plane_stride(O * C), v_plane = winograd::plane_stride(C * ld);
  const std::int64_t m_plane = winograd::plane_stride(O * ld);
  const std::int64_t per_thread = 16 * (v_plane + m_plane) + work_size;
  const std::int64_t slot_size = 16 * u_plane;
  const auto needed = static_cast<std::size_t>(slots * slot_size + resnet::num_threads() * per_thread);
  if (scratch.size() < needed) scratch.resize(needed);
  T* du = scratch.data();
  RESNET_OMP(parallel for schedule(dynamic) num_threads(resnet::num_threads()) if (slots > 1))
  for (std::int64_t slot = 0; slot < slots; ++slot) {
    T* v = scratch.data() + slots * slot_size + resnet::thread_index() * per_thread;
    T* dm = v + 16 * v_plane;
    T* work = dm + 16 * m_plane;
    for (std::int64_t unit = slot; unit < part.units(); unit += slots) {
      const std::int64_t slice = unit % part.slices, n0 = unit / part.slices * part.images;
      const std::int64_t images = std::min(part.images, N - n0);
      const std::int64_t r0 = slice * part.slice_rows, r1 = std::min(part.tile_rows, r0 + part.slice_rows);
      const std::int64_t tiles = (r1 - r0) * part.tile_cols, columns = images * tiles;
      for (std::int64_t i = 0; i < images; ++i) {
        winograd::transform_input(x + (n0 + i) * C * H * W, C, H, W, p, part.tile_cols, r0, r1, v, ld,
                                  i * tiles, work);
        winograd::transform_output_gradient(dy + (n0 + i) * O * OH * OW, O, OH, OW, part.tile_cols, r0, r1,
                                            dm, ld, i * tiles, work);
      }
      for (int xi = 0; xi < 16; ++xi)
        gemm(false, true, O, C, columns, T(1), dm + xi * m_plane, ld, v + xi * v_plane, ld,
             unit == slot ? T(0) : T(1), du + slot * slot_size + xi * u_plane, C);
    }
  }
  for (std::int64_t slot = 1; slot < slots; ++slot) {
    const T* partial = du + slot * slot_size;
    RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (slot_size >= (std::int64_t{1} << 16)))
    for (std::int64_t i = 0; i < slot_size; ++i)
      du[i] += partial[i];
  }
  winograd::add_weight_gradient(du, O, C, weight_grad);
}

}  // namespace resnet::kernels
