#pragma once
// 2-d convolution of a whole batch as im2col + GEMM on fixed work units (square kernel k, stride s, zero
// padding p, as torch.nn.Conv2d), or as Winograd F(2x2, 3x3) (kernels/winograd.hpp) where use_winograd says:
//   forward   Y_n [O, OH*OW] = W [O, C*k*k] x cols(X_n) [C*k*k, OH*OW] (then a bias, or BatchNorm + ReLU)
//   backward  dW += sum_n dY_n x cols(X_n)^T,  dX_n = col2im(W^T x dY_n)
// Work is cut into units that depend on the shape alone, never on the thread count: a unit is a group of
// images laid side by side in one cols matrix (so small feature maps still give the GEMM enough columns), a
// slice of one image's output pixels (so a single large image still splits), and a block of output channels
// (so a single small image still splits). Each unit runs a single-threaded GEMM; one OpenMP loop spreads the
// units over the threads (after another that fills the cols the channel blocks of one group share). Every
// output element is thus computed by the same arithmetic on any thread count, and the weight gradient is
// reduced in a fixed order, so results are bitwise independent of the threads.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "resnet/core/parallel.hpp"
#include "resnet/kernels/conv_epilogue.hpp"
#include "resnet/kernels/gemm.hpp"
#include "resnet/kernels/im2col.hpp"
#include "resnet/kernels/window.hpp"
#include "resnet/kernels/winograd.hpp"

namespace resnet::kernels {

// Input [N, C, H, W], weight [O, C, k, k], output [N, O, OH, OW].
struct ConvShape {
  std::int64_t N, C, H, W, O, k, s, p;
  std::int64_t OH() const { return window_output_size(H, k, s, p); }
  std::int64_t OW() const { return window_output_size(W, k, s, p); }
  std::int64_t OHW() const { return OH() * OW(); }
  std::int64_t CKK() const { return C * k * k; }
  // A 1x1, stride-1, unpadded conv is a plain matrix product: the image [C, H*W] is its own cols matrix.
  bool pointwise() const { return k == 1 && s == 1 && p == 0; }
};

// How a batch is cut into work units. A single-threaded GEMM runs near its best speed only from about 256
// columns on (measurements: benchmarks/README.md), hence kMinColumns.
struct ConvPartition {
  static constexpr std::int64_t kMinColumns = 256;     // group small images until a unit has this many
  static constexpr std::int64_t kMaxColumns = 1024;    // slice larger images into pieces of at most this
  static constexpr std::int64_t kMinUnits = 4;         // split further (pixels, then channels) below this
  static constexpr std::int64_t kMinBlockRows = 32;    // never split output channels finer than this
  static constexpr std::int64_t kWeightGradSlots = 4;  // partial weight gradients summed in a fixed order

  std::int64_t images;      // images per group
  std::int64_t groups;      // ceil(N / images)
  std::int64_t pieces;      // pixel slices per image (1 when images > 1)
  std::int64_t piece_size;  // output pixels per slice
  std::int64_t row_blocks;  // output-channel blocks
  std::int64_t block_rows;  // output channels per block
  std::int64_t units() const { return groups * pieces * row_blocks; }
  std::int64_t max_columns() const { return images * piece_size; }

