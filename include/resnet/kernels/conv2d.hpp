#pragma once
// 2-d convolution of a whole batch as im2col + GEMM on fixed work units (square kernel k, stride s, zero
// padding p, as torch.nn.Conv2d), or as Winograd F(2x2, 3x3) (kernels/winograd.hpp) where use_winograd says:
//   forward   Y_n [O, OH*OW] = W [O, C*k*k] x cols(X_n) [C*k*k, OH*OW] (then a bias, or BatchNorm + ReLU)
//   backward  dW += sum_n dY_n x cols(X_n)^T,  dX_n = col2im(W^T x dY_n)
// A grouped conv (ConvShape::G groups) has the same cols; each product is then G products, group g's
// output channels and weight [O/G, C/G*k*k] against its rows of the cols. Winograd and the packed weight
// are for G = 1 only.
// Work is cut into units that depend on the shape alone, never on the thread count: a unit is a group of
// images laid side by side in one cols matrix (so small feature maps still give the GEMM enough columns), a
// slice of one image's output pixels (so a single large image still splits), and a block of output channels
// (so a single small image still splits). Each unit runs a single-threaded GEMM; one OpenMP loop spreads the
// units over the threads (after another that fills the cols the channel blocks of one group share). Every
// output element is thus computed by the same arithmetic on any thread count, and the weight gradient is
// reduced in a fixed order, so results are bitwise independent of the threads.
//
// How a conv of one shape runs is decided once, by conv_plan (below): the algorithm of each pass (by
// conv_rule, or a choice kernels/conv_search.hpp searched or loaded), the partition, whether and how the
// weight is packed ahead, and the operand type (float, or bfloat16 for Precision::BF16: the input, weight
// and output gradient rounded to bf16, products accumulated in float).

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "resnet/core/bfloat16.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/core/precision.hpp"
#include "resnet/kernels/conv_epilogue.hpp"
#include "resnet/kernels/gemm.hpp"
#include "resnet/kernels/im2col.hpp"
#include "resnet/kernels/window.hpp"
#include "resnet/kernels/winograd.hpp"

namespace resnet::kernels {

// Input [N, C, H, W], weight [O, C/G, k, k], output [N, O, OH, OW], in G groups (as torch.nn.Conv2d's
// groups): output channels [g*O/G, (g+1)*O/G) see input channels [g*C/G, (g+1)*C/G) only.
struct ConvShape {
  std::int64_t N, C, H, W, O, k, s, p;
  std::int64_t G = 1;
  std::int64_t OH() const { return window_output_size(H, k, s, p); }
  std::int64_t OW() const { return window_output_size(W, k, s, p); }
  std::int64_t OHW() const { return OH() * OW(); }
  std::int64_t CKK() const { return C * k * k; }  // rows of the cols matrix
  // The depth of one group's GEMM, C/G * k*k: the length of a weight row. Group g's rows of the cols matrix
  // are [g * group_depth(), (g+1) * group_depth()).
  std::int64_t group_depth() const { return C / G * k * k; }
  std::int64_t group_outputs() const { return O / G; }
  // A 1x1, stride-1, unpadded conv is a plain matrix product: the image [C, H*W] is its own cols matrix.
  bool pointwise() const { return k == 1 && s == 1 && p == 0; }
  auto tied() const { return std::tie(N, C, H, W, O, k, s, p, G); }
  bool operator==(const ConvShape& o) const { return tied() == o.tied(); }
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
// partials, the im2col table, and in bf16 the operands rounded to bfloat16. nn::Conv2d keeps one per calling
// thread for all its instances (the list of such state: core/buffer_pool.hpp).
template <typename T>
struct ConvWorkspace {
  // im2col's cols, products and weight-gradient partials, or Winograd's transformed weight (or its gradient
  // partials) and tiles: one buffer, as no two kernels that use it run at once.
  std::vector<T> scratch;
  std::vector<std::int32_t> indices;
  std::vector<T> flipped;  // conv2d_backward: the flipped, transposed weight of a stride-1 conv
  // bf16: the cols, the input and output gradient, and the flipped weight, rounded to bfloat16.
  std::vector<bfloat16> bf16_cols, bf16_inputs[2], bf16_flipped;

