#pragma once
// im2col / col2im, square kernel k, stride s, zero padding p: turns a convolution into one GEMM,
// Y [O, OH*OW] = W [O, C*k*k] x cols [C*k*k, OH*OW] (the scheme of Caffe and PyTorch's CPU slow_conv2d).
//
// im2col copies whole rows where it can (a block copy for "same" convs, strided row copies for output rows
// of 16 pixels or more) and otherwise gathers through an index table that depends on the geometry alone and
// is shared by all channels. col2im, its adjoint, always adds rows: each pixel receives its columns in
// kernel-offset order.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/kernels/window.hpp"

namespace resnet::kernels {

// The index tables hold int32 pixel indices (half the memory traffic of int64), so neither the input plane
// nor the output plane may reach 2^31 pixels.
inline void expect_int32_tables(std::int64_t H, std::int64_t W, std::int64_t OHW) {
  const std::int64_t limit = std::numeric_limits<std::int32_t>::max();
  check(H * W <= limit && OHW <= limit, "im2col: a ", H, "x", W, " input plane with ", OHW,
        " output pixels is larger than the 2^31 - 1 pixels its int32 index tables reach");
}

// offsets [k*k, q1 - q0]: for kernel offset (ki, kj) and output pixel q (flat oh*OW + ow), the input pixel
// h*W + w it reads, h = oh*s - p + ki and w = ow*s - p + kj, or -1 where that lies in the padding.
inline void im2col_offsets(std::int64_t H, std::int64_t W, std::int64_t k, std::int64_t s, std::int64_t p,
                           std::int64_t q0, std::int64_t q1, std::int32_t* offsets) {
  const std::int64_t OW = window_output_size(W, k, s, p);
  expect_int32_tables(H, W, window_output_size(H, k, s, p) * OW);
  for (std::int64_t ki = 0; ki < k; ++ki) {
    for (std::int64_t kj = 0; kj < k; ++kj) {
      std::int32_t* row = offsets + (ki * k + kj) * (q1 - q0);
      for (std::int64_t q = q0; q < q1; ++q) {
        const std::int64_t h = q / OW * s - p + ki, w = q % OW * s - p + kj;
        row[q - q0] = h >= 0 && h < H && w >= 0 && w < W ? static_cast<std::int32_t>(h * W + w) : -1;
      }
    }
  }
}

// image [C, HW], offsets [KK, width] (row stride offsets_ld) from im2col_offsets -> cols [C*KK, width]
// with row stride ld (overwritten; padding gives zeros).
template <typename T>
void im2col(const T* image, std::int64_t C, std::int64_t HW, std::int64_t KK, const std::int32_t* offsets,
            std::int64_t offsets_ld, std::int64_t width, T* cols, std::int64_t ld) {
  for (std::int64_t c = 0; c < C; ++c) {
    const T* plane = image + c * HW;
    for (std::int64_t kk = 0; kk < KK; ++kk) {
      const std::int32_t* offset = offsets + kk * offsets_ld;
      T* out = cols + (c * KK + kk) * ld;
      for (std::int64_t j = 0; j < width; ++j)
        out[j] = offset[j] >= 0 ? plane[offset[j]] : T(0);
    }
  }
}

// Whether im2col_same applies: stride 1 and an output as large as the input (2p = k - 1), the 3x3 pad-1
// convolutions that make up most of ResNet.
inline bool is_same_convolution(std::int64_t k, std::int64_t s, std::int64_t p) {
  return s == 1 && 2 * p == k - 1;
}

// im2col for a "same" convolution, output pixels [q0, q1) of image [C, H, W] -> cols [C*k*k, q1 - q0] with
// row stride ld. Row (c, ki, kj) is then the plane shifted by d = (ki - p) * W + (kj - p): one block copy,
// zeros where the shift leaves the image at the top or bottom, and the columns that wrapped around a row
// edge zeroed afterwards: a copy at memory speed where the gather reads an index for every element.
template <typename T>
void im2col_same(const T* image, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t k,
                 std::int64_t p, std::int64_t q0, std::int64_t q1, T* cols, std::int64_t ld) {
  const std::int64_t HW = H * W;
  for (std::int64_t c = 0; c < C; ++c) {
    const T* plane = image + c * HW;
    for (std::int64_t ki = 0; ki < k; ++ki) {
      for (std::int64_t kj = 0; kj < k; ++kj) {
        T* out = cols + ((c * k + ki) * k + kj) * ld - q0;  // out[q] for q in [q0, q1)
        const std::int64_t dh = ki - p, dw = kj - p, d = dh * W + dw;
        // Pixels whose shifted source lies inside the plane (wrapped columns included, zeroed below).
        const std::int64_t lo = std::clamp<std::int64_t>(std::max(-d, std::int64_t{0}), q0, q1);
        const std::int64_t hi = std::clamp<std::int64_t>(std::min(HW - d, HW), lo, q1);
        std::fill(out + q0, out + lo, T(0));
        std::copy(plane + lo + d, plane + hi + d, out + lo);
        std::fill(out + hi, out + q1, T(0));
        // Output columns ow whose source column ow + dw lies outside [0, W).
        const std::int64_t bad_begin = dw < 0 ? 0 : W - dw, bad_end = dw < 0 ? -dw : W;
        if (bad_begin == bad_end || lo == hi) continue;
        for (std::int64_t row = lo / W * W; row < hi; row += W) {
          for (std::int64_t q = std::max(row + bad_begin, lo); q < std::min(row + bad_end, hi); ++q)
            out[q] = T(0);
        }
      }
    }
  }
}

// Output columns [lo, hi) of a window row whose input column ow*s - p + kj lies inside [0, W): from
// ceil((p - kj) / s) to floor((W - 1 + p - kj) / s), empty when the last input column is left of the first
// output's (a map narrower than the kernel's reach; C++ division would round that negative bound up to 0).
inline std::pair<std::int64_t, std::int64_t> inside_columns(std::int64_t W, std::int64_t OW, std::int64_t s,
                                                            std::int64_t p, std::int64_t kj) {
  const std::int64_t lo = std::min(OW, (std::max<std::int64_t>(p - kj, 0) + s - 1) / s);
  const std::int64_t last = W - 1 + p - kj;  // s * (the last output column) at most
  return {lo, last < 0 ? lo : std::clamp<std::int64_t>(last / s + 1, lo, OW)};
}

// out[i] = source[i * stride] (copy_strided) or out[i * stride] += source[i] (add_strided) for i < n. GCC
// vectorises a strided access only when the stride is a constant, so ResNet's strides 1 and 2 get loops of
// their own.
template <typename Step>
void with_constant_stride(std::int64_t stride, Step&& step) {
  if (stride == 1) {
    step(std::integral_constant<std::int64_t, 1>{});
  } else if (stride == 2) {
    step(std::integral_constant<std::int64_t, 2>{});
  } else {
    step(stride);
  }
}
template <typename T>
void copy_strided(const T* source, std::int64_t stride, std::int64_t n, T* out) {
  with_constant_stride(stride, [&](auto s) {
    for (std::int64_t i = 0; i < n; ++i)
      out[i] = source[i * s];
  });
}
template <typename T>
void add_strided(const T* source, std::int64_t stride, std::int64_t n, T* out) {
  with_constant_stride(stride, [&](auto s) {
    for (std::int64_t i = 0; i < n; ++i)
      out[i * s] += source[i];
  });
}

// im2col of any geometry, output pixels [q0, q1) of image [C, H, W] -> cols [C*k*k, q1 - q0] with row stride
// ld, one output row at a time: row (c, ki, kj) of output row oh reads input row oh*s - p + ki at columns
// ow*s - p + kj, a strided copy between the padding zeros at its ends: no index table and no gather, which
// on the wide rows of the 7x7 stride-2 stem cost about as much as the GEMM they feed.
template <typename T>
void im2col_rows(const T* image, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t k,
                 std::int64_t s, std::int64_t p, std::int64_t q0, std::int64_t q1, T* cols, std::int64_t ld) {
  const std::int64_t OW = window_output_size(W, k, s, p);
  for (std::int64_t c = 0; c < C; ++c) {
    const T* plane = image + c * H * W;
    for (std::int64_t ki = 0; ki < k; ++ki) {
      for (std::int64_t kj = 0; kj < k; ++kj) {
        T* out = cols + ((c * k + ki) * k + kj) * ld - q0;  // out[q] for q in [q0, q1)
        const auto [ow_lo, ow_hi] = inside_columns(W, OW, s, p, kj);
        for (std::int64_t q = q0; q < q1;) {
          const std::int64_t oh = q / OW, ow0 = q % OW, ow1 = std::min(OW, ow0 + (q1 - q));
          T* row = out + q - ow0;  // row[ow] for ow in [ow0, ow1)
          const std::int64_t h = oh * s - p + ki;
          if (h < 0 || h >= H) {
            std::fill(row + ow0, row + ow1, T(0));
          } else {
            const std::int64_t lo = std::clamp(ow_lo, ow0, ow1), hi = std::clamp(ow_hi, lo, ow1);
            std::fill(row + ow0, row + lo, T(0));
            if (lo < hi) copy_strided(plane + h * W + lo * s + kj - p, s, hi - lo, row + lo);
            std::fill(row + hi, row + ow1, T(0));
          }
          q += ow1 - ow0;
        }
      }
    }
  }
}

// The adjoint of im2col over whole images: cols [C*k*k, OH*OW] with row stride ld -> image [C, H, W],
// ACCUMULATED (+=) by strided row adds, so an input pixel covered by several windows receives the sum of
// their gradients, added in kernel-offset order. Rows, not a gather per pixel through a table, on every
// geometry: at stride 2 most of such a table's entries are padding.
template <typename T>
void col2im(const T* cols, std::int64_t ld, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t k,
            std::int64_t s, std::int64_t p, T* image) {
  const std::int64_t OH = window_output_size(H, k, s, p), OW = window_output_size(W, k, s, p);
  for (std::int64_t c = 0; c < C; ++c) {
    T* plane = image + c * H * W;
    for (std::int64_t ki = 0; ki < k; ++ki) {
      for (std::int64_t kj = 0; kj < k; ++kj) {
        const T* row = cols + ((c * k + ki) * k + kj) * ld;
        const auto [lo, hi] = inside_columns(W, OW, s, p, kj);
        if (lo == hi) continue;  // every column of this offset reads padding (and the row start lies outside)
        for (std::int64_t oh = 0; oh < OH; ++oh) {
          const std::int64_t h = oh * s - p + ki;
          if (h >= 0 && h < H) add_strided(row + oh * OW + lo, s, hi - lo, plane + h * W + lo * s + kj - p);
        }
      }
    }
  }
}

// Whether im2col_rows beats the gather for output rows this wide: from 16 outputs a row (the ImageNet stem
// has 112); on rows of 4 to 7 (layer4) its per-row bookkeeping costs more (benchmarks/README.md).
inline bool im2col_by_rows(std::int64_t OW) {
  return OW >= 16;
}

// image [C, H, W] -> cols [C*k*k, OH*OW], every output pixel (overwritten).
template <typename T>
void im2col(const T* image, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t k, std::int64_t s,
            std::int64_t p, T* cols) {
  const std::int64_t OHW = window_output_size(H, k, s, p) * window_output_size(W, k, s, p);
  if (is_same_convolution(k, s, p)) return im2col_same(image, C, H, W, k, p, 0, OHW, cols, OHW);
  std::vector<std::int32_t> offsets(static_cast<std::size_t>(k * k * OHW));
  im2col_offsets(H, W, k, s, p, 0, OHW, offsets.data());
  im2col(image, C, H * W, k * k, offsets.data(), OHW, OHW, cols, OHW);
}

}  // namespace resnet::kernels