  // Forward: all three kinds of split. Backward (forward_only = false): whole images only, because col2im
  // of two slices of one image would write the same input pixels.
  static ConvPartition of(const ConvShape& g, bool forward_only) {
    const std::int64_t OHW = g.OHW();
    ConvPartition part{};
    part.images = std::clamp<std::int64_t>((kMinColumns + OHW - 1) / OHW, 1, g.N);
    part.groups = (g.N + part.images - 1) / part.images;
    part.pieces = forward_only && part.images == 1 ? (OHW + kMaxColumns - 1) / kMaxColumns : 1;
    while (forward_only && part.images == 1 && part.groups * part.pieces < kMinUnits &&
           OHW / (2 * part.pieces) >= kMinColumns)
      part.pieces *= 2;
    part.row_blocks = 1;
    while (forward_only && part.groups * part.pieces * part.row_blocks < kMinUnits &&
           g.O / (2 * part.row_blocks) >= kMinBlockRows)
      part.row_blocks *= 2;
    part.piece_size = (OHW + part.pieces - 1) / part.pieces;
    part.block_rows = (g.O + part.row_blocks - 1) / part.row_blocks;
    return part;
  }
};

// Scratch memory of the convolution kernels, owned by the caller and reused from call to call, so that it is
// allocated once: per-thread cols and product buffers, cols shared by channel blocks, weight-gradient
// partials, the im2col table. nn::Conv2d keeps one per calling thread for all its instances (the list of such
// state: core/buffer_pool.hpp).
template <typename T>
struct ConvWorkspace {
  // im2col's cols, products and weight-gradient partials, or Winograd's transformed weight (or its gradient
  // partials) and tiles: one buffer, as no two kernels that use it run at once.
  std::vector<T> scratch;
  std::vector<std::int32_t> indices;
  std::vector<T> flipped;  // conv2d_backward: the flipped, transposed weight of a stride-1 conv
  // Grows (never shrinks) to at least the given sizes; returns the scratch.
  T* reserve(std::int64_t scratch_size, std::int64_t index_size) {
    if (static_cast<std::int64_t>(scratch.size()) < scratch_size) scratch.resize(scratch_size);
    if (static_cast<std::int64_t>(indices.size()) < index_size) indices.resize(index_size);
    return scratch.data();
  }
};

// Whether im2col_images gathers through the offsets table (neither a "same" conv nor rows wide enough for
// strided row copies).
inline bool im2col_gathers(const ConvShape& g) {
  return !is_same_convolution(g.k, g.s, g.p) && !im2col_by_rows(g.OW());
}

// Rows [c0 * k*k, c1 * k*k) of the cols [C*k*k, images * (q1 - q0)] of output pixels [q0, q1) of the images
// x [images, C, H, W] side by side, by the copy that suits the geometry: a block copy for "same" convs,
// strided row copies for wide outputs, else the gather through `offsets` (im2col_offsets of all OH*OW
// pixels).
template <typename T>
void im2col_images(const T* x, const ConvShape& g, std::int64_t images, std::int64_t q0, std::int64_t q1,
                   std::int64_t c0, std::int64_t c1, const std::int32_t* offsets, T* cols) {
  const std::int64_t HW = g.H * g.W, width = q1 - q0, ld = images * width;
  for (std::int64_t i = 0; i < images; ++i) {
    const T* image = x + (i * g.C + c0) * HW;
    T* out = cols + c0 * g.k * g.k * ld + i * width;
    if (im2col_gathers(g)) {
      im2col(image, c1 - c0, HW, g.k * g.k, offsets + q0, g.OHW(), width, out, ld);
    } else if (is_same_convolution(g.k, g.s, g.p)) {
      im2col_same(image, c1 - c0, g.H, g.W, g.k, g.p, q0, q1, out, ld);
    } else {
      im2col_rows(image, c1 - c0, g.H, g.W, g.k, g.s, g.p, q0, q1, out, ld);
    }
  }
}

// x [N, C, H, W], weight [O, C*k*k] -> y [N, O, OH, OW] (assigned, through the epilogue), by im2col + GEMM;
// with the weight's GEMM operands from packed_weight where pack_conv_weight (below) packed them.
template <typename T>
void conv2d_forward_im2col(const T* x, const T* weight, const ConvEpilogue<T>& epilogue, const ConvShape& g,
                           T* y, ConvWorkspace<T>& ws, const T* packed_weight = nullptr) {
  const ConvPartition part = ConvPartition::of(g, true);
  const std::int64_t HW = g.H * g.W, CHW = g.C * HW, OHW = g.OHW(), CKK = g.CKK(), KK = g.k * g.k;
  const bool gather = im2col_gathers(g);
  // The output-channel blocks of one group of images and pixels read the same cols: then they are filled
  // once, before the GEMMs, in a shared area (in parallel over channels), rather than by every block.
  const std::int64_t column_units = part.groups * part.pieces, cols_size = CKK * part.max_columns();
  const bool in_place = g.pointwise() && part.images == 1;  // a pointwise conv reads one image as it is
  const bool shared = part.row_blocks > 1 && !in_place;
  const std::int64_t per_thread = part.max_columns() * ((shared || in_place ? 0 : CKK) + part.block_rows);
  T* workspace = ws.reserve(resnet::num_threads() * per_thread + (shared ? column_units * cols_size : 0),
                            gather ? KK * OHW : 0);
  T* shared_cols = workspace + resnet::num_threads() * per_thread;
  const std::int64_t packed_block = packed_weight ? packed_gemm_a_size<T>(part.block_rows, CKK) : 0;
  const std::int32_t* offsets = ws.indices.data();
  if (gather) im2col_offsets(g.H, g.W, g.k, g.s, g.p, 0, OHW, ws.indices.data());

  // Images [n0, n0 + images) and output pixels [q0, q1) of column unit u.
  struct Columns {
    std::int64_t n0, images, q0, q1;
    std::int64_t width() const { return q1 - q0; }
    std::int64_t count() const { return images * width(); }
  };
  const auto columns_of = [&](std::int64_t u) {
    const std::int64_t n0 = u / part.pieces * part.images, q0 = u % part.pieces * part.piece_size;
    return Columns{n0, std::min(part.images, g.N - n0), q0, std::min(OHW, q0 + part.piece_size)};
  };
  if (shared) {
    constexpr std::int64_t kChannelChunks = 8;
    const std::int64_t chunk = (g.C + kChannelChunks - 1) / kChannelChunks;
    RESNET_OMP(parallel for schedule(dynamic) num_threads(resnet::num_threads()))
    for (std::int64_t job = 0; job < column_units * kChannelChunks; ++job) {
      const std::int64_t c0 = std::min(g.C, job % kChannelChunks * chunk), c1 = std::min(g.C, c0 + chunk);
      const Columns u = columns_of(job / kChannelChunks);
      im2col_images(x + u.n0 * CHW, g, u.images, u.q0, u.q1, c0, c1, offsets,
                    shared_cols + job / kChannelChunks * cols_size);
    }
  }

  RESNET_OMP(parallel for schedule(dynamic) num_threads(resnet::num_threads()) if (part.units() > 1))
  for (std::int64_t unit = 0; unit < part.units(); ++unit) {
    const std::int64_t block = unit % part.row_blocks, column_unit = unit / part.row_blocks;
    const Columns u = columns_of(column_unit);
    const std::int64_t o0 = block * part.block_rows, rows = std::min(part.block_rows, g.O - o0);
    const std::int64_t width = u.width(), columns = u.count();
    T* scratch = workspace + resnet::thread_index() * per_thread;
    T* product = scratch + (shared || in_place ? 0 : CKK * columns);  // [rows, columns] for several images
    const T* b = x + u.n0 * CHW + u.q0;
    std::int64_t ldb = OHW;
    if (!in_place) {
      T* cols = shared ? shared_cols + column_unit * cols_size : scratch;
      if (!shared) im2col_images(x + u.n0 * CHW, g, u.images, u.q0, u.q1, 0, g.C, offsets, cols);
      b = cols;
      ldb = columns;
    }
    // One image is written in place; several are computed side by side and then scattered to NCHW.
    T* out = u.images == 1 ? y + (u.n0 * g.O + o0) * OHW + u.q0 : product;
    const std::int64_t ldc = u.images == 1 ? OHW : columns;
    // Like PyTorch's addmm, a bias alone fills the output and the GEMM adds to it.
    const bool bias_first = u.images == 1 && epilogue.shift && !epilogue.scales();
    if (bias_first) {
      for (std::int64_t o = 0; o < rows; ++o)
        std::fill(out + o * ldc, out + o * ldc + width, epilogue.shift[o0 + o]);
    }
    if (packed_weight) {
      gemm_packed_a(rows, columns, CKK, T(1), packed_weight + block * packed_block, b, ldb,
                    bias_first ? T(1) : T(0), out, ldc);
    } else {
      gemm(false, false, rows, columns, CKK, T(1), weight + o0 * CKK, CKK, b, ldb, bias_first ? T(1) : T(0),
           out, ldc);
    }
    if (u.images == 1 && epilogue.scales()) {
      for (std::int64_t o = 0; o < rows; ++o)
        epilogue.apply(o0 + o, out + o * ldc, out + o * ldc, width);
    }
    if (u.images > 1) {
      for (std::int64_t i = 0; i < u.images; ++i) {
        for (std::int64_t o = 0; o < rows; ++o)
          epilogue.apply(o0 + o, product + o * columns + i * width,
                         y + ((u.n0 + i) * g.O + o0 + o) * OHW + u.q0, width);
      }
    }
  }
}

// Winograd F(2x2, 3x3) where its 16 GEMMs are large enough to repay the transforms: from 4x4 maps with 512
// outputs (128 tiles) in the batch, or 196 when the weight is transformed once ahead rather than at every
// call (weight_packed: an eval-mode Conv2d). By shape alone, so results never depend on timing or threads.
inline bool use_winograd(const ConvShape& g, bool weight_packed = false) {
  return winograd_applies(g.k, g.s, g.p) && g.C >= 16 && g.O >= 16 && g.OH() >= 4 && g.OW() >= 4 &&
         g.N * g.OHW() >= (weight_packed ? 196 : 4 * 128);
}

// A conv's weight packed once for the forward GEMMs of shape g, for a caller that runs the same weight again
// and again (an eval-mode Conv2d), where those GEMMs run narrow (gemm_is_narrow: fewer than 256 columns a
// work unit): for Winograd, U transformed and packed (pack_winograd_weight); for im2col, each output-channel
// block of ConvPartition packed by pack_gemm_a. packed_conv_weight_size is 0 where there is no such form (the
// GEMMs pack as they go); the layout depends on the weight and, through the algorithm and partition, on the
// batch and image size.
template <typename T>
std::int64_t packed_conv_weight_size(const ConvShape& g) {
  if (use_winograd(g, true)) {
    const winograd::Partition part = winograd::Partition::of(g.N, g.OH(), g.OW());
    return gemm_is_narrow<T>(g.O, part.max_tiles(), g.C) ? packed_winograd_weight_size<T>(g.O, g.C) : 0;
  }
  const ConvPartition part = ConvPartition::of(g, true);
  if (!gemm_is_narrow<T>(part.block_rows, part.max_columns(), g.CKK())) return 0;
  return part.row_blocks * packed_gemm_a_size<T>(part.block_rows, g.CKK());
}
template <typename T>
void pack_conv_weight(const T* weight, const ConvShape& g, T* packed) {
  check(packed_conv_weight_size<T>(g) > 0, "pack_conv_weight: no packed form for this shape");
  if (use_winograd(g, true)) return pack_winograd_weight(weight, g.O, g.C, packed);
  const ConvPartition part = ConvPartition::of(g, true);
  const std::int64_t CKK = g.CKK(), block_size = packed_gemm_a_size<T>(part.block_rows, CKK);
  RESNET_OMP(parallel for num_threads(resnet::num_threads()))
  for (std::int64_t block = 0; block < part.row_blocks; ++block) {
    const std::int64_t o0 = block * part.block_rows;
    pack_gemm_a(weight + o0 * CKK, CKK, std::min(part.block_rows, g.O - o0), CKK,
                packed + block * block_size);
  }
}

// x [N, C, H, W], weight [O, C*k*k] -> y [N, O, OH, OW] (assigned, through the epilogue: a bias, or an
// eval-mode BatchNorm and ReLU). packed_weight, if not null, is what pack_conv_weight made of this weight for
// this shape: the weight is then not packed (or transformed) at every call.
template <typename T>
void conv2d_forward(const T* x, const T* weight, const ConvEpilogue<T>& epilogue, const ConvShape& g, T* y,
                    ConvWorkspace<T>& ws, const T* packed_weight = nullptr) {
  if (use_winograd(g, packed_weight != nullptr)) {
    conv2d_forward_winograd(x, weight, epilogue, g.N, g.C, g.H, g.W, g.O, g.p, y, ws.scratch, packed_weight);
  } else {
    conv2d_forward_im2col(x, weight, epilogue, g, y, ws, packed_weight);
  }
}

// The im2col + GEMM backward: weight [O, C*k*k], dy [N, O, OH, OW] -> dweight [O, C*k*k] (ADDED to) and,
// unless dx is null, dx [N, C, H, W] (assigned) through col2im. Group u of images adds its dY_u x cols_u^T to
// weight-gradient slot u % slots, each slot owned by one thread at a time; slot 0 is dweight itself and the
// others are added to it in slot order at the end.
template <typename T>
void conv2d_backward_im2col(const T* x, const T* weight, const T* dy, const ConvShape& g, T* dx, T* dweight,
                            ConvWorkspace<T>& ws) {
  const ConvPartition part = ConvPartition::of(g, false);
  const std::int64_t HW = g.H * g.W, CHW = g.C * HW, OHW = g.OHW(), CKK = g.CKK(), KK = g.k * g.k;
  const std::int64_t OCKK = g.O * CKK;
  const std::int64_t slots = std::min(part.groups, ConvPartition::kWeightGradSlots);
  const std::int64_t per_thread = part.max_columns() * (CKK + g.O);
  const bool gather = im2col_gathers(g);
  T* workspace = ws.reserve(resnet::num_threads() * per_thread + (slots - 1) * OCKK, gather ? KK * OHW : 0);
  T* partials = workspace + resnet::num_threads() * per_thread;  // slots 1.. : [slots - 1, O, C*k*k]
  const std::int32_t* offsets = ws.indices.data();
  if (gather) im2col_offsets(g.H, g.W, g.k, g.s, g.p, 0, OHW, ws.indices.data());
  RESNET_OMP(parallel for schedule(dynamic) num_threads(resnet::num_threads()) if (slots > 1))
  for (std::int64_t slot = 0; slot < slots; ++slot) {
    T* cols = workspace + resnet::thread_index() * per_thread;
    T* dweight_slot = slot == 0 ? dweight : partials + (slot - 1) * OCKK;
    for (std::int64_t group = slot; group < part.groups; group += slots) {
      const std::int64_t n0 = group * part.images, images = std::min(part.images, g.N - n0);
      const std::int64_t columns = images * OHW;
      // dY of the group as [O, images * OH*OW]: in place for one image, gathered for several.
      const T* dy_group = dy + n0 * g.O * OHW;
      if (images > 1) {
        T* gathered = cols + CKK * columns;
        for (std::int64_t i = 0; i < images; ++i) {
          for (std::int64_t o = 0; o < g.O; ++o)
            std::copy_n(dy + ((n0 + i) * g.O + o) * OHW, OHW, gathered + o * columns + i * OHW);
        }
        dy_group = gathered;
      }
      const T* b = x + n0 * CHW;
      if (!(g.pointwise() && images == 1)) {
        im2col_images(x + n0 * CHW, g, images, 0, OHW, 0, g.C, offsets, cols);
        b = cols;
      }
      // dW [O, C*k*k] += dY_u [O, columns] x cols_u^T; the first group of slots 1.. initialises its slot.
      const bool first = slot > 0 && group == slot;
      gemm(false, true, g.O, CKK, columns, T(1), dy_group, columns, b, columns, first ? T(0) : T(1),
           dweight_slot, CKK);
      if (!dx) continue;
      // dX = col2im(W^T [C*k*k, O] x dY_u); a pointwise conv of one image writes dX directly.
      if (g.pointwise() && images == 1) {
        gemm(true, false, CKK, OHW, g.O, T(1), weight, CKK, dy_group, columns, T(0), dx + n0 * CHW, OHW);
        continue;
      }
      gemm(true, false, CKK, columns, g.O, T(1), weight, CKK, dy_group, columns, T(0), cols, columns);
      std::fill(dx + n0 * CHW, dx + (n0 + images) * CHW, T(0));
      for (std::int64_t i = 0; i < images; ++i)
        col2im(cols + i * OHW, columns, g.C, g.H, g.W, g.k, g.s, g.p, dx + (n0 + i) * CHW);
    }
  }
  if (slots > 1) {
    RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (OCKK >= (std::int64_t{1} << 16)))
    for (std::int64_t i = 0; i < OCKK; ++i) {
      T sum = dweight[i];
      for (std::int64_t slot = 1; slot < slots; ++slot)
        sum += partials[(slot - 1) * OCKK + i];
      dweight[i] = sum;
    }
  }
}