  // Op elements for operands (cols), then T elements for values (products, partials): one buffer when Op is
  // T. Grows (never shrinks) to at least the given sizes.
  template <typename Op>
  std::pair<Op*, T*> reserve(std::int64_t operands, std::int64_t values, std::int64_t index_size) {
    if (static_cast<std::int64_t>(indices.size()) < index_size) indices.resize(index_size);
    if constexpr (std::is_same_v<Op, T>) {
      T* base = grow(scratch, operands + values);
      return {base, base + operands};
    } else {
      return {grow(bf16_cols, operands), grow(scratch, values)};
    }
  }
  // An input of a pass (x, or dy: which = 0 or 1) in its operand type: itself if it has that type (T, or an
  // operand an earlier pass rounded), else rounded to bfloat16 into bf16_inputs[which].
  template <typename Op, typename In>
  const Op* operands_of(const In* x, std::int64_t n, int which = 0) {
    static_assert(std::is_same_v<In, T> || std::is_same_v<In, Op>, "an input is of type T or Op");
    if constexpr (std::is_same_v<In, Op>) {
      return x;
    } else {
      Op* rounded = grow(bf16_inputs[which], n);
      RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (n >= (std::int64_t{1} << 16)))
      for (std::int64_t i = 0; i < n; i += kConvertChunk)
        convert(x + i, std::min(kConvertChunk, n - i), rounded + i);
      return rounded;
    }
  }

 private:
  static constexpr std::int64_t kConvertChunk = 1 << 14;
  template <typename U>
  static U* grow(std::vector<U>& buffer, std::int64_t size) {
    if (static_cast<std::int64_t>(buffer.size()) < size) buffer.resize(static_cast<std::size_t>(size));
    return buffer.data();
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

// x [N, C, H, W], weight [O, C/G*k*k] -> y [N, O, OH, OW] (assigned, through the epilogue), by im2col + GEMM
// on operands of type Op (x, of type T or already Op, rounded to Op first where it is not); with the
// weight's GEMM operands from packed_weight where pack_conv_weight (below) packed them.
template <typename T, typename In, typename Op>
void conv2d_forward_im2col(const In* input, const Op* weight, const ConvEpilogue<T>& epilogue,
                           const ConvShape& g, T* y, ConvWorkspace<T>& ws,
                           const Op* packed_weight = nullptr) {
  const ConvPartition part = ConvPartition::of(g, true);
  const std::int64_t HW = g.H * g.W, CHW = g.C * HW, OHW = g.OHW(), CKK = g.CKK(), KK = g.k * g.k;
  const std::int64_t depth = g.group_depth(), group_outputs = g.group_outputs();
  const bool gather = im2col_gathers(g);
  // The output-channel blocks of one group of images and pixels read the same cols: then they are filled
  // once, before the GEMMs, in a shared area (in parallel over channels), rather than by every block.
  const std::int64_t column_units = part.groups * part.pieces, cols_size = CKK * part.max_columns();
  const bool in_place = g.pointwise() && part.images == 1;  // a pointwise conv reads one image as it is
  const bool shared = part.row_blocks > 1 && !in_place;
  const std::int64_t cols_per_thread = shared || in_place ? 0 : part.max_columns() * CKK;
  const std::int64_t product_per_thread = part.max_columns() * part.block_rows;
  const Op* x = ws.template operands_of<Op>(input, g.N * CHW);
  const auto areas = ws.template reserve<Op>(
      resnet::num_threads() * cols_per_thread + (shared ? column_units * cols_size : 0),
      resnet::num_threads() * product_per_thread, gather ? KK * OHW : 0);
  Op* cols_area = areas.first;
  T* products = areas.second;
  Op* shared_cols = cols_area + resnet::num_threads() * cols_per_thread;
  const std::int64_t packed_block = packed_weight ? packed_gemm_a_size<Op>(part.block_rows, CKK) : 0;
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
    T* product = products + resnet::thread_index() * product_per_thread;  // [rows, columns], several images
    const Op* b = x + u.n0 * CHW + u.q0;
    std::int64_t ldb = OHW;
    if (!in_place) {
      Op* cols = shared ? shared_cols + column_unit * cols_size
                        : cols_area + resnet::thread_index() * cols_per_thread;
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
      // Per group the block's rows meet: its output channels [r0, r1) read its rows of the cols.
      for (std::int64_t group = o0 / group_outputs; group * group_outputs < o0 + rows; ++group) {
        const std::int64_t r0 = std::max(o0, group * group_outputs);
        const std::int64_t r1 = std::min(o0 + rows, (group + 1) * group_outputs);
        gemm(false, false, r1 - r0, columns, depth, T(1), weight + r0 * depth, depth, b + group * depth * ldb,
             ldb, bias_first ? T(1) : T(0), out + (r0 - o0) * ldc, ldc);
      }
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
  return g.G == 1 && winograd_applies(g.k, g.s, g.p) && g.C >= 16 && g.O >= 16 && g.OH() >= 4 &&
         g.OW() >= 4 && g.N * g.OHW() >= (weight_packed ? 196 : 4 * 128);
}

enum class ConvAlgorithm { Im2col, Winograd };

inline const char* algorithm_name(ConvAlgorithm a) {
  return a == ConvAlgorithm::Winograd ? "winograd" : "im2col";
}
inline ConvAlgorithm parse_algorithm(const std::string& name) {
  check(name == "im2col" || name == "winograd", "unknown conv algorithm '", name,
        "': expected im2col or winograd");
  return name == "winograd" ? ConvAlgorithm::Winograd : ConvAlgorithm::Im2col;
}

// What a plan chooses for a shape beyond its partition: the algorithm of each pass, and whether dX is the
// stride-1 conv of dY with the flipped weight (conv2d_input_grad_as_conv) rather than col2im of W^T dY.
// conv_rule picks one by rules; kernels/conv_search.hpp can time the valid ones (conv_choice_error) instead.
struct ConvChoice {
  ConvAlgorithm forward, weight_grad;
  bool input_grad_as_conv;
  bool operator==(const ConvChoice& o) const {
    return forward == o.forward && weight_grad == o.weight_grad && input_grad_as_conv == o.input_grad_as_conv;
  }
};

// Why `choice` cannot run a conv of shape g in `precision`, or "" where it can. Winograd computes 3x3,
// stride-1 convs with padding at most 2 (winograd_applies), in fp32 only: a bf16 operand is the bf16-rounded
// input and weight, which Winograd's transforms would not keep. dX as a conv needs stride 1 and padding at
// most k-1 (the flipped conv's padding k-1-p), and Winograd's weight gradient needs it: only im2col's
// backward computes dX by col2im. A grouped conv runs im2col and col2im, and its groups divide C and O.
inline std::string conv_choice_error(const ConvShape& g, Precision precision, const ConvChoice& choice) {
  const auto winograd_error = [&](const char* pass, ConvAlgorithm a) -> std::string {
    if (a != ConvAlgorithm::Winograd) return "";
    if (precision != Precision::FP32)
      return std::string(pass) + " winograd runs in fp32 only, not in " + precision_name(precision);
    if (!winograd_applies(g.k, g.s, g.p))
      return std::string(pass) + " winograd needs a 3x3 kernel, stride 1 and padding <= 2, not kernel " +
             std::to_string(g.k) + ", stride " + std::to_string(g.s) + ", padding " + std::to_string(g.p);
    return "";
  };
  if (g.G < 1 || g.C % g.G != 0 || g.O % g.G != 0)
    return std::to_string(g.G) + " groups do not divide " + std::to_string(g.C) + " input and " +
           std::to_string(g.O) + " output channels";
  if (g.G > 1 && (choice.forward == ConvAlgorithm::Winograd ||
                  choice.weight_grad == ConvAlgorithm::Winograd || choice.input_grad_as_conv))
    return "a grouped conv (" + std::to_string(g.G) + " groups) runs im2col with col2im only";
  std::string error = winograd_error("forward", choice.forward);
  if (error.empty()) error = winograd_error("weight_grad", choice.weight_grad);
  if (error.empty() && choice.input_grad_as_conv && !(g.s == 1 && g.p <= g.k - 1))
    error = "input_grad_as_conv needs stride 1 and padding <= kernel - 1, not kernel " + std::to_string(g.k) +
            ", stride " + std::to_string(g.s) + ", padding " + std::to_string(g.p);
  if (error.empty() && choice.weight_grad == ConvAlgorithm::Winograd && !choice.input_grad_as_conv)
    error = "weight_grad winograd computes no dX: it needs input_grad_as_conv";
  return error;
}

// The rules' choice for a T conv of shape g, by shape alone, so that results never depend on timing or
// threads; pack_weight: the caller keeps the weight packed (eval mode).
//   forward      Winograd where use_winograd says (fp32 only), with the weight-packed threshold where the
//                transformed weight has a packed form, else im2col + GEMM.
//   weight_grad  Winograd where the forward of a training step would be, else im2col.
//   input_grad_as_conv  where that conv runs Winograd, or where its GEMM has rows (C) and columns (OH*OW)
//                enough to beat col2im: not on the 3-channel stem nor on 4x4 maps (benchmarks/README.md);
//                never for a grouped conv.
template <typename T>
ConvChoice conv_rule(const ConvShape& g, Precision precision, bool pack_weight) {
  const bool fp32 = precision == Precision::FP32, winograd = fp32 && use_winograd(g);
  const bool packed_winograd =
      fp32 && pack_weight && use_winograd(g, true) &&
      gemm_packs_a<T>(g.O, winograd::Partition::of(g.N, g.OH(), g.OW()).max_tiles(), g.C);
  const auto algorithm = [](bool w) { return w ? ConvAlgorithm::Winograd : ConvAlgorithm::Im2col; };
  return {
      algorithm(winograd || packed_winograd), algorithm(winograd),
      winograd || (g.G == 1 && g.s == 1 && g.p <= g.k - 1 && !g.pointwise() && g.C >= 16 && g.OHW() >= 64)};
}

// Everything decided about how a conv of one shape runs, once, from the shape, the precision, whether the
// weight is kept packed (an eval-mode Conv2d), the instruction sets enabled and the choice of algorithms:
// pack_conv_weight, forward and backward all read it. Results are a function of the plan, never of the
// thread count.
//   packed_size  the forward GEMMs' weight packed once ahead, in Op elements: for Winograd U transformed and
//                packed (pack_winograd_weight), for im2col each output-channel block of ConvPartition packed
//                by pack_gemm_a; 0 where the GEMMs have no packed form (they pack as they go), and for a
//                grouped conv. Its layout depends, through the algorithm and partition, on the batch and
//                image size.
struct ConvPlan {
  ConvShape shape;
  Precision precision;
  Isa isa;
  ConvAlgorithm forward, weight_grad;
  std::int64_t packed_size;
  bool input_grad_as_conv;
  ConvChoice choice() const { return {forward, weight_grad, input_grad_as_conv}; }
  bool operator==(const ConvPlan& o) const {
    return shape == o.shape && precision == o.precision && isa == o.isa && choice() == o.choice() &&
           packed_size == o.packed_size;
  }
};

// The plan for a T conv of shape g that runs `choice` (throws where conv_choice_error objects); pack_weight:
// the caller keeps the weight packed (eval mode).
template <typename T>
ConvPlan conv_plan(const ConvShape& g, Precision precision, bool pack_weight, const ConvChoice& choice) {
  check(precision == Precision::FP32 || std::is_same_v<T, float>, "conv_plan: bf16 needs float tensors");
  const std::string error = conv_choice_error(g, precision, choice);
  check(error.empty(), "conv_plan: ", error);
  ConvPlan plan{g, precision, active_isa(), choice.forward, choice.weight_grad, 0, choice.input_grad_as_conv};
  if (pack_weight && choice.forward == ConvAlgorithm::Winograd) {
    const winograd::Partition part = winograd::Partition::of(g.N, g.OH(), g.OW());
    if (gemm_packs_a<T>(g.O, part.max_tiles(), g.C))
      plan.packed_size = packed_winograd_weight_size<T>(g.O, g.C);
  } else if (pack_weight && g.G == 1) {
    const ConvPartition part = ConvPartition::of(g, true);
    const auto packs = [&](auto op) {
      using Op = decltype(op);
      return gemm_packs_a<Op>(part.block_rows, part.max_columns(), g.CKK())
                 ? part.row_blocks * packed_gemm_a_size<Op>(part.block_rows, g.CKK())
                 : 0;
    };
    plan.packed_size = precision == Precision::BF16 ? packs(bfloat16{}) : packs(T{});
  }
  return plan;
}

// The plan the rules give (conv_rule). nn::Conv2d asks kernels::select_conv_plan (kernels/conv_search.hpp),
// which gives this one unless a choice was searched or loaded.
template <typename T>
ConvPlan conv_plan(const ConvShape& g, Precision precision = Precision::FP32, bool pack_weight = false) {
  return conv_plan<T>(g, precision, pack_weight, conv_rule<T>(g, precision, pack_weight));
}

// The weight [O, C*k*k] packed as the plan says (plan.packed_size > 0), into plan.packed_size elements.
template <typename Op>
void pack_conv_weight(const Op* weight, const ConvPlan& plan, Op* packed) {
  check(plan.packed_size > 0, "pack_conv_weight: the plan has no packed weight");
  const ConvShape& g = plan.shape;
  if constexpr (!std::is_same_v<Op, bfloat16>) {
    if (plan.forward == ConvAlgorithm::Winograd) return pack_winograd_weight(weight, g.O, g.C, packed);
  }
  const ConvPartition part = ConvPartition::of(g, true);
  const std::int64_t CKK = g.CKK(), block_size = packed_gemm_a_size<Op>(part.block_rows, CKK);
  RESNET_OMP(parallel for num_threads(resnet::num_threads()))
  for (std::int64_t block = 0; block < part.row_blocks; ++block) {
    const std::int64_t o0 = block * part.block_rows;
    pack_gemm_a(weight + o0 * CKK, CKK, std::min(part.block_rows, g.O - o0), CKK,
                packed + block * block_size);
  }
}

// The operand type of a plan's GEMMs, for T tensors: bfloat16 in bf16, else T.
template <typename T, typename Op>
void expect_operands(const ConvPlan& plan, const char* where) {
  constexpr bool bf16 = std::is_same_v<Op, bfloat16>;
  check(bf16 == (plan.precision == Precision::BF16) && (bf16 || std::is_same_v<Op, T>), where,
        ": the weight's element type does not match the plan's precision ", precision_name(plan.precision));
}

// x [N, C, H, W], weight [O, C/G*k*k] (Op: T, or bfloat16 in bf16) -> y [N, O, OH, OW] (assigned, through
// the epilogue: a bias, or an eval-mode BatchNorm and ReLU), as the plan says. x is of type T, or already
// of type Op (an operand rounded by the caller, which is then not rounded again). packed_weight, where the
// plan packs the weight, is what pack_conv_weight made of this weight: it is then not packed (or
// transformed) at every call.
template <typename T, typename In, typename Op>
void conv2d_forward(const ConvPlan& plan, const In* x, const Op* weight, const ConvEpilogue<T>& epilogue,
                    T* y, ConvWorkspace<T>& ws, const Op* packed_weight = nullptr) {
  static_assert(std::is_same_v<In, T> || std::is_same_v<In, Op>, "conv2d_forward: x is of type T or Op");
  expect_operands<T, Op>(plan, "conv2d_forward");
  check((packed_weight != nullptr) == (plan.packed_size > 0),
        "conv2d_forward: the plan and the packed weight disagree");
  const ConvShape& g = plan.shape;
  if constexpr (std::is_same_v<Op, T>) {
    if (plan.forward == ConvAlgorithm::Winograd)
      return conv2d_forward_winograd(x, weight, epilogue, g.N, g.C, g.H, g.W, g.O, g.p, y, ws.scratch,
                                     packed_weight);
  }
  conv2d_forward_im2col(x, weight, epilogue, g, y, ws, packed_weight);
}

// The im2col + GEMM backward: weight [O, C/G*k*k], dy [N, O, OH, OW] (of type T, or already Op) -> dweight
// [O, C/G*k*k] (ADDED to) and, unless dx is null, dx [N, C, H, W] (assigned) through col2im. Group u of
// images adds its dY_u x cols_u^T to weight-gradient slot u % slots, each slot owned by one thread at a time;
// slot 0 is dweight itself and the others are added to it in slot order at the end.
template <typename T, typename Dy, typename Op>
void conv2d_backward_im2col(const T* input, const Op* weight, const Dy* grad_output, const ConvShape& g,
                            T* dx, T* dweight, ConvWorkspace<T>& ws) {
  constexpr bool same = std::is_same_v<Op, T>;  // else W^T dY goes to a T area of its own
  const ConvPartition part = ConvPartition::of(g, false);
  const std::int64_t HW = g.H * g.W, CHW = g.C * HW, OHW = g.OHW(), CKK = g.CKK(), KK = g.k * g.k;
  const std::int64_t depth = g.group_depth(), group_outputs = g.group_outputs();
  const std::int64_t weight_size = g.O * depth;
  const std::int64_t slots = std::min(part.groups, ConvPartition::kWeightGradSlots);
  const std::int64_t per_thread = part.max_columns() * (CKK + g.O);                    // Op: cols, then dY
  const std::int64_t product_per_thread = same || !dx ? 0 : part.max_columns() * CKK;  // T: W^T dY
  const bool gather = im2col_gathers(g);
  const Op* x = ws.template operands_of<Op>(input, g.N * CHW, 0);
  const Op* dy = ws.template operands_of<Op>(grad_output, g.N * g.O * OHW, 1);
  const auto areas = ws.template reserve<Op>(
      resnet::num_threads() * per_thread,
      (slots - 1) * weight_size + resnet::num_threads() * product_per_thread, gather ? KK * OHW : 0);
  Op* workspace = areas.first;
  T* partials = areas.second;  // slots 1.. : [slots - 1, O, C/G*k*k]
  T* products = partials + (slots - 1) * weight_size;
  const std::int32_t* offsets = ws.indices.data();
  if (gather) im2col_offsets(g.H, g.W, g.k, g.s, g.p, 0, OHW, ws.indices.data());
  RESNET_OMP(parallel for schedule(dynamic) num_threads(resnet::num_threads()) if (slots > 1))
  for (std::int64_t slot = 0; slot < slots; ++slot) {
    Op* cols = workspace + resnet::thread_index() * per_thread;
    T* dweight_slot = slot == 0 ? dweight : partials + (slot - 1) * weight_size;
    for (std::int64_t group = slot; group < part.groups; group += slots) {
      const std::int64_t n0 = group * part.images, images = std::min(part.images, g.N - n0);
      const std::int64_t columns = images * OHW;
      // dY of the group as [O, images * OH*OW]: in place for one image, gathered for several.
      const Op* dy_group = dy + n0 * g.O * OHW;
      if (images > 1) {
        Op* gathered = cols + CKK * columns;
        for (std::int64_t i = 0; i < images; ++i) {
          for (std::int64_t o = 0; o < g.O; ++o)
            std::copy_n(dy + ((n0 + i) * g.O + o) * OHW, OHW, gathered + o * columns + i * OHW);
        }
        dy_group = gathered;
      }
      const Op* b = x + n0 * CHW;
      if (!(g.pointwise() && images == 1)) {
        im2col_images(x + n0 * CHW, g, images, 0, OHW, 0, g.C, offsets, cols);
        b = cols;
      }
      // Per conv group c (rows c*O/G.. of dY, c*depth.. of the cols):
      // dW_c [O/G, depth] += dY_u,c [O/G, columns] x cols_u,c^T; the first group of images of slots 1..
      // initialises its slot.
      const bool first = slot > 0 && group == slot;
      for (std::int64_t c = 0; c < g.G; ++c)
        gemm(false, true, group_outputs, depth, columns, T(1), dy_group + c * group_outputs * columns,
             columns, b + c * depth * columns, columns, first ? T(0) : T(1),
             dweight_slot + c * group_outputs * depth, depth);
      if (!dx) continue;
      // dX = col2im(W^T dY_u), per conv group W_c^T [depth, O/G] x dY_u,c into rows c*depth.. of the
      // product; a pointwise conv of one image writes dX directly.
      const auto input_grad_product = [&](T* product, std::int64_t ld) {
        for (std::int64_t c = 0; c < g.G; ++c)
          gemm(true, false, depth, columns, group_outputs, T(1), weight + c * group_outputs * depth, depth,
               dy_group + c * group_outputs * columns, columns, T(0), product + c * depth * ld, ld);
      };
      if (g.pointwise() && images == 1) {
        input_grad_product(dx + n0 * CHW, OHW);
        continue;
      }
      T* product = [&] {  // W^T dY [C*k*k, columns], over the cols (which dW has used) when Op is T
        if constexpr (same) {
          return cols;
        } else {
          return products + resnet::thread_index() * product_per_thread;
        }
      }();
      input_grad_product(product, columns);
      std::fill(dx + n0 * CHW, dx + (n0 + images) * CHW, T(0));
      for (std::int64_t i = 0; i < images; ++i)
        col2im(product + i * OHW, columns, g.C, g.H, g.W, g.k, g.s, g.p, dx + (n0 + i) * CHW);
    }
  }
  if (slots > 1) {
    RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (weight_size >= (std::int64_t{1} << 16)))
    for (std::int64_t i = 0; i < weight_size; ++i) {
      T sum = dweight[i];
      for (std::int64_t slot = 1; slot < slots; ++slot)
        sum += partials[(slot - 1) * weight_size + i];
      dweight[i] = sum;
    }
  }
}

// dX of a stride-1 conv as a stride-1 conv itself: dX[c, h, w] = sum over o, ki, kj of W[o, c, ki, kj] *
// dY[o, h + p - ki, w + p - kj] convolves dY [N, O, OH, OW] with W'[c, o, ki, kj] = W[o, c, k-1-ki, k-1-kj]
// at padding k-1-p. Its GEMM has K = O*k*k rather than O, it writes dX directly instead of through col2im,
// and it takes the Winograd path where the forward would. dy is the output gradient as an operand (Op).
template <typename T, typename Op>
void conv2d_input_grad_as_conv(const ConvPlan& plan, const Op* weight, const Op* dy, T* dx,
                               ConvWorkspace<T>& ws) {
  const ConvShape& g = plan.shape;
  const std::int64_t KK = g.k * g.k;
  std::vector<Op>& flipped = [&]() -> std::vector<Op>& {
    if constexpr (std::is_same_v<Op, T>) {
      return ws.flipped;
    } else {
      return ws.bf16_flipped;
    }
  }();
  flipped.resize(static_cast<std::size_t>(g.O * g.CKK()));
  for (std::int64_t c = 0; c < g.C; ++c) {
    for (std::int64_t o = 0; o < g.O; ++o) {
      for (std::int64_t kk = 0; kk < KK; ++kk)
        flipped[(c * g.O + o) * KK + kk] = weight[(o * g.C + c) * KK + KK - 1 - kk];
    }
  }
  const ConvShape transposed{g.N, g.O, g.OH(), g.OW(), g.C, g.k, 1, g.k - 1 - g.p};
  conv2d_forward(conv_plan<T>(transposed, plan.precision), dy, flipped.data(), ConvEpilogue<T>{}, dx, ws);
}

// x [N, C, H, W], weight [O, C/G*k*k] (Op: T, or bfloat16 in bf16), dy [N, O, OH, OW] -> dx [N, C, H, W]
// (assigned, unless dx is null), dweight [O, C/G*k*k] and dbias [O] (ADDED to; dbias may be null), as the
// plan says.
template <typename T, typename Op>
void conv2d_backward(const ConvPlan& plan, const T* x, const Op* weight, const T* dy, T* dx, T* dweight,
                     T* dbias, ConvWorkspace<T>& ws) {
  expect_operands<T, Op>(plan, "conv2d_backward");
  const ConvShape& g = plan.shape;
  const bool dx_as_conv = dx && plan.input_grad_as_conv;
  // dY as an operand, rounded once in bf16 for both the weight and the input gradient.
  const Op* dy_operands = ws.template operands_of<Op>(dy, g.N * g.O * g.OHW(), 1);
  bool weight_grad_done = false;
  if constexpr (std::is_same_v<Op, T>) {
    if (plan.weight_grad == ConvAlgorithm::Winograd) {
      conv2d_weight_grad_winograd(x, dy, g.N, g.C, g.H, g.W, g.O, g.p, dweight, ws.scratch);
      weight_grad_done = true;
    }
  }
  if (!weight_grad_done)
    conv2d_backward_im2col(x, weight, dy_operands, g, dx_as_conv ? static_cast<T*>(nullptr) : dx, dweight,
                           ws);
  if (dx_as_conv) conv2d_input_grad_as_conv(plan, weight, dy_operands, dx, ws);
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