// dX of a stride-1 conv as a stride-1 conv itself: dX[c, h, w] = sum over o, ki, kj of W[o, c, ki, kj] *
// dY[o, h + p - ki, w + p - kj] convolves dY [N, O, OH, OW] with W'[c, o, ki, kj] = W[o, c, k-1-ki, k-1-kj]
// at padding k-1-p. Its GEMM has K = O*k*k rather than O, it writes dX directly instead of through col2im,
// and it takes the Winograd path where the forward would.
template <typename T>
void conv2d_input_grad_as_conv(const T* weight, const T* dy, const ConvShape& g, T* dx,
                               ConvWorkspace<T>& ws) {
  const std::int64_t KK = g.k * g.k;
  ws.flipped.resize(static_cast<std::size_t>(g.O * g.CKK()));
  for (std::int64_t c = 0; c < g.C; ++c) {
    for (std::int64_t o = 0; o < g.O; ++o) {
      for (std::int64_t kk = 0; kk < KK; ++kk)
        ws.flipped[(c * g.O + o) * KK + kk] = weight[(o * g.C + c) * KK + KK - 1 - kk];
    }
  }
  conv2d_forward(dy, ws.flipped.data(), ConvEpilogue<T>{},
                 ConvShape{g.N, g.O, g.OH(), g.OW(), g.C, g.k, 1, g.k - 1 - g.p}, dx, ws);
}

// x [N, C, H, W], weight [O, C*k*k], dy [N, O, OH, OW] -> dx [N, C, H, W] (assigned, unless dx is null),
// dweight [O, C*k*k] and dbias [O] (ADDED to; dbias may be null).
template <typename T>
void conv2d_backward(const T* x, const T* weight, const T* dy, const ConvShape& g, T* dx, T* dweight,
                     T* dbias, ConvWorkspace<T>& ws) {
  // dX as a conv where that conv runs Winograd, or where its GEMM has rows (C) and columns (OH*OW) enough to
  // beat col2im: not on the 3-channel stem nor on 4x4 maps (measurements: benchmarks/README.md).
  const bool dx_as_conv =
      dx && (use_winograd(g) || (g.s == 1 && g.p <= g.k - 1 && !g.pointwise() && g.C >= 16 && g.OHW() >= 64));
  if (use_winograd(g)) {
    conv2d_weight_grad_winograd(x, dy, g.N, g.C, g.H, g.W, g.O, g.p, dweight, ws.scratch);
  } else {
    conv2d_backward_im2col(x, weight, dy, g, dx_as_conv ? static_cast<T*>(nullptr) : dx, dweight, ws);
  }
  if (dx_as_conv) conv2d_input_grad_as_conv(weight, dy, g, dx, ws);
  if (dbias) {
    const std::int64_t OHW = g.OHW();
    for (std::int64_t n = 0; n < g.N; ++n) {
      for (std::int64_t o = 0; o < g.O; ++o) {
        const T* dyp = dy + (n * g.O + o) * OHW;
        dbias[o] += ConstMatrixView<T>(dyp, 1, OHW).sum();
      }
    }
  }
}

}  // namespace resnet::kernels
